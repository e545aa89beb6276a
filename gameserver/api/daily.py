"""The daily loop over HTTP: check-in, tasks, purchase orders and exchange.

Rules live in ``mechanics/checkin.py``, ``tasks.py`` and ``exchange.py``. Handlers
bind a rule to the game's timezone and to what the value tier says is sold out
(read when the rule runs, so a re-application after a short sees the lowered
view), then run it through the store like every other player action.

Browse tickets are signed here: ``tk1.<base64url JSON>.<base64url HMAC-SHA256>``
with a key derived from the server's token secret, so any server process can
verify a ticket another one issued, and a forged one is refused before the rule
runs. Orders (``ingestOrder``) are merchant-signed webhooks, idempotent by order
id and status.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from economy.errors import OrderWrongMerchant, TicketInvalid
from economy.schema import ID_PATTERN, Arr, Enum, Int, Map, Obj, Str
from gameserver.api.common import (
    _RNG,
    PLAYER_ERRORS,
    Operation,
    PlayerCtx,
    RuleMaker,
    checked,
    decode_json,
    now_s,
    reply_response,
    request_hash,
    run_action,
)
from gameserver.appkeys import GAMES, MERCHANTS, SETTINGS, STORE, VALUE
from gameserver.auth import BadSeal, Sealer, body_signature
from gameserver.db.database import Merchant
from gameserver.errors import Unauthorized
from gameserver.games import LiveGame
from gameserver.keys import GAME_RE, MERCHANT_RE, USER_RE, PlayerRef, shard_of
from gameserver.reminders import member_of, upcoming
from gameserver.store import Rule, Schedule
from gameserver.value import StockView, ValueBinding
from mechanics import checkin, exchange, tasks
from mechanics.outcome import Outcome
from mechanics.state import PlayerState

SIGNATURE_WINDOW_S = 300
"""A merchant event's ``X-Petbox-Timestamp`` must be this close to server time."""
TICKET_PREFIX = "tk1."

# -- binding rules ----------------------------------------------------------------------


def loop_rule(fn: Callable[..., Outcome], action: Any, game: LiveGame, view: StockView, *,
              coupons: bool = True, offers: bool = False) -> Rule:
    """``fn`` bound to its action, config and timezone; what is sold out is read from
    ``view`` each time the rule runs (the store re-applies it after a short)."""
    config, tz = game.config, game.tz

    def rule(state: PlayerState | None, now: int) -> Outcome:
        extra: dict[str, Any] = {"tz": tz}
        if coupons:
            extra["coupons_out"] = view.out("coupon:")
        if offers:
            extra["offers_out"] = view.out("offer:")
        return fn(state, action, now, _RNG, config, **extra)
    return rule


async def run_loop_action(request: web.Request, spec: Obj, make_rule: RuleMaker,
                          status: int = 200, *, reminders: bool = False) -> web.Response:
    """:func:`run_action`; with ``reminders``, the committed state's next reminders are
    queued for the delivery worker by the commit itself (no extra round trip)."""
    return await run_action(request, spec, make_rule, status,
                            schedule_for=_reminder_schedule if reminders else None)


def _reminder_schedule(ctx: PlayerCtx) -> Schedule:
    """The reminder queue entries of a state about to be committed for ``ctx``."""
    def schedule(state: PlayerState, now: int) -> list[tuple[str, int]]:
        return [(member_of(r.kind, ctx.ref), r.due_at)
                for r in upcoming(state, ctx.game.config, now, ctx.game.tz)]
    return schedule


# -- browse tickets --------------------------------------------------------------------


class TicketSigner:
    """Signs and verifies browse tickets with a key derived from the token secret."""

    def __init__(self, secret: str) -> None:
        self._sealer = Sealer(secret, "petbox-task-ticket", TICKET_PREFIX)

    def sign(self, ticket: dict[str, Any]) -> str:
        return self._sealer.seal(ticket, sort_keys=True)

    def verify(self, text: str) -> tasks.Ticket:
        """The ticket's data; :class:`TicketInvalid` (403) if forged or malformed."""
        try:
            raw = self._sealer.open(text)
        except BadSeal as exc:
            raise TicketInvalid(str(exc)) from exc
        try:
            return tasks.Ticket(str(raw["task"]), str(raw["player"]), int(raw["issued_at"]),
                                str(raw["nonce"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise TicketInvalid("malformed") from exc


@functools.lru_cache(maxsize=8)
def _ticket_signer(secret: str) -> TicketSigner:
    return TicketSigner(secret)  # the key is derived once per secret, not per request


def _tickets(request: web.Request) -> TicketSigner:
    return _ticket_signer(request.app[SETTINGS].token_secret)


# -- check-in --------------------------------------------------------------------------

EMPTY_BODY = Obj(fields={})
MAKEUP_BODY = Obj(fields={"day": Str(pattern=r"^$|^\d{4}-\d{2}-\d{2}$", max_length=10,
                                     default="",
                                     description="ISO date of the missed day; "
                                                 "empty = the latest missed day")})


async def check_in(request: web.Request) -> web.Response:
    """``checkIn``: today's check-in in the game's timezone."""
    return await run_loop_action(request, EMPTY_BODY, lambda body, ctx, view: loop_rule(
        checkin.check_in, checkin.CheckIn(), ctx.game, view))


async def makeup_check_in(request: web.Request) -> web.Response:
    """``makeupCheckIn`` (补签): a missed day of the window, for the makeup cost."""
    return await run_loop_action(request, MAKEUP_BODY, lambda body, ctx, view: loop_rule(
        checkin.makeup_check_in, checkin.MakeupCheckIn(body["day"]), ctx.game, view))


# -- tasks -----------------------------------------------------------------------------

COMPLETE_BODY = Obj(fields={"ticket": Str(max_length=1024, default="",
                                          description="from startTask (browse tasks)")})


def _task_id(request: web.Request) -> str:
    return request.match_info["task"][:64]


def _signed_start(rule: Rule, signer: TicketSigner) -> Rule:
    def signed(state: PlayerState | None, now: int) -> Outcome:
        out = rule(state, now)
        ticket = out.response.get("ticket")
        return replace(out, response={**out.response,
                                      "ticket": signer.sign(ticket) if ticket else None})
    return signed


async def start_task(request: web.Request) -> web.Response:
    """``startTask``: a signed ticket for browse tasks (null for the others)."""
    task, signer = _task_id(request), _tickets(request)
    return await run_loop_action(request, EMPTY_BODY, lambda body, ctx, view: _signed_start(
        loop_rule(tasks.start_task, tasks.StartTask(task, ctx.ref.member), ctx.game, view,
                  coupons=False), signer))


async def complete_task(request: web.Request) -> web.Response:
    """``completeTask``: the reward, once more within the task's period limit."""
    task, signer = _task_id(request), _tickets(request)

    def make(body: dict[str, Any], ctx: PlayerCtx, view: StockView) -> Rule:
        ticket = signer.verify(body["ticket"]) if body["ticket"] else None
        action = tasks.CompleteTask(task, ticket, ctx.ref.member)
        return loop_rule(tasks.complete_task, action, ctx.game, view)
    return await run_loop_action(request, COMPLETE_BODY, make)


# -- exchange --------------------------------------------------------------------------

EXCHANGE_BODY = Obj(fields={
    "offer": Str(pattern=ID_PATTERN, max_length=64),
    "duplicates": Map(values=Int(minimum=0, maximum=1000), default={}, max_items=100,
                      description="which spare copies to give (item → count); "
                                  "empty = the most plentiful first"),
})


async def exchange_offer(request: web.Request) -> web.Response:
    """``exchange`` (换购): pay an offer's cost, receive its reward."""
    return await run_loop_action(request, EXCHANGE_BODY, lambda body, ctx, view: loop_rule(
        exchange.exchange, exchange.Exchange(body["offer"], body["duplicates"]), ctx.game,
        view, offers=True))


# -- orders (merchant events) ----------------------------------------------------------

ORDER_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
ORDER_BODY = Obj(fields={
    "merchant": Str(pattern=f"^{MERCHANT_RE.pattern}$", max_length=32),
    "game": Str(pattern=f"^{GAME_RE.pattern}$", max_length=64),
    "user": Str(pattern=f"^{USER_RE.pattern}$", max_length=128),
    "order_id": Str(pattern=ORDER_ID_PATTERN, max_length=64),
    "status": Enum(values=("paid", "refunded")),
    "amount_fen": Int(minimum=0, maximum=10**10, default=0),
    "skus": Arr(items=Str(min_length=1, max_length=64), default=[], max_items=200),
    "paid_at": Int(minimum=0, maximum=2**40, default=0, description="unix s; 0 = now"),
})


async def _signer(request: web.Request, raw: bytes, body: Any) -> Merchant:
    """The merchant whose signing secret signed this event (401 for anything else).

    The signer is named by ``X-Petbox-Merchant``, or else by the body's ``merchant``.
    """
    ts = request.headers.get("X-Petbox-Timestamp", "")
    sign = request.headers.get("X-Petbox-Signature", "")
    now = now_s(request)
    if not ts.isdigit() or len(ts) > 12 or abs(now - int(ts)) > SIGNATURE_WINDOW_S:
        raise Unauthorized(f"X-Petbox-Timestamp must be within ±{SIGNATURE_WINDOW_S} s "
                           "of server time", server_time=now)
    named = request.headers.get("X-Petbox-Merchant") or (
        body.get("merchant") if isinstance(body, dict) else None)
    merchant = (await request.app[MERCHANTS].by_id(named)
                if isinstance(named, str) and MERCHANT_RE.fullmatch(named) else None)
    if merchant is None or not hmac.compare_digest(
            body_signature(merchant.signing_secret, ts, raw), sign.lower()):
        raise Unauthorized("signature does not match")  # also for an unknown merchant
    return merchant


async def ingest_order(request: web.Request) -> web.Response:
    """``ingestOrder``: a paid or refunded order drives purchase tasks (追单).

    Idempotent by order id and status: the store key is ``order-<status>-<id>``, so
    a webhook retried with the same body gets the first response again; the rule
    itself also remembers order ids (30 days), so a later replay earns nothing.
    """
    raw = await request.read()
    parsed = decode_json(raw)
    signer = await _signer(request, raw, parsed)
    body = checked(ORDER_BODY, parsed)
    if body["merchant"] != signer.id:
        raise OrderWrongMerchant(body["merchant"])
    live = await request.app[GAMES].get(signer.id, body["game"])
    ref = PlayerRef(signer.id, live.game, body["user"],
                    shard_of(signer.id, body["user"], request.app[SETTINGS].shards))
    view = StockView()
    if body["status"] == "paid":
        action: Any = tasks.Order(body["order_id"], body["amount_fen"], tuple(body["skus"]),
                                  body["paid_at"])
        rule = loop_rule(tasks.apply_order, action, live, view)
    else:
        rule = loop_rule(tasks.apply_refund, tasks.Refund(body["order_id"]), live, view,
                         coupons=False)
    key = f"order-{body['status']}-{body['order_id']}"
    reply = await request.app[STORE].run(ref, key, request_hash(request, raw), rule,
                                         value=ValueBinding(request.app[VALUE], view,
                                                            live.totals))
    return reply_response(reply)


OPERATIONS = [
    Operation("checkIn", "POST", "/v1/games/{game}/checkin", check_in,
              "Check in for today (game timezone): streak and cycle reward",
              auth="player", tag="shopper", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS),
    Operation("makeupCheckIn", "POST", "/v1/games/{game}/checkin/makeup", makeup_check_in,
              "补签: check in a missed day of the makeup window, for its cost",
              auth="player", tag="shopper", body=MAKEUP_BODY, idempotent=True,
              errors=PLAYER_ERRORS),
    Operation("startTask", "POST", "/v1/games/{game}/tasks/{task}/start", start_task,
              "Start a task; browse tasks get a signed ticket to complete with",
              auth="player", tag="shopper", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response={"type": "object", "properties": {
                  "task": {"type": "string"}, "ticket": {"type": ["string", "null"]},
                  "complete_after": {"type": "integer"}}}),
    Operation("completeTask", "POST", "/v1/games/{game}/tasks/{task}/complete", complete_task,
              "Complete a task (with its ticket for browse tasks) and take its reward",
              auth="player", tag="shopper", body=COMPLETE_BODY, idempotent=True,
              errors=PLAYER_ERRORS),
    Operation("exchange", "POST", "/v1/games/{game}/exchange", exchange_offer,
              "换购: spend currency, items or duplicates on an offer",
              auth="player", tag="shopper", body=EXCHANGE_BODY, idempotent=True,
              errors=PLAYER_ERRORS),
    Operation("ingestOrder", "POST", "/v1/events/orders", ingest_order,
              "A paid or refunded order, signed by the merchant (X-Petbox-Timestamp, "
              "X-Petbox-Signature); idempotent by order id; drives purchase tasks",
              auth="signature", tag="merchant", body=ORDER_BODY,
              errors=(400, 401, 404, 409, 422, 503)),
]
