"""The reminders' slice of player state: the recent reminders sent, for quiet hours
and frequency caps. Rules: :mod:`mechanics.reminders`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, same


def _decode(raw: list[Any] | None) -> list[list[Any]]:
    return [list(r) for r in raw or []]


def _copy(rows: list[list[Any]]) -> list[list[Any]]:
    return [list(r) for r in rows]


@dataclass(kw_only=True)
class RemindersSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("reminded", "rm", same, _decode, _copy),)
    reminded: list[list[Any]] = field(default_factory=list)
    """recent reminders sent: [kind, unix s]"""
