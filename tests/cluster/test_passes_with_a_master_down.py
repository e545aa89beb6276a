"""Background passes on a Redis Cluster with one master paused (SIGSTOP: it holds its
data but answers nothing): the pass does the work on the other masters, names what it
skipped, and does the skipped work on the first pass after the master answers again.

Each test has a cluster of its own (3 masters, no replicas: no failover takes the
paused master's slots over) and a short Redis bound, so a silent node costs a pass
about that bound per key it holds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from redis.crc import key_slot
from redis.exceptions import TimeoutError as RedisTimeoutError

from gameserver.ops.embedded import RedisProcess
from gameserver.ops.settings import Settings
from gameserver.state.redisclient import open_redis
from tests.redis_cluster import RedisCluster, running_cluster

REDIS_BOUND = 0.5


@pytest.fixture
def paused_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A cluster of this test's own: the test pauses one of its masters."""
    with running_cluster(tmp_path_factory.mktemp("paused")) as cluster:
        yield cluster


@pytest.fixture
def redis_url(paused_cluster: RedisCluster) -> str:
    return paused_cluster.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(redis_timeout=REDIS_BOUND)


def pause(node: RedisProcess) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGSTOP)


def resume(cluster: RedisCluster, node: RedisProcess) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGCONT)
    cluster.wait_ok()


def on(cluster: RedisCluster, key: str) -> RedisProcess:
    return cluster.owner(key_slot(key.encode()))


async def test_a_command_to_a_paused_master_fails_within_two_bounds(
        paused_cluster: RedisCluster, redis_url: str) -> None:
    """One retry (after a slot-map refresh), as on one server: redis-py's default of
    10 retries with back-off took 9-10 s per command for a 0.5 s bound, so every
    background key on a paused master cost a pass that long."""
    client = await open_redis(redis_url, Settings(redis_url=redis_url,
                                                  redis_timeout=REDIS_BOUND))
    try:
        key = "pbtest:{paused}"
        await client.set(key, 1)
        victim = on(paused_cluster, key)
        pause(victim)
        try:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError):
                    await client.get(key)
                assert time.monotonic() - started < 2 * REDIS_BOUND + 0.3
        finally:
            resume(paused_cluster, victim)
        assert await client.get(key) == b"1"
    finally:
        await client.aclose()
