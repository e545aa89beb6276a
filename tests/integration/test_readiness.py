"""``/readyz``'s SQL check under a burst: every connection the lines hand out busy."""

from __future__ import annotations

import asyncio

import pytest

from gameserver.api.ops import _sql
from gameserver.app import _open_db
from gameserver.appkeys import DB
from gameserver.db.database import Database
from gameserver.ops.settings import Settings


async def test_sql_is_ready_while_every_requests_connection_is_busy(db_url: str) -> None:
    """A burst keeps every request's call waiting its turn: SQL answers, so the host is
    ready (the probe had waited in the requests' line and answered 503 at the peak,
    which would take the host out of a load balancer's rotation)."""
    settings = Settings(sql_pool_size=2, sql_max_overflow=1, sql_timeout=5.0,
                        sql_pool_timeout=5.0)
    db = await _open_db(settings, db_url, embedded=False)
    assert db.line is not None and db.background_line is not None
    release = asyncio.Event()

    async def hold(on: Database) -> None:
        async with on.connect():
            await release.wait()

    holders = [asyncio.create_task(hold(db)) for _ in range(db.line.size)]
    holders += [asyncio.create_task(hold(db.background))
                for _ in range(db.background_line.size)]
    try:
        await asyncio.sleep(0.2)  # every connection the lines hand out is taken
        with pytest.raises(TimeoutError):  # a request's call waits its turn
            await asyncio.wait_for(db.ping(), 0.5)
        assert await _sql({DB: db}) == "ok"  # type: ignore[arg-type]
    finally:
        release.set()
        await asyncio.gather(*holders)
        await db.close()
