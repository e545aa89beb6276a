"""Merchant routes (``/v1/admin/...``): always scoped to the key's own merchant.

A game, version or player of another merchant is reported as 404, never 403, so
an API key cannot probe what other merchants have. Every read and write here goes
through :func:`services`: a load-test merchant's requests with ``X-Petbox-Shadow: 1``
see and change the shadow keyspace only.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.config import MAX_AMOUNT
from economy.errors import InvalidInput, NotFound
from economy.schema import Bool, Int, Map, Obj, Str
from gameserver.api.admin_keys import Written, keyed_run, sql_write
from gameserver.api.common import (
    Operation,
    game_id,
    idempotency_key,
    merchant_of,
    now_s,
    read_body,
    request_hash,
    services,
)
from gameserver.api.schemas import ANY_OBJECT, COUNTS, INT, PLAYER, STR, array, obj
from gameserver.appkeys import GAMES, SETTINGS
from gameserver.games import LiveGame
from gameserver.services import RuleContext, bind
from gameserver.state.keys import USER_RE, PlayerRef, shard_of, system_key
from gameserver.state.value import StockView, stock_change_followup
from mechanics import admin as admin_rules
from mechanics import pet


async def get_player_admin(request: web.Request) -> web.Response:
    """The player as the merchant sees it, with the most recent ledger entries in SQL."""
    live = await _merchant_game(request)
    user = _user(request)
    ref = _player(request, live, user)
    svc = services(request)
    loaded = await svc.store.read(ref)
    if loaded.state is None:
        raise NotFound("player not found", user=user)
    ledger = await svc.db.recent_ledger(ref, limit=50)
    # The game's timezone: without it the view leaves out check-in, tasks and exchanges.
    view = pet.player_view(loaded.state, live.config, now_s(request), live.tz)
    return web.json_response({"user": user, "player": view, "version": loaded.version,
                              "ledger": ledger})


async def _merchant_game(request: web.Request) -> LiveGame:
    merchant = await merchant_of(request, shadow=True)
    return await request.app[GAMES].get(merchant.id, game_id(request))


def _player(request: web.Request, live: LiveGame, user: str) -> PlayerRef:
    return PlayerRef(live.merchant, live.game, user,
                     shard_of(live.merchant, user, request.app[SETTINGS].shards))


async def get_stock(request: web.Request) -> web.Response:
    """``getStock``: per limited prize, coupon and offer: total, reserved, granted, left."""
    live = await _merchant_game(request)
    value = services(request).value
    await value.ensure_stock(live.merchant, live.game, live.totals)
    rows = await value.stock_report(live.merchant, live.game, list(live.totals))
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
    value = services(request).value
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
    "deduct": Obj(default={"wallet": {}, "items": {}}, description=(
        "what to take from the player, applied after the grant (a correction or a "
        "clawback): 409 insufficient_funds / insufficient_items, and nothing changes, "
        "if the player has less"), fields={
        "wallet": Map(values=Int(minimum=0, maximum=MAX_AMOUNT), default={}, max_items=16,
                      description="currency → amount to take (0 or more)"),
        "items": Map(values=Int(minimum=0, maximum=1_000_000), default={}, max_items=100,
                     description="item → count to take (0 or more)"),
    }),
    "create": Bool(default=False,
                   description="grant to a user who has never played, creating the player; "
                               "without it such a user is 404 player_not_found"),
})


MERCHANT_SOURCE = "merchant"
"""The :func:`~gameserver.state.keys.system_key` source of a merchant key's player commit."""


async def grant_player(request: web.Request) -> web.Response:
    """``grantPlayer``: a customer-support or campaign grant, ledgered with its reason.

    The merchant's key is kept in SQL (``admin_requests``), so a retry after a restart
    or a Redis data loss replays the first response. The player commit runs under
    :func:`~gameserver.state.keys.system_key` of it, never the key itself: the player's key
    space is also the shopper's, and a shopper may pick the same key."""
    live = await _merchant_game(request)
    key = idempotency_key(request)
    body, raw = await read_body(request, GRANT_BODY)
    user = request.match_info["user"]
    if not USER_RE.fullmatch(user):
        if body["create"]:  # asked to create it: an id no player can have is at fault
            raise InvalidInput("a user id is 1 to 128 of A-Z a-z 0-9 _ . @ = + -",
                               field="user", user=user)
        # never played, as any unknown user without create
        raise admin_rules.PlayerNotFound("this user has never played", user=user)
    ref = _player(request, live, user)
    action = admin_rules.GrantPlayer(body["reason"], body["wallet"], body["items"],
                                     create=body["create"],
                                     deduct_wallet=body["deduct"]["wallet"],
                                     deduct_items=body["deduct"]["items"])
    rule = bind(admin_rules.grant, action, RuleContext(live, StockView(), ref))
    svc, digest = services(request), request_hash(request, raw)
    return await keyed_run(request, live.merchant, "grantPlayer", key, raw,
                           lambda: svc.run(ref, system_key(MERCHANT_SOURCE, key), digest,
                                           rule))


def _user(request: web.Request) -> str:
    user = request.match_info["user"]
    if not USER_RE.fullmatch(user):
        raise NotFound("player not found", user=user)
    return user


STOCK_ROW = obj({"ref": STR, "total": INT, "reserved": INT, "granted": INT, "left": INT},
                description="ref: prize:<item>, coupon:<template> or offer:<offer>")

OPERATIONS = [
    Operation("getPlayerAdmin", "GET", "/v1/admin/games/{game}/players/{user}",
              get_player_admin, "A player as the merchant sees it, with recent ledger",
              auth="merchant", tag="merchant", errors=(401, 403, 404),
              response=obj({"user": STR, "player": PLAYER, "version": INT,
                            "ledger": array(ANY_OBJECT)})),
    Operation("getStock", "GET", "/v1/admin/games/{game}/stock", get_stock,
              "Limited prizes, coupons and offers: total, reserved, granted, left",
              auth="merchant", tag="merchant", errors=(401, 403, 404),
              response=obj({"game": STR, "stock": array(STOCK_ROW)})),
    Operation("setStock", "POST", "/v1/admin/games/{game}/stock/{prize}", set_stock,
              "Add (or remove) stock of a limited prize; never below what is taken",
              auth="merchant", tag="merchant", body=SET_STOCK_BODY, idempotent=True,
              description="Needs an Idempotency-Key (400 idempotency_key_required "
                          "without one): a retry with the same key and body answers the "
                          "first response and moves the stock once. 409 stock_below_taken "
                          "when the total would go below what is reserved or granted.",
              errors=(400, 401, 403, 404, 409, 422, 503),
              response=obj({"game": STR, "stock": STOCK_ROW})),
    Operation("grantPlayer", "POST", "/v1/admin/games/{game}/players/{user}/grant",
              grant_player, "Grant currency and items, ledgered with a reason",
              auth="merchant", tag="merchant", body=GRANT_BODY, idempotent=True,
              description="Needs an Idempotency-Key (400 idempotency_key_required "
                          "without one); a retry with the same key and body answers the "
                          "first response and grants once. Amounts are 0 or more: a grant "
                          "never takes back by a negative amount (422 invalid_input); a "
                          "deduction is the explicit \"deduct\" field ({\"wallet\", "
                          "\"items\"}), applied after the grant, 409 insufficient_funds or "
                          "insufficient_items (nothing changed) if the player has less. A "
                          "user who has never played is 404 player_not_found unless the "
                          "body says \"create\": true, which creates the player (as a "
                          "first action would) and grants to it.",
              errors=(400, 401, 403, 404, 409, 422, 503),
              response=obj({"wallet": COUNTS, "inventory": COUNTS, "reason": STR},
                           description="the player's balances after the grant")),
]
