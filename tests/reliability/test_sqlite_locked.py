"""SQLite's file locked by another process (a backup, a second writer, an operator's
``sqlite3`` shell in a transaction): a request's SQL call gives up within its bound
(``PETBOX_SQL_TIMEOUT``), as it does on a hung PostgreSQL (fault 10), instead of
waiting out the connection's busy timeout (the background bound, 10 s).

The statement waits for the lock in aiosqlite's thread, which the caller's bound cannot
stop: cancelling it made SQLAlchemy close the connection gracefully, and that close
queued behind the waiting statement, so a ``setStock`` answered 503 after 10.0 s.
Shopper play keeps going from Redis meanwhile.

SQLite only (PostgreSQL has no file to lock; its hang is fault 10).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.ops.embedded import RedisProcess
from tests.reliability.harness import GAME, MERCHANT

pytestmark = pytest.mark.slow

BOUND_S = 0.5
SLACK_S = 0.5
"""What a loaded 2-core machine may add to a bound (thread hand-offs, event loop)."""


def _sqlite_path(db_url: str) -> str:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only: a locked database file")
    return db_url.split("///", 1)[1]


@contextmanager
def _locked(path: str) -> Iterator[sqlite3.Connection]:
    """The database file write-locked by another connection until the block ends."""
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        yield lock
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def _merchant(merchant_id: str) -> dict[str, object]:
    return {"id": merchant_id, "name": merchant_id, "api_key_hash": merchant_id.ljust(64, "x"),
            "signing_secret": "s" * 32, "load_test": False, "created_at": 0}


async def _insert(db: Database, merchant_id: str) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(m.merchants).values(**_merchant(merchant_id)))


async def test_locked_file_write_gives_up_within_its_bound(db_url: str) -> None:
    path = _sqlite_path(db_url)
    db = Database(db_url, timeout=BOUND_S, background_timeout=10.0)
    try:
        await _insert(db, "warm")  # a pooled connection exists, set up for the background
        with _locked(path):
            started = time.monotonic()
            with pytest.raises(Exception) as refused:
                await _insert(db, "locked")
            elapsed = time.monotonic() - started
        print(f"locked write refused after {elapsed:.2f} s: {refused.value!r}")
        assert elapsed < BOUND_S + SLACK_S  # it took the busy timeout, 10.0 s, before

        # The background bound still waits for a lock held a little longer than the
        # request bound: each call gets its own bound, not the last caller's.
        with _locked(path) as lock:
            background = asyncio.ensure_future(_insert(db.background, "background"))
            await asyncio.sleep(BOUND_S * 3)
            assert not background.done()
            lock.execute("ROLLBACK")
            lock.execute("BEGIN")  # for the context's own ROLLBACK
            await asyncio.wait_for(background, 5.0)

        async with db.connect() as conn:
            names = set((await conn.execute(select(m.merchants.c.id))).scalars())
        assert names == {"warm", "background"}
        async with db.connect() as conn:  # the request bound is back, and the file free
            assert (await conn.execute(select(func.count()).select_from(
                m.merchants))).scalar_one() == 2
    finally:
        await db.close()


async def test_locked_file_merchant_503_in_time_while_shoppers_play(
        aof_redis: RedisProcess, db_url: str, make_world: Any) -> None:
    path = _sqlite_path(db_url)
    # No in-process persister: its background call would hold SQLite's one writer turn
    # for its own, longer bound, and the request would wait for that turn first.
    world = await make_world(aof_redis.url, run_persister=False, run_background=False,
                             sql_timeout=BOUND_S)
    tok = await world.token("shopper", MERCHANT)
    base = f"/v1/games/{GAME}"
    assert (await world.post(f"{base}/pet", tok, {"species": "squirrel", "name": "N"},
                             "adopt")).status == 201
    admin = {"Authorization": f"Bearer {world.merchants[MERCHANT].api_key}",
             "Idempotency-Key": "more-coupons"}
    stock = f"/v1/admin/games/{GAME}/stock/coupon_x"
    assert (await world.client.get(f"/v1/admin/games/{GAME}/stock",
                                   headers=admin)).status == 200  # the gate is up
    with _locked(path):
        started = time.monotonic()
        resp = await world.client.post(stock, json={"add": 5}, headers=admin)
        elapsed = time.monotonic() - started
        body = await resp.json()
        assert resp.status == 503, body
        assert int(resp.headers["Retry-After"]) >= 1
        print(f"setStock 503 after {elapsed:.2f} s")
        # The claim of the key (its own short transaction) and the stock change: each
        # SQL call gives up within its bound.
        assert elapsed < 2 * BOUND_S + SLACK_S  # 10.0 s before
        feed = await world.post(f"{base}/pet/feed", tok, {"food": "snack"}, "feed-1")
        assert feed.status == 200
    resp = await world.client.post(stock, json={"add": 5}, headers=admin)
    assert resp.status == 200, await resp.json()
    assert (await resp.json())["stock"]["total"] == 105
