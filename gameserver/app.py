"""The app factory: settings in, a ready aiohttp application out.

Resources (embedded Redis, the Redis client, SQL, the store, the game registry,
the persister) are opened and closed in ``cleanup_ctx`` in dependency order, so a
failed start-up unwinds what it opened and a graceful stop ends with a final
flush of everything acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from gameserver.api import ops as ops_api
from gameserver.api.common import Operation
from gameserver.api.merchant_work import merchant_work_ctx
from gameserver.appkeys import (
    ADMIN_REQUESTS,
    BACKLOG_GAUGES,
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
from gameserver.clock import Clock, SystemClock
from gameserver.db.admin_requests import AdminRequests
from gameserver.db.connections import PROBE_CONNECTIONS, SqlLine
from gameserver.db.database import Database, SchemaMismatch, make_engine
from gameserver.db.migrating import MigrationBounds
from gameserver.games import GameRegistry
from gameserver.http.admission import admission_middleware
from gameserver.http.auth import TokenSigner
from gameserver.http.bodylimit import BODY_LIMITS, with_body_limit
from gameserver.http.clientip import TRUSTED_PROXIES
from gameserver.http.errors import error_middleware
from gameserver.http.openapi import build_openapi
from gameserver.http.ratelimit import (
    IDEMPOTENT_OPERATIONS,
    RATE_LIMITER,
    RateLimiter,
    rate_limit_middleware,
)
from gameserver.jobs.experiment_watch import ExperimentWatcher
from gameserver.jobs.housekeeping import Housekeeper
from gameserver.jobs.lease import job_lease, persister_assignment, process_name
from gameserver.jobs.reconciler import Reconciler
from gameserver.jobs.reminders import reminder_service
from gameserver.jobs.webhooks import OUTBOX, Outbox, WebhookDeliverer
from gameserver.merchants import MerchantDirectory
from gameserver.ops.embedded import RedisProcess
from gameserver.ops.metrics import Metrics
from gameserver.ops.recording import (
    PLAYER_OPERATIONS,
    player_operations,
    record_middleware,
    recorder_ctx,
)
from gameserver.ops.settings import Settings
from gameserver.ops.shardcount import check_shard_count
from gameserver.persister import Persister, wired_persister
from gameserver.services import SHADOW_PREFIX, Services
from gameserver.state.aggregates_app import aggregates_ctx
from gameserver.state.batching import ScriptBatcher
from gameserver.state.keys import Keys, warm_tags
from gameserver.state.latency_budget import LATENCY_BUDGET, LatencyBudget
from gameserver.state.redisclient import open_redis
from gameserver.state.store import Store
from gameserver.state.value import ValueTier
from mechanics.registry import API_ROOMS

log = logging.getLogger("petbox")

VERSION = "0.1.0"

STATE_CACHE_ONE_PROCESS = 10_000
"""Player states a process keeps when it serves alone (``PETBOX_STATE_CACHE`` unset)."""


ROOMS = (
    "sessions", "players",
    # one room per mechanic (gameserver/api/<name>.py, mirroring mechanics/), from
    # the mechanic registry (mechanics/registry.py)
    *API_ROOMS,
    # merchants and operations
    "admin", "erasure", "configs", "simulate", "analytics", "export", "webhooks", "console", "ops",
)
"""The API modules, in the order their routes are documented. Each exports
``OPERATIONS``, the :class:`Operation` rows that drive both routing and OpenAPI;
adding a room is adding its name here."""


def room_operations(name: str) -> list[Operation]:
    """The Operation rows of ``gameserver/api/<name>.py``."""
    rows: list[Operation] = importlib.import_module(f"gameserver.api.{name}").OPERATIONS
    return rows


def room_background(name: str) -> list[Callable[[web.Application], AsyncIterator[None]]]:
    """The ``cleanup_ctx`` entries of ``gameserver/api/<name>.py`` (its optional
    ``BACKGROUND`` list: a room's caches and background jobs, started after the shared
    services and stopped before them)."""
    module = importlib.import_module(f"gameserver.api.{name}")
    return list(getattr(module, "BACKGROUND", ()))


def all_operations() -> list[Operation]:
    """Every route petbox serves, in the order they are documented."""
    return [op for name in ROOMS for op in room_operations(name)]


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: RedisProcess | None = None
    url = settings.redis_url
    if url is None:
        # exclusive: one Redis per AOF (DataDirInUse), a killed server's left-behind one stopped
        embedded = RedisProcess(settings.data_dir / "redis", exclusive=True,
                                appendfsync=settings.redis_appendfsync,
                                aof_rewrite_percentage=settings.redis_aof_rewrite_percentage)
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        log.info("embedded redis-server on %s (AOF in %s)", url, embedded.data_dir)
    client = await open_redis(url, settings)
    app[REDIS] = client
    budget = (LatencyBudget(settings.latency_target, ceiling=settings.redis_pipeline_linger)
              if settings.latency_target and settings.redis_pipeline_linger else None)
    if budget is not None:
        app[LATENCY_BUDGET] = budget
    app[BATCHER] = ScriptBatcher(client, max_in_flight=settings.redis_pipeline_in_flight,
                                 linger=settings.redis_pipeline_linger, budget=budget)
    try:
        yield
    finally:
        await app[BATCHER].aclose()
        await client.aclose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def sql_lines(settings: Settings) -> tuple[SqlLine, SqlLine | None]:
    """The requests' line and the background jobs' line, which share the pool's
    connections: a quarter of them (at least one) for background jobs, the rest kept
    for requests, so jobs stuck on a hung SQL for their longer bound never take every
    turn. A pool of one connection has one line for both (None)."""
    slots = settings.sql_pool_size + settings.sql_max_overflow
    if slots < 2:
        return SqlLine(slots, settings.sql_pool_timeout), None
    background = max(1, slots // 4)
    return (SqlLine(slots - background, settings.sql_pool_timeout),
            SqlLine(background, max(settings.sql_timeout, settings.sql_background_timeout)))


async def _open_db(settings: Settings, url: str, embedded: bool) -> Database:
    """A database at the newest schema: embedded SQLite is migrated, others must be.
    Its calls are bounded by ``PETBOX_SQL_TIMEOUT`` (``.background``: the longer
    ``PETBOX_SQL_BACKGROUND_TIMEOUT`` of background jobs, ``.report``: merchant
    reports' ``PETBOX_SQL_REPORT_TIMEOUT``); waits for a pooled
    connection by ``PETBOX_SQL_POOL_TIMEOUT`` as well."""
    background = max(settings.sql_timeout, settings.sql_background_timeout)
    # One connection more than the lines hand out: readiness's own (Database.probe).
    engine = make_engine(url, background, pool_size=settings.sql_pool_size,
                         max_overflow=settings.sql_max_overflow + PROBE_CONNECTIONS,
                         pool_timeout=min(settings.sql_pool_timeout, background))
    line, background_line = sql_lines(settings)
    writers = SqlLine(1, settings.sql_pool_timeout) if engine.dialect.name == "sqlite" else None
    db = Database(url, engine, timeout=settings.sql_timeout,
                  background_timeout=settings.sql_background_timeout,
                  report_timeout=settings.sql_report_timeout, line=line,
                  writers=writers, background_line=background_line)
    if embedded:
        await db.migrate(MigrationBounds.of(settings))
    else:
        await _require_schema(db.background)
    return db


async def _db_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = await _open_db(settings, settings.effective_database_url,
                        settings.database_url is None)
    app[DB] = db
    try:
        shards = await check_shard_count(db.background, settings.shards,
                                         settings.shards_explicit)
    except BaseException:
        await db.close()
        raise
    if shards != settings.shards:  # PETBOX_SHARDS unset: the data's own count
        app[SETTINGS] = settings.with_overrides(shards=shards)
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
    problem = await db.schema_problem()
    if problem is not None:
        raise SchemaMismatch(problem)


def _services(app: web.Application, keys: Keys, db: Database, metrics: Metrics,
              shadow: bool) -> Services:
    settings = app[SETTINGS]
    store = Store(app[REDIS], keys, db, metrics, app[CLOCK],
                  idempotency_ttl=settings.idempotency_ttl,
                  idempotency_wait=settings.idempotency_wait, retries=settings.commit_retries,
                  batcher=app[BATCHER] if settings.redis_pipelining else None,
                  cache_size=STATE_CACHE_ONE_PROCESS if settings.state_cache is None
                  else settings.state_cache)
    value = ValueTier(app[REDIS], keys, db, app[CLOCK], settings.shards, shadow=shadow,
                      buckets=settings.stock_buckets)
    value.hold_ttl_ms = int(settings.hold_ttl * 1000)
    value.live_hold_ms = int((settings.sql_timeout + settings.sql_pool_timeout) * 1000)
    return Services(keys, store, value, db, AdminRequests(db, app[CLOCK]), shadow)


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[SETTINGS], app[DB]
    # Place every shard's tag before serving (about 1 ms each), not on a first request.
    await asyncio.to_thread(warm_tags, settings.shards)
    real = _services(app, app[KEYS], db, app[METRICS], shadow=False)
    app[SERVICES], app[STORE], app[VALUE] = real, real.store, real.value
    if SHADOW_DB in app:
        # Shadow keeps its own metrics: load tests must not move production gauges.
        app[SHADOW] = _services(app, Keys(SHADOW_PREFIX), app[SHADOW_DB], Metrics(),
                                shadow=True)
    app[ADMIN_REQUESTS] = real.requests
    app[MERCHANTS] = MerchantDirectory(db, fresh=settings.secret_cache_seconds,
                                       max_age=settings.secret_cache_max_age)
    games = GameRegistry(db)
    app[GAMES] = games
    games.start()
    workers = _start_persisters(app) if settings.run_persister else []
    if not settings.run_persister:
        # The persister runs elsewhere (``serve --workers N``, ``petbox persister``), in a
        # process nobody scrapes: /metrics reads its backlog of every shard from Redis.
        app[BACKLOG_GAUGES] = Persister(
            app[REDIS], app[KEYS], db.background, app[METRICS], app[CLOCK],
            shards=settings.shards, consumer=process_name("serve")).update_gauges
    tiers = [app[VALUE]] + ([app[SHADOW].value] if SHADOW in app else [])
    # One host at a time runs these two (leases; both stay safe if passes overlap).
    reconciler = (Reconciler(tiers, settings.reconcile_interval, admin=app[ADMIN_REQUESTS])
                  .leased(job_lease(app[REDIS], app[KEYS].prefix, "reconciler",
                                    settings.reconcile_interval)).start()
                  if settings.run_background else None)
    app[OUTBOX] = Outbox(db, app[CLOCK])
    deliverer = (WebhookDeliverer(db.background, games, app[MERCHANTS], app[CLOCK])
                 .leased(job_lease(app[REDIS], app[KEYS].prefix, "webhooks")).start()
                 if settings.run_background else None)
    watcher = (ExperimentWatcher(db.background, games, app[OUTBOX], app[CLOCK])
               .leased(job_lease(app[REDIS], app[KEYS].prefix, "experiments")).start()
               if settings.run_background else None)
    housekeeper = (Housekeeper(db.background, games, app[CLOCK],
                               response_ttl=settings.idempotency_ttl)
                   .leased(job_lease(app[REDIS], app[KEYS].prefix, "housekeeping")).start()
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
        if deliverer is not None:
            await deliverer.stop()
        if watcher is not None:
            await watcher.stop()
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
        # Unique per process: two processes on one host must not read as one consumer.
        consumer = process_name("serve")
        persister = wired_persister(
            app[REDIS], services.keys, services.db, app[GAMES], app[CLOCK], settings, metrics,
            consumer=consumer, shadow=services.shadow, assignment=persister_assignment(
                app[REDIS], services.keys.prefix, settings.shards, consumer,
                settings.flush_interval))
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
    limiter = RateLimiter(settings)
    # Every middleware is two more frames each time a request's coroutine resumes
    # (aiohttp wraps each one): the recorder's only when this server records.
    middlewares = [error_middleware, *([admit] if admit else []),
                   rate_limit_middleware(limiter),
                   *([record_middleware] if settings.record_dir is not None else [])]
    app = web.Application(client_max_size=settings.client_max_size, middlewares=middlewares)
    app[SETTINGS] = settings
    app[TRUSTED_PROXIES] = settings.trusted_proxies
    app[RATE_LIMITER] = limiter
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = metrics
    app[KEYS] = Keys()
    app[SIGNER] = TokenSigner(settings.token_secret, settings.token_ttl)
    operations = all_operations()
    app[ops_api.OPENAPI] = build_openapi(operations, VERSION)
    config_limit = max(settings.config_max_size, settings.client_max_size)
    app[BODY_LIMITS] = {op.operation_id: config_limit for op in operations if op.config_body}
    for op in operations:
        handler = with_body_limit(op.handler, config_limit) if op.config_body else op.handler
        if op.method == "GET" and op.tag == "operations":
            # load balancers and uptime checks often probe with HEAD (a GET without body)
            app.router.add_get(op.path, handler, name=op.operation_id, allow_head=True)
        else:
            app.router.add_route(op.method, op.path, handler, name=op.operation_id)
    app[PLAYER_OPERATIONS] = player_operations(operations)
    app[IDEMPOTENT_OPERATIONS] = frozenset(op.operation_id for op in operations
                                           if op.idempotent)
    app.cleanup_ctx.extend([merchant_work_ctx, _redis_ctx, _db_ctx, _services_ctx, aggregates_ctx,
                            *(ctx for name in ROOMS for ctx in room_background(name))])
    if settings.record_dir is not None:
        app.cleanup_ctx.append(recorder_ctx(settings))
    return app
