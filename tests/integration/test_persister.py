"""The persister against a real redis-server and real SQL (SQLite and PostgreSQL).

State gets into Redis the way production writes it: ``Store.run`` with a small
rule, so every commit goes through commit.lua (state, ledger stream, dirty and
active marks).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from sqlalchemy import select

from economy.wallet import apply_currency
from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.db.persist import LedgerRow, PlayerRow, count_rows, upsert_players
from gameserver.ops.metrics import Metrics
from gameserver.persister import Backlog, PassReport, Persister
from gameserver.state.keys import LEDGER_GROUP, Keys, PlayerRef, by_shopper, shard_of, system_key
from gameserver.state.scripts import Script, load_script
from gameserver.state.store import Loaded, Rule, Store, decode_state, encode_state
from mechanics.outcome import Outcome
from mechanics.state import PlayerState

SHARDS = 4
KEYS = Keys()


def ref(user: str) -> PlayerRef:
    return PlayerRef("m1", "g1", user, shard_of("m1", user, SHARDS))


def earn(**deltas: int) -> Rule:
    """A rule that adds currencies (one ledger entry per currency, sorted by name)."""
    def rule(state: PlayerState | None, now: int) -> Outcome:
        new = state.copy() if state else PlayerState(created_at=now)
        new.wallet, entries = apply_currency(new.wallet, deltas, "test", {})
        new.last_seen = now
        return Outcome(new, {"wallet": new.wallet}, entries)
    return rule


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def store(redis: aioredis.Redis, db: Database, metrics: Metrics, clock: ManualClock) -> Store:
    return Store(redis, KEYS, db, metrics, clock)


@pytest.fixture
def previous(redis: aioredis.Redis, db: Database, metrics: Metrics, clock: ManualClock) -> Store:
    """A store committing as servers of the previous release did: their ledger entries
    carry no state (field ``n``), so the flush stage writes it after the ledger."""
    old = Store(redis, KEYS, db, metrics, clock)
    source = load_script("commit")
    without_state = source.replace(", 'n', a[3])", ")")
    assert without_state != source
    old._commit = Script(without_state, redis=redis)
    return old


@pytest.fixture
def make(redis: aioredis.Redis, db: Database, metrics: Metrics, clock: ManualClock) -> Any:
    def make(cls: type[Persister] = Persister, **kw: Any) -> Persister:
        kw.setdefault("consumer", "c1")
        kw.setdefault("database", db)
        database = kw.pop("database")
        return cls(redis, KEYS, database, metrics, clock, shards=SHARDS, **kw)
    return make


_key_counter = 0


async def play(store: Store, user: str, **deltas: int) -> None:
    global _key_counter
    _key_counter += 1
    await store.run(ref(user), f"k{_key_counter}", f"h{_key_counter}", earn(**deltas))


async def sql_players(db: Database) -> dict[str, tuple[int, bytes, int, int, int]]:
    p = m.players
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(p.c.user_id, p.c.version, p.c.state, p.c.created_at,
                                         p.c.last_seen, p.c.flushed_at))
        return {r[0]: (r[1], bytes(r[2]), r[3], r[4], r[5]) for r in rows}


async def sql_ledger(db: Database) -> list[tuple[Any, ...]]:
    t = m.ledger
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(t.c.commit_id, t.c.seq, t.c.merchant_id, t.c.game_id, t.c.user_id,
                   t.c.player_version, t.c.kind, t.c.name, t.c.delta, t.c.before, t.c.after,
                   t.c.reason, t.c.ts_ms, t.c.by_shopper)
            .order_by(t.c.ts_ms, t.c.commit_id, t.c.seq))
        return sorted(tuple(r) for r in rows)


async def stream_rows(redis: aioredis.Redis) -> list[tuple[Any, ...]]:
    """The ledger rows SQL must end up with, read straight from the streams."""
    import msgpack

    rows = []
    for shard in range(SHARDS):
        for entry_id, f in await redis.xrange(KEYS.ledger(shard)):
            merchant, game, user = f[b"p"].decode().split(":", 2)
            ts = int(entry_id.decode().split("-")[0])
            shopper = by_shopper(f[b"k"].decode())
            for seq, (kind, name, delta, before, after, reason) in enumerate(
                    msgpack.unpackb(f[b"d"])):
                rows.append((f[b"c"].decode(), seq, merchant, game, user, int(f[b"v"]), kind,
                             name, delta, before, after, reason, ts, shopper))
    return sorted(rows)


async def redis_state(redis: aioredis.Redis, user: str) -> tuple[int, bytes, bytes | None]:
    v, s, f = await redis.hmget(KEYS.player(ref(user)), ["v", "s", "f"])
    return int(v), s, f


async def total(redis: aioredis.Redis, what: str) -> int:
    n = 0
    for shard in range(SHARDS):
        if what == "dirty":
            n += await redis.zcard(KEYS.dirty(shard))
        elif what == "active":
            n += await redis.zcard(KEYS.active(shard))
        else:
            n += await redis.xlen(KEYS.ledger(shard))
    return n


async def pending(redis: aioredis.Redis) -> dict[str, int]:
    """Unacknowledged ledger entries per consumer, over all shards."""
    out: dict[str, int] = {}
    for shard in range(SHARDS):
        try:
            info = await redis.xpending(KEYS.ledger(shard), LEDGER_GROUP)
        except aioredis.ResponseError:
            continue
        for c in info["consumers"]:
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            out[name] = out.get(name, 0) + int(c["pending"])
    return out


NOW = 1_767_225_600


async def test_flush_and_ledger_drain_land_in_sql(store: Store, make: Any, db: Database,
                                                  redis: aioredis.Redis) -> None:
    await play(store, "alice", coins=5)
    await play(store, "alice", coins=3, gems=2)
    await play(store, "bob", gems=7)
    expected_ledger = await stream_rows(redis)
    assert len(expected_ledger) == 4

    report = await make().run_once()

    assert report == PassReport(ledger_entries=3, ledger_rows=4, players_flushed=2,
                                players_clean=2)
    assert await sql_ledger(db) == expected_ledger
    assert sorted(r[4:12] for r in expected_ledger if r[4] == "alice") == [
        ("alice", 1, "currency", "coins", 5, 0, 5, "test"),
        ("alice", 2, "currency", "coins", 3, 5, 8, "test"),
        ("alice", 2, "currency", "gems", 2, 0, 2, "test"),
    ]
    alice_v, alice_s, alice_f = await redis_state(redis, "alice")
    bob_v, bob_s, bob_f = await redis_state(redis, "bob")
    assert (alice_v, alice_f, bob_v, bob_f) == (2, b"2", 1, b"1")
    assert await sql_players(db) == {"alice": (2, alice_s, NOW, NOW, NOW),
                                     "bob": (1, bob_s, NOW, NOW, NOW)}
    assert alice_s == encode_state(PlayerState(created_at=NOW, wallet={"coins": 8, "gems": 2},
                                               last_seen=NOW))
    assert (await total(redis, "dirty"), await total(redis, "ledger")) == (0, 0)
    assert await pending(redis) == {}

    # Nothing left: a second pass writes nothing and changes nothing.
    assert await make().run_once() == PassReport()
    assert await sql_ledger(db) == expected_ledger
    assert await count_rows(db, m.players) == 2


async def test_who_made_each_commit_reaches_sql(store: Store, make: Any, db: Database,
                                               clock: ManualClock) -> None:
    """A commit made for a shopper (under a key no shopper can send: an order's) creates
    a player who has not played: its ledger rows are not the shopper's, the player's
    ``first_played_at`` is 0. Their first own commit sets it; later commits of either
    kind keep it. A player whose own commit created them played since creation."""
    await store.run(ref("olga"), system_key("order", "paid-o1"), "h1", earn(coins=5))
    await play(store, "pat", coins=1)
    await make().run_once()
    assert await first_played(db) == {"olga": 0, "pat": NOW}
    clock.advance(60)
    await play(store, "olga", coins=1)
    clock.advance(60)
    await store.run(ref("olga"), system_key("order", "refunded-o1"), "h2", earn(coins=-5))
    await make().run_once()

    assert await first_played(db) == {"olga": NOW + 60, "pat": NOW}
    assert sorted((r[4], r[8], r[13]) for r in await sql_ledger(db)) == [
        ("olga", -5, False), ("olga", 1, True), ("olga", 5, False), ("pat", 1, True)]
    olga = (await sql_players(db))["olga"]
    assert decode_state(olga[1]).played_at == NOW + 60  # what a read-through gets back


async def first_played(db: Database) -> dict[str, int | None]:
    p = m.players
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(p.c.user_id, p.c.first_played_at))
        return {r[0]: r[1] for r in rows}


async def test_older_version_never_overwrites_newer(store: Store, make: Any, db: Database,
                                                    redis: aioredis.Redis) -> None:
    await play(store, "alice", coins=1)
    await play(store, "alice", coins=1)
    persister = make()
    await persister.run_once()
    _, state_v2, _ = await redis_state(redis, "alice")

    # A stale writer (say, a persister that read version 1 long ago) is ignored.
    await upsert_players(db, [PlayerRow("m1", "g1", "alice", 1, b"stale", 1, 1, 1, 1)])
    assert await sql_players(db) == {"alice": (2, state_v2, NOW, NOW, NOW)}

    # Equal version: ignored too; newer: written.
    await upsert_players(db, [PlayerRow("m1", "g1", "alice", 2, b"same-version", 1, 1, 1, 1)])
    assert (await sql_players(db))["alice"][1] == state_v2
    await play(store, "alice", coins=1)
    await persister.run_once()
    _, state_v3, _ = await redis_state(redis, "alice")
    assert await sql_players(db) == {"alice": (3, state_v3, NOW, NOW, NOW)}


async def test_player_changed_during_flush_stays_dirty(previous: Store, make: Any,
                                                       db: Database, redis: aioredis.Redis,
                                                       clock: ManualClock) -> None:
    """The flush stage (commits of the previous release, whose entries carry no state)."""
    await play(previous, "alice", coins=1)

    class CommitsDuringFlush(Persister):
        async def _write_players(self, rows: list[PlayerRow]) -> None:
            await super()._write_players(rows)
            if rows[0].version == 1:
                await play(previous, "alice", coins=1)  # between HMGET and mark_flushed

    persister = make(CommitsDuringFlush, idle_evict_after=0)
    report = await persister.run_once()
    assert (report.players_flushed, report.players_clean, report.evicted) == (1, 0, 0)
    assert (await sql_players(db))["alice"][0] == 1
    version, _, flushed = await redis_state(redis, "alice")
    assert (version, flushed) == (2, b"1")
    assert await redis.zscore(KEYS.dirty(ref("alice").shard), "m1:g1:alice") == NOW * 1000

    clock.advance(1)
    report = await persister.run_once()
    assert (report.players_flushed, report.players_clean, report.evicted) == (1, 1, 1)
    assert (await sql_players(db))["alice"][0] == 2


@pytest.mark.parametrize("release", ["current", "previous"])
async def test_state_never_reaches_sql_ahead_of_its_ledger(
        release: str, store: Store, previous: Store, make: Any, db: Database,
        redis: aioredis.Redis) -> None:
    """A commit that lands after the pass drained the ledger, before the flush read the
    player: its state waits in Redis until its ledger entry (and stored response) is in
    SQL. Flushed at once, a Redis loss then would leave SQL a state whose ledger and
    acknowledged key it lacks, and the key's retry would apply again. The state of the
    drained entry goes with it (an entry of the previous release has none: SQL then has
    the ledger and no state until the next pass)."""
    server = store if release == "current" else previous
    await play(server, "alice", coins=1)

    class CommitsAfterDrain(Persister):
        async def _write_ledger(self, rows: list[LedgerRow],
                                events: Any = None) -> None:
            await super()._write_ledger(rows, events)
            if rows and rows[0].player_version == 1:
                await play(server, "alice", coins=5)  # v2: its entry is not drained yet

    persister = make(CommitsAfterDrain)
    report = await persister.run_once()
    if release == "current":  # v1's state came with v1's ledger; v2 waits for its own
        assert (report.ledger_rows, report.players_flushed, report.players_clean) == (1, 1, 0)
        assert (await sql_players(db))["alice"][0] == 1
        version, _, flushed = await redis_state(redis, "alice")
        assert (version, flushed) == (2, b"1")  # marked: v1 in SQL, v2 dirty
    else:
        assert (report.ledger_rows, report.players_flushed) == (1, 0)
        assert await sql_players(db) == {}  # v2 held back: SQL has v1's ledger, no state
    assert await total(redis, "dirty") == 1
    report = await persister.run_once()
    assert (report.ledger_rows, report.players_flushed, report.players_clean) == (1, 1, 1)
    assert (await sql_players(db))["alice"][0] == 2
    assert sorted((r[5], r[8]) for r in await sql_ledger(db)) == [(1, 1), (2, 5)]


async def test_crash_between_sql_commit_and_ack_duplicates_nothing(
        store: Store, make: Any, db: Database, redis: aioredis.Redis) -> None:
    for user in ("alice", "bob", "carol", "dave", "erin"):
        await play(store, user, coins=2, gems=1)
    expected = await stream_rows(redis)
    shards_used = {ref(u).shard for u in ("alice", "bob", "carol", "dave", "erin")}

    class CrashAfterCommit(Persister):
        async def _write_ledger(self, rows: Any, events: Any = None) -> None:
            await super()._write_ledger(rows, events)
            raise ConnectionResetError("process died after the SQL commit")

    crashed = await make(CrashAfterCommit, consumer="dead").run_once()
    assert {(stage, shard) for stage, shard, _ in crashed.errors} == {
        ("ledger", s) for s in shards_used}
    assert await sql_ledger(db) == expected  # committed ...
    assert await total(redis, "ledger") == 5  # ... but never acknowledged
    assert await pending(redis) == {"dead": 5}
    assert await total(redis, "dirty") == 5  # flush waits for its shard's ledger

    # Another persister claims the dead consumer's entries and writes them again.
    report = await make(consumer="live", claim_idle_ms=0).run_once()
    assert (report.ledger_entries, report.ledger_rows, report.players_flushed) == (5, 10, 5)
    assert report.ok
    assert await sql_ledger(db) == expected
    assert await count_rows(db, m.ledger) == 10
    assert await count_rows(db, m.responses) == 5  # one stored response per action, once
    assert await total(redis, "ledger") == 0
    assert await pending(redis) == {}


async def test_evicts_only_flushed_idle_players_and_reads_through(
        store: Store, make: Any, db: Database, redis: aioredis.Redis, clock: ManualClock,
        metrics: Metrics) -> None:
    await play(store, "alice", coins=4)
    await play(store, "bob", coins=1)
    persister = make(idle_evict_after=60)
    assert (await persister.run_once()).evicted == 0  # flushed, but not idle yet
    await play(store, "carol", coins=1)  # idle soon, but never flushed
    before = await store.read(ref("alice"))

    clock.advance(61)
    await play(store, "bob", coins=1)  # flushed earlier, active again now
    report = PassReport()
    await persister.evict_idle(report)  # every shard
    assert report.evicted == 1
    assert not await redis.exists(KEYS.player(ref("alice")))
    assert await redis.zscore(KEYS.active(ref("alice").shard), "m1:g1:alice") is None
    assert await redis.exists(KEYS.player(ref("bob")), KEYS.player(ref("carol"))) == 2
    assert metrics.evictions._value.get() == 1

    # The next full pass flushes carol and bob; carol is idle, so she goes too.
    report = await persister.run_once()
    assert (report.players_flushed, report.evicted) == (2, 1)
    assert await redis.exists(KEYS.player(ref("carol"))) == 0
    assert await total(redis, "active") == 1

    after = await store.read(ref("alice"))
    assert after == Loaded(before.state, 1, False)
    await play(store, "alice", coins=1)
    assert await redis_state(redis, "alice") == (2, encode_state(PlayerState(
        created_at=NOW, wallet={"coins": 5}, last_seen=NOW + 61)), None)
    assert metrics.read_through._value.get() == 2


async def test_redis_data_loss_detected_and_rehydrated(store: Store, make: Any, db: Database,
                                                      redis: aioredis.Redis,
                                                      metrics: Metrics) -> None:
    await play(store, "alice", coins=9)
    persister = make()
    lost: list[int] = []

    async def rebuild(shard: int) -> None:
        lost.append(shard)

    persister.on_data_loss.append(rebuild)
    assert (await persister.run_once()).lost_shards == []
    epochs = {s: await redis.get(KEYS.epoch(s)) for s in range(SHARDS)}
    assert all(epochs.values())
    assert {s: await db.get_meta(f"epoch:{s}") for s in range(SHARDS)} == {
        s: e.decode() for s, e in epochs.items()}
    _, state, _ = await redis_state(redis, "alice")

    await redis.flushall()
    # A fresh process (nothing cached) finds out from SQL.
    fresh = make(consumer="c2")
    fresh.on_data_loss.append(rebuild)
    report = await fresh.run_once()
    assert report.lost_shards == [0, 1, 2, 3]
    assert lost == [0, 1, 2, 3]
    assert fresh.recovering == set()
    assert metrics.data_loss_detected._value.get() == 4
    for s in range(SHARDS):
        new = await redis.get(KEYS.epoch(s))
        assert new is not None and new != epochs[s]
        assert await db.get_meta(f"epoch:{s}") == new.decode()

    # The old process sees the new epochs, not another loss.
    assert (await persister.run_once()).lost_shards == []
    assert lost == [0, 1, 2, 3]

    loaded = await store.read(ref("alice"))
    assert (loaded.version, loaded.in_redis) == (1, False)
    await play(store, "alice", coins=1)
    v, s, _ = await redis_state(redis, "alice")
    assert v == 2
    await fresh.run_once()
    assert (await sql_players(db))["alice"][:2] == (2, s)
    assert state != s


async def test_data_loss_recovering_until_callbacks_succeed(make: Any, redis: aioredis.Redis,
                                                            metrics: Metrics) -> None:
    persister = make()
    await persister.run_once()
    await redis.flushall()
    attempts: list[int] = []

    async def flaky(shard: int) -> None:
        attempts.append(shard)
        if len(attempts) <= SHARDS:
            raise RuntimeError("stock table unreachable")

    persister.on_data_loss.append(flaky)
    report = await persister.run_once()
    assert report.lost_shards == [0, 1, 2, 3]
    assert [e[:2] for e in report.errors] == [("epoch", s) for s in range(SHARDS)]
    assert persister.recovering == {0, 1, 2, 3}
    assert await redis.exists(*(KEYS.epoch(s) for s in range(SHARDS))) == 0

    report = await persister.run_once()
    assert report.ok and report.lost_shards == [0, 1, 2, 3]
    assert persister.recovering == set()
    assert attempts == [0, 1, 2, 3, 0, 1, 2, 3]
    assert metrics.data_loss_detected._value.get() == 4  # one loss per shard, not per try
    assert await persister.check_epochs() == []


async def test_a_shadow_purge_under_a_running_persister_is_no_data_loss_alarm(
        make: Any, redis: aioredis.Redis, metrics: Metrics, clock: ManualClock,
        caplog: pytest.LogCaptureFixture, tmp_path: Path, sqlite_template: Path) -> None:
    """``petbox shadow purge`` on a running server empties the shadow keyspace, epochs
    included: its persister said ``ERROR ... Redis lost the data of shard N`` once per
    shard without naming the keyspace, read by on-call as real data loss. It is one
    WARNING naming the shadow keyspace; a loss of the real keyspace stays an ERROR that
    names it."""
    from gameserver.ops.shadow import purge_shadow_keys

    shutil.copy(sqlite_template, tmp_path / "shadow.db")
    shadow_db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shadow.db'}")
    shadow = Persister(redis, Keys("pbs"), shadow_db, metrics, clock, shards=SHARDS,
                       consumer="c1")
    real = make()
    await shadow.run_once()
    await real.run_once()
    caplog.set_level(logging.INFO, logger="gameserver.persister")
    assert await purge_shadow_keys(redis) > 0
    assert await redis.exists(*(KEYS.epoch(s) for s in range(SHARDS))) == SHARDS
    assert (await shadow.run_once()).lost_shards == [0, 1, 2, 3]
    assert (await real.run_once()).lost_shards == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(
        "WARNING", "persister: the shadow keyspace (pbs:, load-test data) is empty for "
        "shard(s) 0-3, as `petbox shadow purge` leaves it; starting them afresh from the "
        "shadow database. Real data is not affected")]
    caplog.clear()
    await redis.unlink(KEYS.epoch(2))
    assert (await real.run_once()).lost_shards == [2]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(
        "ERROR", "persister: Redis lost the data of shard 2 of the real keyspace (pb:); "
        "recovering from SQL")]
    await shadow_db.close()


async def test_backlog_metrics(store: Store, make: Any, clock: ManualClock,
                               metrics: Metrics) -> None:
    await play(store, "alice", coins=1)
    clock.advance(5)
    await play(store, "bob", coins=1, gems=1)
    await play(store, "carol", coins=1)
    persister = make()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert await persister.update_gauges() == Backlog(dirty=3, ledger=3, lag_seconds=5.0)
    assert sample("petbox_persister_backlog", kind="dirty") == 3
    assert sample("petbox_persister_backlog", kind="ledger") == 3
    assert sample("petbox_persister_lag_seconds") == 5.0

    await persister.run_once()
    assert sample("petbox_persister_backlog", kind="dirty") == 0
    assert sample("petbox_persister_backlog", kind="ledger") == 0
    assert sample("petbox_persister_lag_seconds") == 0
    assert sample("petbox_persister_rows_total", kind="ledger") == 4
    assert sample("petbox_persister_rows_total", kind="players") == 3


def unreachable(db: Database, tmp_path: Path) -> Database:
    if db.dialect == "sqlite":
        return Database(f"sqlite+aiosqlite:///{tmp_path}")  # a directory: cannot open
    return Database("postgresql+asyncpg://postgres@127.0.0.1:1/test")


async def test_sql_down_keeps_backlog_in_redis_then_drains(
        store: Store, make: Any, db: Database, redis: aioredis.Redis, metrics: Metrics,
        tmp_path: Path) -> None:
    users = ("alice", "bob")
    for user in users:
        await play(store, user, coins=3)
    expected = await stream_rows(redis)
    bad = unreachable(db, tmp_path)
    try:
        down = make(database=bad)
        report = await down.run_once()
        stages = sorted({(stage, shard) for stage, shard, _ in report.errors})
        assert stages == sorted([("epoch", s) for s in range(SHARDS)]
                                + [("ledger", s) for s in {ref(u).shard for u in users}])
        assert (report.ledger_entries, report.players_flushed) == (0, 0)
        assert (await total(redis, "dirty"), await total(redis, "ledger")) == (2, 2)
        assert await pending(redis) == {"c1": 2}

        # The loop keeps going on errors, and stops when asked.
        errors = metrics.registry.get_sample_value(
            "petbox_persister_errors_total", {"stage": "ledger"})
        stop = asyncio.Event()
        task = asyncio.create_task(down.run(0.01, stop))
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert metrics.registry.get_sample_value(
            "petbox_persister_errors_total", {"stage": "ledger"}) > errors
        assert await down.final_flush(max_passes=2) is False  # gives up, keeps the backlog
    finally:
        await bad.close()
    assert (await total(redis, "dirty"), await total(redis, "ledger")) == (2, 2)

    # SQL is back: the same consumer picks its unacknowledged entries up at once.
    report = await make().run_once()
    assert report.ok
    assert (report.ledger_entries, report.players_flushed) == (2, 2)
    assert await sql_ledger(db) == expected
    assert set(await sql_players(db)) == {"alice", "bob"}
    assert (await total(redis, "dirty"), await total(redis, "ledger")) == (0, 0)


async def test_final_flush_drains_more_than_one_pass(store: Store, make: Any, db: Database,
                                                     redis: aioredis.Redis) -> None:
    users = [f"u{i}" for i in range(60)]
    for user in users:
        await play(store, user, coins=1)
    persister = make(batch=3, max_rounds=2)
    first = await persister.run_once()
    assert first.players_flushed < 60
    assert await persister.final_flush() is True
    assert await count_rows(db, m.players) == 60
    assert await count_rows(db, m.ledger) == 60
    assert (await total(redis, "dirty"), await total(redis, "ledger")) == (0, 0)


async def test_an_undecodable_ledger_entry_is_parked_not_dropped(
        store: Store, make: Any, db: Database, redis: aioredis.Redis, metrics: Metrics) -> None:
    """An entry the persister cannot decode (a newer release's, read by an older
    persister while a deployment rolls) leaves the ledger stream without blocking it,
    and waits whole in the shard's parked stream instead of being lost."""
    await play(store, "alice", coins=1)
    shard = ref("alice").shard
    garbage = {b"c": b"x", b"p": b"m1:g1:alice", b"v": b"1", b"d": b"\xc1"}
    garbage_id = await redis.xadd(KEYS.ledger(shard), garbage)
    await play(store, "alice", coins=2)
    persister = make()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    report = await persister.run_once()
    assert report.ok
    assert sample("petbox_persister_backlog", kind="parked") == 1
    assert (report.ledger_entries, report.ledger_parked, report.ledger_rows) == (2, 1, 2)
    assert sorted(r[5] for r in await sql_ledger(db)) == [1, 2]
    assert await count_rows(db, m.ledger) == 2
    assert sample("petbox_persister_errors_total", stage="ledger_decode") == 1
    assert await total(redis, "ledger") == 0
    assert await pending(redis) == {}
    parked = await redis.xrange(KEYS.ledger_parked(shard))
    assert [fields for _, fields in parked] == [{**garbage, b"parked_id": garbage_id}]

    again = await persister.run_once()  # still undecodable: it stays, once
    assert again.ok
    assert (again.ledger_entries, again.ledger_parked, again.parked_written) == (0, 0, 0)
    assert await redis.xrange(KEYS.ledger_parked(shard)) == parked
    assert sample("petbox_persister_backlog", kind="parked") == 1
    assert sample("petbox_persister_errors_total", stage="ledger_decode") == 1
    assert await count_rows(db, m.ledger) == 2


async def test_a_parked_entry_that_decodes_now_is_written_and_unparked(
        store: Store, make: Any, db: Database, redis: aioredis.Redis, metrics: Metrics) -> None:
    """A well-formed entry an older persister parked (a newer server's) is written by
    the next pass, at its original time, with its stored response, then unparked."""
    await play(store, "alice", coins=3)
    await play(store, "bob", coins=1)
    shard = ref("alice").shard
    expected = await stream_rows(redis)
    [(entry_id, fields)] = [entry for entry in await redis.xrange(KEYS.ledger(shard))
                            if entry[1][b"p"] == b"m1:g1:alice"]
    # As park_ledger.lua parks it: its fields and its original id, under a later id.
    await redis.xdel(KEYS.ledger(shard), entry_id)
    later = f"{int(entry_id.split(b'-')[0]) + 60_000}-0"
    await redis.xadd(KEYS.ledger_parked(shard), {**fields, b"parked_id": entry_id}, id=later)

    report = await make().run_once()
    assert report.ok
    assert (report.ledger_entries, report.parked_written, report.ledger_rows) == (1, 1, 2)
    assert await sql_ledger(db) == expected  # ts_ms: the original entry's
    assert await count_rows(db, m.responses) == 2
    assert await redis.xlen(KEYS.ledger_parked(shard)) == 0
    assert metrics.registry.get_sample_value(
        "petbox_persister_backlog", {"kind": "parked"}) == 0


# -- one pass for every shard: transactions, round trips, isolation ---------------------

ONE_PER_SHARD = {0: "u0", 1: "u4", 2: "u1", 3: "u5"}
"""A user of each of the four shards (``shard_of("m1", user, 4)``)."""


class CountingConnection(Connection):
    """Counts writes to Redis: one per command sent alone, one per pipeline."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


class Recording(Persister):
    """Records every SQL transaction of the persister's two writes, in order, and the
    player states each ledger transaction carried."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.calls: list[tuple[str, list[Any]]] = []
        self.states: list[list[PlayerRow]] = []

    async def _write_ledger(self, rows: list[LedgerRow], events: Any = None) -> None:
        self.calls.append(("ledger", list(rows)))
        self.states.append(list(events.players) if events else [])
        await super()._write_ledger(rows, events)

    async def _write_players(self, rows: list[PlayerRow]) -> None:
        self.calls.append(("players", list(rows)))
        await super()._write_players(rows)


def users_of(rows: list[Any]) -> list[str]:
    return sorted({row.user_id for row in rows})


async def test_a_pass_writes_every_shard_in_one_transaction_per_table(
        store: Store, make: Any, db: Database, redis_url: str, redis: aioredis.Redis,
        metrics: Metrics, clock: ManualClock) -> None:
    assert {shard: ref(user).shard for shard, user in ONE_PER_SHARD.items()} == {
        s: s for s in range(SHARDS)}
    counted = aioredis.from_url(redis_url, connection_class=CountingConnection)
    try:
        persister = Recording(counted, KEYS, db, metrics, clock, shards=SHARDS, consumer="c1")
        await persister.run_once()  # first pass: epochs and consumer groups are created
        await redis.script_load(load_script("mark_flushed"))  # as an earlier pass would
        for user in ONE_PER_SHARD.values():
            await play(store, user, coins=2, gems=1)
        await play(store, "u0", coins=1)
        expected = await stream_rows(redis)

        before = CountingConnection.writes
        report = await persister.run_once()
        trips = CountingConnection.writes - before
        assert report == PassReport(ledger_entries=5, ledger_rows=9, players_flushed=4,
                                    players_clean=4)
        # One transaction for the four shards: the ledger rows, then each player's
        # newest state (u0's second commit), rows in one key order. The flush stage
        # has nothing left to write.
        assert [kind for kind, _ in persister.calls] == ["ledger"]
        assert [tuple(row) for row in persister.calls[0][1]] == expected
        assert [row[:4] for row in persister.states[0]] == [
            ("m1", "g1", user, 2 if user == "u0" else 1) for user in ("u0", "u1", "u4", "u5")]
        # Round trips: epochs, the scan (ledger, dirty and idle of every shard), ack
        # with the flushed marks, the gauges.
        assert trips == 4
        assert await sql_ledger(db) == expected
        assert set(await sql_players(db)) == set(ONE_PER_SHARD.values())

        before = CountingConnection.writes
        assert await persister.run_once() == PassReport()
        assert CountingConnection.writes - before == 3  # epochs, scan, gauges
        assert len(persister.calls) == 1
    finally:
        await counted.aclose()


async def test_big_passes_are_split_into_transactions_of_whole_shards(
        store: Store, make: Any, db: Database, redis: aioredis.Redis) -> None:
    for user in ONE_PER_SHARD.values():
        await play(store, user, coins=2, gems=1)  # two ledger rows per shard
    expected = await stream_rows(redis)
    persister = make(Recording, txn_rows=4)
    report = await persister.run_once()
    assert (report.ok, report.ledger_rows, report.players_flushed) == (True, 8, 4)
    # 8 ledger rows at most 4 a transaction: shards 0 and 1, then 2 and 3, each with
    # its players' states.
    assert [(kind, users_of(rows)) for kind, rows in persister.calls] == [
        ("ledger", ["u0", "u4"]), ("ledger", ["u1", "u5"])]
    assert [users_of(states) for states in persister.states] == [["u0", "u4"], ["u1", "u5"]]
    assert [len(rows) for _, rows in persister.calls] == [4, 4]
    assert await sql_ledger(db) == expected


def poison(user: str) -> dict[str, Any]:
    """A ledger entry SQL rejects: a delta past 64 bits (sqlite3 and asyncpg refuse it)."""
    entries = [["currency", "coins", 2**64 - 1, 0, 2**64 - 1, "test"]]
    return {"c": "poison", "p": f"m1:g1:{user}", "v": 1,
            "d": msgpack.packb(entries, use_bin_type=True), "e": b""}


async def test_a_row_sql_rejects_holds_up_only_its_own_shard(
        store: Store, make: Any, db: Database, redis: aioredis.Redis,
        metrics: Metrics) -> None:
    for user in ("u0", "u4", "u1"):  # shards 0, 1, 2
        await play(store, user, coins=3)
    good = [r for r in await stream_rows(redis) if r[4] != "u4"]
    held = [r for r in await stream_rows(redis) if r[4] == "u4"]
    bad_id = await redis.xadd(KEYS.ledger(1), poison("u4"))
    persister = make(Recording)

    report = await persister.run_once()
    # The three shards' transaction fails; SQL answers, so each shard gets its own:
    # shards 0 and 2 go through, shard 1 keeps its entries and its dirty player.
    assert [(stage, shard) for stage, shard, _ in report.errors] == [("ledger", 1)]
    assert (report.ledger_entries, report.ledger_rows, report.players_flushed) == (2, 2, 2)
    assert [(kind, users_of(rows)) for kind, rows in persister.calls] == [
        ("ledger", ["u0", "u1", "u4"]), ("ledger", ["u0"]), ("ledger", ["u4"]),
        ("ledger", ["u1"])]  # each with its players' states
    assert [users_of(states) for states in persister.states] == [
        ["u0", "u1", "u4"], ["u0"], ["u4"], ["u1"]]
    assert await sql_ledger(db) == good
    assert set(await sql_players(db)) == {"u0", "u1"}  # u4's ledger is not in SQL: no flush
    assert await redis.xlen(KEYS.ledger(1)) == 2
    assert await pending(redis) == {"c1": 2}
    assert await redis.zrange(KEYS.dirty(1), 0, -1) == [b"m1:g1:u4"]
    assert metrics.registry.get_sample_value(
        "petbox_persister_errors_total", {"stage": "ledger"}) == 2  # the three, then shard 1

    # The entry is removed by hand: the next pass drains shard 1 and flushes u4.
    await redis.xack(KEYS.ledger(1), LEDGER_GROUP, bad_id)
    await redis.xdel(KEYS.ledger(1), bad_id)
    report = await persister.run_once()
    assert report.ok and (report.ledger_rows, report.players_flushed) == (1, 1)
    assert await sql_ledger(db) == sorted(good + held)
    assert set(await sql_players(db)) == {"u0", "u1", "u4"}
    assert (await total(redis, "dirty"), await total(redis, "ledger")) == (0, 0)


async def test_a_failed_cross_shard_transaction_is_retried_shard_by_shard(
        previous: Store, make: Any, db: Database, redis: aioredis.Redis,
        metrics: Metrics) -> None:
    """The flush stage's transactions (commits of the previous release: no states in
    their entries); the ledger stage's are tested by the test above."""
    for user in ONE_PER_SHARD.values():
        await play(previous, user, coins=1)
    expected = await stream_rows(redis)

    class FailsOnce(Recording):
        async def _write_players(self, rows: list[PlayerRow]) -> None:
            if len(rows) > 1:
                self.calls.append(("players", list(rows)))
                raise ConnectionResetError("lost mid-transaction")
            await super()._write_players(rows)

    persister = make(FailsOnce)
    report = await persister.run_once()
    assert report == PassReport(ledger_entries=4, ledger_rows=4, players_flushed=4,
                                players_clean=4)
    assert [(kind, users_of(rows)) for kind, rows in persister.calls] == [
        ("ledger", ["u0", "u1", "u4", "u5"]), ("players", ["u0", "u1", "u4", "u5"]),
        ("players", ["u0"]), ("players", ["u4"]), ("players", ["u1"]), ("players", ["u5"])]
    assert metrics.registry.get_sample_value(
        "petbox_persister_errors_total", {"stage": "flush"}) == 1
    assert await sql_ledger(db) == expected
    assert set(await sql_players(db)) == set(ONE_PER_SHARD.values())
    assert await total(redis, "dirty") == 0


async def test_scripts_redis_forgot_are_loaded_again(store: Store, make: Any, db: Database,
                                                     redis: aioredis.Redis,
                                                     clock: ManualClock) -> None:
    persister = make(idle_evict_after=60)
    await play(store, "alice", coins=1)
    await persister.run_once()
    await play(store, "alice", coins=1)
    await play(store, "bob", coins=1)
    clock.advance(61)
    await redis.script_flush()  # a restarted Redis: read, mark and evict are unknown
    report = await persister.run_once()
    assert report.ok
    assert (report.players_flushed, report.players_clean, report.evicted) == (2, 2, 2)
    assert {u: v[0] for u, v in (await sql_players(db)).items()} == {"alice": 2, "bob": 1}


async def test_eviction_reads_past_a_full_batch(store: Store, make: Any, db: Database,
                                                redis: aioredis.Redis,
                                                clock: ManualClock) -> None:
    users = ["u0", "u2", "u9", "u10", "u12"]  # all of shard 0
    for user in users:
        await play(store, user, coins=1)
    persister = make(batch=2, idle_evict_after=60)
    report = await persister.run_once()
    assert (report.ledger_entries, report.players_flushed, report.evicted) == (5, 5, 0)
    clock.advance(61)
    await play(store, "u9", coins=1)  # active again: stays
    report = await persister.run_once()
    assert (report.players_flushed, report.evicted) == (1, 4)
    assert await redis.zrange(KEYS.active(0), 0, -1) == [b"m1:g1:u9"]
    assert await redis.exists(*(KEYS.player(ref(u)) for u in users)) == 1


async def test_a_stored_key_longer_than_sql_keeps_is_digested_not_stuck(
        store: Store, make: Any, db: Database) -> None:
    """An entry from before server keys were bounded (an order's key was up to 79
    characters) failed its shard's ledger transaction on PostgreSQL every pass ("value
    too long"): it is now stored under a digest of its key, and the shard drains."""
    from gameserver.persister.wire import sql_key

    long_key = "order-paid-" + "o" * 68  # 79 characters, as ingestOrder once made them
    await store.run(ref("alice"), long_key, "h-long", earn(coins=5))
    await play(store, "bob", gems=1)

    report = await make().run_once()

    assert report.ok and report.ledger_entries == 2
    async with db.engine.connect() as conn:
        keys = sorted((await conn.execute(select(m.responses.c.user_id,
                                                 m.responses.c.idem_key))).all())
    digested = sql_key(long_key)
    assert len(digested) == 64 and digested.startswith("legacy~")
    assert [tuple(k) for k in keys] == [("alice", digested), ("bob", keys[1][1])]
    assert sql_key("k1") == "k1" and sql_key("x" * 64) == "x" * 64


async def test_a_persister_of_its_own_serves_its_metrics_when_asked(settings: Any) -> None:
    """``petbox persister`` (and the persister process of ``serve --workers N``) kept its
    metrics in a registry nobody could read: its failed hooks
    (``petbox_persister_errors_total``) and the work its flush hooks keep through an
    outage (``petbox_flush_hook_pending``) were invisible. With
    ``PETBOX_PERSISTER_METRICS_PORT`` it serves them."""
    from aiohttp import ClientSession

    from gameserver.ops.embedded import free_port
    from gameserver.persister import run_standalone

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(run_standalone(
        settings.with_overrides(persister_metrics_port=port), stop=stop))
    try:
        async with ClientSession() as http:
            for _ in range(100):  # until it listens (after its first checks)
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        body = await resp.text()
                        break
                except OSError:
                    assert not task.done(), task
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("no /metrics")
        assert resp.status == 200
        for name in ("petbox_persister_errors_total", "petbox_flush_hook_pending",
                     "petbox_persister_backlog"):
            assert f"# TYPE {name.removesuffix('_total')}" in body, name
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
