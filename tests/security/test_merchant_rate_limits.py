"""Rate limits on merchant routes and signed merchant events, over HTTP against a real
app on real Redis and SQL: per merchant on ``/v1/admin/``, per signing merchant on
``/v1/events/``, and per IP on failed merchant authentication (wrong API keys, wrong
signatures), each in-process and shared in Redis.

Limits refill at one per 100 s, so a slow machine never sees a budget come back mid-test.
A second client IP is a connection from another loopback address (127.0.0.2).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gameserver.appkeys import MERCHANTS
from gameserver.http.auth import hash_api_key
from gameserver.http.rates import RateLimit
from tests.conftest import World
from tests.integration.loopgame import signed_order
from tests.integration.test_boxes_http import BOX_CONFIG

STOCK = "/v1/admin/games/squirrel/stock"
SLOW = 0.01  # one request per 100 s after the burst


async def _world(aiohttp_client: Any, settings: Any, clock: Any, db: Any, shared: bool,
                 **rates: Any) -> World:
    from gameserver.app import create_app

    client = await aiohttp_client(create_app(
        settings.with_overrides(rate_shared=shared, **rates), clock=clock))
    world = World(client, db, clock, BOX_CONFIG)
    await world.merchant("shop")
    await world.merchant("rival")
    return world


@contextlib.asynccontextmanager
async def other_ip(world: World) -> AsyncIterator[aiohttp.ClientSession]:
    """A client connecting from 127.0.0.2 (the app sees that as its remote address)."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def _key(world: World, merchant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.merchants[merchant].api_key}"}


async def _refused(resp: Any, limit: str) -> None:
    """A 429 ``rate_limited`` naming ``limit``, with a Retry-After of the 100 s refill."""
    body = await resp.json()
    assert resp.status == 429, body
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["limit"] == limit
    retry_after = int(resp.headers["Retry-After"])
    assert retry_after == math.ceil(body["error"]["details"]["retry_after_ms"] / 1000)
    assert 99 <= retry_after <= 100


async def _order(world: World, merchant: str, order_id: str, session: Any = None,
                 secret: str | None = None) -> Any:
    body, headers = signed_order(secret or world.merchants[merchant].signing_secret,
                                 int(world.clock.now()), merchant=merchant, user="u1",
                                 order_id=order_id, status="paid", amount_fen=100)
    if session is None:
        return await world.client.post("/v1/events/orders", data=body, headers=headers)
    return await session.post(world.client.make_url("/v1/events/orders"), data=body,
                              headers=headers)


@pytest.mark.parametrize("shared", [False, True])
async def test_merchant_routes_limited_per_merchant(aiohttp_client: Any, settings: Any,
                                                    clock: Any, db: Any, shared: bool) -> None:
    world = await _world(aiohttp_client, settings, clock, db, shared,
                         rate_merchant=RateLimit(SLOW, 5))
    shop = [await world.client.get(STOCK, headers=_key(world, "shop")) for _ in range(7)]
    assert [r.status for r in shop] == [200] * 5 + [429] * 2
    await _refused(shop[-1], "merchant")
    # keyed by the merchant, not the IP or the route: the other merchant is unaffected,
    rival = [(await world.client.get(STOCK, headers=_key(world, "rival"))).status
             for _ in range(5)]
    assert rival == [200] * 5
    # the shop stays refused on every merchant route, from any IP,
    await _refused(await world.client.get("/v1/admin/games/squirrel/players/u1",
                                          headers=_key(world, "shop")), "merchant")
    async with other_ip(world) as session:
        await _refused(await session.get(world.client.make_url(STOCK),
                                         headers=_key(world, "shop")), "merchant")
    # and a wrong key is still the handler's 401 (no merchant to spend).
    resp = await world.client.get(STOCK, headers={"Authorization": "Bearer pbk_wrong"})
    assert resp.status == 401


@pytest.mark.parametrize("shared", [False, True])
async def test_wrong_api_keys_from_one_ip_are_slowed(aiohttp_client: Any, settings: Any,
                                                     clock: Any, db: Any, shared: bool) -> None:
    world = await _world(aiohttp_client, settings, clock, db, shared,
                         rate_merchant_auth=RateLimit(SLOW, 4))
    # Right keys never spend the failure budget,
    assert [(await world.client.get(STOCK, headers=_key(world, "shop"))).status
            for _ in range(6)] == [200] * 6
    wrong = [await world.client.get(STOCK, headers={"Authorization": f"Bearer pbk_guess{i}"})
             for i in range(6)]
    assert [r.status for r in wrong] == [401] * 4 + [429] * 2
    await _refused(wrong[-1], "merchant_auth")
    # the refused guesses were never looked up (no SQL read, nothing cached),
    looked_up = _looked_up(world)
    assert hash_api_key("pbk_guess3") in looked_up
    assert hash_api_key("pbk_guess4") not in looked_up
    assert hash_api_key("pbk_guess5") not in looked_up
    # once spent, that IP waits even with a right key (a 200 would confirm a guess),
    await _refused(await world.client.get(STOCK, headers=_key(world, "rival")),
                   "merchant_auth")
    # and so do its signed events; another IP is unaffected, right key or wrong.
    await _refused(await _order(world, "shop", "o1"), "merchant_auth")
    async with other_ip(world) as session:
        resp = await session.get(world.client.make_url(STOCK), headers=_key(world, "shop"))
        assert resp.status == 200, await resp.text()
        resp = await session.get(world.client.make_url(STOCK),
                                 headers={"Authorization": "Bearer pbk_other"})
        assert resp.status == 401
        assert (await _order(world, "shop", "o1", session)).status == 200


async def test_behind_a_trusted_balancer_the_forwarded_client_is_limited(
        aiohttp_client: Any, settings: Any, clock: Any, db: Any) -> None:
    """127.0.0.1 is the load balancer: the lockout falls on the client it forwards for,
    not on every client behind it; a peer not trusted is judged by its own address,
    whatever X-Forwarded-For it writes."""
    from ipaddress import ip_network

    world = await _world(aiohttp_client, settings, clock, db, False,
                         rate_merchant_auth=RateLimit(SLOW, 2),
                         trusted_proxies=(ip_network("127.0.0.1/32"),))

    def via(client: str, key: str = "pbk_guess") -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-Forwarded-For": client}

    guesses = [(await world.client.get(STOCK, headers=via("203.0.113.5"))).status
               for _ in range(3)]
    assert guesses == [401, 401, 429]
    # what a client wrote left of the balancer's own hop is not believed,
    await _refused(await world.client.get(STOCK, headers=via("198.51.100.1, 203.0.113.5")),
                   "merchant_auth")
    # another shopper through the same balancer is not locked out,
    shop_key = world.merchants["shop"].api_key
    assert (await world.client.get(STOCK, headers=via("203.0.113.9", shop_key))).status == 200
    # and an untrusted peer naming that shopper spends its own budget, not theirs.
    async with other_ip(world) as session:
        spoofed = [(await session.get(world.client.make_url(STOCK),
                                      headers=via("203.0.113.9"))).status for _ in range(3)]
    assert spoofed == [401, 401, 429]
    assert (await world.client.get(STOCK, headers=via("203.0.113.9", shop_key))).status == 200


def _looked_up(world: World) -> set[str]:
    """The API key hashes the app's merchant directory has looked up in SQL."""
    return set(world.client.app[MERCHANTS]._by_key)


@pytest.mark.parametrize("shared", [False, True])
async def test_signed_events_limited_per_signer(aiohttp_client: Any, settings: Any,
                                                clock: Any, db: Any, shared: bool) -> None:
    world = await _world(aiohttp_client, settings, clock, db, shared,
                         rate_events=RateLimit(SLOW, 3),
                         rate_merchant_auth=RateLimit(SLOW, 2))
    # Forged events naming the shop, from another IP: 401, then that IP's failure
    # budget is spent; they never touch the shop's own budget.
    async with other_ip(world) as session:
        forged = [(await _order(world, "shop", f"f{i}", session, secret="ab" * 32)).status
                  for i in range(4)]
    assert forged == [401, 401, 429, 429]
    paid = [await _order(world, "shop", f"o{i}") for i in range(5)]
    assert [r.status for r in paid] == [200] * 3 + [429] * 2
    await _refused(paid[-1], "events")
    assert (await _order(world, "rival", "o1")).status == 200  # per signer
