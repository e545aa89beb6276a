"""Local days and periods in the game's timezone.

A local day is a proleptic Gregorian ordinal (``date.toordinal()``) of the date
at ``now`` in the game's zone; converting uses the ``tzinfo`` the caller passes,
so the rules never read the zone database themselves. Days are calendar days,
so a 23- or 25-hour day around a DST change is still one day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

ONCE = 0
"""The period key of things that happen once ever."""


def local_day(now: int, tz: tzinfo) -> int:
    """The local date at unix second ``now`` as an ordinal."""
    return datetime.fromtimestamp(now, tz).date().toordinal()


def day_start(day: int, tz: tzinfo) -> int:
    """Unix second of the first instant of local ``day``."""
    return at_local_minutes(day, 0, tz)


def _exists(local: datetime, tz: tzinfo) -> bool:
    """Whether a wall-clock time exists (is not skipped by a DST jump)."""
    back = datetime.fromtimestamp(local.timestamp(), tz)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


def next_day_start(now: int, tz: tzinfo) -> int:
    """Unix second of the next local midnight after ``now``."""
    return day_start(local_day(now, tz) + 1, tz)


def day_str(day: int) -> str:
    """ISO date of an ordinal day."""
    return date.fromordinal(day).isoformat()


def parse_day(text: str) -> int:
    """Ordinal of an ISO date ``YYYY-MM-DD``; ValueError when it is not one."""
    return date.fromisoformat(text).toordinal()


def week_of(day: int) -> int:
    """The Monday of ``day``'s ISO week (ordinal)."""
    return day - date.fromordinal(day).weekday()


def period_key(period: str, now: int, tz: tzinfo) -> int:
    """The key of the ``daily`` / ``weekly`` / ``once`` period containing ``now``."""
    if period == "once":
        return ONCE
    day = local_day(now, tz)
    return day if period == "daily" else week_of(day)


def period_end(period: str, key: int, tz: tzinfo) -> int | None:
    """Unix second the period ``key`` ends; None for ``once``."""
    if period == "once":
        return None
    return day_start(key + (1 if period == "daily" else 7), tz)


def local_minutes(now: int, tz: tzinfo) -> int:
    """Minutes after local midnight (wall clock) at ``now``."""
    dt = datetime.fromtimestamp(now, tz)
    return dt.hour * 60 + dt.minute


def at_local_minutes(day: int, minutes: int, tz: tzinfo) -> int:
    """Unix second of wall-clock ``minutes`` on local ``day``.

    An ambiguous wall time (a fall-back repeat) is its first occurrence; a wall
    time skipped by a spring-forward jump resolves to the first minute after it.
    """
    d = date.fromordinal(day)
    for m in range(minutes, minutes + 180):
        local = datetime.combine(d, time(m // 60 % 24, m % 60), tz) + timedelta(days=m // 1440)
        if _exists(local, tz):
            return int(local.replace(fold=0).timestamp())
    raise ValueError(f"no wall time {minutes} min on {d}")  # pragma: no cover
