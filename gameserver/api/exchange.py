"""Exchange over HTTP (换购); the rule lives in ``mechanics/exchange.py``.

Offers with a global limit and coupon rewards are limited stock: the binder gives
the rule what the value tier says is sold out."""

from __future__ import annotations

from aiohttp import web

from economy.schema import ID_PATTERN, Int, Map, Obj, Str
from gameserver.api.common import PLAYER_ERRORS, Operation, run_action
from gameserver.api.schemas import COUNTS, GRANTED, STR, obj, with_player
from gameserver.services import bind
from mechanics import exchange

EXCHANGE_BODY = Obj(fields={
    "offer": Str(pattern=ID_PATTERN, max_length=64),
    "duplicates": Map(values=Int(minimum=0, maximum=1000), default={}, max_items=100,
                      description="which spare copies to give (item → count); "
                                  "empty = the most plentiful first"),
})


async def exchange_offer(request: web.Request) -> web.Response:
    """``exchange`` (换购): pay an offer's cost, receive its reward."""
    return await run_action(request, EXCHANGE_BODY, lambda body, ctx: bind(
        exchange.exchange, exchange.Exchange(body["offer"], body["duplicates"]), ctx))


OPERATIONS = [
    Operation("exchange", "POST", "/v1/games/{game}/exchange", exchange_offer,
              "换购: spend currency, items or duplicates on an offer",
              auth="player", tag="shopper", body=EXCHANGE_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=with_player(
                  {"offer": STR, "paid": obj({"currency": COUNTS, "items": COUNTS}),
                   "granted": GRANTED})),
]
