"""The group-buy slice of player state (wire key ``gb``): the shopper's own side of the
groups they opened or joined. The rules are in :mod:`mechanics.groupbuy`.

The slice follows the group's gate record (the two-commit protocol): it is written only
by commits driven from records the group's commits left, so it says what the group
decided, a moment later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, records_slice


@dataclass
class MyGroup:
    """One group the shopper is (or was) in."""

    offer: str
    role: str
    """``opener`` or ``member``"""
    state: str
    """``open``, ``complete``, ``failed``, ``left`` or ``refunded`` (the purchase of a
    complete group was refunded)"""
    expires_at: int
    at: int
    """when the shopper joined (the opener: opened)"""
    paid: dict[str, int]
    """currency → amount paid to join (what a failure or a leave gives back)"""
    rewarded: bool = False
    capped: dict[str, int] = field(default_factory=dict)
    """what the reward could not give at a balance's limit (``currency:<id>`` /
    ``item:<id>`` → amount): a refund takes none of it back"""
    given: dict[str, Any] | None = None
    """what the completion reward gave, as a reward (``currency``, ``items``, ``coupon``
    only if one was granted): what a refund takes back (None: rewarded before this was
    kept, or not rewarded)"""

    def copy(self) -> MyGroup:
        return MyGroup(self.offer, self.role, self.state, self.expires_at, self.at,
                       dict(self.paid), self.rewarded, dict(self.capped),
                       None if self.given is None else dict(self.given))

    def to_wire(self) -> list[Any]:
        wire = [self.offer, self.role, self.state, self.expires_at, self.at, self.paid,
                self.rewarded]
        if self.given is not None:
            return [*wire, self.capped, self.given]
        return [*wire, self.capped] if self.capped else wire

    @classmethod
    def from_wire(cls, raw: list[Any]) -> MyGroup:
        capped = dict(raw[7]) if len(raw) > 7 else {}
        given = dict(raw[8]) if len(raw) > 8 and raw[8] is not None else None
        return cls(raw[0], raw[1], raw[2], raw[3], raw[4], dict(raw[5]), bool(raw[6]), capped,
                   given)


@dataclass(kw_only=True)
class GroupBuySlots(StateSlots):
    """What group buy adds to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("groupbuys", "gb", MyGroup.from_wire, omit_empty=True),)
    groupbuys: dict[str, MyGroup] = field(default_factory=dict)
    """group id → the shopper's side of it (empty until the first group). Bounded: open
    and complete groups (the per-shopper limit caps them per offer; a complete one of a
    removed offer goes 30 days after its deadline) and the 20 newest other closed ones"""
