"""Reminders delivered to a real local HTTP endpoint: signed, once, after quiet hours
and the frequency cap, retried with backoff."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis

from gameserver.appkeys import CLOCK, GAMES, KEYS, MERCHANTS, REDIS, SERVICES, SETTINGS
from gameserver.http.auth import body_signature
from gameserver.jobs.reminders import REMINDER_WORKER, ReminderWorker
from gameserver.state.keys import PlayerRef, shard_of
from tests.conftest import World
from tests.integration.loopgame import DAY, HOUR, Shopper, loop_config

ADOPT = {"species": "squirrel", "name": "Nutty"}


def reminders_config(url: str, **fields: Any) -> dict[str, Any]:
    return loop_config(reminders={"webhook_url": url, "quiet_start": "22:00",
                                  "quiet_end": "08:00", "max_per_day": 2, "min_gap_s": 3600,
                                  **fields})


async def make_world(client: Any, db: Any, clock: Any, config: dict[str, Any]) -> World:
    world = World(client, db, clock, config)
    await world.merchant()
    return world


def worker(client: Any) -> ReminderWorker:
    app = client.app
    return ReminderWorker(app[REDIS], app[SERVICES], app[GAMES], app[MERCHANTS],
                          app[CLOCK], app[SETTINGS].shards, backoff_s=60)


async def queued(client: Any, user: str) -> dict[str, int]:
    app = client.app
    ref = PlayerRef("shop", "squirrel", user, shard_of("shop", user, app[SETTINGS].shards))
    pairs = await app[REDIS].zrange(app[KEYS].reminders(ref.shard), 0, -1, withscores=True)
    return {m.decode().split(":")[0]: int(s) for m, s in pairs
            if m.decode().endswith(f":{ref.member}")}


async def test_hungry_reminder_signed_and_delivered_once(client: Any, db: Any, clock: Any,
                                                         endpoint: Any) -> None:
    ep, url = endpoint
    world = await make_world(client, db, clock, reminders_config(url))
    alice = Shopper(world, "alice")
    t0 = int(clock.now())
    await alice.post("/pet", ADOPT)
    # satiety 50 at 5/h falls below 30 after 14 401 s; produce stops first: never full
    assert await queued(client, "alice") == {"hungry": t0 + 14_401}
    w = worker(client)
    assert await w.tick() == 0
    clock.advance(14_401)
    assert await w.tick() == 1
    assert w.stats.delivered == 1 and len(ep.received) == 1
    headers, raw = ep.received[0]
    secret = world.merchants["shop"].signing_secret
    ts = headers["X-Petbox-Timestamp"]
    assert ts == str(t0 + 14_401)
    assert headers["X-Petbox-Signature"] == body_signature(secret, ts, raw)
    assert json.loads(raw) == {"id": f"shop:squirrel:alice:hungry-{t0 + 14_401}",
                               "type": "reminder", "kind": "hungry", "merchant": "shop",
                               "game": "squirrel", "user": "alice",
                               "event_at": t0 + 14_401, "sent_at": t0 + 14_401}
    assert (await alice.me())["version"] == 2  # recorded through the store
    # queued again (e.g. by another action): already reminded of this one, not sent again
    await client.app[REDIS].zadd(client.app[KEYS].reminders(
        shard_of("shop", "alice", client.app[SETTINGS].shards)),
        {"hungry:shop:squirrel:alice": t0})
    assert await w.tick() == 1
    assert len(ep.received) == 1 and w.stats.dropped == 1


async def test_two_workers_never_deliver_twice(client: Any, db: Any, clock: Any,
                                               endpoint: Any) -> None:
    ep, url = endpoint
    world = await make_world(client, db, clock, reminders_config(url))
    shoppers = [Shopper(world, f"p{i}") for i in range(8)]
    for s in shoppers:
        await s.post("/pet", ADOPT)
    clock.advance(14_401)
    workers = [worker(client) for _ in range(3)]
    for _ in range(4):  # a reminder one tick could not handle (Redis slow) is left queued
        await asyncio.gather(*(w.tick() for w in workers))
        if len(ep.received) >= 8:
            break
    await asyncio.gather(*(w.tick() for w in workers))  # and nothing more comes
    users = sorted(b["user"] for b in ep.bodies())
    assert users == sorted(f"p{i}" for i in range(8))
    assert sum(w.stats.delivered for w in workers) == 8


async def test_failed_delivery_retried_with_backoff(client: Any, db: Any, clock: Any,
                                                    endpoint: Any) -> None:
    ep, url = endpoint
    ep.statuses = [500, 503]
    world = await make_world(client, db, clock, reminders_config(url))
    await Shopper(world, "alice").post("/pet", ADOPT)
    clock.advance(14_401)
    w = worker(client)
    await w.tick()
    assert len(ep.received) == 1 and w.stats.failed == 1
    due = int(clock.now()) + 60
    assert await queued(client, "alice") == {"hungry": due}
    clock.advance(59)
    assert await w.tick() == 0
    clock.advance(1)
    await w.tick()  # second failure: twice the delay
    assert await queued(client, "alice") == {"hungry": due + 120}
    clock.advance(120)
    await w.tick()
    assert w.stats.delivered == 1 and len(ep.received) == 3
    assert len({b["id"] for b in ep.bodies()}) == 1  # the same reminder each time
    assert await queued(client, "alice") == {}
    clock.advance(DAY)
    assert await w.tick() == 0


async def test_a_redirect_is_not_a_delivery(client: Any, db: Any, clock: Any,
                                            redirecting_endpoint: Any) -> None:
    """A 302 from the reminders endpoint is a failed delivery (retried), not followed to
    a page whose 200 would count as delivered."""
    landed, url = redirecting_endpoint
    world = await make_world(client, db, clock, reminders_config(url))
    await Shopper(world, "alice").post("/pet", ADOPT)
    clock.advance(14_401)
    w = worker(client)
    await w.tick()
    assert (w.stats.delivered, w.stats.failed, landed) == (0, 1, [])
    assert await queued(client, "alice") == {"hungry": int(clock.now()) + 60}


async def test_quiet_hours_and_daily_cap(client: Any, db: Any, clock: Any,
                                         endpoint: Any) -> None:
    ep, url = endpoint
    world = await make_world(client, db, clock, reminders_config(
        url, quiet_start="19:00", max_per_day=1))
    alice = Shopper(world, "alice")
    t0 = int(clock.now())  # 08:00 in Shanghai
    await alice.post("/pet", ADOPT)
    await alice.post("/pet/feed", {"food": "cake"})  # satiety 90: full after 8 h (16:00)
    # hungry at 20:00 is in quiet hours (→ 08:00), and the cap of one a day pushes it
    # to 24 h after the first reminder
    assert await queued(client, "alice") == {"produce_full": t0 + 8 * HOUR,
                                             "hungry": t0 + 32 * HOUR}
    await alice.post("/pet/play")
    assert len(await queued(client, "alice")) == 2  # at most one pending per kind
    w = worker(client)
    clock.advance(8 * HOUR)
    await w.tick()
    clock.advance(16 * HOUR)
    await w.tick()
    assert [b["kind"] for b in ep.bodies()] == ["produce_full"]
    clock.advance(8 * HOUR)
    await w.tick()
    assert [(b["kind"], b["sent_at"] - t0) for b in ep.bodies()] == [
        ("produce_full", 8 * HOUR), ("hungry", 32 * HOUR)]


async def test_feeding_makes_a_queued_reminder_moot(client: Any, db: Any, clock: Any,
                                                   endpoint: Any) -> None:
    ep, url = endpoint
    world = await make_world(client, db, clock, reminders_config(url))
    alice = Shopper(world, "alice")
    await alice.post("/pet", ADOPT)
    clock.advance(14_000)
    await alice.post("/pet/feed", {"food": "snack"})  # hungry moves later
    clock.advance(401)
    w = worker(client)
    await w.tick()
    assert ep.received == []


async def test_server_runs_the_worker(aiohttp_client: Any, settings: Any, db: Any,
                                      clock: Any, endpoint: Any) -> None:
    from gameserver.app import create_app

    ep, url = endpoint
    live = settings.with_overrides(run_persister=True, run_background=True)
    client = await aiohttp_client(create_app(live, clock=clock))
    assert REMINDER_WORKER in client.app
    world = await make_world(client, db, clock, reminders_config(url))
    await Shopper(world, "alice").post("/pet", ADOPT)
    clock.advance(14_401)
    for _ in range(50):
        if ep.received:
            break
        await asyncio.sleep(0.1)
    assert [b["kind"] for b in ep.bodies()] == ["hungry"]


async def test_an_action_with_reminders_is_one_commit(
        client: Any, db: Any, clock: Any, endpoint: Any, redis_url: str) -> None:
    """The reminder queue is written by the commit script itself: watched with MONITOR,
    a feed sends Redis exactly one command (commit.lua: this process committed the
    adoption, so the state cache spares the load) and nothing else."""
    _, url = endpoint
    world = await make_world(client, db, clock, reminders_config(url))
    alice = Shopper(world, "alice")
    await alice.post("/pet", ADOPT)
    t0 = int(clock.now())
    watcher, marker = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    await marker.ping()  # its connection hand-shake happens before we watch
    try:
        async with watcher.monitor() as monitor:
            status, _ = await alice.post("/pet/feed", {"food": "snack"})
            await marker.echo("end-of-feed")
            sent, by_scripts = [], []
            while True:
                cmd = (await monitor.next_command())
                if "end-of-feed" in cmd["command"]:
                    break
                (by_scripts if cmd["client_type"] == "lua" else sent).append(cmd["command"])
    finally:
        await watcher.aclose()
        await marker.aclose()
    assert status == 200
    assert [c.split(" ", 1)[0] for c in sent] == ["EVALSHA"]
    assert any(c.startswith("ZADD") and ":rem" in c for c in by_scripts)
    # satiety 50 + 20 = 70: produce is full after 8 h, hunger 1 s later is moved to
    # one hour after it (min_gap_s) — the same queue the separate ZADD used to write
    assert await queued(client, "alice") == {"produce_full": t0 + 28_800,
                                             "hungry": t0 + 32_400}


async def test_a_shopper_key_never_takes_a_reminders_key(client: Any, db: Any, clock: Any,
                                                        endpoint: Any) -> None:
    """A reminder was recorded under ``rem-<kind>-<event_at>``, a key a shopper can send
    (the due time is predictable): alice's adoption under it made the record 422, and
    the reminder was never sent. Now the worker's key is outside the shopper's alphabet."""
    ep, url = endpoint
    world = await make_world(client, db, clock, reminders_config(url))
    alice = Shopper(world, "alice")
    due = int(clock.now()) + 14_401
    status, _ = await alice.post("/pet", ADOPT, f"rem-hungry-{due}")
    assert status == 201
    assert await queued(client, "alice") == {"hungry": due}
    clock.advance(14_401)
    w = worker(client)
    assert await w.tick() == 1
    assert w.stats.delivered == 1 and len(ep.received) == 1
    assert json.loads(ep.received[0][1])["id"] == f"shop:squirrel:alice:hungry-{due}"
    assert (await alice.me())["version"] == 2
