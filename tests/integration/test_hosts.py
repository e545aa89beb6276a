"""Two hosts' persisters on one Redis and one SQL database split the shards by lease:
each pass a shard is worked by one host, the results are exact (every ledger row once,
every player at its last version), and a host that dies mid-drain is taken over within
a lease lifetime, its unacknowledged entries claimed at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.db.persist import count_rows
from gameserver.jobs.lease import ShardLeases, process_name
from gameserver.ops.metrics import Metrics
from gameserver.persister import Persister
from gameserver.state.store import Store
from tests.integration.test_persister import (
    KEYS,
    SHARDS,
    pending,
    play,
    redis_state,
    ref,
    sql_ledger,
    sql_players,
    stream_rows,
    total,
)

TTL_MS = 600
USERS = [f"u{i}" for i in range(24)]


class Host:
    """One server host: its own Redis client, SQL engine, consumer name and leases."""

    def __init__(self, redis_url: str, db_url: str, clock: ManualClock,
                 cls: type[Persister] = Persister) -> None:
        self.redis = aioredis.from_url(redis_url)
        self.db = Database(db_url)
        name = process_name("serve")
        self.leases = ShardLeases(self.redis, "persister", SHARDS, TTL_MS, token=name)
        self.persister = cls(self.redis, KEYS, self.db, Metrics(), clock, shards=SHARDS,
                             consumer=name, assignment=self.leases)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.close()


@pytest.fixture
async def hosts(redis_url: str, db_url: str, clock: ManualClock
                ) -> AsyncIterator[list[Host]]:
    made = [Host(redis_url, db_url, clock) for _ in range(2)]
    yield made
    for host in made:
        await host.close()


@pytest.fixture
async def store(redis_url: str, db: Database, clock: ManualClock) -> AsyncIterator[Store]:
    client = aioredis.from_url(redis_url)
    yield Store(client, KEYS, db, Metrics(), clock)
    await client.aclose()


async def test_two_hosts_split_the_shards_and_write_everything_once(
        hosts: list[Host], store: Store, db: Database) -> None:
    assert len({ref(u).shard for u in USERS}) == SHARDS
    for round_ in range(3):
        for user in USERS:
            await play(store, user, coins=round_ + 1)
        reports = await asyncio.gather(*(h.persister.run_once() for h in hosts))
        assert all(r.ok for r in reports)
        worked = [h.persister.shard_ids for h in hosts]
        assert not set(worked[0]) & set(worked[1])  # no shard worked by both in a pass
    for _ in range(3):  # the first pass may leave shards to the second host's next one
        await asyncio.gather(*(h.persister.run_once() for h in hosts))
    assert sorted(hosts[0].persister.shard_ids + hosts[1].persister.shard_ids) == [0, 1, 2, 3]
    assert [len(h.persister.shard_ids) for h in hosts] == [2, 2]
    # Exact: every ledger row once, every player at its last version, nothing left.
    assert await total(store.redis, "ledger") == 0 and await total(store.redis, "dirty") == 0
    assert await count_rows(db, m.ledger) == 3 * len(USERS)
    assert len(await sql_ledger(db)) == len(set(await sql_ledger(db)))
    players = await sql_players(db)
    for user in USERS:
        version, state, _ = await redis_state(store.redis, user)
        assert players[user][:2] == (version, state)


async def test_a_host_dying_mid_drain_is_taken_over_at_once(
        redis_url: str, db_url: str, clock: ManualClock, store: Store, db: Database) -> None:
    class DiesAfterCommit(Persister):
        async def _write_ledger(self, rows: Any, events: Any = None) -> None:
            await super()._write_ledger(rows, events)
            raise ConnectionResetError("the host died after the SQL commit")

    dying, survivor = Host(redis_url, db_url, clock, DiesAfterCommit), Host(
        redis_url, db_url, clock)
    try:
        for user in USERS:
            await play(store, user, coins=2)
        expected = await stream_rows(store.redis)
        await dying.persister.run_once()  # holds every shard; reads, writes, never acks
        assert dying.persister.shard_ids == [0, 1, 2, 3]
        assert await pending(store.redis) == {dying.persister.ctx.limits.consumer: 24}
        # It never runs again. The survivor gets nothing until the leases expire ...
        await survivor.persister.run_once()
        assert survivor.persister.shard_ids == []
        started = time.monotonic()
        for _ in range(200):  # one pass every 50 ms until its shards come free
            if (await survivor.persister.run_once()).ledger_entries:
                break
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
        # ... then takes every shard and claims the dead host's entries at once, not
        # after claim_idle_ms (30 s).
        assert took < 3 * TTL_MS / 1000 + 1
        assert survivor.persister.shard_ids == [0, 1, 2, 3]
        assert await pending(store.redis) == {}
        assert await sql_ledger(db) == expected
        assert await count_rows(db, m.ledger) == 24
    finally:
        await dying.close()
        await survivor.close()
