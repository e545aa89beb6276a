"""The merchant webhook outbox against real SQL and a real local HTTP endpoint: an event
is stored once per key, posted signed, retried with backoff, kept while the game has no
endpoint, marked failed after the last try, and listed for the merchant."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gameserver.appkeys import CLOCK, DB, GAMES, MERCHANTS
from gameserver.db import models as m
from gameserver.http.auth import body_signature
from gameserver.jobs.webhooks import MAX_TRIES, OUTBOX, WebhookDeliverer, backoff_s
from gameserver.ops.provision import publish_config
from tests.conftest import BASIC_CONFIG, World
from tests.integration.conftest import Endpoint


async def _with_url(world: World, url: str) -> None:
    await publish_config(world.db, "shop", "squirrel", {**BASIC_CONFIG, "webhook_url": url},
                         int(world.clock.now()))
    await world.client.app[GAMES].refresh()


def _deliverer(world: World) -> WebhookDeliverer:
    app = world.client.app
    return WebhookDeliverer(app[DB], app[GAMES], app[MERCHANTS], app[CLOCK])


async def _events(world: World, query: str = "") -> list[dict[str, Any]]:
    resp = await world.client.get(f"/v1/admin/games/squirrel/webhooks{query}", headers={
        "Authorization": f"Bearer {world.merchants['shop'].api_key}"})
    assert resp.status == 200, await resp.text()
    events: list[dict[str, Any]] = (await resp.json())["events"]
    return events


async def test_an_event_is_stored_once_and_posted_signed(
        world: World, endpoint: tuple[Endpoint, str]) -> None:
    ep, url = endpoint
    outbox = world.client.app[OUTBOX]
    first = await outbox.emit(merchant="shop", game="squirrel", event="group.refund",
                              key="refund-g1-u1", data={"group": "g1", "user": "u1", "fen": 990})
    again = await outbox.emit(merchant="shop", game="squirrel", event="group.refund",
                              key="refund-g1-u1", data={"group": "g1", "user": "u1", "fen": 1})
    assert (first, again) == (True, False)

    deliverer = _deliverer(world)
    try:
        assert await deliverer.run_once() == 0  # no endpoint configured yet: it waits
        assert [e["state"] for e in await _events(world)] == ["pending"]
        assert ep.received == []
        await _with_url(world, url)
        world.clock.advance(61)
        assert await deliverer.run_once() == 1
        assert await deliverer.run_once() == 0  # delivered events are not posted again
    finally:
        await deliverer.stop()

    [(headers, raw)] = ep.received
    secret = world.merchants["shop"].signing_secret
    assert headers["X-Petbox-Signature"] == body_signature(
        secret, headers["X-Petbox-Timestamp"], raw)
    assert headers["X-Petbox-Event"] == "group.refund"
    assert headers["X-Petbox-Delivery"] == "refund-g1-u1"
    body = json.loads(raw)
    assert body["data"] == {"group": "g1", "user": "u1", "fen": 990}  # the first emit stands
    assert (body["merchant"], body["game"], body["event"]) == ("shop", "squirrel",
                                                               "group.refund")
    [event] = await _events(world, "?state=delivered")
    assert event["tries"] == 1 and event["delivered_at"] == int(world.clock.now())


async def test_failures_back_off_then_give_up(world: World,
                                              endpoint: tuple[Endpoint, str]) -> None:
    ep, url = endpoint
    await _with_url(world, url)
    await world.client.app[OUTBOX].emit(merchant="shop", game="squirrel", event="e",
                                        key="k1", data={})
    ep.statuses = [500] * MAX_TRIES
    deliverer = _deliverer(world)
    try:
        assert await deliverer.run_once() == 0
        assert await deliverer.run_once() == 0  # not due again before its backoff
        assert len(ep.received) == 1
        for tries in range(1, MAX_TRIES):
            world.clock.advance(backoff_s(tries))
            assert await deliverer.run_once() == 0
        assert len(ep.received) == MAX_TRIES
    finally:
        await deliverer.stop()
    [event] = await _events(world)
    assert (event["state"], event["tries"]) == ("failed", MAX_TRIES)
    assert await _events(world, "?state=pending") == []


async def test_backoff_counts_from_each_answer_not_from_the_pass_start(
        world: World, aiohttp_server: Any) -> None:
    """A slow endpoint (each post takes 5 s on the clock, what a timeout costs) that
    answers 500: each event's next try is its backoff after its own answer. Counted from
    the pass's start, the second event's 2 s were spent before it was even posted, and a
    hanging endpoint was retried back to back. The first failure ends the game's share of
    a pass (the second event waits, untried, for the next pass)."""
    async def slow(request: web.Request) -> web.Response:
        await request.read()
        world.clock.advance(5)
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", slow)
    server = await aiohttp_server(app)
    await _with_url(world, str(server.make_url("/hook")))
    start = int(world.clock.now() * 1000)
    for key in ("k1", "k2"):
        await world.client.app[OUTBOX].emit(merchant="shop", game="squirrel", event="e",
                                            key=key, data={})
    deliverer = _deliverer(world)
    try:
        assert await deliverer.run_once() == 0
        assert await _outbox_rows(world) == [("k1", 1, start + 5_000 + 2_000),
                                             ("k2", 0, start)]
        assert await deliverer.run_once() == 0  # k2's turn; k1 is in its backoff
    finally:
        await deliverer.stop()
    assert await _outbox_rows(world) == [("k1", 1, start + 5_000 + 2_000),
                                         ("k2", 1, start + 10_000 + 2_000)]


async def _outbox_rows(world: World) -> list[tuple[str, int, int]]:
    w = m.webhook_outbox
    async with world.db.engine.connect() as conn:
        rows = (await conn.execute(select(w.c.event_key, w.c.tries, w.c.next_ms).where(
            w.c.merchant_id == "shop").order_by(w.c.event_key))).all()
    return [(r[0], r[1], r[2]) for r in rows]


async def test_a_hanging_endpoint_does_not_hold_back_other_merchants(
        world: World, aiohttp_server: Any) -> None:
    """One merchant's endpoint hangs; another's answers. Posted one after another, the
    other merchant's events waited for every hanging post (5 s each, a hundred events a
    pass). Endpoints are posted to side by side: here the hanging endpoint answers only
    once the other merchant has both its events, which it can only get while the first
    hanging post still waits; then the hanging game's events go on in order."""
    other_got: list[str] = []
    released = asyncio.Event()
    hanging_calls: list[str] = []

    async def hangs(request: web.Request) -> web.Response:
        hanging_calls.append((await request.json())["key"])
        await released.wait()
        return web.Response(status=204)

    async def answers(request: web.Request) -> web.Response:
        other_got.append((await request.json())["key"])
        if len(other_got) == 2:
            released.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hangs", hangs)
    app.router.add_post("/answers", answers)
    server = await aiohttp_server(app)
    await _with_url(world, str(server.make_url("/hangs")))
    await world.merchant("mall", "squirrel", {**BASIC_CONFIG,
                                              "webhook_url": str(server.make_url("/answers"))})
    await world.client.app[GAMES].refresh()
    outbox = world.client.app[OUTBOX]
    for key in ("s1", "s2", "s3"):  # the hanging merchant's events come first
        await outbox.emit(merchant="shop", game="squirrel", event="e", key=key, data={})
    for key in ("m1", "m2"):
        await outbox.emit(merchant="mall", game="squirrel", event="e", key=key, data={})
    deliverer = _deliverer(world)
    try:
        assert await deliverer.run_once() == 5
    finally:
        await deliverer.stop()
    assert other_got == ["m1", "m2"]
    assert hanging_calls == ["s1", "s2", "s3"]


async def test_a_redirect_is_not_a_delivery(world: World, redirecting_endpoint: Any) -> None:
    """An endpoint that answers 302 (moved, or an auth proxy's login page) did not take
    the event: it stays pending for a retry, and the redirect is not followed (followed,
    the POST became a GET of the login page, whose 200 marked the event delivered)."""
    landed, url = redirecting_endpoint
    await _with_url(world, url)
    await world.client.app[OUTBOX].emit(merchant="shop", game="squirrel", event="e",
                                        key="k1", data={})
    deliverer = _deliverer(world)
    try:
        assert await deliverer.run_once() == 0
    finally:
        await deliverer.stop()
    [event] = await _events(world)
    assert (event["state"], event["tries"], landed) == ("pending", 1, [])


async def test_listing_refuses_bad_queries(world: World) -> None:
    for query in ("?state=lost", "?limit=0", "?limit=501", "?limit=x", "?limit=000000001000",
                  "?limit=%C2%B2"):
        resp = await world.client.get(f"/v1/admin/games/squirrel/webhooks{query}", headers={
            "Authorization": f"Bearer {world.merchants['shop'].api_key}"})
        assert resp.status == 422, query
        assert (await resp.json())["error"]["code"] == "invalid_input"


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff_s(t) for t in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff_s(20) == 3600
