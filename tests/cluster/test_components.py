"""Parts beside the action path on a Redis Cluster: the shared rate limiter (its
player and IP keys live in different slots), the shadow purge (every master), and an
ACL user given in the URL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError

from gameserver.app import create_app
from gameserver.http.rates import RateLimit
from gameserver.jobs.lease import ShardLeases
from gameserver.ops.settings import Settings
from gameserver.ops.shadow import purge_shadow
from gameserver.services import SHADOW_PREFIX
from gameserver.state.batching import ScriptBatcher
from gameserver.state.keys import Keys
from gameserver.state.redisclient import open_redis
from tests.conftest import BASIC_CONFIG, World
from tests.redis_cluster import RedisCluster

GAME = "/v1/games/squirrel"
PRODUCTION_ACL = (
    "~pb:*", "~pbs:*", "resetchannels", "+@read", "+@write", "+@stream", "+@scripting",
    "+@connection", "+@transaction", "-@dangerous", "-flushall", "-flushdb",
    "-keys", "-config", "-debug", "-shutdown", "-script|flush", "-migrate", "-restore",
    "-monitor", "-cluster", "-acl", "-module", "-save", "-bgsave", "-bgrewriteaof",
    # after -@dangerous (rules apply in order): INFO (discovery), and on a Redis
    # Cluster the slot map and ASKING for a slot being migrated
    "+info", "+cluster|slots", "+cluster|shards", "+cluster|info", "+asking")
"""docs/deployment.md's user for petbox."""


async def test_shared_budgets_span_slots_and_processes(aiohttp_client: Any, settings: Any,
                                                      clock: Any, db: Any) -> None:
    """Two apps (two processes) on the cluster: the player's budget (its shard's slot)
    and the IP's (a slot of its own) are both shared."""
    rates = settings.with_overrides(rate_shared=True, rate_player=RateLimit(0.01, 3),
                                    rate_ip=RateLimit(0.01, 7))
    first = await aiohttp_client(create_app(rates, clock=clock))
    second = await aiohttp_client(create_app(rates, clock=clock))
    world = World(first, db, clock, BASIC_CONFIG)
    await world.merchant()
    alice, bob = await world.token("alice"), await world.token("bob")

    async def me(client: Any, token: str) -> int:
        resp = await client.get(f"{GAME}/me", headers={"Authorization": f"Bearer {token}"})
        return int(resp.status)

    assert [await me(first, alice) for _ in range(3)] == [200] * 3
    assert await me(second, alice) == 429  # alice's budget, spent on the first app
    assert [await me(second, bob), await me(first, bob)] == [200, 200]
    # The IP's budget of 7 is spent (2 sessions, 5 requests allowed; a request the
    # player limit refused did not count), though bob has one request left.
    resp = await second.get(f"{GAME}/me", headers={"Authorization": f"Bearer {bob}"})
    assert (resp.status, (await resp.json())["error"]["details"]["limit"]) == (429, "ip")


async def test_merchant_budgets_are_shared_on_the_cluster(aiohttp_client: Any, settings: Any,
                                                        clock: Any, db: Any) -> None:
    """The merchant's budget and its IP's failed-authentication budget (looked at with
    a peek, spent by a 401) hold across two apps on the cluster."""
    rates = settings.with_overrides(rate_shared=True, rate_merchant=RateLimit(0.01, 3),
                                    rate_merchant_auth=RateLimit(0.01, 2))
    first = await aiohttp_client(create_app(rates, clock=clock))
    second = await aiohttp_client(create_app(rates, clock=clock))
    creds = await World(first, db, clock, BASIC_CONFIG).merchant()
    stock = "/v1/admin/games/squirrel/stock"

    async def get(client: Any, key: str) -> tuple[int, str | None]:
        resp = await client.get(stock, headers={"Authorization": f"Bearer {key}"})
        return resp.status, (await resp.json()).get("error", {}).get("details", {}).get("limit")

    assert [await get(first, creds.api_key) for _ in range(3)] == [(200, None)] * 3
    assert await get(second, creds.api_key) == (429, "merchant")
    assert [await get(c, "pbk_wrong") for c in (first, second, first)] == [
        (401, None), (401, None), (429, "merchant_auth")]


async def test_shadow_purge_empties_every_master(redis_cluster: RedisCluster,
                                                 redis_url: str) -> None:
    shadow, real = Keys(SHADOW_PREFIX), Keys()
    for shard in range(64):  # tags over many slots, so over every master
        for keys in (shadow, real):
            redis_cluster_client(redis_cluster).set(keys.epoch(shard), "e")
    per_master = [_count(redis_cluster, node, "pbs:*") for node in redis_cluster.masters]
    assert sum(per_master) == 64 and all(per_master), per_master

    removed, rows = await purge_shadow(redis_url, None)
    assert (removed, rows) == (64, 0)
    assert [_count(redis_cluster, n, "pbs:*") for n in redis_cluster.masters] == [0, 0, 0]
    assert sum(_count(redis_cluster, n, "pb:*") for n in redis_cluster.masters) == 64


def redis_cluster_client(cluster: RedisCluster) -> redis.RedisCluster:
    return redis.RedisCluster(host="127.0.0.1", port=cluster.masters[0].port)


def _count(cluster: RedisCluster, node: Any, pattern: str) -> int:
    return len(list(cluster.client(node).scan_iter(match=pattern, count=1000)))


async def test_an_acl_user_in_the_url_is_every_connection_s_user(
        redis_cluster: RedisCluster, redis_url: str) -> None:
    """``redis://user:password@node``: discovery, the batcher's own per-node connections
    and the client's all log in as that user, whose rules are docs/deployment.md's
    (``pb:*`` keys only, no dangerous commands, the few CLUSTER reads a client needs)."""
    for node in redis_cluster.masters:
        redis_cluster.client(node).execute_command(
            "ACL", "SETUSER", "petbox", "reset", "on", ">s3cret-pw", *PRODUCTION_ACL)
    try:
        url = redis_url.replace("redis://", "redis://petbox:s3cret-pw@")
        client = await open_redis(url, Settings(redis_url=url))
        batcher = ScriptBatcher(client)
        try:
            incr = batcher.script("return redis.call('INCR', KEYS[1])")
            keys = [f"pb:{{acl{i}}}" for i in range(30)]  # over every master
            assert await asyncio.gather(*(incr(keys=[k]) for k in keys)) == [1] * 30
            with pytest.raises(NoPermissionError):
                await incr(keys=["other:{acl0}"])
            with pytest.raises(NoPermissionError):
                await client.set("other:{acl1}", 1)
        finally:
            await batcher.aclose()
            await client.aclose()
        with pytest.raises(AuthenticationError):
            await open_redis(redis_url.replace("redis://", "redis://petbox:wrong@"),
                             Settings(redis_url=url))
    finally:
        for node in redis_cluster.masters:
            redis_cluster.client(node).execute_command("ACL", "DELUSER", "petbox")


async def test_shard_leases_work_on_masters_that_lack_the_lease_scripts(
        redis_cluster: RedisCluster, redis_url: str) -> None:
    """Renewing and releasing shard leases is pipelined; on a cluster, masters that never
    ran those scripts (a new cluster, a restarted node, a promoted replica: Redis does
    not replicate its script cache) must still run them. A host whose pass failed on
    NOSCRIPT worked on no shard while its renewals on the other masters went through,
    so their shards were held by a host that never flushed them."""
    client = await open_redis(redis_url, Settings(redis_url=redis_url))
    try:
        for node in redis_cluster.masters:
            redis_cluster.client(node).script_flush()
        first = ShardLeases(client, "p", 16, 2000)
        assert await first.assign() == list(range(16))  # alone: takes every shard
        second = ShardLeases(client, "p", 16, 2000)
        for _ in range(3):  # a host joined: the first gives half back, the second takes it
            got = [await first.assign(), await second.assign()]
        assert sorted(got[0] + got[1]) == list(range(16))
        assert sorted(len(g) for g in got) == [8, 8]
        for node in redis_cluster.masters:  # every master fails over to a fresh replica
            redis_cluster.client(node).script_flush()
        assert await first.assign() == got[0]
        assert await second.assign() == got[1]
    finally:
        await client.aclose()
