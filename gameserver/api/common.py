"""What every handler shares: the operation table, body parsing, credentials.

Each API module lists its routes as :class:`Operation` rows; the app registers
them (route name = operationId) and ``/openapi.json`` is generated from the same
rows, so the document can never miss a route. Handlers stay thin: parse, bind the
rule (:func:`gameserver.services.bind`), commit through :func:`run_action` on the
keyspace :func:`services` picks, and let the error middleware map refusals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from economy.errors import DomainError, InvalidInput, NotFound, Refusal
from economy.schema import Int, Obj, Spec, Str, validate
from gameserver.appkeys import CLOCK, GAMES, MERCHANTS, SERVICES, SETTINGS, SHADOW, SIGNER
from gameserver.db.database import Merchant
from gameserver.games import LiveGame
from gameserver.http.auth import API_KEY_PREFIX, TOKEN_PREFIX, PlayerClaims, bearer
from gameserver.http.errors import Forbidden, IdempotencyKeyMissing, Unauthorized
from gameserver.jobs.reminders import member_of, upcoming
from gameserver.services import RuleContext, Services
from gameserver.state.aggregates import Codec
from gameserver.state.aggregates_app import aggregates_of
from gameserver.state.aggregates_gate import GateMaker
from gameserver.state.keys import (
    GAME_RE,
    IDEMPOTENCY_RE,
    MERCHANT_RE,
    AggregateRef,
    PlayerRef,
    shard_of,
)
from gameserver.state.store import Reply, Rule, Schedule, encode_json
from gameserver.state.value import StockView
from mechanics.state import PlayerState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["player", "merchant", "none", "public", "signature"]
"""Who may call an operation; ``public``: anyone (``?merchant=`` names the shop), and a
player token, when sent, adds the shopper's own view (:func:`public_game`)."""

PLAYER_ERRORS = (400, 401, 403, 404, 409, 422, 429, 503)
"""What a shopper POST may answer besides success (documented on every such operation)."""
PUBLIC_ERRORS = (401, 403, 404, 422)
"""What a play's public read may answer besides success."""
MERCHANT_PARAM: dict[str, str | Spec] = {
    "merchant": Str(pattern=f"^{MERCHANT_RE.pattern}$", min_length=1, max_length=32,
                    description="the merchant's id (needed without a player token)")}
"""The query parameter of a play's public read (:func:`public_game`), bounded in the
document as the server reads it (another value is 422)."""


def limit_param(hi: int, what: str) -> Int:
    """A ``?limit=`` of 1..``hi`` (:func:`query_int`), described for the document."""
    return Int(minimum=1, maximum=hi, description=what)

MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 18


@dataclass(frozen=True)
class Operation:
    """One HTTP operation: route, handler and what the OpenAPI document says of it."""

    operation_id: str
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth
    tag: str
    body: Spec | None = None
    idempotent: bool = False
    """The route requires an ``Idempotency-Key`` (400 without one)."""
    optional_key: bool = False
    """The route honours an ``Idempotency-Key`` but does not require one."""
    success: int = 200
    errors: tuple[int, ...] = ()
    params: dict[str, str | Spec] = field(default_factory=dict)
    """Query parameters: name → description (any string), or a spec saying what the
    server accepts (its description documents it)."""
    response: dict[str, Any] | None = None
    """JSON Schema of the success body, where it is worth stating."""
    content_type: str = "application/json"
    description: str = ""
    """Longer prose for the OpenAPI document (the summary is one line)."""
    config_body: bool = False
    """The body carries a game config, or overrides that may replace whole sections of
    one: accepted up to ``PETBOX_MAX_CONFIG_BODY`` bytes instead of ``PETBOX_MAX_BODY``
    (:mod:`gameserver.http.bodylimit`)."""
    error_bodies: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Statuses whose body is not the Error object, with their JSON Schema (``/readyz``'s
    503 is its readiness report, the same shape as its 200)."""


class MalformedBody(DomainError):
    code = "malformed_json"
    kind = Refusal.MALFORMED


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, counted iteratively (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError("integer too large")
    return int(text)


def decode_json(raw: bytes) -> Any:
    """Decode a request body; :class:`MalformedBody` for anything that is not sane JSON.

    orjson decodes the everyday body (~20x faster than ``json``); a body that could be
    nested too deep, or that holds a float (orjson turns integers too big for 64 bits
    into floats), is decoded again by :func:`_decode_strict`, whose hooks refuse
    integers of more than ``MAX_INT_DIGITS`` digits exactly as before."""
    raw = raw or b"{}"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not valid JSON: {str(exc)[:120]}") from exc
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH or _needs_strict(value):
        return _decode_strict(raw)
    return value


_INT_LIMIT = 10**MAX_INT_DIGITS
"""The smallest magnitude with more than ``MAX_INT_DIGITS`` digits."""


def _needs_strict(value: Any) -> bool:
    """A float, or an integer of more than ``MAX_INT_DIGITS`` digits: orjson reads
    integers of up to 20 digits (64 bits) as integers, so the digit rule is checked
    here too, or 19- and 20-digit integers slipped through the fast path."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float) or (isinstance(node, int) and not -_INT_LIMIT < node
                                       < _INT_LIMIT):
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _decode_strict(raw: bytes) -> Any:
    try:
        value = json.loads(raw, parse_int=_parse_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"body is not valid JSON: {str(exc)[:120]}") from exc
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise MalformedBody(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def checked(spec: Spec, value: Any) -> dict[str, Any]:
    """``value`` validated against ``spec`` (defaults filled) or 422 with every problem."""
    cleaned, problems = validate(spec, value)
    if problems:
        raise InvalidInput(invalid_body_message(problems), problems=problems)
    assert isinstance(cleaned, dict)
    return cleaned


def invalid_body_message(problems: list[dict[str, str]]) -> str:
    """The 422's message: its first problem (path and rule, such as ``$.amount_fen must
    be ≤ 10000000000``), so that a webhook sender's log, which often keeps only the
    message, says which field and why; ``details.problems`` has them all."""
    first = f"{problems[0]['path']} {problems[0]['message']}"
    if len(first) > 200:  # a path holds the client's own keys: never echo a long one whole
        first = first[:199] + "…"
    more = f" (and {len(problems) - 1} more in details.problems)" if len(problems) > 1 else ""
    return f"request body is invalid: {first}{more}"


async def read_body(request: web.Request, spec: Spec) -> tuple[dict[str, Any], bytes]:
    """The validated JSON body and its raw bytes (hashed for idempotency)."""
    raw = await request.read()
    return checked(spec, decode_json(raw)), raw


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not IDEMPOTENCY_RE.fullmatch(key):
        raise IdempotencyKeyMissing()
    return key


def request_hash(request: web.Request, raw: bytes) -> str:
    """What makes two requests "the same" for an Idempotency-Key: route and body."""
    return route_hash(request.method, request.path, raw)


def route_hash(method: str, path: str, raw: bytes) -> str:
    """:func:`request_hash` of a request by its parts (a command line tool doing what a
    route does keys it the same way, so one key serves both)."""
    h = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + raw)
    return h.hexdigest()[:32]


QUERY_INT_DIGITS = 18
"""Longer numbers than this in a query are refused before they are parsed (any bound
petbox sets is far below 10^18, and SQL's BIGINT holds every 18-digit number)."""


def query_int(request: web.Request, name: str, lo: int, hi: int) -> int | None:
    """``?name=``: an integer of ASCII digits in ``lo..hi``, or None when absent or
    empty; anything else is 422 ``invalid_input`` naming the parameter (never a
    number with leading zeros past the bound, nor digits ``int`` would not parse)."""
    raw = request.query.get(name, "")
    if raw == "":
        return None
    if (not raw.isascii() or not raw.isdigit() or len(raw) > QUERY_INT_DIGITS
            or not lo <= int(raw) <= hi):
        raise InvalidInput(f"{name} must be an integer in {lo}..{hi}", field=name)
    return int(raw)


def refuse_unknown_params(request: web.Request, known: Iterable[str]) -> None:
    """422 ``invalid_input`` naming every query parameter not in ``known``, as an
    unknown body field is (``"is not a known parameter"``): a typo such as ``?from=``
    for ``?end=`` must not silently get the default answer."""
    allowed = set(known)
    unknown = sorted({name for name in request.query if name not in allowed})
    if unknown:
        raise InvalidInput(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''}: "
            f"{', '.join(unknown)} (known: {', '.join(sorted(allowed)) or 'none'})",
            problems=[{"path": f"$.{name}", "message": "is not a known parameter"}
                      for name in unknown])


def now_s(request: web.Request) -> int:
    return int(request.app[CLOCK].now())


SHADOW_REQUEST = web.RequestKey("shadow", bool)
_CLAIMS = web.RequestKey("player_claims", PlayerClaims)


def verified_claims(request: web.Request, token: str) -> PlayerClaims:
    """``token``'s claims, verified once per request (the rate limiter, the handler and
    the recorder all ask); :class:`Unauthorized` if it is not valid."""
    claims = request.get(_CLAIMS)
    if claims is None:
        claims = request.app[SIGNER].verify(token, now_s(request))
        request[_CLAIMS] = claims
    return claims


def valid_player_claims(request: web.Request) -> PlayerClaims | None:
    """The claims of the request's player token if it sends a valid one, else None
    (whoever needs the token decides what its absence means)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        return None
    try:
        return verified_claims(request, token)
    except Unauthorized:
        return None


SHADOW_HEADER = "X-Petbox-Shadow"


def shadow_header(request: web.Request) -> bool:
    """Whether the request sends ``X-Petbox-Shadow: 1``. Any other value is refused
    (422) rather than read as "not load-test traffic": a load test that misspelt it
    (``true``, ``yes``) would otherwise write real data."""
    value = request.headers.get(SHADOW_HEADER)
    if value is None:
        return False
    if value != "1":
        raise InvalidInput(f"{SHADOW_HEADER} takes the value 1 (load-test traffic) only",
                           field=SHADOW_HEADER, value=value[:16])
    return True

EMPTY_BODY = Obj(fields={})


def player_claims(request: web.Request) -> PlayerClaims:
    """The shopper behind a request; a merchant key here is the wrong kind (403).

    A load-test session and the ``X-Petbox-Shadow: 1`` header go together: either
    without the other is refused, so load tests never write real data by mistake.
    """
    credential = bearer(request.headers.get("Authorization"))
    if credential.startswith(API_KEY_PREFIX):
        raise Forbidden("merchant API keys cannot call shopper routes")
    claims = verified_claims(request, credential)
    if claims.shadow != shadow_header(request):
        raise Forbidden("load-test sessions must send X-Petbox-Shadow: 1, and only they may")
    request[SHADOW_REQUEST] = claims.shadow
    return claims


def services(request: web.Request) -> Services:
    """The keyspace this request works on: shadow data for load-test sessions, and for a
    load-test merchant's own requests sent with ``X-Petbox-Shadow: 1``
    (:func:`shadow_for`). Every read and write of per-keyspace data goes through here."""
    if not request.get(SHADOW_REQUEST, False):
        return request.app[SERVICES]
    shadow = request.app.get(SHADOW)
    if shadow is None:
        raise Forbidden("shadow traffic is not configured on this server "
                        "(set PETBOX_SHADOW_DATABASE_URL)")
    return shadow


def shadow_for(request: web.Request, merchant: Merchant) -> None:
    """Mark a merchant-credentialed request (API key, signed event, public ``?merchant=``)
    as load-test traffic when it sends ``X-Petbox-Shadow: 1``: only a merchant approved
    for load testing may (403 otherwise), and :func:`services` then gives the shadow
    keyspace, so its writes never reach real data."""
    if not shadow_header(request):
        return
    if not merchant.load_test:
        raise Forbidden("only a merchant approved for load testing may send X-Petbox-Shadow")
    request[SHADOW_REQUEST] = True


async def merchant_of(request: web.Request, *, shadow: bool = False) -> Merchant:
    """The merchant behind an admin request; a player token here is the wrong kind (403).

    ``shadow``: the route's writes go through :func:`services`, so it may serve a
    load-test merchant's shadow traffic; any other merchant route refuses
    ``X-Petbox-Shadow`` (403) rather than let load-test traffic touch shared data."""
    credential = bearer(request.headers.get("Authorization"))
    if not credential.startswith(API_KEY_PREFIX):
        raise Forbidden("shopper tokens cannot call merchant routes")
    merchant = await request.app[MERCHANTS].by_api_key(credential)
    if merchant is None:
        raise Unauthorized("unknown API key")
    if not shadow and shadow_header(request):
        raise Forbidden("this route does not take load-test (X-Petbox-Shadow) traffic")
    shadow_for(request, merchant)
    return merchant


def game_id(request: web.Request) -> str:
    game = request.match_info["game"]
    if not GAME_RE.fullmatch(game):
        raise NotFound("game not found", game=game)
    return game


async def player_ctx(request: web.Request, view: StockView | None = None) -> RuleContext:
    """A shopper request resolved: who, which game version, which player record, and the
    limited stock its rule will see (``view``; empty: "assume available")."""
    claims = player_claims(request)
    live = await request.app[GAMES].get(claims.merchant, game_id(request))
    shards = request.app[SETTINGS].shards
    ref = PlayerRef(claims.merchant, live.game, claims.user,
                    shard_of(claims.merchant, claims.user, shards))
    return RuleContext(live, view if view is not None else StockView(), ref, claims)


async def public_game(request: web.Request) -> LiveGame:
    """The game of a public read (a play's public view): the token's merchant if a
    token is sent, else ``?merchant=`` (whose shadow keyspace a load-test merchant's
    ``X-Petbox-Shadow: 1`` reads; any other merchant's is 403), so a public read that
    commits something (a play's seed) never writes load-test traffic to real data."""
    if request.headers.get("Authorization"):
        return (await player_ctx(request)).game
    merchant_id = request.query.get("merchant", "")
    if not MERCHANT_RE.fullmatch(merchant_id):
        raise InvalidInput("without a player token, name the merchant: ?merchant=<id>",
                           field="merchant")
    await public_shadow(request, merchant_id)
    return await request.app[GAMES].get(merchant_id, game_id(request))


async def public_shadow(request: web.Request, merchant_id: str) -> None:
    """A public read without a token that sends ``X-Petbox-Shadow: 1``: load-test traffic
    of ``merchant_id``, which must be approved for load testing (403)."""
    if not shadow_header(request):
        return
    merchant = await request.app[MERCHANTS].by_id(merchant_id)
    if merchant is None:
        raise Forbidden("only a merchant approved for load testing may send X-Petbox-Shadow")
    shadow_for(request, merchant)


async def merchant_game(request: web.Request) -> LiveGame:
    """The game of a merchant route that may serve load-test (shadow) traffic."""
    merchant = await merchant_of(request, shadow=True)
    return await request.app[GAMES].get(merchant.id, game_id(request))


@dataclass(frozen=True)
class PlayerPost:
    """A shopper POST resolved: the rule context, its Idempotency-Key, the validated body
    and the request's hash (what makes a retry the same request)."""

    ctx: RuleContext
    key: str
    body: dict[str, Any]
    digest: str


async def player_post(request: web.Request, spec: Spec,
                      view: StockView | None = None) -> PlayerPost:
    """Authenticate, require the key, parse the body, in the order every POST does
    (so a missing key is 400 before a bad body is 422)."""
    ctx = await player_ctx(request, view)
    key = idempotency_key(request)
    body, raw = await read_body(request, spec)
    return PlayerPost(ctx, key, body, request_hash(request, raw))


async def run_gated(request: web.Request, post: PlayerPost, aggregate: AggregateRef,
                    codec: Codec, gate: GateMaker) -> Reply:
    """A two-commit action (gameserver/state/aggregates_gate.py) on this request's keyspace:
    ``aggregate`` is the gate, the shopper's commit follows; a retry replays."""
    actions = aggregates_of(request.app, services(request)).actions
    return await actions.run(post.ctx.ref, aggregate, codec, post.key, post.digest,
                             post.ctx.game, gate)


def json_ok(body: Any, status: int = 200) -> web.Response:
    """A JSON response encoded by orjson (the shopper routes' bodies: ~10x faster than
    ``web.json_response``'s ``json.dumps``)."""
    return web.Response(body=encode_json(body), status=status, content_type="application/json")


def reply_response(reply: Reply) -> web.Response:
    resp = web.Response(body=reply.body, status=reply.status, content_type="application/json")
    if reply.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


RuleMaker = Callable[[dict[str, Any], RuleContext], Rule]
"""``(body, ctx) -> rule``: a handler's action, bound with :func:`bind`."""


def _reminders(ctx: RuleContext) -> Schedule:
    """The reminder queue entries of a state about to be committed for ``ctx``."""
    def schedule(state: PlayerState, now: int) -> list[tuple[str, int]]:
        return [(member_of(r.kind, ctx.ref), r.due_at)
                for r in upcoming(state, ctx.game.config, now, ctx.game.tz)]
    return schedule


async def run_action(request: web.Request, spec: Spec, make_rule: RuleMaker,
                     status: int = 200, view: StockView | None = None, *,
                     reminders: bool = False) -> web.Response:
    """A shopper POST: authenticate, parse, then load → apply → commit once per key.

    ``make_rule`` gets the body and the :class:`RuleContext`, whose :class:`StockView`
    of limited stock starts empty ("assume available", so the common path reads
    nothing extra) unless the handler passes a read ``view``; a rule that reserves a
    unit that is gone is re-applied with the view lowered. With ``reminders`` the
    committed state's next reminders are queued by the commit itself.
    """
    post = await player_post(request, spec, view)
    ctx = post.ctx
    rule = make_rule(post.body, ctx)
    reply = await services(request).run(ctx.ref, post.key, post.digest, rule, status,
                                        view=ctx.view, totals=ctx.game.totals,
                                        schedule=_reminders(ctx) if reminders else None)
    return reply_response(reply)
