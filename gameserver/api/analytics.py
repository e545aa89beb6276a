"""``getAnalytics``: a game's daily figures and retention cohorts, computed in SQL.

Definitions are in :mod:`gameserver.db.analytics` and repeated in the response's
``definitions`` so a merchant (or the console) can show what each number means.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from economy.errors import InvalidInput
from economy.schema import Int, Spec, Str
from gameserver.api.common import (
    Operation,
    game_id,
    merchant_of,
    now_s,
    query_int,
    refuse_unknown_params,
)
from gameserver.api.schemas import ANY_OBJECT, INT, NUM, STR, array, map_of, obj
from gameserver.appkeys import DB
from gameserver.db import analytics, configs
from gameserver.db.database import Database

DEFAULT_DAYS = 30
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DEFAULT_TZ = "Asia/Shanghai"
FIRST_END = date(1971, 1, 2)
"""The earliest ``end``: 366 days back from it is still 1970 (Unix time 0 on)."""

DEFINITIONS = {
    "day": "a calendar day in the game's time zone",
    "dau": "players who acted themselves that day: a ledger row of their own commit, or "
           "their first own commit (an order, refund or grant made for them does not count)",
    "new_players": "players whose first activity ever is that day",
    "draws": "blind-box draws (a ten-pull is ten)",
    "coupons_granted": "coupons granted and confirmed (voided grants never count)",
    "coupons_redeemed": "coupons the merchant redeemed (redeemCoupon) that day",
    "coupon_redemption_rate": "coupons redeemed in the range ÷ coupons granted in it (null "
                              "without grants)",
    "plays": "per kind of state shoppers share (a poll bucket, a group, a pool, a team): "
             "the shoppers' own actions on it that day and how many shoppers made them",
    "avg_active_minutes": "mean over active players of their visits' length (first to last "
                          "action + 1 min; actions more than 5 min apart start a new visit)",
    "dN": "share of the day's new players active exactly N days later; null until that day "
          "is over",
    "wK": "share of the week's new players (Monday to Sunday) active in the K-th following "
          "week; null until that week is over",
}


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    value = query_int(request, name, lo, hi)
    return default if value is None else value


def _date_param(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        if not DATE_RE.fullmatch(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date YYYY-MM-DD", problems=[
            {"path": f"$.{name}", "message": "must be a date YYYY-MM-DD"}]) from exc
    if day < FIRST_END:  # the range reaches up to 366 days back: never before 1970
        raise InvalidInput(f"{name} must be {FIRST_END.isoformat()} or later", field=name)
    return day


async def game_timezone(db: Database, merchant: str, game: str) -> str:
    """The zone the game's days are counted in: its live config's, else its draft's."""
    row = await configs.require_game(db, merchant, game)
    config: Any = row.draft
    if row.live_version is not None:
        live = await db.game_version(merchant, game, row.live_version)
        config = live.config if live else config
    tz = config.get("timezone") if isinstance(config, dict) else None
    return tz if isinstance(tz, str) else DEFAULT_TZ


async def analytics_report(db: Database, merchant: str, game: str, now: int, days: int,
                           end: date | None = None) -> dict[str, Any]:
    """The report ``getAnalytics`` and ``petbox analytics`` show."""
    tz = await game_timezone(db, merchant, game)
    window = analytics.Window.last_days(ZoneInfo(tz), now, days, end)
    report = await analytics.game_analytics(db, merchant, game, window)
    return {"game": game, "timezone": tz, **report, "definitions": DEFINITIONS}


PARAMS: dict[str, str | Spec] = {"days": Int(minimum=1, maximum=analytics.MAX_DAYS, description=(
              f"how many days, ending with `end` (1..{analytics.MAX_DAYS}, "
              f"default {DEFAULT_DAYS})")),
          "end": Str(pattern=f"^{DATE_RE.pattern}$", min_length=10, max_length=10,
                     description="last day, YYYY-MM-DD in the game's time zone "
                                 f"(default today, and a later day is today; "
                                 f"{FIRST_END.isoformat()} or later)")}
"""The query parameters; any other (``?from=``, ``?to=``) is refused, not ignored."""


async def get_analytics(request: web.Request) -> web.Response:
    merchant = await merchant_of(request)
    game = game_id(request)
    refuse_unknown_params(request, PARAMS)
    days = _int_param(request, "days", DEFAULT_DAYS, 1, analytics.MAX_DAYS)
    end = _date_param(request, "end")
    return web.json_response(await analytics_report(request.app[DB].report, merchant.id, game,
                                                    now_s(request), days, end))


OPERATIONS = [
    Operation("getAnalytics", "GET", "/v1/admin/games/{game}/analytics", get_analytics,
              "Per day: DAU, new players, draws, coupons granted, average active minutes; "
              "D1/D7/D30 retention cohorts and weekly retention (days in the game's zone)",
              auth="merchant", tag="merchant", errors=(401, 403, 404, 422),
              params=PARAMS,
              response=obj({
                  "game": STR, "timezone": STR, "from": STR, "to": STR, "today": STR,
                  "days": array(obj({"date": STR, "dau": INT, "new_players": INT,
                                     "draws": INT, "coupons_granted": INT,
                                     "avg_active_minutes": NUM, "coupons_redeemed": INT},
                                    ["date", "dau", "new_players", "draws"])),
                  "cohorts": array(ANY_OBJECT), "weekly": array(ANY_OBJECT),
                  "totals": ANY_OBJECT, "definitions": map_of(STR)},
                  ["game", "timezone", "from", "to", "days", "cohorts", "weekly",
                   "totals"])),
]
