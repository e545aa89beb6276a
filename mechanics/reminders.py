"""Reminders, the pure part: *when* to remind a shopper to come back.

:func:`reminder_schedule` computes, from the stored state alone, when the pet
gets hungry and when its produce is full, and when a reminder for each should be
delivered: not before the event, not inside quiet hours (game timezone), at
least ``min_gap_s`` after the previous reminder and at most ``max_per_day`` in
any 24 hours. A kind already reminded since its event started is not scheduled
again. The delivery worker (server side) sends due reminders and records each
with :func:`mark_reminded`; state changes only through that function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from economy.config import GameConfig
from economy.errors import NoPet
from economy.reminders import Reminders
from mechanics.calendar import at_local_minutes, local_day, local_minutes
from mechanics.outcome import Outcome
from mechanics.produce import full_at, low_at
from mechanics.state import PlayerState, Rng

HUNGRY = "hungry"
PRODUCE_FULL = "produce_full"
WINDOW_S = 86_400
_MAX_STEPS = 64


@dataclass(frozen=True)
class Reminder:
    kind: str
    event_at: int
    """when the pet gets hungry / the produce is full"""
    due_at: int
    """when to deliver, after quiet hours and frequency caps"""


def _events(state: PlayerState, config: GameConfig, rem: Reminders) -> list[tuple[int, str]]:
    pet = state.pet
    if pet is None or pet.species not in config.species:
        return []
    species = config.species[pet.species]
    out: list[tuple[int, str]] = []
    hungry = low_at(pet, species, rem.hungry_stat) if rem.hungry else None
    if hungry is not None:
        out.append((hungry, HUNGRY))
    full = full_at(pet, species) if rem.produce_full else None
    if full is not None:
        out.append((full, PRODUCE_FULL))
    return sorted(out)


def in_quiet_hours(at: int, rem: Reminders, tz: tzinfo) -> bool:
    """Whether the local wall time at ``at`` is inside quiet hours."""
    start, end, m = rem.quiet_start, rem.quiet_end, local_minutes(at, tz)
    if start == end:
        return False
    return start <= m < end if start < end else (m >= start or m < end)


def after_quiet_hours(at: int, rem: Reminders, tz: tzinfo) -> int:
    """``at``, or the end of the quiet hours it falls in."""
    if not in_quiet_hours(at, rem, tz):
        return at
    day = local_day(at, tz)
    if rem.quiet_start > rem.quiet_end and local_minutes(at, tz) >= rem.quiet_start:
        day += 1  # overnight quiet hours: they end tomorrow morning
    return at_local_minutes(day, rem.quiet_end, tz)


def _earliest(due: int, sent: list[int], rem: Reminders, tz: tzinfo) -> int:
    """The first instant ≥ ``due`` that respects quiet hours, the gap and the daily cap."""
    for _ in range(_MAX_STEPS):
        moved = after_quiet_hours(due, rem, tz)
        close = [s for s in sent if abs(moved - s) < rem.min_gap_s]
        if close:
            moved = max(close) + rem.min_gap_s
        window = sorted(s for s in sent if moved - WINDOW_S < s <= moved)
        if len(window) >= rem.max_per_day:
            moved = window[-rem.max_per_day] + WINDOW_S
        if moved == due:
            return due
        due = moved
    return due  # pragma: no cover - the constraints settle in a few steps


def reminder_schedule(state: PlayerState, config: GameConfig, now: int, *,
                      tz: tzinfo) -> list[Reminder]:
    """The reminders to deliver for this player, in delivery order (may be empty)."""
    rem = config.reminders
    if rem is None:
        return []
    sent = [int(at) for _, at in state.reminded]
    out: list[Reminder] = []
    for event_at, kind in _events(state, config, rem):
        if any(k == kind and at >= event_at for k, at in state.reminded):
            continue  # already reminded of this one
        due = _earliest(max(event_at, now), sent, rem, tz)
        out.append(Reminder(kind, event_at, due))
        sent.append(due)
    return sorted(out, key=lambda r: (r.due_at, r.kind))


def mark_reminded(state: PlayerState, kind: str, sent_at: int) -> PlayerState:
    """A copy of ``state`` recording a delivered reminder (history kept for 24 h)."""
    new = state.copy()
    new.reminded = [[k, at] for k, at in new.reminded if at > sent_at - WINDOW_S]
    new.reminded.append([kind, sent_at])
    return new


@dataclass(frozen=True)
class MarkReminded:
    """The delivery worker's action: ``kind``'s reminder for the event at ``event_at``."""

    kind: str
    event_at: int


def mark(state: PlayerState | None, action: MarkReminded, now: int, rng: Rng,
         config: GameConfig) -> Outcome:
    """Record a reminder as sent at ``now`` (the worker's rule, bound like any other)."""
    if state is None:
        raise NoPet()
    return Outcome(state=mark_reminded(state, action.kind, now),
                   response={"kind": action.kind, "event_at": action.event_at, "sent_at": now})
