"""The aggregate store and its write-behind against a real redis-server and real SQL
(SQLite, and PostgreSQL when configured): version check across processes, idempotency
per shopper and key, refusals, owed records, the flush snapshot, eviction, and
read-through after Redis lost the aggregate (its keys answered from SQL)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from economy.errors import DomainError, Refusal
from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db.aggregates import AggregateArchive
from gameserver.db.database import Database
from gameserver.http.errors import IdempotencyMismatch
from gameserver.ops.metrics import Metrics
from gameserver.persister import Persister
from gameserver.persister.aggregates import ROUNDS
from gameserver.state.aggregates import AggregateStore, WireCodec, owed_field
from gameserver.state.keys import AggregateRef, Keys, PlayerRef
from gameserver.state.scripts import Script, load_script
from mechanics.aggregate import SharedOutcome

KEYS = Keys()
SHARDS = 4
REF = AggregateRef.of("m1", "g1", "pool", "p1", SHARDS)
SHOPPER = PlayerRef("m1", "g1", "u1", 2)


@dataclass
class Count:
    n: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"n": self.n}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Count:
        return cls(raw["n"])


CODEC = WireCodec(Count.from_wire)


class Empty(DomainError):
    code = "empty"
    kind = Refusal.CONFLICT


def add(k: int, owe: bool = False, limit: int = 10**9) -> Any:
    def rule(state: Count | None, now: int) -> SharedOutcome:
        n = (state or Count()).n
        if n + k > limit:
            raise Empty("full")
        return SharedOutcome(Count(n + k), {"n": n + k}, {"add": k},
                             {"effect": "test", "k": k} if owe else None)
    return rule


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_767_225_600.0)


def store(redis: aioredis.Redis, db: Database, clock: ManualClock) -> AggregateStore:
    return AggregateStore(redis, KEYS, AggregateArchive(db), clock)


def persister(redis: aioredis.Redis, db: Database, clock: ManualClock,
              batch: int = 100) -> Persister:
    return Persister(redis, KEYS, db, Metrics(), clock, shards=SHARDS, batch=batch,
                     consumer="t", idle_evict_after=60)


async def state_of(redis: aioredis.Redis) -> tuple[int, int]:
    v, s = await redis.hmget(KEYS.aggregate(REF), ["v", "s"])
    return int(v), CODEC.decode(s).n


async def test_two_processes_racing_commit_every_action_once(
        redis: aioredis.Redis, db: Database, clock: ManualClock) -> None:
    """Two stores (two processes' queues) on one aggregate, 40 commits each at once:
    version conflicts between them reload and apply again; nothing is lost."""
    a, b = store(redis, db, clock), store(redis, db, clock)
    replies = await asyncio.gather(*[s.run(REF, CODEC, f"{name}{i}", "k", "h", add(1))
                                     for i in range(40) for name, s in (("a", a), ("b", b))])
    assert sorted(orjson.loads(r.body)["response"]["n"] for r in replies) == list(range(1, 81))
    assert await state_of(redis) == (80, 80)
    assert await redis.xlen(KEYS.aggregate_ledger(REF.shard)) == 80


async def test_key_per_shopper_replays_and_mismatch(redis: aioredis.Redis, db: Database,
                                                    clock: ManualClock) -> None:
    s = store(redis, db, clock)
    first = await s.run(REF, CODEC, "u1", "k1", "h", add(5))
    again = await s.run(REF, CODEC, "u1", "k1", "h", add(5))
    assert (again.body, again.replayed, first.replayed) == (first.body, True, False)
    other = await s.run(REF, CODEC, "u2", "k1", "h", add(5))  # another shopper's k1
    assert orjson.loads(other.body) == {"response": {"n": 10}, "owed": None}
    with pytest.raises(IdempotencyMismatch):
        await s.run(REF, CODEC, "u1", "k1", "other", add(5))
    with pytest.raises(Empty):
        await s.run(REF, CODEC, "u3", "k9", "h", add(1, limit=10))
    assert await state_of(redis) == (2, 10)
    assert await redis.exists(KEYS.aggregate_idempotency(REF, "u3", "k9")) == 0


async def test_owed_records_listed_by_age_and_settled_idempotently(
        redis: aioredis.Redis, db: Database, clock: ManualClock) -> None:
    s = store(redis, db, clock)
    gated_ms = int(clock.now() * 1000)
    await s.run(REF, CODEC, "u1", "k1", "h1", add(2, owe=True), owed_to=SHOPPER)
    clock.advance(10)
    await s.run(REF, CODEC, "u1", "k2", "h2", add(3, owe=True), owed_to=SHOPPER)
    cutoff = int((clock.now() - 5) * 1000)
    old = await s.owed_older_than(REF.shard, cutoff, 10)
    assert [name for name, _ in old] == [owed_field(REF, "u1", "k1")]
    owed = old[0][1]
    assert owed is not None
    assert (owed.player, owed.key, owed.request_hash) == (SHOPPER, "k1", "h1")
    assert owed.gate == {"response": {"n": 2}, "owed": {"effect": "test", "k": 2}}
    assert owed.recorded_ms == gated_ms  # when the gate recorded it: the shopper acted
    for _ in range(2):
        await s.settle(REF.shard, [owed_field(REF, "u1", "k1")])
    left = await s.owed_older_than(REF.shard, 10**15, 10)
    assert [name for name, _ in left] == [owed_field(REF, "u1", "k2")]
    with pytest.raises(RuntimeError):  # owing without naming the shopper is a bug
        await s.run(REF, CODEC, "u1", "k3", "h3", add(1, owe=True))


async def sql_rows(db: Database) -> tuple[list[Any], list[Any]]:
    async with db.connect() as conn:
        states = (await conn.execute(select(m.aggregates.c.aggregate_id,
                                            m.aggregates.c.version,
                                            m.aggregates.c.state))).all()
        ledger = (await conn.execute(select(m.aggregate_ledger.c.user_id,
                                            m.aggregate_ledger.c.idem_key,
                                            m.aggregate_ledger.c.version)
                                     .order_by(m.aggregate_ledger.c.version))).all()
    return [tuple(r) for r in states], [tuple(r) for r in ledger]


def previous_release(s: AggregateStore, redis: aioredis.Redis) -> AggregateStore:
    """``s`` committing as servers of the previous release did: no state in the entries."""
    source = load_script("agg_commit")
    without_state = source.replace(", 'n', a[3])", ")")
    assert without_state != source
    s._commit = Script(without_state, redis=redis)
    return s


@pytest.mark.parametrize("release", ["current", "previous"])
async def test_states_reach_sql_only_with_their_ledger(release: str, redis: aioredis.Redis,
                                                       db: Database,
                                                       clock: ManualClock) -> None:
    """A batch smaller than the stream: the entries go a batch per snapshot, each with
    the state its newest entry carries (so SQL never has a state without its keys, nor
    a key without a state at least as new); entries of the previous release carry none:
    the state goes only with the snapshot that holds the rest of the stream. A pass
    takes at most ROUNDS snapshots of a shard."""
    s, p = store(redis, db, clock), persister(redis, db, clock, batch=2)
    if release == "previous":
        s = previous_release(s, redis)
    total = 2 * ROUNDS + 1
    for i in range(total):
        await s.run(REF, CODEC, "u1", f"k{i}", "h", add(1))
    assert (await p.run_once()).ok
    states, ledger = await sql_rows(db)
    assert ledger == [("u1", f"k{i}", i + 1) for i in range(2 * ROUNDS)]
    if release == "current":
        assert states == [("p1", 2 * ROUNDS, CODEC.encode(Count(2 * ROUNDS)))]
        assert await redis.hget(KEYS.aggregate(REF), "f") == str(2 * ROUNDS).encode()
    else:
        assert states == []
    assert await redis.zcard(KEYS.aggregate_dirty(REF.shard)) == 1
    assert (await p.run_once()).ok
    states, ledger = await sql_rows(db)
    assert states == [("p1", total, CODEC.encode(Count(total)))] and len(ledger) == total
    assert await redis.zcard(KEYS.aggregate_dirty(REF.shard)) == 0
    assert await redis.hget(KEYS.aggregate(REF), "f") == str(total).encode()
    assert await redis.xlen(KEYS.aggregate_ledger(REF.shard)) == 0


async def test_eviction_and_read_through(redis: aioredis.Redis, db: Database,
                                         clock: ManualClock) -> None:
    s, p = store(redis, db, clock), persister(redis, db, clock)
    await s.run(REF, CODEC, "u1", "k1", "h", add(4))
    await p.run_once()
    clock.advance(30)
    await p.run_once()
    assert await redis.exists(KEYS.aggregate(REF)) == 1  # not idle long enough
    clock.advance(31)
    await p.run_once()
    assert p.last_aggregates.evicted == 1
    tomb = KEYS.aggregate(REF)
    assert await redis.hgetall(tomb) == {b"x": b"1"}  # keys at it stay: a tombstone says so
    assert 0 < await redis.pttl(tomb) <= 86_400_000
    assert await s.read(REF, CODEC) == (Count(4), 1)  # a GET reads SQL, installs nothing
    assert await redis.hgetall(tomb) == {b"x": b"1"}
    await s.run(REF, CODEC, "u1", "k2", "h", add(1))
    assert await state_of(redis) == (2, 5)
    assert await redis.hmget(tomb, ["o", "x"]) == [None, None]  # no SQL key checks
    assert await redis.pttl(tomb) == -1
    replay = await s.run(REF, CODEC, "u1", "k1", "h", add(4))  # its record stayed in Redis
    assert replay.replayed and orjson.loads(replay.body)["response"] == {"n": 4}


async def test_redis_lost_the_aggregate_keys_are_answered_from_sql(
        redis: aioredis.Redis, db: Database, clock: ManualClock) -> None:
    s, p = store(redis, db, clock), persister(redis, db, clock)
    first = await s.run(REF, CODEC, "u1", "k1", "h", add(7))
    second = await s.run(REF, CODEC, "u2", "k2", "h", add(1))
    await p.run_once()
    await redis.flushall()  # Redis restarted empty
    retry = await s.run(REF, CODEC, "u1", "k1", "h", add(7))  # read-through: from SQL
    assert (retry.body, retry.replayed) == (first.body, True)
    await s.run(REF, CODEC, "u3", "k3", "h", add(1))  # installs v3 from SQL's v2
    assert await state_of(redis) == (3, 9)
    # the newest commit SQL held (u2's): gates ask SQL until it is a key lifetime old
    assert await redis.hget(KEYS.aggregate(REF), "o") == str(int(clock.now() * 1000)).encode()
    # the aggregate is back in Redis, but u2's key is not: SQL still answers it
    late = await s.run(REF, CODEC, "u2", "k2", "h", add(1))
    assert (late.body, late.replayed) == (second.body, True)
    with pytest.raises(IdempotencyMismatch):
        await s.run(REF, CODEC, "u2", "k2", "other", add(1))
    assert await state_of(redis) == (3, 9)
    clock.advance(86_400)  # every key SQL held has expired: no more SQL checks
    await s.run(REF, CODEC, "u4", "k4", "h", add(1))
    assert await state_of(redis) == (4, 10)
