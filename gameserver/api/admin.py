"""Merchant routes (``/v1/admin/...``): always scoped to the key's own merchant.

A game, version or player of another merchant is reported as 404, never 403, so
an API key cannot probe what other merchants have.
"""

from __future__ import annotations

from aiohttp import web

from economy.config import MAX_AMOUNT
from economy.errors import NotFound
from economy.schema import Int, Map, Obj, Str
from gameserver.api.common import (
    Operation,
    bind,
    game_id,
    idempotency_key,
    merchant_of,
    now_s,
    read_body,
    reply_response,
    request_hash,
)
from gameserver.appkeys import DB, GAMES, SETTINGS, STORE, VALUE
from gameserver.games import LiveGame
from gameserver.keys import USER_RE, PlayerRef, shard_of
from mechanics import admin as admin_rules
from mechanics import pet


async def get_player_admin(request: web.Request) -> web.Response:
    """The player as the merchant sees it, with the most recent ledger entries in SQL."""
    live = await _merchant_game(request)
    user = _user(request)
    ref = PlayerRef(live.merchant, live.game, user,
                    shard_of(live.merchant, user, request.app[SETTINGS].shards))
    loaded = await request.app[STORE].read(ref)
    if loaded.state is None:
        raise NotFound("player not found", user=user)
    ledger = await request.app[DB].recent_ledger(ref, limit=50)
    view = pet.player_view(loaded.state, live.config, now_s(request))
    return web.json_response({"user": user, "player": view, "version": loaded.version,
                              "ledger": ledger})


async def _merchant_game(request: web.Request) -> LiveGame:
    merchant = await merchant_of(request)
    return await request.app[GAMES].get(merchant.id, game_id(request))


async def get_stock(request: web.Request) -> web.Response:
    """``getStock``: per limited prize, coupon and offer: total, reserved, granted, left."""
    live = await _merchant_game(request)
    await request.app[VALUE].ensure_stock(live.merchant, live.game, live.totals)
    rows = await request.app[VALUE].stock_report(live.merchant, live.game, list(live.totals))
    return web.json_response({"game": live.game, "stock": rows})


def _stock_ref(live: LiveGame, prize: str) -> str:
    """A path's prize as a stock ref: ``prize:x``, ``coupon:x`` or ``offer:x`` (or bare id)."""
    if prize in live.totals:
        return prize
    for kind in ("prize", "coupon", "offer"):
        if f"{kind}:{prize}" in live.totals:
            return f"{kind}:{prize}"
    raise NotFound("no limited prize, coupon or offer with that id", prize=prize)


SET_STOCK_BODY = Obj(fields={
    "add": Int(minimum=-10**9, maximum=10**9,
               description="units to add (negative to remove; never below what is taken)"),
})


async def set_stock(request: web.Request) -> web.Response:
    """``setStock``: change a limited prize's total; SQL first, then the Redis gate."""
    live = await _merchant_game(request)
    ref = _stock_ref(live, request.match_info["prize"])
    body, _ = await read_body(request, SET_STOCK_BODY)
    await request.app[VALUE].ensure_stock(live.merchant, live.game, live.totals)
    row = await request.app[VALUE].add_stock(live.merchant, live.game, ref, body["add"])
    return web.json_response({"game": live.game, "stock": row})


GRANT_BODY = Obj(fields={
    "wallet": Map(values=Int(minimum=-MAX_AMOUNT, maximum=MAX_AMOUNT), default={},
                  max_items=16, description="currency → amount (negative takes back)"),
    "items": Map(values=Int(minimum=-1_000_000, maximum=1_000_000), default={},
                 max_items=100, description="item → count"),
    "reason": Str(min_length=1, max_length=100, description="why: kept in the ledger"),
})


async def grant_player(request: web.Request) -> web.Response:
    """``grantPlayer``: a customer-support or campaign grant, ledgered with its reason."""
    live = await _merchant_game(request)
    user = _user(request)
    key = idempotency_key(request)
    body, raw = await read_body(request, GRANT_BODY)
    ref = PlayerRef(live.merchant, live.game, user,
                    shard_of(live.merchant, user, request.app[SETTINGS].shards))
    action = admin_rules.GrantPlayer(body["reason"], body["wallet"], body["items"])
    reply = await request.app[STORE].run(ref, key, request_hash(request, raw),
                                         bind(admin_rules.grant, action, live))
    return reply_response(reply)


def _user(request: web.Request) -> str:
    user = request.match_info["user"]
    if not USER_RE.fullmatch(user):
        raise NotFound("player not found", user=user)
    return user


OPERATIONS = [
    Operation("getPlayerAdmin", "GET", "/v1/admin/games/{game}/players/{user}",
              get_player_admin, "A player as the merchant sees it, with recent ledger",
              auth="merchant", tag="merchant", errors=(401, 403, 404)),
    Operation("getStock", "GET", "/v1/admin/games/{game}/stock", get_stock,
              "Limited prizes, coupons and offers: total, reserved, granted, left",
              auth="merchant", tag="merchant", errors=(401, 403, 404)),
    Operation("setStock", "POST", "/v1/admin/games/{game}/stock/{prize}", set_stock,
              "Add (or remove) stock of a limited prize; never below what is taken",
              auth="merchant", tag="merchant", body=SET_STOCK_BODY,
              errors=(400, 401, 403, 404, 409, 422)),
    Operation("grantPlayer", "POST", "/v1/admin/games/{game}/players/{user}/grant",
              grant_player, "Grant (or take back) currency and items, ledgered with a reason",
              auth="merchant", tag="merchant", body=GRANT_BODY, idempotent=True,
              errors=(400, 401, 403, 404, 409, 422, 503)),
]
