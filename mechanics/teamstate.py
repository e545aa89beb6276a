"""The teams slice of player state (wire key ``tm``); the rules are in
:mod:`mechanics.teams`.

Per season the shopper keeps their current team, the membership's sequence number
(the team's join counter when they joined: it tells this membership from an earlier
one in the same team), the points they earned for it, how many teams they joined,
when they last left, and the milestones they claimed (once per season).

Kept apart from the rules because :class:`~mechanics.state.PlayerState` imports
this module and the rules import the player state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, records_slice


@dataclass
class Membership:
    """The shopper's standing in one season."""

    team: str = ""
    """current team id ("" between teams)"""
    seq: int = 0
    """the team's join number of this membership"""
    points: int = 0
    """points earned for the current team (the team's copy follows by the sync)"""
    joined: int = 0
    """teams joined this season, the current one included"""
    left_at: int = 0
    claimed: list[str] = field(default_factory=list)
    """milestones whose reward the shopper received this season"""

    def copy(self) -> Membership:
        return Membership(self.team, self.seq, self.points, self.joined, self.left_at,
                          list(self.claimed))

    def to_wire(self) -> list[Any]:
        return [self.team, self.seq, self.points, self.joined, self.left_at, self.claimed]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> Membership:
        return cls(raw[0], raw[1], raw[2], raw[3], raw[4], list(raw[5]))


@dataclass(kw_only=True)
class TeamsSlots(StateSlots):
    """What the teams mechanic adds to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("teams", "tm", Membership.from_wire, omit_empty=True),)
    teams: dict[str, Membership] = field(default_factory=dict)
    """season id → membership; empty (no key on the wire) until the first team"""
