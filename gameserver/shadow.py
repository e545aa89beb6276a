"""Removing load-test (shadow) data: one Redis keyspace and one database.

Purging also gives the space back: a SQLite shadow database is checkpointed and
vacuumed (its WAL truncated), and with the embedded defaults (no
``PETBOX_REDIS_URL``) the purge finds the running server's embedded redis-server
by its data directory, or, with no server running, starts that redis-server on
its AOF itself, purges, rewrites the AOF and stops it again.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy import delete, func, select
from sqlalchemy.engine import make_url

from gameserver.db.database import Database
from gameserver.db.models import metadata
from gameserver.redisclient import open_redis
from gameserver.services import SHADOW_PREFIX
from gameserver.settings import Settings

SCAN_BATCH = 1000
REDIS_TIMEOUT_S = 10.0


async def purge_shadow_keys(client: aioredis.Redis) -> int:
    """UNLINK every ``pbs:`` key (SCAN in batches: never blocks Redis like KEYS would;
    on a cluster redis-py scans every master and splits each UNLINK by slot)."""
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


async def purge_shadow(redis_url: str, shadow_database_url: str | None,
                       rewrite_aof: bool = False,
                       settings: Settings | None = None) -> tuple[int, int]:
    """Purge both halves; returns (keys, rows) removed. On a Redis Cluster (discovered
    from ``redis_url``, or as ``settings.redis_cluster`` says) every master is scanned
    (``rewrite_aof`` is for one server: the embedded Redis)."""
    base = settings or Settings(redis_url=redis_url)
    client = await open_redis(redis_url, base.with_overrides(redis_timeout=REDIS_TIMEOUT_S))
    try:
        keys = await purge_shadow_keys(client)
        if rewrite_aof:
            await _rewrite_aof(client)
    finally:
        await client.aclose()
    rows = 0
    if shadow_database_url is not None:
        db = Database(shadow_database_url)
        try:
            rows = await purge_shadow_rows(db)
        finally:
            await db.close()
        reclaim_sqlite(shadow_database_url)
    return keys, rows


async def _rewrite_aof(client: aioredis.Redis, limit_s: float = 120.0) -> None:
    """Rewrite the AOF so deleted keys leave the disk too; waits for the rewrite."""
    await client.bgrewriteaof()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        info = await client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return
        await asyncio.sleep(0.05)


def reclaim_sqlite(url: str) -> bool:
    """Checkpoint (truncating the WAL) and VACUUM a SQLite database; False when busy or
    not SQLite (PostgreSQL's autovacuum reclaims deleted rows on its own)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return False
    conn = sqlite3.connect(parsed.database, timeout=10.0, isolation_level=None)
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return True
    except sqlite3.OperationalError:
        return False  # a server holds it busy: rows are gone, space comes back later
    finally:
        conn.close()


_TITLE_PORT = re.compile(r"redis-server\s+\S*:(\d+)(?:\s|$)")
"""The port in the process title redis-server gives itself (``redis-server
127.0.0.1:6379``), which replaces its command line."""


def running_embedded_redis(redis_dir: Path) -> str | None:
    """The URL of a redis-server already serving ``redis_dir`` (a running ``petbox
    serve``'s embedded one); None when there is none.

    Found by its command line when that still holds ``--dir`` and ``--port``; a running
    redis-server usually overwrites it with its title, so also by its working directory
    (redis-server changes into ``--dir``) and the port in that title. Missing it would
    start a second redis-server on the live AOF: it would purge its own copy and rewrite
    the files the running one appends to."""
    wanted = str(redis_dir.resolve())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if "--dir" in args and "--port" in args and args[args.index("--dir") + 1] == wanted:
                return f"redis://127.0.0.1:{args[args.index('--port') + 1]}/0"
            title = _TITLE_PORT.search(args[0])
            if title is not None and os.readlink(proc / "cwd") == wanted:
                return f"redis://127.0.0.1:{title[1]}/0"
        except (OSError, IndexError):
            continue  # gone meanwhile, or another user's
    return None


def purge_embedded(data_dir: Path, shadow_database_url: str | None) -> tuple[int, int]:
    """``purge_shadow`` for the embedded defaults: Redis in ``data_dir/redis``."""
    from gameserver.embedded import RedisProcess

    redis_dir = data_dir / "redis"
    live = running_embedded_redis(redis_dir)
    if live is not None:
        return asyncio.run(purge_shadow(live, shadow_database_url, rewrite_aof=True))
    with RedisProcess(redis_dir) as redis:
        return asyncio.run(purge_shadow(redis.url, shadow_database_url, rewrite_aof=True))
