"""Merchant routes (``/v1/admin/...``): always scoped to the key's own merchant.

A game, version or player of another merchant is reported as 404, never 403, so
an API key cannot probe what other merchants have.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.config import MAX_AMOUNT
from economy.errors import NotFound
from economy.schema import Bool, Int, Map, Obj, Str
from gameserver.api.admin_keys import Written, keyed_run, sql_write
from gameserver.api.common import (
    Operation,
    bind,
    game_id,
    idempotency_key,
    merchant_of,
    now_s,
    read_body,
    request_hash,
)
from gameserver.appkeys import DB, GAMES, SETTINGS, STORE, VALUE
from gameserver.games import LiveGame
from gameserver.keys import USER_RE, PlayerRef, shard_of
from gameserver.value import stock_change_followup
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
    """``setStock``: change a limited prize's total, once per Idempotency-Key (required).

    The SQL change and the key's record commit together; the Redis gate follows, bound
    to the gate generation read before the SQL change and marked as applied by the same
    script, so neither a retry nor a crash in between can move it twice (see
    :meth:`ValueTier.apply_stock_change`)."""
    live = await _merchant_game(request)
    ref = _stock_ref(live, request.match_info["prize"])
    idempotency_key(request)
    body, raw = await read_body(request, SET_STOCK_BODY)
    value = request.app[VALUE]
    epoch = await value.ensure_stock(live.merchant, live.game, live.totals)

    async def effect(conn: AsyncConnection) -> Written:
        row = await value.change_stock_in(conn, live.merchant, live.game, ref, body["add"])
        return Written({"game": live.game, "stock": row},
                       followup=stock_change_followup(live.game, epoch, ref, body["add"]))

    return await sql_write(request, live.merchant, "setStock", raw, effect, required=True,
                           followup=partial(value.settle_stock_change, live.merchant))


GRANT_BODY = Obj(fields={
    "wallet": Map(values=Int(minimum=0, maximum=MAX_AMOUNT), default={},
                  max_items=16, description="currency → amount to add (0 or more: a grant "
                                            "never takes back; negative amounts are 422)"),
    "items": Map(values=Int(minimum=0, maximum=1_000_000), default={},
                 max_items=100, description="item → count to add (0 or more)"),
    "reason": Str(min_length=1, max_length=100, description="why: kept in the ledger"),
    "create": Bool(default=False,
                   description="grant to a user who has never played, creating the player; "
                               "without it such a user is 404 player_not_found"),
})


async def grant_player(request: web.Request) -> web.Response:
    """``grantPlayer``: a customer-support or campaign grant, ledgered with its reason.

    The player commit is idempotent per key in Redis; the key's first response is also
    kept in SQL, so a retry after a restart or a Redis data loss replays it."""
    live = await _merchant_game(request)
    user = _user(request)
    key = idempotency_key(request)
    body, raw = await read_body(request, GRANT_BODY)
    ref = PlayerRef(live.merchant, live.game, user,
                    shard_of(live.merchant, user, request.app[SETTINGS].shards))
    action = admin_rules.GrantPlayer(body["reason"], body["wallet"], body["items"],
                                     create=body["create"])
    rule, store, digest = bind(admin_rules.grant, action, live), request.app[STORE], \
        request_hash(request, raw)
    return await keyed_run(request, live.merchant, "grantPlayer", key, raw,
                           lambda: store.run(ref, key, digest, rule))


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
              auth="merchant", tag="merchant", body=SET_STOCK_BODY, idempotent=True,
              description="Needs an Idempotency-Key (400 idempotency_key_required "
                          "without one): a retry with the same key and body answers the "
                          "first response and moves the stock once. 409 stock_below_taken "
                          "when the total would go below what is reserved or granted.",
              errors=(400, 401, 403, 404, 409, 422, 503)),
    Operation("grantPlayer", "POST", "/v1/admin/games/{game}/players/{user}/grant",
              grant_player, "Grant currency and items, ledgered with a reason",
              auth="merchant", tag="merchant", body=GRANT_BODY, idempotent=True,
              description="Needs an Idempotency-Key (400 idempotency_key_required "
                          "without one); a retry with the same key and body answers the "
                          "first response and grants once. Amounts are 0 or more: a grant "
                          "never takes back (negative amounts are 422 invalid_input). A "
                          "user who has never played is 404 player_not_found unless the "
                          "body says \"create\": true, which creates the player (as a "
                          "first action would) and grants to it.",
              errors=(400, 401, 403, 404, 409, 422, 503)),
]
