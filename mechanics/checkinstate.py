"""The check-in mechanic's slice of player state: its runs of checked-in days.

Days are proleptic Gregorian ordinals (``date.toordinal()``) in the game's timezone.
Rules: :mod:`mechanics.checkin`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots


@dataclass
class CheckinState:
    """Check-in runs: each ``[first_day, last_day]`` of consecutive checked-in days."""

    runs: list[list[int]] = field(default_factory=list)
    """sorted, disjoint, non-adjacent; old runs nobody can reach again are dropped"""
    first: int = 0
    """day of the first check-in ever (0 = never); nothing before it can be made up"""
    made_up: list[int] = field(default_factory=list)
    """made-up days still inside a kept run, to enforce the per-cycle limit"""
    total: int = 0

    def copy(self) -> CheckinState:
        return CheckinState([list(r) for r in self.runs], self.first, list(self.made_up),
                            self.total)

    def run_of(self, day: int) -> list[int] | None:
        """The run containing ``day``, if any."""
        return next((r for r in self.runs if r[0] <= day <= r[1]), None)

    def insert(self, day: int) -> list[int]:
        """Add ``day`` to the runs, joining neighbours; returns its run."""
        merged: list[list[int]] = []
        for start, end in sorted([*self.runs, [day, day]]):
            if merged and merged[-1][1] + 1 >= start:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.runs = merged
        run = self.run_of(day)
        assert run is not None
        return run

    def made_up_in_cycle(self, day: int, length: int) -> int:
        """Made-up days of the cycle (``length`` days from its run's start) that ``day``
        is in once made up: the per-cycle makeup limit counts these."""
        start = self.copy().insert(day)[0]
        first_of_cycle = start + (day - start) // length * length
        return sum(first_of_cycle <= d < first_of_cycle + length for d in self.made_up)

    def streak(self, today: int) -> int:
        """Consecutive days up to today (or up to yesterday, if today is not yet done)."""
        if not self.runs or self.runs[-1][1] < today - 1:
            return 0
        start, end = self.runs[-1]
        return end - start + 1

    def to_wire(self) -> dict[str, Any]:
        return {"r": self.runs, "f": self.first, "m": self.made_up, "t": self.total}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> CheckinState:
        return cls(runs=[list(r) for r in raw.get("r", [])], first=raw.get("f", 0),
                   made_up=list(raw.get("m", [])), total=raw.get("t", 0))


def _decode(raw: dict[str, Any] | None) -> CheckinState:
    return CheckinState.from_wire(raw or {})


@dataclass(kw_only=True)
class CheckinSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("checkin", "ck", CheckinState.to_wire, _decode, CheckinState.copy),)
    checkin: CheckinState = field(default_factory=CheckinState)
