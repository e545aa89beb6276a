"""The merchant cache: fresh for a bounded age, a bounded fallback while SQL is down.

Real SQL throughout; "SQL down" is a database whose server refuses connections (a
closed loopback port), so the lookup fails as it would in an outage.
"""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import update

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.http.errors import UNAVAILABLE
from gameserver.merchants import MerchantDirectory
from gameserver.ops.provision import create_merchant


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _rotate(db: Database, merchant: str, secret: str) -> None:
    async with db.begin() as conn:
        await conn.execute(update(m.merchants).where(m.merchants.c.id == merchant)
                           .values(signing_secret=secret))


async def test_rotated_secret_takes_effect_after_the_fresh_age(db: Database) -> None:
    await create_merchant(db, "shop", 0)
    cached = MerchantDirectory(db, fresh=300)
    uncached = MerchantDirectory(db, fresh=0)
    first = await cached.by_id("shop")
    assert first is not None and await uncached.by_id("shop") == first
    await _rotate(db, "shop", "rotated")
    assert (await cached.by_id("shop")) == first  # within the fresh age: the old one
    assert (await uncached.by_id("shop")).signing_secret == "rotated"  # type: ignore[union-attr]
    cached._by_id["shop"] = (time.monotonic() - 301, first)  # the fresh age has passed
    assert (await cached.by_id("shop")).signing_secret == "rotated"  # type: ignore[union-attr]


async def test_sql_down_falls_back_within_the_max_age_only(db: Database) -> None:
    await create_merchant(db, "shop", 0)
    merchant = await MerchantDirectory(db).by_id("shop")
    assert merchant is not None
    down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/none",
                    timeout=1.0)
    try:
        directory = MerchantDirectory(down, fresh=0, max_age=3600)
        directory._by_id["shop"] = (time.monotonic() - 3000, merchant)
        assert await directory.by_id("shop") == merchant  # stale but within the max age
        directory._by_id["shop"] = (time.monotonic() - 3601, merchant)
        with pytest.raises(UNAVAILABLE):
            await directory.by_id("shop")  # too old: not used, the caller answers 503
        directory._by_id["ghost"] = (time.monotonic() - 20, None)  # past the miss ttl
        with pytest.raises(UNAVAILABLE):
            await directory.by_id("ghost")  # a remembered miss is no fallback
        with pytest.raises(UNAVAILABLE):
            await directory.by_id("never-seen")
    finally:
        await down.close()


async def test_concurrent_misses_of_one_merchant_share_one_sql_read(db: Database) -> None:
    """300 sign-ins of one merchant reach a cold process at once: one SQL read serves
    them all (counted by SQLAlchemy's own statement event on the real engine)."""
    import asyncio

    from sqlalchemy import event

    creds = await create_merchant(db, "shop", 0)
    reads: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM merchants" in statement:
            reads.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        directory = MerchantDirectory(db)
        found = await asyncio.gather(*(directory.by_id("shop") for _ in range(300)))
        by_key = await asyncio.gather(*(directory.by_api_key(creds.api_key)
                                        for _ in range(300)))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert {f.id for f in found if f is not None} == {"shop"} and None not in found
    assert {f.id for f in by_key if f is not None} == {"shop"} and None not in by_key
    assert len(reads) == 2  # one by id, one by key


async def test_a_flood_of_wrong_api_keys_does_not_evict_the_real_ones(db: Database) -> None:
    """Past ``max_entries`` cached lookups the misses go and found merchants stay: a
    flood of wrong keys emptied the whole cache, so every merchant's next call went to
    SQL (seen here as a key revoked in SQL that its cache no longer outlives)."""
    creds = await create_merchant(db, "shop", 0)
    directory = MerchantDirectory(db, ttl=60, max_entries=20)
    assert (await directory.by_api_key(creds.api_key)).id == "shop"  # type: ignore[union-attr]
    for i in range(25):
        assert await directory.by_api_key(f"pbk_wrong{i:04d}") is None
    async with db.begin() as conn:  # revoked in SQL: only the cached entry still knows it
        await conn.execute(update(m.merchants).where(m.merchants.c.id == "shop")
                           .values(api_key_hash="0" * 64))
    assert (await directory.by_api_key(creds.api_key)).id == "shop"  # type: ignore[union-attr]
    assert len(directory._by_key) <= 21
