"""Tests on a real 3-master Redis Cluster: every test here gets the cluster as its
Redis (``redis_url``, flushed on every master before the test) and 16 logical shards,
which spread over the 3 masters (6/5/5) and which a few hundred players cover."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gameserver.ops.settings import Settings
from gameserver.state.redisclient import open_redis
from tests.redis_cluster import RedisCluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: runs on a real Redis Cluster (tests/redis_cluster.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture
def redis_url(redis_cluster: RedisCluster) -> str:
    """The cluster (any node's URL: petbox discovers the rest), emptied first."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with 16 shards (the tests' usual 4 would leave a
    master without players)."""
    return settings.with_overrides(shards=16)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A cluster client (routed by slot), as the server opens it."""
    client = await open_redis(redis_url, Settings(redis_url=redis_url))
    yield client
    await client.aclose()
