"""The process-local state cache (gameserver/state/statecache.py) against real Redis and SQL.

Two apps on one Redis and one database stand for two server processes: each keeps
the states it committed, so each one's copy goes stale whenever the other plays.
Every answer must be what a server without the cache would give: no conflict leaks,
no action is applied on an old copy, a retried key replays.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gameserver.app import create_app
from gameserver.appkeys import SERVICES
from gameserver.clock import ManualClock
from gameserver.ops.settings import Settings
from tests.conftest import World

GAME = "/v1/games/squirrel"


async def other_process(aiohttp_client: Any, settings: Settings,
                        clock: ManualClock) -> TestClient:  # type: ignore[type-arg]
    """A second app on the same Redis and SQL: another process with a cache of its own."""
    return await aiohttp_client(create_app(settings, clock=clock))


async def post(client: TestClient, path: str, token: str, body: Any,  # type: ignore[type-arg]
               key: str) -> tuple[int, Any]:
    resp = await client.post(path, json=body, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": key})
    return resp.status, await resp.json()


async def me(client: TestClient, token: str) -> Any:  # type: ignore[type-arg]
    resp = await client.get(f"{GAME}/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    return await resp.json()


def counter(client: TestClient, name: str) -> float:  # type: ignore[type-arg]
    return float(getattr(client.app[SERVICES].store.metrics, name)._value.get())


async def test_two_processes_take_turns_with_no_conflict_and_nothing_lost(
        world: World, aiohttp_client: Any, settings: Settings, clock: ManualClock) -> None:
    """Feeds alternate between two processes: each one's cached copy is stale every
    time, the commit says so and hands back the current state, and the action is
    applied on that, with no backoff (no version conflict is counted)."""
    b = await other_process(aiohttp_client, settings, clock)
    a = world.client
    token = await world.token("alice")
    assert (await post(a, f"{GAME}/pet", token, {"species": "squirrel", "name": "N"},
                       "adopt"))[0] == 201
    for i in range(6):
        status, body = await post(a if i % 2 else b, f"{GAME}/pet/feed", token,
                                  {"food": "snack"}, f"feed-{i}")
        assert status == 200, body
        assert body["player"]["wallet"] == {"acorn": 100 - 10 * (i + 1)}
    view = await me(a, token)
    assert (view["version"], view["player"]["wallet"]) == (7, {"acorn": 40})
    # a's copies (from the adopt, then from each of its feeds) were all stale; b had
    # none at first (a load), then a stale one before each of its later feeds.
    assert (counter(a, "state_cache_stale"), counter(b, "state_cache_stale")) == (3, 2)
    assert (counter(a, "commit_conflicts"), counter(b, "commit_conflicts")) == (0, 0)


async def test_a_version_reached_again_after_redis_lost_its_data_is_not_the_cached_one(
        world: World, aiohttp_client: Any, settings: Settings, clock: ManualClock,
        redis_url: str) -> None:
    """Process a cached alice at version 2; Redis restarts empty (never flushed to SQL
    here), and alice plays again on process b up to version 2: same number, another
    history. a's next feed must apply on b's state, not on its own old copy."""
    b = await other_process(aiohttp_client, settings, clock)
    a = world.client
    token = await world.token("alice")
    await post(a, f"{GAME}/pet", token, {"species": "squirrel", "name": "Old"}, "adopt-1")
    status, _ = await post(a, f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert status == 200  # a's cache: version 2, wallet 90, pet "Old"
    r = aioredis.from_url(redis_url)
    await r.flushall()
    await r.aclose()
    status, _ = await post(b, f"{GAME}/pet", token, {"species": "squirrel", "name": "New"},
                           "adopt-2")
    assert status == 201
    status, _ = await post(b, f"{GAME}/pet/feed", token, {"food": "cake"}, "cake-2")
    assert status == 200  # version 2 again: wallet 100 - 60 = 40, pet "New"
    status, body = await post(a, f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-3")
    assert status == 200, body
    view = await me(b, token)
    assert (view["version"], view["player"]["wallet"], view["player"]["pet"]["name"]) == (
        3, {"acorn": 30}, "New")
    assert counter(a, "state_cache_stale") == 1


async def test_a_retry_whose_second_application_would_be_refused_replays(
        world: World) -> None:
    """Cake has a 600 s cooldown. Its retry on the process that cached the player: the
    rule refuses on the cached copy, which is not final, so the load finds the key
    used and replays the first answer, byte for byte."""
    token = await world.token("alice")
    await post(world.client, f"{GAME}/pet", token, {"species": "squirrel", "name": "N"},
               "adopt")
    first = await world.client.post(f"{GAME}/pet/feed", json={"food": "cake"}, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "cake-1"})
    again = await world.client.post(f"{GAME}/pet/feed", json={"food": "cake"}, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "cake-1"})
    assert (first.status, again.status) == (200, 200)
    assert await first.read() == await again.read()
    status, body = await post(world.client, f"{GAME}/pet/feed", token, {"food": "cake"},
                              "cake-2")
    assert (status, body["error"]["code"]) == (429, "cooldown")
    view = await me(world.client, token)
    assert (view["version"], view["player"]["wallet"]) == (2, {"acorn": 40})


async def test_a_retry_that_would_apply_again_replays_and_a_changed_one_is_refused(
        world: World) -> None:
    token = await world.token("alice")
    await post(world.client, f"{GAME}/pet", token, {"species": "squirrel", "name": "N"},
               "adopt")
    one = await post(world.client, f"{GAME}/pet/feed", token, {"food": "snack"}, "k")
    two = await post(world.client, f"{GAME}/pet/feed", token, {"food": "snack"}, "k")
    assert one == two and one[0] == 200
    status, body = await post(world.client, f"{GAME}/pet/feed", token, {"food": "cake"}, "k")
    assert (status, body["error"]["code"]) == (422, "idempotency_mismatch")
    view = await me(world.client, token)
    assert (view["version"], view["player"]["wallet"]) == (2, {"acorn": 90})


async def test_a_retry_on_a_stale_copy_replays_what_the_other_process_answered(
        world: World, aiohttp_client: Any, settings: Settings, clock: ManualClock) -> None:
    """Process b fed cake (600 s cooldown) with key K, and its answer was lost; the app
    retries K on process a, whose cached copy predates that feed. The commit checks the
    key before the version, so the retry replays b's answer instead of being decided on
    the newer state (where the cooldown would refuse it: 429, which a CI run once saw)."""
    b = await other_process(aiohttp_client, settings, clock)
    a = world.client
    token = await world.token("alice")
    assert (await post(a, f"{GAME}/pet", token, {"species": "squirrel", "name": "N"},
                       "adopt"))[0] == 201
    first = await post(b, f"{GAME}/pet/feed", token, {"food": "cake"}, "cake-K")
    retry = await post(a, f"{GAME}/pet/feed", token, {"food": "cake"}, "cake-K")
    assert first[0] == 200 and retry == first
    view = await me(a, token)
    assert (view["version"], view["player"]["wallet"]) == (2, {"acorn": 40})
