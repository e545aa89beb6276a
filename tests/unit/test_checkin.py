"""Check-in: local days (Asia/Shanghai, America/New_York DST), streak, cycle, 补签."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.config import GameConfig
from economy.errors import (
    AlreadyCheckedIn,
    FeatureDisabled,
    InsufficientFunds,
    InvalidInput,
    MakeupLimitReached,
    MakeupNotAllowed,
)
from mechanics.calendar import at_local_minutes, local_day, parse_day
from mechanics.checkin import CheckIn, MakeupCheckIn, check_in, makeup_check_in
from mechanics.state import PlayerState
from tests.unit.factory import NY, RNG, SH, T0, config

DAY = 86_400
SMALL = {"currency": {"acorn": 10}}
BIG = {"currency": {"acorn": 50}, "items": {"ticket": 1}}
CHECKIN = {"cycle": [SMALL] * 6 + [BIG],
           "makeup": {"cost": {"currency": {"acorn": 20}}, "per_cycle": 1, "window_days": 7}}
CFG = config(checkin=CHECKIN)


def run(days: list[int], cfg: GameConfig = CFG, tz: ZoneInfo = SH,
        state: PlayerState | None = None) -> PlayerState | None:
    """Check in at noon (Shanghai) of each day offset from T0."""
    for d in days:
        state = check_in(state, CheckIn(), T0 + d * DAY + 12 * 3600, RNG, cfg, tz=tz).state
    return state


def test_midnight_in_shanghai() -> None:
    out = check_in(None, CheckIn(), T0 - 1, RNG, CFG, tz=SH)
    assert out.response["day"] == "2025-12-31" and out.response["streak"] == 1
    out = check_in(out.state, CheckIn(), T0, RNG, CFG, tz=SH)
    assert out.response["day"] == "2026-01-01" and out.response["streak"] == 2
    with pytest.raises(AlreadyCheckedIn) as e:
        check_in(out.state, CheckIn(), T0 + DAY - 1, RNG, CFG, tz=SH)
    assert e.value.code == "already_checked_in"
    assert e.value.details == {"day": "2026-01-01", "next_at": T0 + DAY}
    out = check_in(out.state, CheckIn(), T0 + DAY, RNG, CFG, tz=SH)
    assert out.response == {**out.response, "day": "2026-01-02", "streak": 3, "cycle_day": 3}


SPRING = 1_772_946_000  # 2026-03-08 00:00 EST: a 23-hour day
FALL = 1_793_505_600  # 2026-11-01 00:00 EDT: a 25-hour day


@pytest.mark.parametrize(("start", "length"), [(SPRING, 23 * 3600), (FALL, 25 * 3600)])
def test_dst_days_in_new_york(start: int, length: int) -> None:
    state = check_in(None, CheckIn(), start - 1, RNG, CFG, tz=NY).state
    out = check_in(state, CheckIn(), start, RNG, CFG, tz=NY)
    assert out.response["streak"] == 2
    with pytest.raises(AlreadyCheckedIn) as e:
        check_in(out.state, CheckIn(), start + length - 1, RNG, CFG, tz=NY)
    assert e.value.details["next_at"] == start + length
    out = check_in(out.state, CheckIn(), start + length, RNG, CFG, tz=NY)
    assert out.response["streak"] == 3


def test_same_instant_is_a_different_day_in_another_zone() -> None:
    # 2026-01-01 10:00 Shanghai is 2025-12-31 21:00 in New York
    assert local_day(T0 + 10 * 3600, SH) == local_day(T0 + 10 * 3600, NY) + 1


def test_cycle_rewards_and_big_day_seven() -> None:
    state: PlayerState | None = None
    got = []
    for d in range(8):
        out = check_in(state, CheckIn(), T0 + d * DAY, RNG, CFG, tz=SH)
        state = out.state
        got.append((out.response["cycle_day"], [(e.name, e.delta) for e in out.ledger]))
    assert got == [(i, [("acorn", 10)]) for i in range(1, 7)] + [
        (7, [("acorn", 50), ("ticket", 1)]), (1, [("acorn", 10)])]
    assert state is not None and state.wallet["acorn"] == 100 + 60 + 50 + 10
    assert state.checkin.total == 8


def test_missing_a_day_restarts_the_streak() -> None:
    state = run([0, 1, 2])
    out = check_in(state, CheckIn(), T0 + 4 * DAY, RNG, CFG, tz=SH)
    assert out.response["streak"] == 1 and out.response["cycle_day"] == 1
    view = out.response["player"]["checkin"]
    assert view == {"streak": 1, "checked_in_today": True, "total": 4, "next_cycle_day": 2,
                    "cycle_length": 7, "makeup_days": ["2026-01-04"]}


def test_streak_survives_until_the_end_of_the_next_day() -> None:
    state = run([0])
    assert state is not None
    assert state.checkin.streak(local_day(T0, SH) + 1) == 1
    assert state.checkin.streak(local_day(T0, SH) + 2) == 0


def test_makeup_joins_the_runs_and_the_streak_continues() -> None:
    state = run([0, 1, 3])  # missed day 2 (2026-01-03), checked in on day 3 anyway
    out = makeup_check_in(state, MakeupCheckIn(), T0 + 3 * DAY + 60, RNG, CFG, tz=SH)
    assert out.response["day"] == "2026-01-03"
    assert out.response["streak"] == 4 and out.response["cycle_day"] == 3
    assert [(e.name, e.delta, e.reason) for e in out.ledger] == [
        ("acorn", -20, "makeup:2026-01-03"), ("acorn", 10, "makeup:2026-01-03")]
    assert out.state.checkin.runs == [[parse_day("2026-01-01"), parse_day("2026-01-04")]]
    nxt = check_in(out.state, CheckIn(), T0 + 4 * DAY, RNG, CFG, tz=SH)
    assert nxt.response["streak"] == 5 and nxt.response["cycle_day"] == 5


def test_makeup_of_yesterday_before_checking_in_today() -> None:
    state = run([0])
    out = makeup_check_in(state, MakeupCheckIn("2026-01-02"), T0 + 2 * DAY, RNG, CFG, tz=SH)
    assert out.response["streak"] == 2
    assert check_in(out.state, CheckIn(), T0 + 2 * DAY, RNG, CFG,
                    tz=SH).response["streak"] == 3


def test_makeup_limit_per_cycle() -> None:
    state = run([0, 3])  # missed days 1 and 2
    out = makeup_check_in(state, MakeupCheckIn("2026-01-02"), T0 + 3 * DAY, RNG, CFG, tz=SH)
    with pytest.raises(MakeupLimitReached) as e:
        makeup_check_in(out.state, MakeupCheckIn("2026-01-03"), T0 + 3 * DAY, RNG, CFG, tz=SH)
    assert e.value.details == {"day": "2026-01-03", "limit": 1}


def test_makeup_days_offered_are_the_ones_the_cycle_limit_allows() -> None:
    state = run([0, 3])  # missed days 1 and 2, one cycle, one makeup per cycle
    now = T0 + 3 * DAY + 60
    view = check_in(state, CheckIn(), now - 60 + DAY, RNG, CFG, tz=SH)
    assert view.response["player"]["checkin"]["makeup_days"] == ["2026-01-02", "2026-01-03"]
    out = makeup_check_in(state, MakeupCheckIn("2026-01-02"), now, RNG, CFG, tz=SH)
    assert out.response["player"]["checkin"]["makeup_days"] == []  # its cycle used its one
    with pytest.raises(MakeupLimitReached) as e:  # the latest missed day, no other has room
        makeup_check_in(out.state, MakeupCheckIn(), now, RNG, CFG, tz=SH)
    assert e.value.details == {"day": "2026-01-03", "limit": 1}


def test_makeup_without_a_day_takes_the_latest_day_whose_cycle_has_room() -> None:
    cfg = config(checkin={**CHECKIN, "makeup": {**CHECKIN["makeup"], "window_days": 31}})
    state = run([0, 1, 3, 4, 5, 6, 8, 10], cfg)  # missed 2 (cycle 1), 7 and 9 (cycle 2)
    now = T0 + 10 * DAY + 60
    out = makeup_check_in(state, MakeupCheckIn("2026-01-10"), now, RNG, cfg, tz=SH)
    assert out.response["player"]["checkin"]["makeup_days"] == ["2026-01-03"]
    auto = makeup_check_in(out.state, MakeupCheckIn(), now, RNG, cfg, tz=SH)
    assert auto.response["day"] == "2026-01-03"  # not 01-08: that cycle used its one


def test_makeup_limit_is_per_cycle_not_per_streak() -> None:
    cfg = config(checkin={**CHECKIN, "makeup": {**CHECKIN["makeup"], "window_days": 31}})
    state = run([0, 1, 3, 4, 5, 6, 8], cfg)  # missed day 2 (cycle 1) and 7 (cycle 2)
    out = makeup_check_in(state, MakeupCheckIn("2026-01-03"), T0 + 8 * DAY, RNG, cfg, tz=SH)
    out = makeup_check_in(out.state, MakeupCheckIn("2026-01-08"), T0 + 8 * DAY, RNG, cfg, tz=SH)
    assert out.response["streak"] == 9


@pytest.mark.parametrize(("day", "reason"), [
    ("2026-01-05", "not_in_the_past"),   # today
    ("2026-01-06", "not_in_the_past"),
    ("2025-12-31", "outside_window"),    # before the first check-in
    ("2026-01-01", "already_checked_in"),
])
def test_makeup_refusals(day: str, reason: str) -> None:
    state = run([0, 1, 4])
    assert state is not None
    before = state.to_wire()
    with pytest.raises(MakeupNotAllowed) as e:
        makeup_check_in(state, MakeupCheckIn(day), T0 + 4 * DAY, RNG, CFG, tz=SH)
    assert e.value.details == {"day": day, "reason": reason}
    assert state.to_wire() == before


def test_makeup_window_and_missing_day() -> None:
    state = run([0, 10])
    with pytest.raises(MakeupNotAllowed) as e:
        makeup_check_in(state, MakeupCheckIn("2026-01-03"), T0 + 10 * DAY, RNG, CFG, tz=SH)
    assert e.value.details["reason"] == "outside_window"  # 8 days back, window 7
    out = makeup_check_in(state, MakeupCheckIn("2026-01-04"), T0 + 10 * DAY, RNG, CFG, tz=SH)
    assert out.response["streak"] == 1
    full = run([0, 1])
    with pytest.raises(MakeupNotAllowed) as e:
        makeup_check_in(full, MakeupCheckIn(), T0 + 1 * DAY, RNG, CFG, tz=SH)
    assert e.value.details["reason"] == "no_missed_day"
    with pytest.raises(InvalidInput):
        makeup_check_in(full, MakeupCheckIn("yesterday"), T0 + DAY, RNG, CFG, tz=SH)


def test_makeup_needs_its_cost() -> None:
    state = run([0, 2])
    assert state is not None
    state.wallet["acorn"] = 19
    before = state.to_wire()
    with pytest.raises(InsufficientFunds):
        makeup_check_in(state, MakeupCheckIn(), T0 + 2 * DAY, RNG, CFG, tz=SH)
    assert state.to_wire() == before


def test_disabled() -> None:
    with pytest.raises(FeatureDisabled):
        check_in(None, CheckIn(), T0, RNG, config(), tz=SH)
    no_makeup = config(checkin={"cycle": [SMALL]})
    with pytest.raises(FeatureDisabled) as e:
        makeup_check_in(None, MakeupCheckIn(), T0, RNG, no_makeup, tz=SH)
    assert e.value.details == {"feature": "checkin_makeup"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60),
       st.sampled_from(["Asia/Shanghai", "America/New_York"]),
       st.integers(min_value=0, max_value=23 * 60 + 59))
def test_streak_over_random_calendars(days: list[bool], zone: str, minute: int) -> None:
    """Streak = trailing run of checked-in days; rewards follow the cycle position.

    The calendar starts 2026-02-20, so it crosses New York's spring-forward day;
    check-ins happen at a random wall-clock minute of each local day.
    """
    tz = ZoneInfo(zone)
    cfg = config(checkin={"cycle": [{"currency": {"acorn": 1}}, {"currency": {"acorn": 2}},
                                    {"currency": {"acorn": 3}}]})
    first = parse_day("2026-02-20")
    state: PlayerState | None = None
    run_length, expected_acorns = 0, 100
    for i, checked in enumerate(days):
        today = first + i
        now = at_local_minutes(today, minute, tz)
        assert local_day(now, tz) == today
        if checked:
            state = check_in(state, CheckIn(), now, RNG, cfg, tz=tz).state
            run_length += 1
            expected_acorns += (run_length - 1) % 3 + 1
            with pytest.raises(AlreadyCheckedIn):
                check_in(state, CheckIn(), now, RNG, cfg, tz=tz)
        streak_today = run_length if checked else _prev_run(days, i)
        if not checked:
            run_length = 0
        if state is not None:
            assert state.checkin.streak(today) == streak_today
            assert state.wallet["acorn"] == expected_acorns
            assert state.checkin.total == sum(days[:i + 1])
            assert len(state.checkin.runs) <= 2


def _prev_run(days: list[bool], i: int) -> int:
    """Streak on an unchecked day i: the run that ended yesterday (still alive today)."""
    n, j = 0, i - 1
    while j >= 0 and days[j]:
        n, j = n + 1, j - 1
    return n
