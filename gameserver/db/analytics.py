"""Game analytics computed in SQL (SQLite and PostgreSQL alike).

Everything is aggregated by the database; Python receives at most a few rows
per day of the range, so the cost in memory does not grow with players or
ledger rows.

Definitions (all days are calendar days in the game's time zone):

- **activity**: a player is *active* on a day when they acted themselves that day:
  a ledger row of a commit of their own (every committed action that changes a
  balance writes one; ``ledger.by_shopper``), or their first own commit
  (``players.first_played_at``). Reads (``getPlayer``) leave no trace in SQL and do
  not count. Commits made *for* a shopper do not count: an order (paid or refunded),
  a merchant's grant or deduction, a refund's clawback, a sweep, another shopper's
  group filling (they commit under keys no shopper can send:
  ``gameserver.state.keys.by_shopper``). A player such a commit created is no player
  here until they act (``first_played_at`` is 0 till then): they are new on the
  day of their first own action. A commit the server makes for a read (a seed
  commitment) is no action either. Rows from before migration 0012 count as the
  shopper's, and players from before it (``first_played_at`` NULL) as playing since
  ``created_at``; so do rows a server from before it writes while a deployment rolls.
- **days** are counted in the zone the report is asked in (the live config's), for
  the whole history: after a change of zone, past figures move to the new zone's days.
- **DAU**: distinct active players per day.
- **new players**: players whose first activity ever falls on that day. The
  first day is taken over the game's whole history, not just the range.
- **draws**: rows of the ``draws`` table that day (a ten-pull is ten draws).
- **coupons granted**: confirmed, non-shadow rows of kind ``coupon`` in the
  value tier's ``grants`` table, by the day they were created (pending grants
  are not counted until confirmed; voided ones never).
- **players** (``totals.players``): those who acted themselves by the range's end,
  over the whole history; ``totals.active_players``: those active in the range.
- **plays**: per kind of shared state (``aggregate_ledger.kind``: a poll bucket, a group,
  a pool, a team), the shoppers' commits on it that day and the distinct shoppers
  making them; system commits (users named ``_…`` or ``~…``) are left out, and so are
  commits made for a shopper under a key they cannot send (a team's points synced).
- **average active minutes**: per active player and day, the visits of that day
  (runs of actions no more than ``IDLE_S`` = 5 min apart) each count from their
  first to their last action plus ``VISIT_S`` = 1 min; the day's figure is the
  mean over its active players. A single action is one minute; a shopper who
  checks in at 08:00 and feeds at 20:00 has two one-minute visits, not 12 hours.
- **D1/D7/D30 retention**: for the cohort of players new on day *c*, the share
  active on day *c+N* exactly. Reported only once day *c+N* is over (``null``
  before), so a figure never changes after it is shown.
- **weekly retention**: for the cohort of players new in week *W* (Monday to
  Sunday), the share active at least once in week *W+k*, *k* = 1..4; ``w1`` is
  the number to compare with the ~40 % weekly retention of the best pet games.
  Reported once week *W+k* is over. The weeks are those overlapping the range,
  whole (a cohort week is never cut at the range's edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, distinct, func, literal, select, union_all

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.state.keys import NOT_SHOPPER_MARKS

DAY_S = 86_400
IDLE_S = 300
VISIT_S = 60
MAX_DAYS = 366
RETENTION_DAYS = (1, 7, 30)
RETENTION_WEEKS = (1, 2, 3, 4)
EPOCH = date(1970, 1, 1)
SYSTEM_USERS = ("_", "~")
"""How the plays name the 'user' of commits no shopper makes on shared state (a seed, a
draw, a group's expiry, a team's match list)."""


def day_number(d: date) -> int:
    """Days since 1970-01-01 (the day numbers the SQL computes)."""
    return (d - EPOCH).days


def day_date(n: int) -> date:
    return EPOCH + timedelta(days=n)


def week_of(day: int) -> int:
    """Monday-based week number of a day number (1970-01-01 was a Thursday)."""
    return (day + 3) // 7


def week_start(week: int) -> int:
    """Day number of the Monday that starts ``week``."""
    return week * 7 - 3


def _offset(tz: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def offset_segments(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """``[(from_s, utc_offset_s), ...]``: where the zone's offset changes in [lo, hi].

    The zone is probed every 6 hours (transitions are further apart than that)
    and each change is bisected to the second.
    """
    segments = [(lo, _offset(tz, lo))]
    t = lo
    while t < hi:
        nxt = min(t + 6 * 3600, hi)
        if _offset(tz, nxt) != segments[-1][1]:
            a, b = t, nxt
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if _offset(tz, mid) == _offset(tz, a) else (a, mid)
            segments.append((b, _offset(tz, b)))
        t = nxt
    return segments


def local_day_expr(ts_s: Any, segments: list[tuple[int, int]]) -> Any:
    """SQL for the local day number of Unix seconds ``ts_s``.

    ``(ts + offset) / 86400`` with integer division is exactly the local calendar
    day; the offset is a ``CASE`` over the zone's transitions in the range (one
    constant for zones without DST). Before the range the first offset is used,
    which can only move a day that is already before the range.
    """
    if len(segments) == 1:
        offset: Any = literal(segments[0][1])
    else:
        whens = [(ts_s < start, segments[i][1]) for i, (start, _) in enumerate(segments[1:])]
        offset = case(*whens, else_=segments[-1][1])
    return (ts_s + offset) // DAY_S


@dataclass(frozen=True)
class Window:
    """The days asked for (inclusive day numbers) and today, in the game's zone.

    Figures are per day of ``start..end``; cohorts are the days of that range
    and the whole weeks overlapping it, and their retention looks at activity
    up to ``horizon`` (30 days, or 4 weeks, past the range, but never past today).
    """

    start: int
    end: int
    today: int
    tz: ZoneInfo

    @classmethod
    def last_days(cls, tz: ZoneInfo, now: int, days: int, end: date | None = None) -> Window:
        today = day_number(datetime.fromtimestamp(now, tz).date())
        last = min(today, day_number(end)) if end else today
        return cls(last - days + 1, last, today, tz)

    @property
    def horizon(self) -> int:
        return min(self.today, self.end + 35)

    @property
    def first_week(self) -> int:
        return week_of(self.start)

    @property
    def last_week(self) -> int:
        return week_of(self.end)

    def segments(self) -> list[tuple[int, int]]:
        return offset_segments(self.tz, (self.start - 3) * DAY_S, (self.horizon + 3) * DAY_S)

    def end_s(self) -> int:
        """A bound (UTC seconds) safely after the horizon's last day, whatever the zone."""
        return (self.horizon + 2) * DAY_S


class _Q:
    """The CTEs every figure is built from, for one game and window."""

    def __init__(self, merchant: str, game: str, window: Window) -> None:
        ledger, players = m.ledger, m.players
        self.window = window
        segments = window.segments()
        # The shopper's own actions only: ledger rows of their commits, and the moment
        # they first acted (0 for a player made by an order or a grant alone; NULL,
        # unknown, for rows from before it was kept: their creation, as then).
        played = func.coalesce(players.c.first_played_at, players.c.created_at)
        events = union_all(
            select(ledger.c.user_id.label("u"), (ledger.c.ts_ms // 1000).label("t"))
            .where(ledger.c.merchant_id == merchant, ledger.c.game_id == game,
                   ledger.c.by_shopper.is_(True), ledger.c.ts_ms < window.end_s() * 1000),
            select(players.c.user_id.label("u"), played.label("t"))
            .where(players.c.merchant_id == merchant, players.c.game_id == game,
                   played > 0, played < window.end_s()),
        ).subquery("ev")
        self.ev = select(events.c.u, events.c.t,
                         local_day_expr(events.c.t, segments).label("d")).cte("evd")
        self.first = select(self.ev.c.u, func.min(self.ev.c.d).label("fd")) \
            .group_by(self.ev.c.u).cte("firsts")
        self.days = select(self.ev.c.u, self.ev.c.d).distinct() \
            .where(self.ev.c.d.between(window.start, window.horizon)).cte("udays")
        self.segments = segments
        self.merchant, self.game = merchant, game

    def _per_day(self, table: Any, ms: Any, value: Any, *where: Any) -> Select[Any]:
        """``(day, value)`` over ``table``'s rows of this game in the window, by ``ms``."""
        day = local_day_expr(ms // 1000, self.segments).label("d")
        w = self.window
        return select(day, value).where(
            table.c.merchant_id == self.merchant, table.c.game_id == self.game,
            ms >= (w.start - 2) * DAY_S * 1000, ms < w.end_s() * 1000, *where).group_by(day)

    def dau(self) -> Select[Any]:
        ud = self.days
        return select(ud.c.d, func.count()).where(ud.c.d <= self.window.end).group_by(ud.c.d)

    def new_players(self) -> Select[Any]:
        f, w = self.first, self.window
        return select(f.c.fd, func.count()).where(f.c.fd.between(w.start, w.end)) \
            .group_by(f.c.fd)

    def active_seconds(self) -> Select[Any]:
        """Per day: Σ over active players of their visit time (see the module doc)."""
        ev, w = self.ev, self.window
        gap = (ev.c.t - func.lag(ev.c.t).over(partition_by=(ev.c.u, ev.c.d),
                                               order_by=ev.c.t)).label("gap")
        gaps = select(ev.c.u, ev.c.d, gap).where(ev.c.d.between(w.start, w.end)).subquery("g")
        per_player = select(
            gaps.c.d,
            (func.sum(case((gaps.c.gap <= IDLE_S, gaps.c.gap), else_=0))
             + VISIT_S * (1 + func.sum(case((gaps.c.gap > IDLE_S, 1), else_=0))))
            .label("secs"),
        ).group_by(gaps.c.u, gaps.c.d).subquery("pp")
        return select(per_player.c.d, func.sum(per_player.c.secs)).group_by(per_player.c.d)

    def draws(self) -> Select[Any]:
        return self._per_day(m.draws, m.draws.c.ts_ms, func.count())

    def coupons(self) -> Select[Any]:
        g = m.grants
        return self._per_day(g, g.c.created_ms, func.count(), g.c.kind == "coupon",
                             g.c.status == "confirmed", g.c.shadow.is_(False))

    def redeemed(self) -> Select[Any]:
        """Coupons redeemed (``redeemCoupon``) per day of their redemption."""
        g = m.grants
        return self._per_day(g, g.c.redeemed_ms, func.count(), g.c.kind == "coupon",
                             g.c.status == "confirmed", g.c.shadow.is_(False),
                             g.c.redeemed_ms.is_not(None))

    def plays(self) -> Select[Any]:
        """Per day and kind of shared state (a poll bucket, a group, a pool, a team): the
        shoppers' commits on it and how many shoppers made them. System commits (users
        named ``_…`` or ``~…``: seeds, draws, expiries of a play's own) are left out,
        and so are commits made for a shopper under a key they cannot send (a team's
        points synced from the member's own state). The kinds are the plays' own names for their
        aggregates: nothing here names a play."""
        a = m.aggregate_ledger
        day = local_day_expr(a.c.ts_ms // 1000, self.segments).label("d")
        w = self.window
        return select(day, a.c.kind, func.count(), func.count(distinct(a.c.user_id))).where(
            a.c.merchant_id == self.merchant, a.c.game_id == self.game,
            a.c.ts_ms >= (w.start - 2) * DAY_S * 1000, a.c.ts_ms < w.end_s() * 1000,
            *(~a.c.user_id.startswith(mark, autoescape=True) for mark in SYSTEM_USERS),
            *(~a.c.idem_key.contains(mark, autoescape=True) for mark in NOT_SHOPPER_MARKS),
        ).group_by(day, a.c.kind)

    def daily_retention(self) -> Select[Any]:
        f, ud, w = self.first, self.days, self.window
        k = (ud.c.d - f.c.fd).label("k")
        return select(f.c.fd, k, func.count()).join_from(f, ud, ud.c.u == f.c.u) \
            .where(f.c.fd.between(w.start, w.end), k.in_(RETENTION_DAYS)).group_by(f.c.fd, k)

    def weekly_cohorts(self) -> Select[Any]:
        f, w = self.first, self.window
        wk = ((f.c.fd + 3) // 7).label("w")
        return select(wk, func.count()) \
            .where(f.c.fd.between(week_start(w.first_week), week_start(w.last_week + 1) - 1)) \
            .group_by(wk)

    def weekly_retention(self) -> Select[Any]:
        f, ud, w = self.first, self.days, self.window
        cw = (f.c.fd + 3) // 7
        k = ((ud.c.d + 3) // 7 - cw).label("k")
        return select(cw.label("w"), k, func.count(distinct(f.c.u))) \
            .join_from(f, ud, ud.c.u == f.c.u) \
            .where(f.c.fd.between(week_start(w.first_week), week_start(w.last_week + 1) - 1),
                   k.between(1, max(RETENTION_WEEKS))) \
            .group_by(cw, k)

    def totals(self) -> Select[Any]:
        """Players whose first own action came by the range's end (whenever it came:
        the whole history), and players active in the range."""
        ud, f = self.days, self.first
        return select(select(func.count()).where(f.c.fd <= self.window.end).scalar_subquery(),
                      select(func.count(distinct(ud.c.u))).where(ud.c.d <= self.window.end)
                      .scalar_subquery())


async def _pairs(conn: Any, query: Select[Any]) -> dict[int, int]:
    return {int(r[0]): int(r[1] or 0) for r in await conn.execute(query)}


async def _triples(conn: Any, query: Select[Any]) -> dict[tuple[int, int], int]:
    return {(int(r[0]), int(r[1])): int(r[2]) for r in await conn.execute(query)}


def _rate(retained: int, size: int) -> dict[str, Any]:
    return {"retained": retained, "rate": round(retained / size, 4) if size else None}


async def game_analytics(db: Database, merchant: str, game: str,
                         window: Window) -> dict[str, Any]:
    """Daily figures, daily cohorts and weekly cohorts for ``window`` (module doc)."""
    q = _Q(merchant, game, window)
    async with db.connect() as conn:
        dau = await _pairs(conn, q.dau())
        new = await _pairs(conn, q.new_players())
        secs = await _pairs(conn, q.active_seconds())
        draws = await _pairs(conn, q.draws())
        coupons = await _pairs(conn, q.coupons())
        redeemed = await _pairs(conn, q.redeemed())
        plays: dict[int, dict[str, dict[str, int]]] = {}
        for d, kind, actions, shoppers in await conn.execute(q.plays()):
            plays.setdefault(int(d), {})[str(kind)] = {"actions": int(actions),
                                                      "shoppers": int(shoppers)}
        retained = await _triples(conn, q.daily_retention())
        cohort_weeks = await _pairs(conn, q.weekly_cohorts())
        weekly = await _triples(conn, q.weekly_retention())
        players, active = (await conn.execute(q.totals())).one()
    span = range(window.start, window.end + 1)
    days = [{**_day_row(d, dau, new, secs, draws, coupons),
             "coupons_redeemed": redeemed.get(d, 0), "plays": plays.get(d, {})} for d in span]
    cohorts = [_cohort_row(d, new.get(d, 0), retained, window.today) for d in span]
    weeks = [_week_row(wk, cohort_weeks.get(wk, 0), weekly, window.today)
             for wk in range(window.first_week, window.last_week + 1)]
    return {"from": day_date(window.start).isoformat(), "to": day_date(window.end).isoformat(),
            "today": day_date(window.today).isoformat(), "days": days, "cohorts": cohorts,
            "weekly": weeks, "totals": _totals(int(players), int(active), days, weeks)}


def _day_row(d: int, dau: dict[int, int], new: dict[int, int], secs: dict[int, int],
             draws: dict[int, int], coupons: dict[int, int]) -> dict[str, Any]:
    active = dau.get(d, 0)
    minutes = round(secs.get(d, 0) / active / 60, 2) if active else 0.0
    return {"date": day_date(d).isoformat(), "dau": active, "new_players": new.get(d, 0),
            "draws": draws.get(d, 0), "coupons_granted": coupons.get(d, 0),
            "avg_active_minutes": minutes}


def _cohort_row(d: int, size: int, retained: dict[tuple[int, int], int],
                today: int) -> dict[str, Any]:
    row: dict[str, Any] = {"date": day_date(d).isoformat(), "size": size}
    for n in RETENTION_DAYS:
        row[f"d{n}"] = _rate(retained.get((d, n), 0), size) if d + n < today else None
    return row


def _week_row(wk: int, size: int, retained: dict[tuple[int, int], int],
              today: int) -> dict[str, Any]:
    row: dict[str, Any] = {"week_start": day_date(week_start(wk)).isoformat(), "size": size}
    for k in RETENTION_WEEKS:
        over = week_start(wk + k + 1) <= today
        row[f"w{k}"] = _rate(retained.get((wk, k), 0), size) if over else None
    return row


def _totals(players: int, active: int, days: list[dict[str, Any]],
            weeks: list[dict[str, Any]]) -> dict[str, Any]:
    """Whole-range figures; ``weekly_retention`` pools every week cohort with a w1."""
    measured = [w for w in weeks if w["w1"] is not None]
    size = sum(w["size"] for w in measured)
    kept = sum(w["w1"]["retained"] for w in measured)
    return {"players": players, "active_players": active,
            "new_players": sum(d["new_players"] for d in days),
            "draws": sum(d["draws"] for d in days),
            "coupons_granted": sum(d["coupons_granted"] for d in days),
            **_redemption(days),
            "weekly_retention": _rate(kept, size) if measured else None}


def _redemption(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Coupons redeemed in the range, and their share of the coupons granted in it
    (null without grants; above 1 when older coupons were redeemed in the range)."""
    granted = sum(d["coupons_granted"] for d in days)
    redeemed = sum(d["coupons_redeemed"] for d in days)
    return {"coupons_redeemed": redeemed,
            "coupon_redemption_rate": round(redeemed / granted, 4) if granted else None}
