"""Rate limits on shopper routes: per IP, per player and per player's draws (GCRA).

Every limit that applies is checked at once, all or nothing, with the generic cell
rate algorithm. A refused request is 429 ``rate_limited`` with ``Retry-After`` (whole
seconds, rounded up) and ``details.retry_after_ms``; it costs nothing else (no SQL,
no player load).

Where the budgets live:

- **in each process** (default): a bounded in-memory table, no I/O, so an action stays
  one Redis read plus one Lua commit. With N server processes a client can get at
  most N times a budget; a mini-program keeps its connection (and so its process),
  so in practice the limit holds per client. Put a hard per-IP cap at the gateway too.
- **in Redis** (``PETBOX_RATE_SHARED=1``): one ``EVALSHA`` of ``gcra.lua`` per request
  on Redis' clock, exact across every process, at the cost of a round trip.

Keys: the per-player and per-draw keys carry the player's shard hash tag
(``pb:{s<N>}:rl:…``), so the check can later be folded into ``load.lua``; the IP key
has a tag of its own (``pb:{ip:<addr>}:rl``). On one Redis the check is one call; on
a Redis Cluster (where the keys of one call must share a slot) it is one call per
slot, player first (see :meth:`RateLimiter._shared`).

Which requests: every ``/v1/`` route except merchant routes (``/v1/admin/``) and
signed merchant events (``/v1/events/``). A request without a valid player token gets
only the IP limit (the handler answers 401).

**Merchant routes and events** have limits of their own (:meth:`RateLimiter.merchant_request`):

- per merchant on ``/v1/admin/`` (``PETBOX_RATE_MERCHANT``), keyed by the merchant the
  API key authenticates, so a leaked or looping integration is held back while other
  merchants are not (the key's lookup is the cached one the handler makes anyway);
- per signing merchant on ``/v1/events/`` (``PETBOX_RATE_EVENTS``), checked once the
  signature is verified (:func:`limit_signed_event`), so nobody can spend a merchant's
  budget by naming it; generous, because a refused paid order is retried;
- per IP on failed merchant authentication (``PETBOX_RATE_MERCHANT_AUTH``): every 401 on
  those routes spends it (a wrong key costs an SQL read), and once it is spent every
  merchant request from that IP is refused before any lookup, right key or not (else
  a 200 among the 429s would tell a guesser which key is right). Only failures spend
  it, so a correct integration never does; it is looked at before the request and
  spent after, so a burst of concurrent wrong keys can overshoot by those in flight.

**Load-test exemption.** A load generator is one IP playing thousands of shoppers, so
a request the limits would refuse still goes through when it provably comes from a
merchant marked for load tests (``petbox merchant create NAME --load-test``): a valid
player token of a load-test session (only such merchants can get one) or of such a
merchant, or a ``createSession`` signed with such a merchant's secret. The proof is a
server-signed token or the merchant's own signature, never a header anyone can send.
It is looked at only once a limit refuses, so ordinary traffic pays nothing for it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis
from redis.crc import key_slot

from gameserver.api.common import idempotency_key, valid_player_claims
from gameserver.appkeys import KEYS, MERCHANTS, REDIS
from gameserver.db.database import Merchant
from gameserver.http.auth import (
    API_KEY_PREFIX,
    bearer,
    verify_session_signature,
)
from gameserver.http.clientip import client_ip
from gameserver.http.errors import RateLimited, Unauthorized
from gameserver.http.rates import RateLimit
from gameserver.ops.settings import Settings
from gameserver.state.keys import MERCHANT_RE, Keys, shard_of
from gameserver.state.redisclient import is_cluster
from gameserver.state.scripts import Script

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IDEMPOTENT_OPERATIONS = web.AppKey("idempotent_operations", frozenset[str])
"""operationIds that require an Idempotency-Key (set by the app factory)."""

ADMIN_PREFIX = "/v1/admin/"
EVENTS_PREFIX = "/v1/events/"
EXEMPT_PREFIXES = (ADMIN_PREFIX, EVENTS_PREFIX)
"""Not under the shopper limits: merchant routes and events have their own."""
DRAW_OPERATIONS = frozenset({"drawBox"})


@dataclass(frozen=True)
class Limit:
    """One limit to check: its key, and the rate it allows."""

    key: str
    rate: RateLimit
    kind: str


class LocalGCRA:
    """``gcra.lua``'s algorithm over an in-process table of theoretical arrival times.

    The table is bounded: the least recently used keys go first. Dropping a key only
    forgets a budget already spent, never lets more through than the burst.
    """

    def __init__(self, max_keys: int = 200_000, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()

    def check(self, limits: list[Limit], peek: bool = False) -> tuple[int, int]:
        """``(0, 0)`` allowed (budgets spent) or ``(i, wait_ms)`` refused by limit ``i``;
        ``peek``: only whether it would be allowed, nothing spent."""
        now = self.clock() * 1000
        worst, wait = 0, 0.0
        new_tats: list[float] = []
        for i, lim in enumerate(limits, start=1):
            tat = max(self._tat.get(lim.key, now), now) + lim.rate.interval_ms
            allow_at = tat - lim.rate.burst * lim.rate.interval_ms
            if allow_at > now and allow_at - now > wait:
                worst, wait = i, allow_at - now
            new_tats.append(tat)
        if worst:
            return worst, math.ceil(wait)
        if peek:
            return 0, 0
        for lim, tat in zip(limits, new_tats, strict=True):
            self._tat[lim.key] = tat
            self._tat.move_to_end(lim.key)
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)
        return 0, 0


class RateLimiter:
    """Runs ``gcra.lua`` for the limits of one request (script registered per client)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Redis | None = None
        self._script: Script | None = None
        self._local = LocalGCRA()

    @property
    def enabled(self) -> bool:
        s = self.settings
        return any(r is not None for r in (s.rate_ip, s.rate_player, s.rate_draw,
                                           s.rate_merchant, s.rate_merchant_auth,
                                           s.rate_events))

    def _bound(self, redis: Redis) -> Script:
        if self._script is None or self._client is not redis:
            self._client, self._script = redis, Script.named("gcra", redis=redis)
        return self._script

    async def check(self, redis: Redis, limits: list[Limit], peek: bool = False) -> None:
        """Raise :class:`RateLimited` if any limit is exceeded (then nothing is counted);
        ``peek``: count nothing either way."""
        if not limits:
            return
        if self.settings.rate_shared:
            which, wait_ms = await self._shared(redis, limits, peek)
        else:
            which, wait_ms = self._local.check(limits, peek)
        if which:
            limit = limits[which - 1]
            raise RateLimited(f"too many requests ({limit.kind} limit); retry later",
                              limit=limit.kind, retry_after=max(1, math.ceil(wait_ms / 1000)),
                              retry_after_ms=wait_ms)

    async def _shared(self, redis: Redis, limits: list[Limit], peek: bool = False
                      ) -> tuple[int, int]:
        """``gcra.lua`` over ``limits``: ``(which, wait_ms)``, ``which`` 1-based, 0 = allowed.

        On a Redis Cluster a script may only touch one slot: the limits go in one call
        per slot (the player's limits first, then the IP's), each all or nothing, and a
        refusal stops there. The one inexactness: a request the IP limit refuses has
        already counted against the player's limits (one request's worth)."""
        groups: dict[int, list[int]] = {}
        for i, lim in enumerate(limits):
            slot = key_slot(lim.key.encode()) if is_cluster(redis) else 0
            groups.setdefault(slot, []).append(i)
        for group in sorted(groups.values(), key=lambda g: limits[g[0]].kind == "ip"):
            args = [v for i in group
                    for v in (f"{limits[i].rate.interval_ms:.3f}", limits[i].rate.burst)]
            if peek:
                args.append("peek")
            res = await self._bound(redis)(keys=[limits[i].key for i in group], args=args)
            if int(res[0]):
                return group[int(res[0]) - 1] + 1, int(res[1])
        return 0, 0

    def limits(self, request: web.Request, shadow_login: bool = False) -> list[Limit]:
        """The limits that apply to ``request`` (empty for exempt routes);
        ``shadow_login``: a ``createSession`` asking for a load-test session."""
        path = request.path
        if not path.startswith("/v1/") or path.startswith(EXEMPT_PREFIXES):
            return []
        claims = valid_player_claims(request)
        # The keyspace comes from the signed token, not from a header anyone can send.
        # A login has no token yet: one that asks for a load-test session spends the
        # load-test budget of its IP (the handler refuses it unless a load-test
        # merchant signed it), so a rehearsal's logins never spend the IP budget real
        # shoppers behind the same address log in with.
        shadow = claims.shadow if claims is not None else shadow_login
        prefix = "pbs" if shadow else request.app[KEYS].prefix
        s = self.settings
        out: list[Limit] = []
        if s.rate_ip is not None:
            out.append(Limit(f"{prefix}:{{ip:{client_ip(request)}}}:rl", s.rate_ip, "ip"))
        if claims is None or (s.rate_player is None and s.rate_draw is None):
            return out
        merchant, user = claims.merchant, claims.user
        tag = f"{Keys(prefix).tag(shard_of(merchant, user, s.shards))}:rl:{merchant}:{user}"
        if s.rate_player is not None:
            out.append(Limit(tag, s.rate_player, "player"))
        route = request.match_info.route.name
        if s.rate_draw is not None and route in DRAW_OPERATIONS:
            out.append(Limit(f"{tag}:draw", s.rate_draw, "draw"))
        return out

    async def merchant_request(self, request: web.Request, handler: Handler
                               ) -> web.StreamResponse:
        """A request to a merchant route or event: the failed-authentication budget of
        its IP (looked at first, spent by a 401), then on ``/v1/admin/`` its merchant's
        budget (see the module docstring)."""
        redis = request.app[REDIS]
        auth = self._auth_limit(request)
        if auth is not None:
            await self.check(redis, [auth], peek=True)
        if request.path.startswith(ADMIN_PREFIX) and self.settings.rate_merchant is not None:
            merchant = await _api_key_merchant(request)
            if merchant is not None:
                _key_before_any_refusal(request)
                await self.merchant_check(request, merchant, self.settings.rate_merchant,
                                          "merchant")
        try:
            return await handler(request)
        except Unauthorized:
            if auth is not None:
                with contextlib.suppress(RateLimited):  # already spent: nothing to count
                    await self.check(redis, [auth])
            raise

    def _auth_limit(self, request: web.Request) -> Limit | None:
        rate = self.settings.rate_merchant_auth
        if rate is None:
            return None
        key = f"{request.app[KEYS].prefix}:{{ip:{client_ip(request)}}}:rl:merchant_auth"
        return Limit(key, rate, "merchant_auth")

    async def merchant_check(self, request: web.Request, merchant: Merchant,
                             rate: RateLimit | None, kind: str) -> None:
        """Spend one of ``merchant``'s ``kind`` budget (429 once spent). A merchant marked
        for load tests is exempt, as its shoppers are: its credential is the proof."""
        if rate is None or merchant.load_test:
            return
        key = f"{request.app[KEYS].prefix}:{{m:{merchant.id}}}:rl:{kind}"
        await self.check(request.app[REDIS], [Limit(key, rate, kind)])


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
"""The app's limiter, for checks a handler makes once it knows who is calling."""


async def limit_signed_event(request: web.Request, signer: Merchant) -> None:
    """429 once ``signer``'s budget for merchant events (``PETBOX_RATE_EVENTS``) is spent;
    called by an event's handler once the signature is verified."""
    limiter = request.app[RATE_LIMITER]
    await limiter.merchant_check(request, signer, limiter.settings.rate_events, "events")


async def _api_key_merchant(request: web.Request) -> Merchant | None:
    """The merchant of a valid API key, else None (the handler answers 401 or 403)."""
    try:
        credential = bearer(request.headers.get("Authorization"))
    except Unauthorized:
        return None
    if not credential.startswith(API_KEY_PREFIX):
        return None
    return await request.app[MERCHANTS].by_api_key(credential)


def _key_before_any_refusal(request: web.Request) -> None:
    """400 for a POST missing its required Idempotency-Key comes before any 429."""
    if request.method == "POST" and \
            request.match_info.route.name in request.app[IDEMPOTENT_OPERATIONS]:
        idempotency_key(request)


async def load_test_exempt(request: web.Request) -> bool:
    """Whether ``request`` provably comes from a merchant marked for load tests."""
    claims = valid_player_claims(request)
    if claims is not None:
        return claims.shadow or await _is_load_test(request, claims.merchant)
    body = await _login_body(request)
    return body is not None and await _load_test_session(request, body)


async def _is_load_test(request: web.Request, merchant_id: str) -> bool:
    merchant = await request.app[MERCHANTS].by_id(merchant_id)
    return merchant is not None and merchant.load_test


async def _load_test_session(request: web.Request, body: dict[str, Any]) -> bool:
    """A ``createSession`` body signed with a load-test merchant's secret."""
    try:
        merchant_id, user, ts, sign = body["merchant"], body["user"], body["ts"], body["sign"]
        if not (isinstance(merchant_id, str) and MERCHANT_RE.fullmatch(merchant_id)
                and isinstance(user, str) and isinstance(ts, int) and isinstance(sign, str)):
            return False
        age_band, consent = body.get("age_band"), bool(body.get("guardian_consent", False))
        shadow = bool(body.get("shadow", False))
    except (ValueError, KeyError, TypeError):
        return False  # the handler answers a malformed body; the limit stands
    merchant = await request.app[MERCHANTS].by_id(merchant_id)
    return (merchant is not None and merchant.load_test and verify_session_signature(
        merchant.signing_secret, merchant_id, user, ts, sign, age_band, consent, shadow))


_LOGIN_BODY = web.RequestKey("login_body", object)
"""A ``createSession`` body as parsed here (None: not an object), read once per request."""


async def _login_body(request: web.Request) -> dict[str, Any] | None:
    """The body of a ``createSession`` as a JSON object, else None (another route, or a
    body the handler will refuse; admission has read it already)."""
    if request.method != "POST" or request.match_info.route.name != "createSession":
        return None
    if _LOGIN_BODY not in request:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        request[_LOGIN_BODY] = body if isinstance(body, dict) else None
    found = request[_LOGIN_BODY]
    return found if isinstance(found, dict) else None


async def _shadow_login(request: web.Request) -> bool:
    """A ``createSession`` whose body asks for a load-test session (``shadow: true``),
    unverified: the handler checks the signature."""
    body = await _login_body(request)
    return body is not None and body.get("shadow") is True


def rate_limit_middleware(limiter: RateLimiter) -> Middleware:
    """The middleware for ``limiter`` (also ``app[RATE_LIMITER]``); register it after
    ``error_middleware`` so a refusal (or Redis being unavailable: 503) gets the usual
    JSON error body."""

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if limiter.enabled and request.path.startswith(EXEMPT_PREFIXES):
            return await limiter.merchant_request(request, handler)
        if limiter.enabled:
            limits = limiter.limits(request, await _shadow_login(request))
            if limits:
                _key_before_any_refusal(request)
            try:
                await limiter.check(request.app[REDIS], limits)
            except RateLimited:
                if not await load_test_exempt(request):
                    raise
        return await handler(request)

    return rate_limit
