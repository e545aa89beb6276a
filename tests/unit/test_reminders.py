"""Reminders: hungry and produce-full times, quiet hours, gap and daily cap."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from mechanics import pet
from mechanics.calendar import local_minutes
from mechanics.reminders import (
    Reminder,
    in_quiet_hours,
    mark_reminded,
    reminder_schedule,
)
from mechanics.state import PlayerState
from tests.unit.factory import NY, RNG, SH, T0, config, species_with

H = 3600
REM = {"quiet_start": "22:00", "quiet_end": "08:00", "max_per_day": 2, "min_gap_s": 3600}
PRODUCE_4H = {"currency": "acorn", "per_hour": 10, "stat": "satiety", "above": 30,
              "cap_hours": 4}
CFG = config(reminders=REM, species=species_with(produce=PRODUCE_4H))


def adopted(at: int = T0) -> PlayerState:
    return pet.adopt(None, pet.AdoptPet("squirrel", "N"), at, RNG, CFG).state


def test_events_inside_quiet_hours_move_to_the_morning_with_a_gap() -> None:
    # adopted at 00:00: produce full at 04:00, hungry at 06:00:01 — both quiet
    assert reminder_schedule(adopted(), CFG, T0, tz=SH) == [
        Reminder("produce_full", T0 + 4 * H, T0 + 8 * H),
        Reminder("hungry", T0 + 6 * H + 1, T0 + 9 * H),
    ]


def test_daytime_events_are_due_when_they_happen() -> None:
    noon = T0 + 12 * H
    assert reminder_schedule(adopted(noon), CFG, noon, tz=SH) == [
        Reminder("produce_full", noon + 4 * H, noon + 4 * H),
        Reminder("hungry", noon + 6 * H + 1, noon + 6 * H + 1),
    ]


def test_quiet_hours_boundaries() -> None:
    cfg = CFG.reminders
    assert cfg is not None
    assert not in_quiet_hours(T0 + 22 * H - 1, cfg, SH)
    assert in_quiet_hours(T0 + 22 * H, cfg, SH)
    assert in_quiet_hours(T0 + 8 * H - 1, cfg, SH)
    assert not in_quiet_hours(T0 + 8 * H, cfg, SH)


def test_evening_event_waits_for_tomorrow_morning() -> None:
    at = T0 + 16 * H  # 16:00; hungry at 22:00:01, produce full at 20:00
    assert reminder_schedule(adopted(at), CFG, at, tz=SH) == [
        Reminder("produce_full", at + 4 * H, at + 4 * H),
        Reminder("hungry", at + 6 * H + 1, T0 + 32 * H),  # 08:00 the next day
    ]


def test_already_reminded_and_past_events() -> None:
    noon = T0 + 12 * H
    state = mark_reminded(adopted(noon), "produce_full", noon + 4 * H)
    later = noon + 10 * H + 30  # 22:00:30: hungry since 18:00:01, not reminded yet
    assert reminder_schedule(state, CFG, later, tz=SH) == [
        Reminder("hungry", noon + 6 * H + 1, T0 + 32 * H)]
    state = mark_reminded(state, "hungry", noon + 7 * H)
    assert reminder_schedule(state, CFG, later, tz=SH) == []


def test_daily_cap_pushes_to_when_the_oldest_leaves_the_window() -> None:
    noon = T0 + 12 * H
    state = adopted(noon)
    state = mark_reminded(state, "other", noon - 3 * H)
    state = mark_reminded(state, "other", noon - 2 * H)
    assert reminder_schedule(state, CFG, noon, tz=SH)[0] == Reminder(
        "produce_full", noon + 4 * H, noon - 3 * H + 86_400)


def test_history_is_kept_for_a_day() -> None:
    state = mark_reminded(PlayerState(created_at=T0), "hungry", T0)
    state = mark_reminded(state, "hungry", T0 + 86_400)
    assert state.reminded == [["hungry", T0 + 86_400]]


def test_no_pet_no_config() -> None:
    assert reminder_schedule(PlayerState(created_at=T0), CFG, T0, tz=SH) == []
    assert reminder_schedule(adopted(), config(), T0, tz=SH) == []


def test_quiet_hours_on_the_new_york_spring_forward_day() -> None:
    spring = 1_772_946_000  # 2026-03-08 00:00 EST; 08:00 EDT is 7 h later
    state = pet.adopt(None, pet.AdoptPet("squirrel", "N"), spring, RNG, CFG).state
    got = reminder_schedule(state, CFG, spring, tz=NY)
    assert got[0] == Reminder("produce_full", spring + 4 * H, spring + 7 * H)
    assert local_minutes(got[0].due_at, NY) == 8 * 60


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 7 * 86_400), st.lists(st.integers(-86_400, 0), max_size=4),
       st.sampled_from(["Asia/Shanghai", "America/New_York"]))
def test_schedule_respects_every_rule(offset: int, past: list[int], zone: str) -> None:
    tz = ZoneInfo(zone)
    now = T0 + offset
    state = adopted(now)
    for p in sorted(past):
        state = mark_reminded(state, "other", now + p)
    rem = CFG.reminders
    assert rem is not None
    sched = reminder_schedule(state, CFG, now, tz=tz)
    sent = [int(at) for _, at in state.reminded]
    for r in sched:
        assert r.due_at >= max(r.event_at, now)
        assert not in_quiet_hours(r.due_at, rem, tz)
        assert all(abs(r.due_at - s) >= rem.min_gap_s for s in sent)
        assert sum(1 for s in sent if r.due_at - 86_400 < s <= r.due_at) < rem.max_per_day
        sent.append(r.due_at)
