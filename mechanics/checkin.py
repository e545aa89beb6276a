"""Daily check-in: one per local day in the game's timezone, streak, cycle rewards, 补签.

State keeps *runs* of consecutive checked-in days (local day ordinals). The
streak is the length of the last run if it reaches today or yesterday. Day ``n``
of a run (1-based) earns ``cycle[(n-1) % len(cycle)]``. A makeup fills one
missed day inside the window, for its cost; it may join two runs into one, so
the next check-in continues the joined streak. At most ``per_cycle`` days of one
cycle of a run (days ``k·len+1 .. (k+1)·len``) may be made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from economy.checkin import Checkin, Makeup
from economy.config import GameConfig
from economy.errors import (
    AlreadyCheckedIn,
    FeatureDisabled,
    InvalidInput,
    MakeupLimitReached,
    MakeupNotAllowed,
)
from mechanics.calendar import day_start, day_str, local_day, parse_day
from mechanics.checkinstate import CheckinState
from mechanics.grants import Effects, grant, pay
from mechanics.outcome import Outcome
from mechanics.state import PlayerState, Rng, new_player
from mechanics.view import player_view


@dataclass(frozen=True)
class CheckIn:
    pass


@dataclass(frozen=True)
class MakeupCheckIn:
    day: str = ""
    """ISO date of the missed day; empty = the latest missed day in the window."""


def _enabled(config: GameConfig) -> Checkin:
    if config.checkin is None:
        raise FeatureDisabled("checkin")
    return config.checkin


def _prune(ck: CheckinState, today: int, window: int) -> None:
    """Drop runs no makeup can join any more (the last run always stays)."""
    keep = [r for r in ck.runs[:-1] if r[1] >= today - window - 1] + ck.runs[-1:]
    ck.runs = keep
    oldest = keep[0][0] if keep else today
    ck.made_up = [d for d in ck.made_up if d >= oldest]


def _reward(checkin: Checkin, position: int, new: PlayerState, config: GameConfig,
            fx: Effects, reason: str, coupons_out: frozenset[str] = frozenset()) -> int:
    cycle_day = (position - 1) % len(checkin.cycle) + 1
    grant(new, checkin.cycle[cycle_day - 1], reason, config, fx, coupons_out=coupons_out)
    return cycle_day


def _window(checkin: Checkin) -> int:
    return checkin.makeup.window_days if checkin.makeup else 0


def check_in(state: PlayerState | None, action: CheckIn, now: int, rng: Rng,
             config: GameConfig, *, tz: tzinfo,
             coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """``checkIn``: today's check-in; continues the streak if yesterday was checked in."""
    checkin = _enabled(config)
    today = local_day(now, tz)
    new = state.copy() if state else new_player(config, now)
    ck = new.checkin
    if ck.runs and ck.runs[-1][1] == today:
        raise AlreadyCheckedIn(day_str(today), day_start(today + 1, tz))
    if ck.runs and ck.runs[-1][1] == today - 1:
        ck.runs[-1][1] = today
    else:
        ck.runs.append([today, today])
    ck.first = ck.first or today
    ck.total += 1
    _prune(ck, today, _window(checkin))
    fx = Effects()
    streak = ck.streak(today)
    cycle_day = _reward(checkin, streak, new, config, fx, f"checkin:{day_str(today)}",
                        coupons_out)
    new.last_seen = now
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants,
                   response={"day": day_str(today), "streak": streak, "cycle_day": cycle_day,
                             "player": player_view(new, config, now, tz)})


def _target(action: MakeupCheckIn, ck: CheckinState, today: int, makeup: Makeup,
            length: int) -> int:
    """The day to make up: the one asked for, else the latest missed day of the window
    whose cycle has makeups left (the latest missed day if none has)."""
    low = max(ck.first, today - makeup.window_days) if ck.first else today
    if action.day:
        try:
            day = parse_day(action.day)
        except ValueError:
            raise InvalidInput("day must be an ISO date YYYY-MM-DD", field="day") from None
        if day >= today:
            raise MakeupNotAllowed(action.day, "not_in_the_past")
        if day < low:
            raise MakeupNotAllowed(action.day, "outside_window")
        if ck.run_of(day) is not None:
            raise MakeupNotAllowed(action.day, "already_checked_in")
        return day
    missed = [d for d in range(today - 1, low - 1, -1) if ck.run_of(d) is None]
    if not missed:
        raise MakeupNotAllowed(day_str(today - 1), "no_missed_day")
    room = [d for d in missed if ck.made_up_in_cycle(d, length) < makeup.per_cycle]
    return room[0] if room else missed[0]


def makeup_check_in(state: PlayerState | None, action: MakeupCheckIn, now: int, rng: Rng,
                    config: GameConfig, *, tz: tzinfo,
                    coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """补签: check in a missed day of the window for the makeup cost."""
    checkin = _enabled(config)
    if checkin.makeup is None:
        raise FeatureDisabled("checkin_makeup")
    makeup, today = checkin.makeup, local_day(now, tz)
    new = state.copy() if state else new_player(config, now)
    ck = new.checkin
    length = len(checkin.cycle)
    day = _target(action, ck, today, makeup, length)
    if ck.made_up_in_cycle(day, length) >= makeup.per_cycle:
        raise MakeupLimitReached(day_str(day), makeup.per_cycle)
    run = ck.insert(day)
    ck.made_up = sorted([*ck.made_up, day])
    ck.total += 1
    fx = Effects()
    pay(new, makeup.cost, f"makeup:{day_str(day)}", config, fx)
    position = day - run[0] + 1
    cycle_day = (position - 1) % length + 1
    if makeup.reward:
        _reward(checkin, position, new, config, fx, f"makeup:{day_str(day)}", coupons_out)
    _prune(ck, today, makeup.window_days)
    new.last_seen = now
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants,
                   response={"day": day_str(day), "streak": ck.streak(today),
                             "cycle_day": cycle_day,
                             "player": player_view(new, config, now, tz)})
