"""The app factory: settings in, a ready aiohttp application out.

Resources (embedded Redis, the Redis client, SQL, the store, the game registry,
the persister) are opened and closed in ``cleanup_ctx`` in dependency order, so a
failed start-up unwinds what it opened and a graceful stop ends with a final
flush of everything acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from gameserver.api import admin, analytics, boxes, configs, export, pets, sessions
from gameserver.api import ops as ops_api
from gameserver.api import simulate as simulate_api
from gameserver.api.common import Operation
from gameserver.appkeys import (
    CLOCK,
    DB,
    GAMES,
    KEYS,
    MERCHANTS,
    METRICS,
    REDIS,
    SETTINGS,
    SIGNER,
    STORE,
    VALUE,
)
from gameserver.auth import TokenSigner
from gameserver.clock import Clock, SystemClock
from gameserver.db.database import Database
from gameserver.embedded import RedisProcess
from gameserver.errors import error_middleware
from gameserver.games import GameRegistry
from gameserver.keys import Keys
from gameserver.merchants import MerchantDirectory
from gameserver.metrics import Metrics
from gameserver.openapi import build_openapi
from gameserver.persister import Persister
from gameserver.settings import Settings
from gameserver.store import Store
from gameserver.value import ValueTier

log = logging.getLogger("petbox")

VERSION = "0.1.0"


def all_operations() -> list[Operation]:
    """Every route petbox serves, in the order they are documented."""
    return [*sessions.OPERATIONS, *pets.OPERATIONS, *boxes.OPERATIONS, *admin.OPERATIONS,
            *configs.OPERATIONS, *simulate_api.OPERATIONS, *analytics.OPERATIONS,
            *export.OPERATIONS, *ops_api.OPERATIONS]


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: RedisProcess | None = None
    url = settings.redis_url
    if url is None:
        embedded = RedisProcess(settings.data_dir / "redis",
                                appendfsync=settings.redis_appendfsync)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        log.info("embedded redis-server on %s (AOF in %s)", url, embedded.data_dir)
    client = aioredis.Redis.from_url(url, decode_responses=False,
                                     socket_timeout=settings.redis_timeout,
                                     socket_connect_timeout=settings.redis_timeout,
                                     max_connections=256)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _db_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.effective_database_url)
    if settings.database_url is None:
        await db.migrate()  # embedded SQLite: create or upgrade it ourselves
    else:
        await _require_schema(db)
    app[DB] = db
    try:
        yield
    finally:
        await db.close()


async def _require_schema(db: Database) -> None:
    current, head = await db.schema_revision(), db.head_revision()
    if current != head:
        raise RuntimeError(f"database schema is at {current}, petbox needs {head}: "
                           "run `petbox migrate` first")


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[SETTINGS], app[DB]
    app[STORE] = Store(app[REDIS], app[KEYS], db, app[METRICS], app[CLOCK],
                       idempotency_ttl=settings.idempotency_ttl,
                       idempotency_wait=settings.idempotency_wait,
                       retries=settings.commit_retries)
    app[MERCHANTS] = MerchantDirectory(db)
    app[VALUE] = ValueTier(app[REDIS], app[KEYS], db, app[CLOCK], settings.shards)
    games = GameRegistry(db)
    app[GAMES] = games
    games.start()
    persister_task = _start_persister(app) if settings.run_persister else None
    try:
        yield
    finally:
        await games.stop()
        if persister_task is not None:
            await _stop_persister(app, persister_task)


PERSISTER = web.AppKey("persister", Persister)
PERSISTER_STOP = web.AppKey("persister_stop", asyncio.Event)


def _start_persister(app: web.Application) -> asyncio.Task[None]:
    settings = app[SETTINGS]
    persister = Persister(app[REDIS], app[KEYS], app[DB], app[METRICS], app[CLOCK],
                          shards=settings.shards, batch=settings.persister_batch,
                          idle_evict_after=settings.idle_evict_after,
                          # Stable across restarts: a restarted server re-reads its own
                          # unacknowledged ledger entries at once, not after the claim time.
                          consumer=f"{socket.gethostname()}-serve")
    app[PERSISTER] = persister
    stop = asyncio.Event()
    app[PERSISTER_STOP] = stop
    return asyncio.create_task(persister.run(settings.flush_interval, stop),
                               name="petbox-persister")


async def _stop_persister(app: web.Application, task: asyncio.Task[None]) -> None:
    app[PERSISTER_STOP].set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await app[PERSISTER].final_flush()
    except Exception:
        log.exception("final flush failed; unflushed state stays in Redis for the next run")


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """A petbox application for ``settings``; ``clock`` is injectable for tests."""
    metrics = Metrics()
    app = web.Application(client_max_size=settings.client_max_size,
                          middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = metrics
    app[KEYS] = Keys()
    app[SIGNER] = TokenSigner(settings.token_secret, settings.token_ttl)
    operations = all_operations()
    app[ops_api.OPENAPI] = build_openapi(operations, VERSION)
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)
    app.cleanup_ctx.extend([_redis_ctx, _db_ctx, _services_ctx])
    return app
