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
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web

from gameserver.admission import admission_middleware
from gameserver.api import admin, analytics, boxes, configs, daily, export, pets, sessions
from gameserver.api import console as console_api
from gameserver.api import leaderboards as leaderboards_api
from gameserver.api import ops as ops_api
from gameserver.api import simulate as simulate_api
from gameserver.api.common import Operation
from gameserver.appkeys import (
    ADMIN_REQUESTS,
    BATCHER,
    CLOCK,
    DB,
    GAMES,
    KEYS,
    MERCHANTS,
    METRICS,
    REDIS,
    SERVICES,
    SETTINGS,
    SHADOW,
    SHADOW_DB,
    SIGNER,
    STORE,
    VALUE,
)
from gameserver.auth import TokenSigner
from gameserver.batching import ScriptBatcher
from gameserver.clock import Clock, SystemClock
from gameserver.db.admin_requests import AdminRequests
from gameserver.db.database import Database, make_engine
from gameserver.embedded import RedisProcess
from gameserver.errors import error_middleware
from gameserver.games import GameRegistry
from gameserver.housekeeping import Housekeeper
from gameserver.keys import Keys
from gameserver.leaderboards import LeaderboardUpdater
from gameserver.merchants import MerchantDirectory
from gameserver.metrics import Metrics
from gameserver.openapi import build_openapi
from gameserver.persister import Persister
from gameserver.ratelimit import IDEMPOTENT_OPERATIONS, rate_limit_middleware
from gameserver.reconciler import Reconciler
from gameserver.recording import (
    PLAYER_OPERATIONS,
    player_operations,
    record_middleware,
    recorder_ctx,
)
from gameserver.redisretry import reconnect_once
from gameserver.reminders import reminder_service
from gameserver.services import SHADOW_PREFIX, Services
from gameserver.settings import Settings
from gameserver.store import Store
from gameserver.value import ValueTier

log = logging.getLogger("petbox")

VERSION = "0.1.0"


def all_operations() -> list[Operation]:
    """Every route petbox serves, in the order they are documented."""
    return [*sessions.OPERATIONS, *pets.OPERATIONS, *daily.OPERATIONS, *boxes.OPERATIONS,
            *leaderboards_api.OPERATIONS, *admin.OPERATIONS,
            *configs.OPERATIONS, *simulate_api.OPERATIONS, *analytics.OPERATIONS,
            *export.OPERATIONS, *console_api.OPERATIONS, *ops_api.OPERATIONS]


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: RedisProcess | None = None
    url = settings.redis_url
    if url is None:
        embedded = RedisProcess(settings.data_dir / "redis",
                                appendfsync=settings.redis_appendfsync,
                                aof_rewrite_percentage=settings.redis_aof_rewrite_percentage)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        log.info("embedded redis-server on %s (AOF in %s)", url, embedded.data_dir)
    client = aioredis.Redis.from_pool(redis_pool(url, settings))
    app[REDIS] = client
    app[BATCHER] = ScriptBatcher(client, max_in_flight=settings.redis_pipeline_in_flight,
                                 linger=settings.redis_pipeline_linger)
    try:
        yield
    finally:
        await app[BATCHER].aclose()
        await client.aclose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def redis_pool(url: str, settings: Settings) -> aioredis.BlockingConnectionPool:
    """The Redis connections of one process: at least as many as it admits requests
    (``max_inflight``), and a request that finds them all busy waits for one (at most
    ``redis_timeout``, then 503) instead of failing at once as a plain pool does."""
    return aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=False, socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout, retry=reconnect_once(),
        max_connections=settings.effective_redis_max_connections,
        timeout=settings.redis_timeout)


async def _open_db(settings: Settings, url: str, embedded: bool) -> Database:
    """A database at the newest schema: embedded SQLite is migrated, others must be.
    Its calls are bounded by ``PETBOX_SQL_TIMEOUT`` (``.background``: the longer
    ``PETBOX_SQL_BACKGROUND_TIMEOUT`` of background jobs); waits for a pooled
    connection by ``PETBOX_SQL_POOL_TIMEOUT`` as well."""
    background = max(settings.sql_timeout, settings.sql_background_timeout)
    engine = make_engine(url, background, pool_size=settings.sql_pool_size,
                         max_overflow=settings.sql_max_overflow,
                         pool_timeout=min(settings.sql_pool_timeout, background))
    db = Database(url, engine, timeout=settings.sql_timeout,
                  background_timeout=settings.sql_background_timeout)
    if embedded:
        await db.migrate()
    else:
        await _require_schema(db.background)
    return db


async def _db_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = await _open_db(settings, settings.effective_database_url,
                        settings.database_url is None)
    app[DB] = db
    shadow_url = settings.effective_shadow_database_url
    if shadow_url is not None:
        derived = settings.shadow_database_url is None  # beside SQLite: ours to migrate
        app[SHADOW_DB] = await _open_db(settings, shadow_url, derived)
    try:
        yield
    finally:
        await db.close()
        if SHADOW_DB in app:
            await app[SHADOW_DB].close()


async def _require_schema(db: Database) -> None:
    current, head = await db.schema_revision(), db.head_revision()
    if current != head:
        raise RuntimeError(f"database schema is at {current}, petbox needs {head}: "
                           "run `petbox migrate` first")


def _services(app: web.Application, keys: Keys, db: Database, metrics: Metrics,
              shadow: bool) -> Services:
    settings = app[SETTINGS]
    store = Store(app[REDIS], keys, db, metrics, app[CLOCK],
                  idempotency_ttl=settings.idempotency_ttl,
                  idempotency_wait=settings.idempotency_wait, retries=settings.commit_retries,
                  batcher=app[BATCHER] if settings.redis_pipelining else None)
    value = ValueTier(app[REDIS], keys, db, app[CLOCK], settings.shards, shadow=shadow)
    return Services(keys, store, value, db, shadow)


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[SETTINGS], app[DB]
    real = _services(app, app[KEYS], db, app[METRICS], shadow=False)
    app[SERVICES], app[STORE], app[VALUE] = real, real.store, real.value
    if SHADOW_DB in app:
        # Shadow keeps its own metrics: load tests must not move production gauges.
        app[SHADOW] = _services(app, Keys(SHADOW_PREFIX), app[SHADOW_DB], Metrics(),
                                shadow=True)
    app[ADMIN_REQUESTS] = AdminRequests(db, app[CLOCK])
    app[MERCHANTS] = MerchantDirectory(db, fresh=settings.secret_cache_seconds,
                                       max_age=settings.secret_cache_max_age)
    games = GameRegistry(db)
    app[GAMES] = games
    games.start()
    workers = _start_persisters(app) if settings.run_persister else []
    tiers = [app[VALUE]] + ([app[SHADOW].value] if SHADOW in app else [])
    reconciler = (Reconciler(tiers, settings.reconcile_interval,
                             admin=app[ADMIN_REQUESTS]).start()
                  if settings.run_background else None)
    housekeeper = (Housekeeper(db.background, games, app[CLOCK],
                               response_ttl=settings.idempotency_ttl).start()
                   if settings.run_background else None)
    try:
        async with reminder_service(app, enabled=settings.run_background):
            yield
    finally:
        await games.stop()
        if reconciler is not None:
            await reconciler.stop()
        if housekeeper is not None:
            await housekeeper.stop()
        await _stop_persisters(workers)


@dataclass
class _Worker:
    persister: Persister
    stop: asyncio.Event
    task: asyncio.Task[None]


PERSISTERS = web.AppKey("persisters", list[Persister])


def _start_persisters(app: web.Application) -> list[_Worker]:
    """One persister per keyspace (real, and shadow when configured)."""
    settings = app[SETTINGS]
    keyspaces = [(app[SERVICES], app[METRICS])]
    if SHADOW in app:
        keyspaces.append((app[SHADOW], Metrics()))
    workers = []
    for services, metrics in keyspaces:
        persister = Persister(app[REDIS], services.keys, services.db.background, metrics,
                              app[CLOCK], shards=settings.shards, batch=settings.persister_batch,
                              idle_evict_after=settings.idle_evict_after,
                              # Stable across restarts: a restarted server re-reads its own
                              # unacknowledged ledger entries at once, not after a claim.
                              consumer=f"{socket.gethostname()}-serve")
        # Boards follow the flushed states: no action pays a Redis write for them.
        persister.on_flushed.append(LeaderboardUpdater(app[REDIS], services.keys, app[GAMES]))
        stop = asyncio.Event()
        task = asyncio.create_task(persister.run(settings.flush_interval, stop),
                                   name=f"petbox-persister-{services.keys.prefix}")
        workers.append(_Worker(persister, stop, task))
    app[PERSISTERS] = [w.persister for w in workers]
    return workers


async def _stop_persisters(workers: list[_Worker]) -> None:
    """Stop the loops, then flush everything acknowledged (graceful shutdown)."""
    for worker in workers:
        worker.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await worker.task
        try:
            await worker.persister.final_flush()
        except Exception:
            log.exception("final flush failed; unflushed state stays in Redis for the next run")


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """A petbox application for ``settings``; ``clock`` is injectable for tests."""
    metrics = Metrics()
    admit = admission_middleware(settings, metrics)
    middlewares = [error_middleware, *([admit] if admit else []),
                   rate_limit_middleware(settings), record_middleware]
    app = web.Application(client_max_size=settings.client_max_size, middlewares=middlewares)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = metrics
    app[KEYS] = Keys()
    app[SIGNER] = TokenSigner(settings.token_secret, settings.token_ttl)
    operations = all_operations()
    app[ops_api.OPENAPI] = build_openapi(operations, VERSION)
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)
    app[PLAYER_OPERATIONS] = player_operations(operations)
    app[IDEMPOTENT_OPERATIONS] = frozenset(op.operation_id for op in operations
                                           if op.idempotent)
    app.cleanup_ctx.extend([_redis_ctx, _db_ctx, _services_ctx])
    if settings.record_dir is not None:
        app.cleanup_ctx.append(recorder_ctx(settings))
    return app
