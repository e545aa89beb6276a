"""Energy over HTTP against real Redis and SQL: ``spendEnergy`` and the ``energy`` of
``getPlayer``, the worked example of a mechanic added through the registry.

Energy of ``ENERGY_CONFIG``: max 3, one unit every 600 s.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import BASIC_CONFIG, World

GAME = "/v1/games/squirrel"
SPEND = f"{GAME}/energy/spend"
ENERGY_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
ENERGY_CONFIG["energy"] = {"name": "Stamina", "max": 3, "refill_seconds": 600}


@pytest.fixture
async def ew(world: World) -> World:
    await world.merchant("eshop", config=ENERGY_CONFIG)
    return world


async def me(world: World, token: str) -> dict[str, Any]:
    resp = await world.get(f"{GAME}/me", token)
    assert resp.status == 200, await resp.text()
    player: dict[str, Any] = (await resp.json())["player"]
    return player


async def test_spend_until_empty_then_wait_for_the_refill(ew: World) -> None:
    token = await ew.token("alice", merchant_id="eshop")
    now = int(ew.clock.now())
    assert (await me(ew, token))["energy"] == {
        "name": "Stamina", "value": 3, "max": 3, "next_refill_at": None, "full_at": None}

    first = await ew.post(SPEND, token, {"amount": 2}, "e1")
    assert first.status == 200, await first.text()
    body = await first.json()
    assert body["spent"] == 2
    assert body["player"]["energy"] == {"name": "Stamina", "value": 1, "max": 3,
                                        "next_refill_at": now + 600, "full_at": now + 1200}

    refused = await ew.post(SPEND, token, {"amount": 2}, "e2")
    assert refused.status == 409
    assert refused.headers["Retry-After"] == "600"
    assert await refused.json() == {"error": {
        "code": "not_enough_energy", "message": "not enough energy: have 1, need 2",
        "details": {"have": 1, "need": 2, "ready_at": now + 600, "retry_after": 600}}}

    ew.clock.advance(600)
    again = await ew.post(SPEND, token, {"amount": 2}, "e3")
    assert again.status == 200, await again.text()
    assert (await again.json())["player"]["energy"]["value"] == 0
    assert (await me(ew, token))["energy"]["value"] == 0


async def test_a_retry_with_the_same_key_spends_once(ew: World) -> None:
    token = await ew.token("bob", merchant_id="eshop")
    first = await ew.post(SPEND, token, {"amount": 1}, "same")
    replay = await ew.post(SPEND, token, {"amount": 1}, "same")
    assert (first.status, replay.status) == (200, 200)
    assert await first.read() == await replay.read()
    assert (await me(ew, token))["energy"]["value"] == 2


async def test_bad_amounts_are_refused_and_change_nothing(ew: World) -> None:
    token = await ew.token("carol", merchant_id="eshop")
    for i, amount in enumerate([0, 4, "x"]):
        resp = await ew.post(SPEND, token, {"amount": amount}, f"bad-{i}")
        assert resp.status == 422, (amount, await resp.text())
        assert (await resp.json())["error"]["code"] == "invalid_input"
    assert (await me(ew, token))["energy"]["value"] == 3


async def test_a_game_without_energy_has_no_energy(world: World) -> None:
    token = await world.token("dave")
    resp = await world.post(SPEND, token, {"amount": 1}, "k1")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "feature_disabled"
    assert "energy" not in await me(world, token)
