"""Removing load-test (shadow) data: one Redis keyspace and one database."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy import delete, func, select

from gameserver.db.database import Database
from gameserver.db.models import metadata
from gameserver.services import SHADOW_PREFIX

SCAN_BATCH = 1000


async def purge_shadow_keys(client: aioredis.Redis) -> int:
    """UNLINK every ``pbs:`` key (SCAN in batches: never blocks Redis like KEYS would)."""
    removed = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{SHADOW_PREFIX}:*", count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            removed += await client.unlink(*batch)
            batch.clear()
    if batch:
        removed += await client.unlink(*batch)
    return removed


async def purge_shadow_rows(db: Database) -> int:
    """Empty every table of the shadow database except Alembic's; returns rows removed."""
    removed = 0
    async with db.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            removed += int((await conn.execute(select(func.count()).select_from(table)))
                           .scalar_one())
            await conn.execute(delete(table))
    return removed


async def purge_shadow(redis_url: str, shadow_database_url: str | None) -> tuple[int, int]:
    """Purge both halves; returns (keys, rows) removed."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = await purge_shadow_keys(client)
    finally:
        await client.aclose()
    rows = 0
    if shadow_database_url is not None:
        db = Database(shadow_database_url)
        try:
            rows = await purge_shadow_rows(db)
        finally:
            await db.close()
    return keys, rows
