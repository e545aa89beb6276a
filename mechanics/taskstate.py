"""The tasks mechanic's slice of player state: each task's progress in its period.

A period key is the day (an ordinal in the game's timezone) for daily tasks, the Monday
of the ISO week for weekly ones and 0 for once-only ones. Rules: :mod:`mechanics.tasks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, padded, records_slice


@dataclass
class TaskProgress:
    """A task's progress in its current period (reset lazily when the period changes)."""

    period: int
    count: int = 0
    spend: int = 0
    """purchase tasks: fen paid this period"""
    nonces: list[str] = field(default_factory=list)
    """browse tasks: ticket nonces used this period"""
    prev: TaskProgress | None = None
    """browse tasks: the latest earlier period with completions (``period`` 0 when
    there was none), so a ticket started before the period turned can still count on
    the period it was started in. None: not known (a record from before it was kept)."""

    def copy(self) -> TaskProgress:
        return TaskProgress(self.period, self.count, self.spend, list(self.nonces),
                            self.prev.copy() if self.prev is not None else None)

    def to_wire(self) -> list[Any]:
        wire = [self.period, self.count, self.spend, self.nonces]
        return wire if self.prev is None else [*wire, self.prev.to_wire()]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> TaskProgress:
        period, count, spend, nonces, prev = padded(raw, [0, 0, 0, [], None])
        return cls(period=period, count=count, spend=spend, nonces=list(nonces),
                   prev=cls.from_wire(prev) if prev is not None else None)


@dataclass(kw_only=True)
class TasksSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("tasks", "tk", TaskProgress.from_wire),)
    tasks: dict[str, TaskProgress] = field(default_factory=dict)
