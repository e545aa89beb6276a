"""Fixtures of the fault tests: redis-server children with AOF, in-process apps on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gameserver.ops.embedded import RedisProcess


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, AOF with ``appendfsync always``."""
    proc = RedisProcess(tmp_path / "redis", appendfsync="always")
    proc.start()
    yield proc
    proc.resume()
    proc.kill()


@pytest.fixture
async def make_world(aiohttp_client: Any, db_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """``await make_world(redis_url, **settings)``: an in-process petbox app with its
    persister running, on ``redis_url`` and this test's SQL (or ``database_url``), with
    a merchant whose game has a limited coupon (``harness.REL_CONFIG``)."""
    from gameserver.app import create_app
    from gameserver.clock import SystemClock
    from gameserver.db.database import Database
    from gameserver.ops.settings import Settings
    from tests.conftest import World
    from tests.reliability.harness import MERCHANT, REL_CONFIG

    dbs: list[Database] = []

    async def make(redis_url: str, **overrides: Any) -> World:
        settings = Settings(redis_url=redis_url, database_url=db_url,
                            data_dir=tmp_path / "data", token_secret="reliability-" + "x" * 16,
                            flush_interval=0.2, shards=4, run_persister=True,
                            access_log=False, redis_timeout=1.0)
        settings = settings.with_overrides(**overrides)
        db = Database(db_url)
        dbs.append(db)
        world = World(None, db, SystemClock(), REL_CONFIG)  # type: ignore[arg-type]
        await world.merchant(MERCHANT, game="squirrel", config=REL_CONFIG)
        world.client = await aiohttp_client(create_app(settings))
        return world

    yield make
    for db in dbs:
        await db.close()
