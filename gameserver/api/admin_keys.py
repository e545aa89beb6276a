"""Idempotency-Keys on merchant writes: the handlers' side of :mod:`gameserver.db.admin_requests`.

Every state-changing merchant route takes an optional ``Idempotency-Key``; the routes
that move value (``setStock``, ``grantPlayer``) require one. Same key and same request
(method, path, body): the first response again (``Idempotent-Replayed: true``),
nothing applied twice. Same key, another request: 422 ``idempotency_mismatch``. Same
key while the first runs: 409 ``idempotency_in_progress``. A refused request (any
4xx) gives its key up, as shopper keys do. Keys are scoped to the merchant and kept
``PETBOX_IDEMPOTENCY_TTL`` (at least 24 h), in SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.api.common import idempotency_key, request_hash, services
from gameserver.db.admin_requests import AdminRequests, Claim, Stored
from gameserver.http.errors import IdempotencyKeyMissing
from gameserver.state.keys import IDEMPOTENCY_RE
from gameserver.state.store import Reply, encode_json


@dataclass(frozen=True)
class Written:
    """What a merchant write's SQL effect answers, and the Redis step it still owes."""

    body: dict[str, Any]
    status: int = 200
    followup: dict[str, Any] | None = None


SqlEffect = Callable[[AsyncConnection], Awaitable[Written]]
Followup = Callable[[str, dict[str, Any]], Awaitable[None]]
"""``(key, followup) -> None``: the owed non-SQL step, idempotent per key."""


def optional_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key, None without one; 400 if it is malformed."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_RE.fullmatch(key):
        raise IdempotencyKeyMissing()
    return key


def _response(status: int, body: bytes, replayed: bool = False) -> web.Response:
    resp = web.Response(body=body, status=status, content_type="application/json")
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


async def _abandon(requests: AdminRequests, claim: Claim) -> None:
    """Give the key up after a failure (best effort: a claim left running is taken over
    once its lease is over, and it holds no effect)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(requests.abandon(claim))


async def _owed(requests: AdminRequests, stored: Stored, followup: Followup | None) -> None:
    if stored.followup and followup is not None:
        await followup(stored.key, stored.followup)
        await requests.clear_followup(stored.merchant, stored.key)


async def sql_write(request: web.Request, merchant: str, operation: str, raw: bytes,
                    effect: SqlEffect, *, required: bool = False,
                    followup: Followup | None = None) -> web.Response:
    """Run a merchant write whose effect is SQL: the effect and its key's record commit
    in one transaction, so a crash cannot leave one without the other. ``followup``
    (given a key) then does the Redis step the effect owes; a retry redoes it until
    it is done, and it must be idempotent per key."""
    key = idempotency_key(request) if required else optional_key(request)
    svc = services(request)  # the shadow keyspace's SQL for load-test traffic
    db = svc.db
    if key is None:
        async with db.begin() as conn:
            written = await effect(conn)
        return _response(written.status, encode_json(written.body))
    requests = svc.requests
    got = await requests.begin(merchant, key, operation, request_hash(request, raw))
    if isinstance(got, Stored):
        await _owed(requests, got, followup)
        return _response(got.status, got.body, replayed=True)
    try:
        async with db.begin() as conn:
            written = await effect(conn)
            body = encode_json(written.body)
            await requests.finish_in(conn, got, written.status, body, written.followup)
    except BaseException:
        await _abandon(requests, got)  # only deletes a row still running under our token
        raise
    await _owed(requests, Stored(merchant, key, written.status, body, written.followup),
                followup)
    return _response(written.status, body)


async def keyed_run(request: web.Request, merchant: str, operation: str, key: str,
                    raw: bytes, run: Callable[[], Awaitable[Reply]]) -> web.Response:
    """Run a merchant write whose effect is outside SQL (``run``, itself idempotent per
    key, e.g. a player commit) once per key, and keep its response in SQL: a retry
    after a restart or a Redis data loss gets the first response. A crash between
    ``run`` and the record leaves the key running; the retry after the lease runs
    ``run`` again, which replays rather than applies."""
    requests = services(request).requests
    got = await requests.begin(merchant, key, operation, request_hash(request, raw))
    if isinstance(got, Stored):
        return _response(got.status, got.body, replayed=True)
    try:
        reply = await run()
        await requests.finish(got, reply.status, reply.body)
    except BaseException:
        await _abandon(requests, got)
        raise
    return _response(reply.status, reply.body, replayed=reply.replayed)
