"""One action of a shopper at a time on one piece of shared state, across hosts.

A two-commit action (gameserver/state/aggregates_gate.py) checks the shopper's side (a
per-shopper limit, a price, one team per season) against the shopper as peeked before
its gate, and commits the shopper's side after it. Two actions of one shopper with two
keys at the same instant would both pass those checks, and the second gate's change
could then not be followed (a seat taken, a vote counted, never paid for). A route
whose gate checks such a thing holds this lock from before the peek to after the
shopper's commit, so the second sees the first's result.

A holder that died frees it after ``LOCK_TTL_MS``; a request that cannot get it within
``LOCK_WAIT_S`` is refused (409, retry), unless it holds the same Idempotency-Key: a
retry of the request that holds it goes on (the key's idempotency makes them one).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from economy.errors import DomainError
from gameserver.api.common import idempotency_key, services
from gameserver.appkeys import REDIS
from gameserver.state.scripts import Script

LOCK_TTL_MS = 5_000
"""A lock outlives any action (SQL calls are bounded at 1.5 s)."""
LOCK_WAIT_S = 2.0
"""How long a shopper's second action waits for their first (as a duplicate key does)."""


@contextlib.asynccontextmanager
async def one_at_a_time(request: web.Request, name: str,
                        busy: Callable[[], DomainError]) -> AsyncIterator[None]:
    """Hold the lock ``name`` (one shopper on one shared thing: the caller puts the
    merchant, game, thing and user in it) for the body; ``busy()`` is raised when
    another action of the shopper keeps it past ``LOCK_WAIT_S``."""
    redis = request.app[REDIS]
    key = services(request).keys.lock(name)
    mine = idempotency_key(request)
    token = f"{mine}|{secrets.token_hex(8)}"
    deadline = time.monotonic() + LOCK_WAIT_S
    while not await redis.set(key, token, nx=True, px=LOCK_TTL_MS):
        holder = await redis.get(key)
        if isinstance(holder, bytes):
            holder = holder.decode()
        if isinstance(holder, str) and holder.split("|", 1)[0] == mine:
            # held by this very request (a retry after a crash, a duplicate): the key's
            # idempotency already makes them one; the holder's lock covers both
            yield
            return
        if time.monotonic() >= deadline:
            raise busy()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:  # only our own lock (one that outlived its TTL may be another's now)
        await asyncio.shield(Script.named("unlock", redis=redis)(keys=[key], args=[token]))
