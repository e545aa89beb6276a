"""Check-in over HTTP (签到 and 补签); the rules live in ``mechanics/checkin.py``.

The day is the game's timezone's; a reward coupon that is sold out is skipped (the
binder gives the rule what the value tier says is out)."""

from __future__ import annotations

from aiohttp import web

from economy.schema import Obj, Str
from gameserver.api.common import EMPTY_BODY, PLAYER_ERRORS, Operation, run_action
from gameserver.api.schemas import INT, STR, with_player
from gameserver.services import bind
from mechanics import checkin

MAKEUP_BODY = Obj(fields={"day": Str(pattern=r"^$|^\d{4}-\d{2}-\d{2}$", max_length=10,
                                     default="",
                                     description="ISO date of the missed day; "
                                                 "empty = the latest missed day")})


CHECKED_IN = with_player({"day": STR, "streak": INT, "cycle_day": INT})
"""checkIn and makeupCheckIn: the day checked in (YYYY-MM-DD, game timezone), the streak
and the cycle day it counted as, and the player after it."""

async def check_in(request: web.Request) -> web.Response:
    """``checkIn``: today's check-in in the game's timezone."""
    return await run_action(request, EMPTY_BODY, lambda body, ctx: bind(
        checkin.check_in, checkin.CheckIn(), ctx))


async def makeup_check_in(request: web.Request) -> web.Response:
    """``makeupCheckIn`` (补签): a missed day of the window, for the makeup cost."""
    return await run_action(request, MAKEUP_BODY, lambda body, ctx: bind(
        checkin.makeup_check_in, checkin.MakeupCheckIn(body["day"]), ctx))


OPERATIONS = [
    Operation("checkIn", "POST", "/v1/games/{game}/checkin", check_in,
              "Check in for today (game timezone): streak and cycle reward",
              auth="player", tag="shopper", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=CHECKED_IN),
    Operation("makeupCheckIn", "POST", "/v1/games/{game}/checkin/makeup", makeup_check_in,
              "补签: check in a missed day of the makeup window, for its cost",
              auth="player", tag="shopper", body=MAKEUP_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=CHECKED_IN),
]
