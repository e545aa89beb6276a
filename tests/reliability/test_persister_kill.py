"""Fault 2: the persister process SIGKILLed between its SQL commit and its XACK.

A persister child pauses right after committing a ledger batch (before XACK) and
is SIGKILLed there, several times, while shoppers play against a server that runs
no persister of its own. Each time the killed batch is still pending in the
consumer group and already in SQL. Then the standalone ``petbox persister`` runs:
it re-reads those entries first; the SQL row count of the killed batches must not
change, and the usual invariants must hold (Σ ledger = balance, every acknowledged
draw and grant in SQL, nothing twice).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.ops.embedded import RedisProcess, free_port
from gameserver.state.keys import LEDGER_GROUP, Keys
from tests.reliability.harness import (
    Book,
    Driver,
    ServerProc,
    base_env,
    check_invariants,
    provision,
    reconcile_all,
    spawn,
    sql_facts,
    write_figures,
)

pytestmark = pytest.mark.slow
KILLS = 4


async def _sql_rows(db: Database, commits: list[str]) -> int:
    t = m.ledger
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(t).where(
            t.c.commit_id.in_(commits)))).scalar_one())


async def _pending(redis: aioredis.Redis, shards: int) -> int:
    total = 0
    for shard in range(shards):
        try:
            info = await redis.xpending(Keys().ledger(shard), LEDGER_GROUP)
        except Exception:
            continue
        total += int(info["pending"])
    return total


async def _kill_in_window(env: dict[str, str], marker_dir: Path) -> list[str]:
    marker = marker_dir / "committed"
    marker.unlink(missing_ok=True)
    child = spawn(env, "tests.reliability.persister_child", str(marker_dir))
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert child.poll() is None and time.monotonic() < deadline
        await asyncio.sleep(0.02)
    child.kill()
    child.wait()
    return marker.read_text().split()


async def test_persister_killed_between_commit_and_ack(aof_redis: RedisProcess, db_url: str,
                                                       tmp_path: Path) -> None:
    env = base_env(tmp_path, aof_redis.url, db_url, PETBOX_RUN_PERSISTER="0")
    creds = provision(env, tmp_path)
    server = ServerProc(env, free_port(), tmp_path / "server.log")
    server.start()
    book = Book()
    driver = Driver(server.base, creds, [f"p{i}" for i in range(8)], book)
    load = asyncio.create_task(driver.run())
    redis = aioredis.from_url(aof_redis.url)
    db = Database(db_url)
    killed: list[tuple[int, int, int]] = []
    try:
        await asyncio.sleep(1)
        for _ in range(KILLS):
            commits = await _kill_in_window(env, tmp_path)
            pending = await _pending(redis, 4)
            killed.append((len(commits), await _sql_rows(db, commits), pending))
            assert pending > 0  # committed to SQL, never acknowledged
            await asyncio.sleep(0.5)
        driver.stop.set()
        await asyncio.wait_for(load, 30)
        all_killed = (tmp_path / "committed").read_text().split()
        persister = spawn(env, "gameserver.cli", "persister")
        deadline = time.monotonic() + 60
        while await _pending(redis, 4) or await redis.xlen(Keys().ledger(0)) + sum(
                [await redis.xlen(Keys().ledger(s)) for s in range(1, 4)]):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        persister.terminate()
        assert persister.wait(60) == 0
        rows_after = await _sql_rows(db, all_killed)
        assert rows_after == killed[-1][1]  # redelivery added no row
        assert server.terminate() == 0
        await reconcile_all(aof_redis.url, db_url)
        facts = await sql_facts(db)
    finally:
        await redis.aclose()
        await db.close()
    figures = check_invariants(facts, book)
    figures.update(kills_between_commit_and_ack=len(killed),
                   killed_batches=[{"commits": c, "sql_rows": r, "pending_entries": p}
                                   for c, r, p in killed],
                   rows_after_redelivery=rows_after, backend=db_url.split(":", 1)[0])
    write_figures("persister_sigkill_before_xack", figures)
