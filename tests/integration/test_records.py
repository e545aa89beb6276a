"""Typed records from a rule's outcome to their tables, through the ledger stream and
the persister (real redis-server, SQLite and PostgreSQL); and entries that servers
before typed records wrote (events in field ``e``) still land the same rows."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from economy.wallet import apply_currency
from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db import persist
from gameserver.db.database import Database
from gameserver.ops.metrics import Metrics
from gameserver.persister import Persister
from gameserver.state.keys import Keys, PlayerRef, shard_of
from gameserver.state.store import Rule, Store
from mechanics.boxes import draw_record, seed_record
from mechanics.outcome import Outcome, Record
from mechanics.state import PlayerState

SHARDS = 2
KEYS = Keys()
DRAW = {"series": "s1", "position": 0, "item": "acorn", "rarity": "common", "nonce": 7,
        "seed_hash": "ab" * 32, "client_seed": "c", "version": 3}
REVEALED = {"server_seed": "cd" * 32, "seed_hash": "ab" * 32, "nonces": 8}


def ref(user: str) -> PlayerRef:
    return PlayerRef("m1", "g1", user, shard_of("m1", user, SHARDS))


def with_records(*records: Record) -> Rule:
    def rule(state: PlayerState | None, now: int) -> Outcome:
        new = state.copy() if state else PlayerState(created_at=now)
        new.wallet, entries = apply_currency(new.wallet, {"coin": 1}, "test", {})
        return Outcome(new, {}, entries, records=list(records))
    return rule


@pytest.fixture
def persister(redis: aioredis.Redis, db: Database, clock: ManualClock) -> Persister:
    return Persister(redis, KEYS, db, Metrics(), clock, shards=SHARDS, consumer="c1")


async def draws(db: Database) -> list[tuple[Any, ...]]:
    d = m.draws
    async with db.connect() as conn:
        rows = await conn.execute(select(
            d.c.commit_id, d.c.seq, d.c.merchant_id, d.c.game_id, d.c.user_id, d.c.series_id,
            d.c.item, d.c.rarity, d.c.nonce, d.c.seed_hash, d.c.record, d.c.ts_ms,
        ).order_by(d.c.commit_id, d.c.seq))
        return [tuple(r) for r in rows]


async def seeds(db: Database) -> list[tuple[Any, ...]]:
    s = m.revealed_seeds
    async with db.connect() as conn:
        rows = await conn.execute(select(s.c.merchant_id, s.c.game_id, s.c.user_id,
                                         s.c.seed_hash, s.c.seed, s.c.revealed_ms))
        return [tuple(r) for r in rows]


async def entry_of(redis: aioredis.Redis, user: str) -> tuple[str, str, int]:
    """Commit id and entry time of the user's only ledger entry, and its field names."""
    [(entry_id, fields)] = await redis.xrange(KEYS.ledger(ref(user).shard))
    return fields[b"c"].decode(), "".join(sorted(k.decode() for k in fields)), int(
        entry_id.split(b"-")[0])


async def test_records_of_an_outcome_reach_their_tables(
        redis: aioredis.Redis, db: Database, clock: ManualClock,
        persister: Persister) -> None:
    store = Store(redis, KEYS, db, Metrics(), clock)
    await store.run(ref("alice"), "k1", "h1", with_records(draw_record(DRAW),
                                                           seed_record(REVEALED)))
    commit_id, names, ts = await entry_of(redis, "alice")
    assert names == "cdhknprstv"  # records in t (no field e any more), the state in n

    report = await persister.run_once()
    assert report.ok and report.ledger_entries == 1
    assert await draws(db) == [(commit_id, 0, "m1", "g1", "alice", "s1", "acorn", "common", 7,
                                "ab" * 32, DRAW, ts)]
    assert await seeds(db) == [("m1", "g1", "alice", "ab" * 32, "cd" * 32, ts)]


async def test_an_entry_of_an_older_server_lands_the_same_rows(
        redis: aioredis.Redis, db: Database, persister: Persister) -> None:
    """Before typed records, commit.lua wrote the rule's events as field ``e``: draws,
    value grants, revealed seeds and notes, in one list whose positions were the seqs."""
    events = [{"type": "stage_reached", "stage": "baby"}, {"type": "box_draw", **DRAW},
              {"type": "value_grant", "reservation": "prize:p", "series": "s1"},
              {"type": "box_seed_revealed", "at": 1, **REVEALED}]
    ledger = msgpack.packb([["currency", "coin", 1, 0, 1, "test"]])
    entry_id = await redis.xadd(KEYS.ledger(ref("bob").shard), {
        "c": "old1", "p": "m1:g1:bob", "v": 1, "d": ledger,
        "e": msgpack.packb(events), "k": "", "s": 200, "r": b"{}", "h": ""})
    ts = int(entry_id.split(b"-")[0])

    report = await persister.run_once()
    assert report.ok and (report.ledger_entries, report.ledger_rows) == (1, 1)
    assert await draws(db) == [("old1", 1, "m1", "g1", "bob", "s1", "acorn", "common", 7,
                                "ab" * 32, DRAW, ts)]
    assert await seeds(db) == [("m1", "g1", "bob", "ab" * 32, "cd" * 32, ts)]


async def test_a_record_sql_cannot_take_parks_its_entry_not_blocking(
        redis: aioredis.Redis, db: Database, clock: ManualClock,
        persister: Persister) -> None:
    """A record of a column this release does not know (a newer server's, while a
    deployment rolls) parks its entry for a persister that knows it."""
    store = Store(redis, KEYS, db, Metrics(), clock)
    await store.run(ref("alice"), "k1", "h1", with_records(Record("draws", {"colour": 1})))
    await store.run(ref("alice"), "k2", "h2", with_records(draw_record(DRAW)))
    report = await persister.run_once()
    assert report.ok
    assert (report.ledger_entries, report.ledger_parked, report.ledger_rows) == (1, 1, 1)
    assert [r[6] for r in await draws(db)] == ["acorn"]
    assert await redis.xlen(KEYS.ledger(ref("alice").shard)) == 0
    [(_, parked)] = await redis.xrange(KEYS.ledger_parked(ref("alice").shard))
    assert parked[b"k"] == b"k1"


async def test_a_redelivered_commit_adds_no_record_twice(db: Database) -> None:
    rows = persist.record_rows("c1", "m1", "g1", "u1", 5, enumerate(
        [draw_record(DRAW), seed_record(REVEALED)]))
    assert sorted(rows.records) == ["draws", "revealed_seeds"]
    for _ in range(2):
        await persist.insert_ledger(db, [], rows)
    assert await persist.count_rows(db, m.draws) == 1
    assert await persist.count_rows(db, m.revealed_seeds) == 1


def test_a_record_table_is_keyed_by_its_unique_key() -> None:
    assert persist.record_table("draws").key == ("commit_id", "seq")
    assert persist.record_table("revealed_seeds").key == (
        "merchant_id", "game_id", "user_id", "seed_hash")
    assert persist.record_table("revealed_seeds").filled == {"merchant_id", "game_id",
                                                             "user_id"}
    with pytest.raises(ValueError, match="unknown table 'nope'"):
        persist.record_table("nope")
    with pytest.raises(ValueError, match=r"draws has no column \['colour'\]"):
        persist.record_rows("c1", "m1", "g1", "u1", 5, [(0, Record("draws", {"colour": 1}))])
