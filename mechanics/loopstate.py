"""The daily-loop parts of a player's state and their compact wire forms.

Local days are proleptic Gregorian ordinals (``date.toordinal()``) in the game's
timezone; a period key is the day for daily things, the Monday of the ISO week
for weekly ones and 0 for once-only ones. Every ``from_wire`` tolerates missing
keys so older states load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class TaskProgress:
    """A task's progress in its current period (reset lazily when the period changes)."""

    period: int
    count: int = 0
    spend: int = 0
    """purchase tasks: fen paid this period"""
    nonces: list[str] = field(default_factory=list)
    """browse tasks: ticket nonces used this period"""

    def copy(self) -> TaskProgress:
        return TaskProgress(self.period, self.count, self.spend, list(self.nonces))

    def to_wire(self) -> list[Any]:
        return [self.period, self.count, self.spend, self.nonces]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> TaskProgress:
        period, count, spend, nonces = _padded(raw, [0, 0, 0, []])
        return cls(period=period, count=count, spend=spend, nonces=list(nonces))


@dataclass
class OrderRecord:
    """A paid (or refunded) order, remembered for idempotency and refunds."""

    at: int
    amount: int
    refunded: bool = False
    tasks: dict[str, list[int]] = field(default_factory=dict)
    """task → [period, completions this order earned]"""
    no_coupon: list[str] = field(default_factory=list)
    """tasks whose coupon was out of stock when the order came: a refund owes none"""

    def copy(self) -> OrderRecord:
        return OrderRecord(self.at, self.amount, self.refunded,
                           {k: list(v) for k, v in self.tasks.items()}, list(self.no_coupon))

    def to_wire(self) -> list[Any]:
        wire = [self.at, self.amount, int(self.refunded), self.tasks]
        return [*wire, self.no_coupon] if self.no_coupon else wire

    @classmethod
    def from_wire(cls, raw: list[Any]) -> OrderRecord:
        at, amount, refunded, tasks, no_coupon = _padded(raw, [0, 0, 0, {}, []])
        return cls(at=at, amount=amount, refunded=bool(refunded),
                   tasks={k: list(v) for k, v in tasks.items()}, no_coupon=list(no_coupon))


def _padded(raw: list[Any], defaults: list[Any]) -> list[Any]:
    """``raw`` with the defaults of fields an older writer did not have."""
    return [*raw[:len(defaults)], *defaults[len(raw):]]


def wire_map(d: dict[str, Any]) -> dict[str, Any]:
    """``{key: value.to_wire()}``."""
    return {k: v.to_wire() for k, v in d.items()}
