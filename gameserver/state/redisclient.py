"""Opening Redis: one server, or a whole Redis Cluster discovered from any node's URL.

``PETBOX_REDIS_CLUSTER=auto`` (the default) asks the node at ``PETBOX_REDIS_URL``
``INFO cluster``; ``cluster_enabled:1`` makes petbox use redis-py's
:class:`~redis.asyncio.cluster.RedisCluster`, which reads the slot map from that node
and routes every command to the node owning its key's slot (following ``MOVED`` and
``ASK``, refreshing the map after a failover). ``1``/``0`` force the mode.

Every petbox key of one player, shard or game carries a hash tag (gameserver/state/keys.py),
so every script and every multi-key command touches one slot. The command surface
petbox uses (scripts, hashes, sorted sets, streams, non-transactional pipelines,
``SCAN``, ``UNLINK``) is the same on both clients, so the rest of petbox takes the
client as a :class:`~redis.asyncio.Redis`; the few places that work below redis-py's
command layer (the action path's batcher, the persister's round trips, readiness)
ask :func:`is_cluster` and route by node themselves (gameserver/state/routing.py).
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from gameserver.ops.settings import Settings
from gameserver.state.redisretry import reconnect_once


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster (a :class:`RedisCluster`)."""
    return isinstance(client, RedisCluster)


def as_cluster(client: aioredis.Redis) -> RedisCluster:
    """``client`` as the :class:`RedisCluster` it is (check :func:`is_cluster` first)."""
    return cast(RedisCluster, client)


def redis_timeout(client: aioredis.Redis) -> float | None:
    """The client's ``socket_timeout`` (seconds), on one server or a cluster."""
    kwargs = (as_cluster(client).connection_kwargs if is_cluster(client)
              else client.connection_pool.connection_kwargs)
    timeout = kwargs.get("socket_timeout")
    return float(timeout) if timeout is not None else None


async def cluster_enabled(url: str, bound: float) -> bool:
    """Whether the node at ``url`` runs in cluster mode (``INFO cluster``)."""
    probe = aioredis.Redis.from_url(url, socket_timeout=bound,
                                    socket_connect_timeout=bound)
    try:
        info: dict[str, Any] = await probe.info("cluster")
        return str(info.get("cluster_enabled", 0)) == "1"
    finally:
        await probe.aclose()


async def wants_cluster(url: str, settings: Settings) -> bool:
    """The mode ``PETBOX_REDIS_CLUSTER`` asks for (``auto``: what the node says)."""
    if settings.redis_cluster == "auto":
        return await cluster_enabled(url, settings.redis_timeout)
    return settings.redis_cluster == "on"


def redis_pool(url: str, settings: Settings) -> aioredis.BlockingConnectionPool:
    """The Redis connections of one process: at least as many as it admits requests
    (``max_inflight``), and a request that finds them all busy waits for one (at most
    ``redis_timeout``, then 503) instead of failing at once as a plain pool does."""
    return aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=False, socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout, retry=reconnect_once(),
        max_connections=settings.effective_redis_max_connections,
        timeout=settings.redis_timeout)


def cluster_client(url: str, settings: Settings) -> RedisCluster:
    """A :class:`RedisCluster` from the URL of any of its nodes (``rediss://`` and
    ``user:password@`` work as for one server: every node gets the same options).

    ``max_connections`` is per node. Unlike the single-server pool, a node whose
    connections are all busy fails the command at once; admission control
    (``PETBOX_MAX_INFLIGHT``) keeps the busy ones below the bound.

    A command is sent again at most once (after a slot-map refresh, so a promoted
    replica is found): redis-py's default of 10 retries with back-off made one command
    to a paused master take 9-10 s, a killed one 4 s, against a 0.5 s bound."""
    return RedisCluster.from_url(
        # A slot without a master fails its own shards only (/readyz names them).
        url, decode_responses=False, require_full_coverage=False,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout, retry=reconnect_once(),
        max_connections=settings.effective_redis_max_connections)


async def open_redis(url: str, settings: Settings) -> aioredis.Redis:
    """The process's Redis client: a pooled :class:`~redis.asyncio.Redis`, or an
    initialised :class:`RedisCluster` (slot map read) when the URL names a cluster."""
    if not await wants_cluster(url, settings):
        return aioredis.Redis.from_pool(redis_pool(url, settings))
    client = cluster_client(url, settings)
    try:
        await client.initialize()
    except BaseException:
        await client.aclose()
        raise
    # Same command surface (module docstring); routing-aware code asks is_cluster().
    return cast(aioredis.Redis, client)
