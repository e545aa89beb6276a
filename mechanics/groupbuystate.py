"""The group-buy slice of player state (wire key ``gb``): the shopper's own side of the
groups they opened or joined. The rules are in :mod:`mechanics.groupbuy`.

The slice follows the group's gate record (the two-commit protocol): it is written only
by commits driven from records the group's commits left, so it says what the group
decided, a moment later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mechanics.slices import Slice, StateSlots, records_slice

if TYPE_CHECKING:
    from mechanics.state import PlayerState


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
    given: dict[str, Any] | None = None
    """what the completion reward gave, as a reward (``currency``, ``items``, ``coupon``
    only if one was granted): what a refund takes back (None: not rewarded, or
    rewarded before this was kept)"""

    def copy(self) -> MyGroup:
        return MyGroup(self.offer, self.role, self.state, self.expires_at, self.at,
                       dict(self.paid), self.rewarded,
                       None if self.given is None else dict(self.given))

    def to_wire(self) -> list[Any]:
        wire = [self.offer, self.role, self.state, self.expires_at, self.at, self.paid,
                self.rewarded]
        return wire if self.given is None else [*wire, self.given]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> MyGroup:
        given = dict(raw[7]) if len(raw) > 7 and raw[7] is not None else None
        return cls(raw[0], raw[1], raw[2], raw[3], raw[4], dict(raw[5]), bool(raw[6]), given)


@dataclass(kw_only=True)
class GroupBuySlots(StateSlots):
    """What group buy adds to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("groupbuys", "gb", MyGroup.from_wire, omit_empty=True),)
    groupbuys: dict[str, MyGroup] = field(default_factory=dict)
    """group id → the shopper's side of it (empty until the first group). Bounded: open
    and complete groups (the per-shopper limit caps them per offer; a complete one of a
    removed offer goes 30 days after its deadline) and the 20 newest other closed ones"""


def open_groups(state: PlayerState, now: int) -> list[str]:
    """The groups the shopper is in that are still open (``erasePlayer`` waits for them:
    the group's end still owes the shopper a reward or their payment back)."""
    return sorted(f"groupbuy:{gid}" for gid, g in state.groupbuys.items() if g.state == "open")
