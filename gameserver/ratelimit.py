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
has a tag of its own (``pb:{ip:<addr>}:rl``). The one-call check therefore needs a
single Redis (or the IP limit enforced in front, e.g. at the gateway, on Redis
Cluster, where the keys of one call must share a slot).

Which requests: every ``/v1/`` route except merchant routes (``/v1/admin/``, their API
keys are few and known) and signed merchant events (``/v1/events/``). A request
without a valid player token gets only the IP limit (the handler answers 401).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gameserver.api.common import idempotency_key, verified_claims
from gameserver.appkeys import KEYS, REDIS
from gameserver.auth import TOKEN_PREFIX
from gameserver.errors import RateLimited, Unauthorized
from gameserver.keys import shard_of
from gameserver.rates import RateLimit
from gameserver.scripts import load_script
from gameserver.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IDEMPOTENT_OPERATIONS = web.AppKey("idempotent_operations", frozenset[str])
"""operationIds that require an Idempotency-Key (set by the app factory)."""

EXEMPT_PREFIXES = ("/v1/admin/", "/v1/events/")
DRAW_OPERATIONS = frozenset({"drawBox"})
SHADOW_HEADER = "X-Petbox-Shadow"


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

    def check(self, limits: list[Limit]) -> tuple[int, int]:
        """``(0, 0)`` allowed (budgets spent) or ``(i, wait_ms)`` refused by limit ``i``."""
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
        self._script: AsyncScript | None = None
        self._local = LocalGCRA()

    @property
    def enabled(self) -> bool:
        s = self.settings
        return any(r is not None for r in (s.rate_ip, s.rate_player, s.rate_draw))

    def _bound(self, redis: Redis) -> AsyncScript:
        if self._script is None or self._client is not redis:
            self._client, self._script = redis, redis.register_script(load_script("gcra"))
        return self._script

    async def check(self, redis: Redis, limits: list[Limit]) -> None:
        """Raise :class:`RateLimited` if any limit is exceeded (then nothing is counted)."""
        if not limits:
            return
        if self.settings.rate_shared:
            args = [v for lim in limits
                    for v in (f"{lim.rate.interval_ms:.3f}", lim.rate.burst)]
            res = await self._bound(redis)(keys=[lim.key for lim in limits], args=args)
            which, wait_ms = int(res[0]), int(res[1])
        else:
            which, wait_ms = self._local.check(limits)
        if which:
            limit = limits[which - 1]
            raise RateLimited(f"too many requests ({limit.kind} limit); retry later",
                              limit=limit.kind, retry_after=max(1, math.ceil(wait_ms / 1000)),
                              retry_after_ms=wait_ms)

    def limits(self, request: web.Request) -> list[Limit]:
        """The limits that apply to ``request`` (empty for exempt routes)."""
        path = request.path
        if not path.startswith("/v1/") or path.startswith(EXEMPT_PREFIXES):
            return []
        prefix = "pbs" if request.headers.get(SHADOW_HEADER) == "1" else request.app[KEYS].prefix
        s = self.settings
        out: list[Limit] = []
        if s.rate_ip is not None:
            out.append(Limit(f"{prefix}:{{ip:{request.remote or '-'}}}:rl", s.rate_ip, "ip"))
        if s.rate_player is None and s.rate_draw is None:
            return out
        player = self._player(request)
        if player is None:
            return out
        merchant, user = player
        tag = f"{prefix}:{{s{shard_of(merchant, user, s.shards)}}}:rl:{merchant}:{user}"
        if s.rate_player is not None:
            out.append(Limit(tag, s.rate_player, "player"))
        route = request.match_info.route.name
        if s.rate_draw is not None and route in DRAW_OPERATIONS:
            out.append(Limit(f"{tag}:draw", s.rate_draw, "draw"))
        return out

    @staticmethod
    def _player(request: web.Request) -> tuple[str, str] | None:
        """The (merchant, user) of a valid player token, else None (the handler decides)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
            return None
        try:
            claims = verified_claims(request, token)
        except Unauthorized:
            return None
        return claims.merchant, claims.user


def rate_limit_middleware(settings: Settings) -> Middleware:
    """The middleware for ``settings``; register it after ``error_middleware`` so a
    refusal (or Redis being unavailable: 503) gets the usual JSON error body."""
    limiter = RateLimiter(settings)

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if limiter.enabled:
            limits = limiter.limits(request)
            if limits and request.method == "POST" and \
                    request.match_info.route.name in request.app[IDEMPOTENT_OPERATIONS]:
                idempotency_key(request)  # 400 for a missing key comes before any 429
            await limiter.check(request.app[REDIS], limits)
        return await handler(request)

    return rate_limit
