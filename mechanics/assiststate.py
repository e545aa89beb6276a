"""The friend-assist slice of player state (wire key ``as``); the rules are in
:mod:`mechanics.assist`.

Per campaign a shopper keeps both sides of the play: as an owner, the assists they
started (code → expiry, helps needed, what became of the reward); as a helper, their
helps today and in all, and the owners they helped (one help per owner). Every list
is bounded by the campaign's caps (``max_starts``, ``helps_per_campaign``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mechanics.slices import Slice, StateSlots, records_slice

if TYPE_CHECKING:
    from mechanics.state import PlayerState


@dataclass
class MyAssist:
    """An assist this shopper started."""

    expires_at: int
    needed: int
    reward: str = ""
    """"" until the assist completes; then ``granted``, or ``coupon_unavailable`` when
    the reward's coupon had no stock left (the rest of the reward was granted)."""

    def to_wire(self) -> list[Any]:
        return [self.expires_at, self.needed, self.reward]


@dataclass
class AssistProgress:
    """One campaign, seen from one shopper."""

    started: int = 0
    mine: dict[str, MyAssist] = field(default_factory=dict)
    """code → an assist this shopper started"""
    day: int = 0
    """the local day ``today`` counts"""
    today: int = 0
    helps: int = 0
    owners: list[str] = field(default_factory=list)
    """owners this shopper helped (each once per campaign)"""

    def copy(self) -> AssistProgress:
        return AssistProgress(self.started, {c: MyAssist(a.expires_at, a.needed, a.reward)
                                             for c, a in self.mine.items()},
                              self.day, self.today, self.helps, list(self.owners))

    def to_wire(self) -> dict[str, Any]:
        return {"n": self.started, "m": {c: a.to_wire() for c, a in self.mine.items()},
                "d": self.day, "t": self.today, "h": self.helps, "o": self.owners}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> AssistProgress:
        return cls(raw["n"], {c: MyAssist(*a) for c, a in raw["m"].items()}, raw["d"],
                   raw["t"], raw["h"], list(raw["o"]))


@dataclass(kw_only=True)
class AssistSlots(StateSlots):
    """What friend assist adds to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("assists", "as", AssistProgress.from_wire, omit_empty=True),)
    assists: dict[str, AssistProgress] = field(default_factory=dict)
    """campaign id → progress; empty (no key on the wire) until the first assist"""


def open_assists(state: PlayerState, now: int) -> list[str]:
    """The assists the shopper started that may still complete (``erasePlayer`` waits
    for them: the last help owes the owner their reward, and an owner renamed to a
    pseudonym would be owed it under that)."""
    return sorted(f"assist:{code}" for prog in state.assists.values()
                  for code, mine in prog.mine.items()
                  if not mine.reward and now < mine.expires_at)
