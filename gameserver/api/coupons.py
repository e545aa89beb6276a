"""The coupon wallet: what a shopper won (``listMyCoupons``) and its use at the
merchant's checkout (``redeemCoupon``).

Coupons are value grants, so SQL is their truth (:mod:`gameserver.db.coupons`); a
coupon shows here once its grant is confirmed, which happens before the reply that
announced it. Expiry is per coupon (``valid_days`` of the ``coupons`` entry or the
blind-box prize), stamped on the grant when it is made.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.schema import Obj, Str
from gameserver.api.admin_keys import Written, sql_write
from gameserver.api.common import (
    Operation,
    game_id,
    json_ok,
    merchant_of,
    player_ctx,
    read_body,
    services,
)
from gameserver.appkeys import CLOCK, GAMES
from gameserver.db.coupons import (
    STATES,
    CouponNotFound,
    count_states,
    list_coupons,
    redeem_in,
)
from gameserver.jobs.webhooks import OUTBOX

CODE_MAX = 64

COUPON_FIELDS: dict[str, Any] = {
    "code": {"type": "string", "description": "the coupon's code (unguessable)"},
    "coupon": {"type": "string", "description": "its id: a `coupons` entry or a blind-box prize"},
    "name": {"type": "string"},
    "template": {"type": "string", "description": "the merchant's coupon template"},
    "face_value_fen": {"type": "integer", "description": "value in fen (¥0.01)"},
    "granted_at": {"type": "integer"},
    "expires_at": {"type": ["integer", "null"], "description": "null: never expires"},
    "state": {"enum": list(STATES)},
    "redeemed_at": {"type": ["integer", "null"]},
}
COUPON: dict[str, Any] = {"type": "object", "required": list(COUPON_FIELDS),
                          "properties": COUPON_FIELDS}
REDEEMED: dict[str, Any] = {
    "type": "object", "required": ["coupon"], "properties": {"coupon": {
        "type": "object", "required": [*COUPON_FIELDS, "reference"],
        "properties": {**COUPON_FIELDS, "reference": {"type": "string"}}}}}

WALLET = {"type": "object", "required": ["coupons", "counts"], "properties": {
    "coupons": {"type": "array", "items": COUPON},
    "counts": {"type": "object", "additionalProperties": {"type": "integer"},
               "description": "coupons per state (issued, redeemed, expired)"},
}}


def _now_ms(request: web.Request) -> int:
    return int(request.app[CLOCK].now() * 1000)


async def list_my_coupons(request: web.Request) -> web.Response:
    """``listMyCoupons``: the shopper's coupons, newest first, with their state now."""
    ctx = await player_ctx(request)
    coupons = await list_coupons(services(request).db, ctx.ref, _now_ms(request))
    return json_ok({"coupons": coupons, "counts": count_states(coupons)})


REDEEM_BODY = Obj(default={"reference": ""}, fields={
    "reference": Str(max_length=64, default="",
                     description="the merchant's order or till reference; a redemption "
                                 "repeated with the same reference is answered again, one "
                                 "with another is 409 coupon_already_redeemed"),
})


async def redeem_coupon(request: web.Request) -> web.Response:
    """``redeemCoupon``: mark a shopper's coupon used at the merchant's checkout."""
    merchant = await merchant_of(request, shadow=True)
    live = await request.app[GAMES].get(merchant.id, game_id(request))
    code = request.match_info["code"]
    if not 1 <= len(code) <= CODE_MAX:
        raise CouponNotFound("no coupon with this code in this game")
    body, raw = await read_body(request, REDEEM_BODY)
    now_ms = _now_ms(request)

    async def tell_merchant(conn: AsyncConnection, user: str, entry: dict[str, Any]) -> None:
        # One event per coupon, committed with its redemption (docs/webhooks.md).
        await request.app[OUTBOX].emit_in(
            conn, merchant=live.merchant, game=live.game, event="coupon.redeemed",
            key=f"coupon-redeemed-{code}", data={"user": user, **entry})

    async def effect(conn: AsyncConnection) -> Written:
        entry = await redeem_in(conn, live.merchant, live.game, code, body["reference"],
                                now_ms, on_redeemed=tell_merchant)
        return Written({"coupon": entry})

    return await sql_write(request, live.merchant, "redeemCoupon", raw, effect)


OPERATIONS = [
    Operation("listMyCoupons", "GET", "/v1/games/{game}/coupons", list_my_coupons,
              "The shopper's coupons: code, face value, template, expiry and state",
              auth="player", tag="shopper", errors=(401, 403, 404, 503), response=WALLET,
              description="Newest first, at most 200. A coupon appears once its grant is "
                          "confirmed (before the reply that announced it). States: issued "
                          "(usable), redeemed, expired (its valid_days have passed); void "
                          "grants are never listed."),
    Operation("redeemCoupon", "POST", "/v1/admin/games/{game}/coupons/{code}/redeem",
              redeem_coupon, "Mark a coupon used at checkout (idempotent)",
              auth="merchant", tag="merchant", body=REDEEM_BODY, optional_key=True,
              response=REDEEMED,
              description="Idempotent by itself: redeeming a redeemed coupon again with "
                          "the same reference answers the same coupon; with another "
                          "reference 409 coupon_already_redeemed. 409 coupon_expired "
                          "past its expiry; 404 coupon_not_found for a code of another "
                          "merchant or game. An Idempotency-Key is honoured too.",
              errors=(400, 401, 403, 404, 409, 422, 503)),
]
