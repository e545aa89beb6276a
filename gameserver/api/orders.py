"""Orders over HTTP: merchant-signed webhooks that drive purchase tasks (追单).

The rules live in ``mechanics/tasks.py`` (``apply_order``, ``apply_refund``) and
``mechanics/refunds.py`` (``apply_partial_refund``). ``ingestOrder`` is idempotent by
order id and status, a partial refund by order id and refund id. A load-test merchant's
events sent with ``X-Petbox-Shadow: 1`` go to the shadow keyspace, like its shoppers'
actions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiohttp import web

from economy.errors import InvalidInput, OrderWrongMerchant, PartialRefundsOff
from economy.schema import Arr, Enum, Int, Obj, Str
from gameserver.api.common import (
    Operation,
    checked,
    decode_json,
    now_s,
    reply_response,
    request_hash,
    services,
    shadow_for,
)
from gameserver.api.schemas import BOOL, COUNTS, INT, STR, array, nullable, obj
from gameserver.appkeys import GAMES, MERCHANTS, SETTINGS
from gameserver.db.database import Merchant
from gameserver.http.auth import body_signature
from gameserver.http.errors import Unauthorized
from gameserver.http.ratelimit import limit_signed_event
from gameserver.http.signing import signature_matches
from gameserver.ops.metrics import METRICS, Metrics
from gameserver.services import RuleContext, bind
from gameserver.state.keys import GAME_RE, MERCHANT_RE, USER_RE, PlayerRef, shard_of, system_key
from gameserver.state.store import Reply, Rule, encode_json
from gameserver.state.value import StockView
from mechanics import tasks
from mechanics.orders import apply_paid_order
from mechanics.outcome import Outcome
from mechanics.refunds import PartialRefund, apply_partial_refund
from mechanics.registry import REFUND_HOOKS
from mechanics.state import PlayerState

SIGNATURE_WINDOW_S = 300
"""A merchant event's ``X-Petbox-Timestamp`` must be this close to server time."""

ORDER_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_AMOUNT_FEN = 10**10
"""The largest ``amount_fen`` (¥100,000,000): refused above it, never clamped (money)."""
# min_length 1 on the ids: their patterns need a character, and a length error must say
# the range they accept ("1..64"), not "0..64".
ORDER_BODY = Obj(fields={
    "merchant": Str(pattern=f"^{MERCHANT_RE.pattern}$", min_length=1, max_length=32),
    "game": Str(pattern=f"^{GAME_RE.pattern}$", min_length=1, max_length=64),
    "user": Str(pattern=f"^{USER_RE.pattern}$", min_length=1, max_length=128),
    "order_id": Str(pattern=ORDER_ID_PATTERN, min_length=1, max_length=64),
    "status": Enum(values=("paid", "refunded")),
    "refund_id": Str(pattern=ORDER_ID_PATTERN, min_length=1, max_length=64, default=None,
                     description="refunded only: the platform's id of a partial refund "
                                 "(部分退款) of amount_fen; without it a refund is of the "
                                 "whole order"),
    "amount_fen": Int(minimum=0, maximum=MAX_AMOUNT_FEN, default=0,
                      description="fen, an integer (JSON Schema's: 100.0 reads as 100, "
                                  "99.5 is refused), at most 10000000000 (¥100,000,000; "
                                  "refused above it, never clamped). paid: the order's "
                                  "amount; a partial refund: what it returns (above 0); a "
                                  "whole refund: unused"),
    "skus": Arr(items=Str(min_length=1, max_length=64), default=[], max_items=200,
                description="paid: what was bought; refunded: what is returned (a "
                            "partial refund's go to the plays; without any, no play). "
                            "A group's groupbuy:<code> counts once however often it is "
                            "listed (one seat); a flash sale's SKU pays one of the "
                            "shopper's holds each time it is listed"),
    "paid_at": Int(minimum=0, maximum=2**40, default=0, description="unix s; 0 = now"),
})

REFUND_DUE = obj({"kind": STR, "sale": STR, "sku": STR, "price_fen": INT, "reason": STR},
                 description="one unit the merchant must refund: the play (kind), its sale, "
                 "the SKU and price, and why (sold_out, purchase_limit_reached)")
SALE_HOLD_RESULT = obj({
    "kind": {"type": "string", "enum": ["flash_sale", "presale"]}, "sale": STR,
    "hold": nullable(STR),
    "result": {"type": "string", "enum": ["paid", "refund", "no_hold", "converted",
                                          "deposit_paid", "already_converted",
                                          "no_reservation"]},
    "late": BOOL, "replaces": STR, "reason": STR, "order": STR, "deposit_value_fen": INT,
}, ["kind", "sale", "hold", "result"], "what a paid order did to the hold of one sale its "
   "SKUs name (docs/api.md, 'Flash sales and presales')")


async def _signer(request: web.Request, raw: bytes, body: Any) -> Merchant:
    """The merchant whose signing secret signed this event (401 for anything else).

    The signer is named by ``X-Petbox-Merchant``, or else by the body's ``merchant``.
    """
    ts = request.headers.get("X-Petbox-Timestamp", "")
    sign = request.headers.get("X-Petbox-Signature", "")
    now = now_s(request)
    if (not ts.isascii() or not ts.isdigit() or len(ts) > 12
            or abs(now - int(ts)) > SIGNATURE_WINDOW_S):
        raise Unauthorized(f"X-Petbox-Timestamp must be within ±{SIGNATURE_WINDOW_S} s "
                           "of server time", server_time=now)
    named = request.headers.get("X-Petbox-Merchant") or (
        body.get("merchant") if isinstance(body, dict) else None)
    if not named:  # nothing to look a secret up by: say so, not "does not match"
        raise Unauthorized("name the signing merchant: the X-Petbox-Merchant header or "
                           "the body's \"merchant\"")
    merchant = (await request.app[MERCHANTS].by_id(named)
                if isinstance(named, str) and MERCHANT_RE.fullmatch(named) else None)
    if merchant is None or not signature_matches(
            body_signature(merchant.signing_secret, ts, raw), sign):
        raise Unauthorized("signature does not match")  # also for an unknown merchant
    await limit_signed_event(request, merchant)  # only now: nobody spends another's budget
    return merchant


def _order_rule(body: dict[str, Any], ctx: RuleContext) -> Rule:
    if body["status"] == "paid":  # purchase tasks, then the mechanics' paid-order hooks
        return bind(apply_paid_order, tasks.Order(body["order_id"], body["amount_fen"],
                                                  tuple(body["skus"]), body["paid_at"]), ctx)
    if body["refund_id"] is not None:
        part = PartialRefund(body["order_id"], body["refund_id"], body["amount_fen"])
        return _with_refund_hooks(bind(apply_partial_refund, part, ctx),
                                  tuple(body["skus"]), ctx, partial=body["order_id"])
    rule = bind(tasks.apply_refund, tasks.Refund(body["order_id"]), ctx)
    return _with_refund_hooks(rule, tuple(body["skus"]), ctx)


def _check_refund_id(body: dict[str, Any], accepted: bool) -> None:
    """A ``refund_id`` belongs to a refund, a partial refund returns something, and
    partial refunds are ``accepted`` (``PETBOX_PARTIAL_REFUNDS``: off while hosts of an
    older release, which would lose their state, may still run)."""
    if body["refund_id"] is None:
        return
    if not accepted:
        raise PartialRefundsOff()
    if body["status"] != "refunded":
        raise InvalidInput("refund_id belongs to a refund (status \"refunded\")",
                           field="refund_id")
    if body["amount_fen"] <= 0:
        raise InvalidInput("a partial refund (refund_id) needs amount_fen above 0: what it "
                           "returns", field="amount_fen")


def _with_refund_hooks(rule: Rule, skus: tuple[str, ...], ctx: RuleContext,
                       partial: str | None = None) -> Rule:
    """The refund's rule, then each mechanic's refund hook (``REFUND_HOOKS``) on its
    result, in one outcome: one commit, so the order id's key applies them all once. A
    hook that has something to say adds its response under its mechanic's name.

    A partial refund (of order ``partial``) runs them with the SKUs it lists, if it
    returned anything, and whenever it leaves the order wholly refunded (as a whole
    refund does, with or without SKUs); else no play is touched."""
    if not REFUND_HOOKS:
        return rule
    config = ctx.game.config

    def hooked(state: PlayerState | None, now: int) -> Outcome:
        out = rule(state, now)
        if out.response.get("duplicate"):
            return out  # a refund seen before changes nothing anywhere
        if partial is not None and not (skus and out.response["amount_fen"]) \
                and not _now_refunded(state, out.state, partial):
            return out
        for name, hook in REFUND_HOOKS:
            more = hook(out.state, skus, now, config)
            if more is not None:
                out = dataclasses.replace(
                    out, state=more.state, response={**out.response, name: more.response},
                    ledger=out.ledger + more.ledger, events=out.events + more.events)
        return out
    return hooked


def _now_refunded(before: PlayerState | None, after: PlayerState, order_id: str) -> bool:
    """This commit left the order wholly refunded."""
    was = before.orders.get(order_id) if before is not None else None
    now = after.orders.get(order_id)
    return now is not None and now.refunded and not (was is not None and was.refunded)


async def ingest_order(request: web.Request) -> web.Response:
    """``ingestOrder``: a paid or refunded order drives purchase tasks (追单), and
    the mechanics' parts of a paid order (:mod:`mechanics.orders`: a flash-sale hold
    paid by the order's SKU ...). A refund with ``refund_id`` is a partial refund
    (:mod:`mechanics.refunds`).

    Idempotent by order id and status: the store key is
    :func:`~gameserver.state.keys.system_key` ``("order", "<status>-<id>")`` (``order:paid-<id>``;
    never a key a shopper can send, so the shopper's own keys and the order's never
    collide), so a webhook retried with the same body gets the first response again;
    the rule itself also remembers order ids (30 days), so a later replay earns nothing.
    A partial refund's key is ``("order", "refund-<id>/<refund_id>")`` (``/`` is in no
    id, so no two pairs share one), and the order's record remembers its refund ids.
    """
    raw = await request.read()
    parsed = decode_json(raw)
    signer = await _signer(request, raw, parsed)
    body = checked(ORDER_BODY, parsed)
    if body["merchant"] != signer.id:
        raise OrderWrongMerchant(body["merchant"])
    _check_refund_id(body, request.app[SETTINGS].partial_refunds)
    shadow_for(request, signer)
    live = await request.app[GAMES].get(signer.id, body["game"])
    ref = PlayerRef(signer.id, live.game, body["user"],
                    shard_of(signer.id, body["user"], request.app[SETTINGS].shards))
    ctx = RuleContext(live, StockView(), ref)
    key = system_key("order", f"{body['status']}-{body['order_id']}"
                     if body["refund_id"] is None
                     else f"refund-{body['order_id']}/{body['refund_id']}")
    svc = services(request)
    reply = await svc.run(ref, key, request_hash(request, raw), _order_rule(body, ctx),
                          view=ctx.view, totals=live.totals)
    if not svc.shadow:
        _count_refunds_due(request.app[METRICS], reply)
    return reply_response(_marked_duplicate(reply))


def _count_refunds_due(metrics: Metrics, reply: Reply) -> None:
    """Count the answer's ``refund_due`` entries (once: a replay counts nothing), so a
    merchant's paid orders that must be refunded show on ``/metrics``."""
    if reply.replayed or reply.status != 200 or b'"refund_due"' not in reply.body:
        return
    for due in orjson.loads(reply.body).get("refund_due") or ():
        metrics.order_refunds_due.labels(str(due.get("kind")), str(due.get("reason"))).inc()


def _marked_duplicate(reply: Reply) -> Reply:
    """A replayed order's first response says ``"duplicate": false`` (it was not, the
    first time); the replay is one, and says so, in step with ``Idempotent-Replayed``."""
    if not reply.replayed or reply.status >= 300:
        return reply
    body = orjson.loads(reply.body)
    if not isinstance(body, dict) or body.get("duplicate") is not False:
        return reply
    return Reply(reply.status, encode_json({**body, "duplicate": True}), replayed=True)


OPERATIONS = [
    Operation("ingestOrder", "POST", "/v1/events/orders", ingest_order,
              "A paid or refunded order, signed by the merchant (X-Petbox-Timestamp, "
              "X-Petbox-Signature); idempotent by order id (a partial refund: by order id "
              "and refund_id); drives purchase tasks",
              auth="signature", tag="merchant", body=ORDER_BODY,
              errors=(400, 401, 403, 404, 409, 422, 503),
              response=obj({"order": STR, "duplicate": BOOL, "known": BOOL, "tasks": COUNTS,
                            "refund_due": array(REFUND_DUE), "taken_back": COUNTS,
                            "debt": COUNTS, "refund": STR, "amount_fen": INT,
                            "clamped": BOOL, "refunded_fen": INT, "remaining_fen": INT,
                            "refunded": BOOL, "sale_holds": array(SALE_HOLD_RESULT),
                            "flashsale": obj({"deposits_refunded": array(STR)}),
                            "groupbuy": obj({"groups": array(obj(
                                {"group": STR, "refunded": BOOL, "debt": COUNTS},
                                ["group", "refunded"]))})},
                           ["order"], "duplicate: this order (or refund_id) was seen before "
                           "(the first answer, replayed); known (refunds): whether the paid "
                           "order was seen; tasks: purchase tasks' progress; refund_due (only "
                           "when some): parts of this paid order no play can honour, which "
                           "the merchant must refund; taken_back, debt (refunds): task → "
                           "completions taken back, and what could not be (spent). A partial "
                           "refund also answers refund, amount_fen (what it returned), "
                           "clamped (it asked more than was left), refunded_fen (all the "
                           "order's refunds), remaining_fen (what is still paid; only when "
                           "known) and refunded (now wholly refunded); a paid order refunded "
                           "in part before it came answers refunded_fen (and refunded when "
                           "nothing is left). Plays add their own: sale_holds (a paid order "
                           "naming a sale's SKU), flashsale (a refund that unmarks a "
                           "reservation's deposit), groupbuy (a refund of a group's sku)")),
]
