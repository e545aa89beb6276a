"""``petbox persister``: the persister as a process of its own (or the persister
process of ``petbox serve --workers N``), for the real keyspace and the shadow one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from redis.asyncio import Redis

from gameserver.clock import SystemClock
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.jobs.lease import persister_assignment, process_name
from gameserver.ops.metrics import Metrics, serve_metrics
from gameserver.ops.settings import Settings
from gameserver.ops.shardcount import check_shard_count
from gameserver.persister.passes import Persister
from gameserver.persister.wiring import wired_persister
from gameserver.services import SHADOW_PREFIX
from gameserver.state.keys import Keys
from gameserver.state.redisclient import open_redis

log = logging.getLogger(__name__)


async def run_standalone(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``petbox persister`` (and the persister process of ``petbox serve --workers N``):
    run passes for the real keyspace, and the shadow one when a shadow database is
    configured, until SIGINT or SIGTERM (or ``stop``); then flush what is left."""
    if settings.redis_url is None:
        raise ValueError("the standalone persister needs PETBOX_REDIS_URL")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # One server or a whole Redis Cluster, discovered from the URL as the servers do.
    redis = await open_redis(settings.redis_url, settings)
    bound = settings.sql_background_timeout  # background work only: the longer bound
    db = Database(settings.effective_database_url, timeout=bound, background_timeout=bound)
    try:
        settings = settings.with_overrides(shards=await check_shard_count(
            db, settings.shards, settings.shards_explicit))
    except BaseException:
        await redis.aclose()
        await db.close()
        raise
    shadow_url = settings.effective_shadow_database_url
    shadow_db = (Database(shadow_url, timeout=bound, background_timeout=bound)
                 if shadow_url else None)
    games = GameRegistry(db)
    games.start()
    endpoint = None
    try:
        keyspaces = [(Keys(), db)] + ([(Keys(SHADOW_PREFIX), shadow_db)] if shadow_db else [])
        # Each keyspace its own metrics (load tests must not move production's); the
        # real one's are served when asked for: nothing else exports this process'.
        metrics = [Metrics() for _ in keyspaces]
        persisters = [_standalone(settings, redis, keys, space_db, games, space_metrics)
                      for (keys, space_db), space_metrics in zip(keyspaces, metrics,
                                                                 strict=True)]
        if settings.persister_metrics_port:
            endpoint = await serve_metrics(metrics[0], settings.persister_metrics_host,
                                           settings.persister_metrics_port)
        log.info("persister running on %d shards every %.2fs (%d keyspace(s))",
                 settings.shards, settings.flush_interval, len(persisters))
        await asyncio.gather(*(p.run(settings.flush_interval, stop) for p in persisters))
        for persister in persisters:
            await persister.final_flush()
    finally:
        if endpoint is not None:
            await endpoint.cleanup()
        await games.stop()
        await redis.aclose()
        await db.close()
        if shadow_db is not None:
            await shadow_db.close()


def _standalone(settings: Settings, redis: Redis, keys: Keys, db: Database,
                games: GameRegistry, metrics: Metrics | None = None) -> Persister:
    consumer = process_name("persister")  # unique per process, like the lease token
    return wired_persister(redis, keys, db, games, SystemClock(), settings,
                           metrics or Metrics(),
                           consumer=consumer, shadow=keys.prefix == SHADOW_PREFIX,
                           assignment=persister_assignment(redis, keys.prefix,
                                                           settings.shards, consumer,
                                                           settings.flush_interval))
