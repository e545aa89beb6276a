"""Where the first response of an Idempotency-Key lives: the commit's ledger stream entry
until the persister drains it, then SQL (``responses``); Redis keeps a small record per
key. A retry gets the same bytes from either, and from records written by older
servers (body inline)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import delete, insert, select

from gameserver.appkeys import KEYS, SETTINGS
from gameserver.db import models as m
from gameserver.jobs.housekeeping import purge_old_responses
from gameserver.persister import Persister
from gameserver.state.keys import PlayerRef, shard_of
from tests.conftest import app_persister

GAME = "/v1/games/squirrel"


def persister(world: Any) -> Persister:
    return app_persister(world.client.app)


def ref_of(world: Any, user: str) -> PlayerRef:
    return PlayerRef("shop", "squirrel", user,
                     shard_of("shop", user, world.client.app[SETTINGS].shards))


async def adopt_and_feed(world: Any, user: str = "alice") -> tuple[str, bytes]:
    """A shopper who adopted and fed once (key ``feed-1``): token and the feed's body."""
    token = await world.token(user)
    adopted = await world.post(f"{GAME}/pet", token, {"species": "squirrel", "name": "N"},
                               "adopt")
    assert adopted.status == 201
    fed = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert fed.status == 200
    return token, await fed.read()


async def test_redis_keeps_a_small_record_and_the_stream_entry_the_body(
        world: Any, redis_url: str) -> None:
    _, body = await adopt_and_feed(world)
    keys, ref = world.client.app[KEYS], ref_of(world, "alice")
    client = aioredis.from_url(redis_url)
    try:
        record = await client.hgetall(keys.idempotency(ref, "feed-1"))
        assert set(record) == {b"h", b"c", b"x", b"e"}  # no body: it is not kept 24 h here
        assert record[b"c"] == b"200"
        [(_, fields)] = await client.xrange(keys.ledger(ref.shard), record[b"e"],
                                                   record[b"e"])
        assert (fields[b"k"], fields[b"s"], fields[b"r"]) == (b"feed-1", b"200", body)
        assert fields[b"c"] == record[b"x"]
    finally:
        await client.aclose()


async def test_a_retry_gets_the_same_bytes_before_and_after_the_drain(world: Any,
                                                                     redis_url: str) -> None:
    token, body = await adopt_and_feed(world)
    again = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert (again.status, await again.read()) == (200, body)  # from the stream entry
    assert again.headers["Idempotent-Replayed"] == "true"

    report = await persister(world).run_once()
    assert report.ok and report.ledger_entries == 2  # adopt and feed
    client = aioredis.from_url(redis_url)
    try:
        keys, ref = world.client.app[KEYS], ref_of(world, "alice")
        assert await client.xlen(keys.ledger(ref.shard)) == 0
    finally:
        await client.aclose()
    r = m.responses
    async with world.db.engine.connect() as conn:
        rows = (await conn.execute(select(r.c.idem_key, r.c.status, r.c.body, r.c.user_id)
                                   .order_by(r.c.idem_key))).all()
    assert [tuple(row[:2]) for row in rows] == [("adopt", 201), ("feed-1", 200)]
    assert bytes(rows[1][2]) == body and rows[1][3] == "alice"

    later = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert (later.status, await later.read()) == (200, body)  # from SQL now
    assert later.headers["Idempotent-Replayed"] == "true"
    other = await world.post(f"{GAME}/pet/feed", token, {"food": "cake"}, "feed-1")
    assert other.status == 422
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["version"] == 2  # adopt + one feed, whatever the retries


async def test_a_record_written_with_its_body_inline_still_replays(world: Any,
                                                                   redis_url: str) -> None:
    token, body = await adopt_and_feed(world)
    keys, ref = world.client.app[KEYS], ref_of(world, "alice")
    client = aioredis.from_url(redis_url)
    try:
        key = keys.idempotency(ref, "feed-1")
        record = await client.hgetall(key)
        # What servers before this change wrote: h, r, c, x (the body in the record).
        await client.delete(key)
        await client.hset(key, mapping={b"h": record[b"h"], b"r": b'{"old":true}',
                                        b"c": b"200", b"x": record[b"x"]})
    finally:
        await client.aclose()
    again = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert (again.status, await again.read()) == (200, b'{"old":true}')
    assert body != b'{"old":true}'


async def test_a_body_in_neither_place_is_503_and_changes_nothing(world: Any) -> None:
    token, _ = await adopt_and_feed(world)
    assert (await persister(world).run_once()).ok
    async with world.db.engine.begin() as conn:
        await conn.execute(delete(m.responses))  # what lost data would look like
    again = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert again.status == 503
    error = (await again.json())["error"]
    assert error["code"] == "response_unavailable" and again.headers["Retry-After"] == "5"
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["version"] == 2


async def test_stored_responses_are_kept_for_the_keys_lifetime(world: Any) -> None:
    r = m.responses
    rows = [{"merchant_id": "shop", "game_id": "squirrel", "user_id": f"u{i}",
             "idem_key": "k", "status": 200, "body": b"{}", "commit_id": f"c{i}",
             "ts_ms": ts} for i, ts in enumerate([1_000, 2_000, 9_000, 2_999, 3_000])]
    async with world.db.engine.begin() as conn:
        await conn.execute(insert(r), rows)
    assert await purge_old_responses(world.db, cutoff_ms=3_000) == 3
    async with world.db.engine.connect() as conn:
        kept = (await conn.execute(select(r.c.ts_ms).order_by(r.c.ts_ms))).scalars().all()
    assert kept == [3_000, 9_000]  # by time, whatever the insertion order
    assert await purge_old_responses(world.db, cutoff_ms=3_000) == 0
