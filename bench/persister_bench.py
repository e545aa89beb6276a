"""The persister's cost per action: CPU and wall time of persister passes over work
that real commits left in Redis.

    nice -n 5 .venv/bin/python bench/persister_bench.py                 # SQLite
    nice -n 5 .venv/bin/python bench/persister_bench.py \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test  # PostgreSQL

What it does (deterministic amounts of work; everything on 127.0.0.1):

1. Starts a redis-server of its own on a free loopback port (no persistence) and
   uses SQLite in a temp dir, or, with ``--database-url``, a scratch PostgreSQL
   database it creates next to the given one and drops at the end.
2. Publishes ``bench/bench_game.json`` (no leaderboards) and adopts a pet for
   ``--players`` players spread over ``--shards`` shards, through ``Store.run`` and
   the real load/commit scripts (adopt writes no ledger entry); a persister pass
   writes them to SQL, so the timed upserts update existing rows as in steady state.
3. One warm-up round, then ``--rounds`` timed rounds. A round commits ``--actions``
   feeds (players round-robin, one ledger entry each: the food's price) through
   ``Store.run``, untimed, then times persister passes (``run_once``) until the
   backlog is empty: one pass when everything fits in one, as at 3,000 actions/s
   with the default 1 s flush interval. The persister is the production one, with
   the leaderboard updater as its ``on_flushed`` callback.

Figures: CPU of this process (``time.process_time``, which counts the aiosqlite
worker thread too) and wall time per 1,000 actions, both the median over rounds;
ledger rows and player rows per SQL transaction (counted by SQLAlchemy engine
events: INSERT rows by table, per committed transaction); Redis round trips (writes
on the persister's connections) and SQL transactions per pass.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from sqlalchemy import event

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from gameserver.clock import ManualClock  # noqa: E402
from gameserver.db.database import Database  # noqa: E402
from gameserver.games import GameRegistry, parse_config  # noqa: E402
from gameserver.jobs.leaderboards import LeaderboardUpdater  # noqa: E402
from gameserver.ops.embedded import RedisProcess  # noqa: E402
from gameserver.ops.metrics import Metrics  # noqa: E402
from gameserver.ops.provision import create_merchant, publish_config  # noqa: E402
from gameserver.persister import Persister  # noqa: E402
from gameserver.state.keys import Keys, PlayerRef, shard_of  # noqa: E402
from gameserver.state.store import Store  # noqa: E402
from mechanics.pet import AdoptPet, FeedPet, adopt, feed  # noqa: E402

MERCHANT, GAME = "benchshop", "bench"
NOW = 1_767_225_600


class CountingConnection(Connection):
    """A Redis connection that counts its writes (one per command or pipeline)."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


class SqlCounter:
    """Rows INSERTed per table in each committed SQL transaction (engine events)."""

    _insert = re.compile(r"\s*INSERT\s+INTO\s+\"?(\w+)", re.IGNORECASE)

    def __init__(self, db: Database) -> None:
        self.transactions: list[Counter[str]] = []
        self._open: dict[int, Counter[str]] = {}
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._on_execute)
        event.listen(db.engine.sync_engine, "commit", self._on_commit)

    def _on_execute(self, conn: Any, _cursor: Any, statement: str, parameters: Any,
                    _context: Any, executemany: bool) -> None:
        found = self._insert.match(statement)
        if found:
            rows = len(parameters) if executemany else 1
            self._open.setdefault(id(conn), Counter())[found.group(1)] += rows

    def _on_commit(self, conn: Any) -> None:
        self.transactions.append(self._open.pop(id(conn), Counter()))

    def take(self) -> list[Counter[str]]:
        done, self.transactions = self.transactions, []
        return done


async def _scratch_postgres(admin_url: str) -> tuple[str, str]:
    """Create a scratch database next to ``admin_url``; returns (its URL, its name)."""
    name = f"petbox_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_url.rsplit('/', 1)[0]}/{name}", name


async def _drop_postgres(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Bench:
    def __init__(self, a: argparse.Namespace, redis_url: str, db: Database) -> None:
        self.a = a
        self.db = db
        self.clock = ManualClock(float(NOW))
        self.keys = Keys()
        self.filler = aioredis.Redis.from_url(redis_url)
        self.redis = aioredis.Redis.from_url(redis_url, connection_class=CountingConnection)
        self.store = Store(self.filler, self.keys, db, Metrics(), self.clock)
        self.config = parse_config(json.loads((BENCH / "bench_game.json").read_text()))
        self.rng = random.Random(1)
        self.players = [PlayerRef(MERCHANT, GAME, f"u{i:05d}",
                                  shard_of(MERCHANT, f"u{i:05d}", a.shards))
                        for i in range(a.players)]
        self.persister = Persister(self.redis, self.keys, db, Metrics(), self.clock,
                                   shards=a.shards, batch=a.batch, consumer="bench")
        self.persister.on_flushed.append(
            LeaderboardUpdater(self.redis, self.keys, GameRegistry(db)))
        self.sql = SqlCounter(db)
        self.n = 0

    async def close(self) -> None:
        await self.filler.aclose()
        await self.redis.aclose()

    async def _commit_all(self, jobs: list[tuple[PlayerRef, Any]]) -> None:
        queue = list(reversed(jobs))

        async def worker() -> None:
            while queue:
                ref, rule = queue.pop()
                self.n += 1
                await self.store.run(ref, f"k{self.n}", f"h{self.n}", rule)

        await asyncio.gather(*(worker() for _ in range(self.a.concurrency)))

    async def setup(self) -> None:
        species = AdoptPet("cat", "Tom")
        await self._commit_all([
            (ref, lambda s, now: adopt(s, species, now, self.rng, self.config))
            for ref in self.players])
        await self._drain()

    async def feed_round(self, first: int) -> None:
        kibble = FeedPet("kibble")
        await self._commit_all([
            (self.players[(first + i) % len(self.players)],
             lambda s, now: feed(s, kibble, now, self.rng, self.config))
            for i in range(self.a.actions)])

    async def _drain(self) -> tuple[int, Any]:
        passes = 0
        while True:
            report = await self.persister.run_once()
            passes += 1
            if not report.ok:
                raise RuntimeError(f"persister pass failed: {report.errors}")
            if (await self.persister.backlog()).empty:
                return passes, report

    async def timed_round(self, index: int) -> dict[str, Any]:
        await self.feed_round(index * self.a.actions)
        self.clock.advance(1)
        self.sql.take()
        gc.collect()
        cpu = wall = 0.0
        passes = ledger_rows = players = round_trips = 0
        while True:  # passes until drained; the backlog check is not timed
            writes0 = CountingConnection.writes
            cpu0, wall0 = time.process_time(), time.perf_counter()
            report = await self.persister.run_once()
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            round_trips += CountingConnection.writes - writes0
            passes += 1
            ledger_rows += report.ledger_rows
            players += report.players_flushed
            if not report.ok:
                raise RuntimeError(f"persister pass failed: {report.errors}")
            if (await self.persister.backlog()).empty:
                break
        txns = [t for t in self.sql.take() if t]
        per_k = 1000 / self.a.actions
        return {
            "passes": passes,
            "cpu_ms_per_1k": cpu * 1000 * per_k,
            "wall_ms_per_1k": wall * 1000 * per_k,
            "ledger_rows": ledger_rows,
            "player_rows": players,
            "ledger_txns": sum(1 for t in txns if t["ledger"]),
            "player_txns": sum(1 for t in txns if t["players"]),
            "sql_txns": len(txns),
            "redis_round_trips": round_trips,
        }


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    ledger = sum(r["ledger_rows"] for r in rounds)
    players = sum(r["player_rows"] for r in rounds)
    ltx = sum(r["ledger_txns"] for r in rounds)
    ptx = sum(r["player_txns"] for r in rounds)
    passes = sum(r["passes"] for r in rounds)
    return {
        "cpu_us_per_action": med("cpu_ms_per_1k"),  # ms per 1,000 = µs per action
        "cpu_ms_per_1k_min_max": [min(r["cpu_ms_per_1k"] for r in rounds),
                                  max(r["cpu_ms_per_1k"] for r in rounds)],
        "wall_ms_per_1k": med("wall_ms_per_1k"),
        "ledger_rows_per_txn": ledger / ltx if ltx else 0.0,
        "player_rows_per_txn": players / ptx if ptx else 0.0,
        "sql_txns_per_pass": sum(r["sql_txns"] for r in rounds) / passes,
        "redis_round_trips_per_pass": sum(r["redis_round_trips"] for r in rounds) / passes,
        "passes_per_round": passes / len(rounds),
    }


async def run(a: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pb-persister-bench-") as tmp:
        redis_proc = RedisProcess(Path(tmp) / "redis", appendonly=False)
        redis_proc.start()
        scratch = None
        if a.database_url:
            url, scratch = await _scratch_postgres(a.database_url)
        else:
            url = f"sqlite+aiosqlite:///{tmp}/petbox.db"
        db = Database(url)
        bench = None
        try:
            await db.migrate()
            await create_merchant(db, MERCHANT, NOW)
            await publish_config(db, MERCHANT, GAME,
                                 json.loads((BENCH / "bench_game.json").read_text()), NOW)
            bench = Bench(a, redis_proc.url, db)
            await bench.setup()
            await bench.timed_round(0)  # warm-up: statements compiled, caches filled
            rounds = [await bench.timed_round(i + 1) for i in range(a.rounds)]
        finally:
            if bench is not None:
                await bench.close()
            await db.close()
            redis_proc.kill()
            if scratch is not None:
                await _drop_postgres(a.database_url, scratch)
    return {"backend": db.dialect, "players": a.players, "actions_per_round": a.actions,
            "shards": a.shards, "batch": a.batch, "rounds": rounds, "summary": _summary(rounds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--players", type=int, default=2000)
    p.add_argument("--actions", type=int, default=3000, help="feeds committed per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--batch", type=int, default=2000, help="the persister's batch size")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent commits (untimed)")
    p.add_argument("--database-url", default="",
                   help="a PostgreSQL URL (postgresql+asyncpg://…/db): the bench creates and "
                        "drops a scratch database beside it; default: SQLite in a temp dir")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()
    result = asyncio.run(run(a))
    s = result["summary"]
    print(f"{result['backend']}: {a.players} players, {a.actions} actions per round, "
          f"{a.shards} shards, {a.rounds} rounds")
    print(" round  passes  cpu ms/1k  wall ms/1k  ledger rows/txn  player rows/txn"
          "  sql txns  redis round trips")
    for i, r in enumerate(result["rounds"], 1):
        print(f" {i:>5} {r['passes']:>7} {r['cpu_ms_per_1k']:>10.1f} {r['wall_ms_per_1k']:>11.1f}"
              f" {r['ledger_rows'] / max(1, r['ledger_txns']):>16.0f}"
              f" {r['player_rows'] / max(1, r['player_txns']):>16.0f}"
              f" {r['sql_txns']:>9} {r['redis_round_trips']:>18}")
    print(f"median: CPU {s['cpu_us_per_action']:.1f} µs per action "
          f"(rounds {s['cpu_ms_per_1k_min_max'][0]:.1f}–{s['cpu_ms_per_1k_min_max'][1]:.1f}), "
          f"wall {s['wall_ms_per_1k']:.1f} ms per 1,000 actions; "
          f"{s['ledger_rows_per_txn']:.0f} ledger rows and {s['player_rows_per_txn']:.0f} "
          f"player rows per transaction; {s['sql_txns_per_pass']:.1f} SQL transactions and "
          f"{s['redis_round_trips_per_pass']:.0f} Redis round trips per pass")
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
