"""How petbox's Redis clients retry: once, at once, and only for a dropped connection.

After redis-server restarts (crash, failover, AOF reload) every pooled connection
is dead; without a retry each of them would fail one request with 503 before the
pool notices. One reconnect-and-resend is safe for every command petbox sends:
``commit.lua`` is version-checked (a commit that did run answers "conflict", the
store reloads and finds its idempotency record), ``load.lua`` only reads,
``claim.lua`` and ``release.lua`` are keyed by the request's token, XACK is
idempotent, and a doubled
``stock_reserve.lua`` only holds units back in the gate (SQL stays the truth, so
never an oversell). Timeouts are not retried: a paused Redis must fail fast (503).
"""

from __future__ import annotations

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def reconnect_once() -> Retry:
    """The ``retry=`` of petbox's ``redis.asyncio.Redis`` clients."""
    return Retry(ExponentialBackoff(cap=0.05, base=0.005), 1,
                 supported_errors=(RedisConnectionError,))
