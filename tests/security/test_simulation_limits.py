"""A merchant's Monte Carlo simulations are bounded: one at a time per merchant, so a
merchant firing many (or disconnecting and asking again) cannot take a server process's
threads and CPU from every other merchant's shoppers; another merchant's still runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import World

SIMULATE = "/v1/admin/games/squirrel/simulate"


async def _simulate(world: World, merchant: str, players: int, draws: int) -> Any:
    return await world.post(SIMULATE, str(world.merchants[merchant].api_key),
                            {"series": "forest_friends", "players": players, "draws": draws})


async def _until_running(world: World, first: asyncio.Task[Any]) -> None:
    """Let the first simulation start computing (its request reaches the pool)."""
    await asyncio.sleep(0.5)
    assert not first.done(), "the first simulation ended before the test could overlap it"


async def test_one_simulation_at_a_time_per_merchant(world: World,
                                                     example_config: dict[str, Any]) -> None:
    await world.merchant("boxshop", config=example_config)
    await world.merchant("rival", config=example_config)
    first = asyncio.create_task(_simulate(world, "boxshop", 300, 1000))
    await _until_running(world, first)

    second = await _simulate(world, "boxshop", 10, 10)
    assert second.status == 429
    assert second.headers["Retry-After"] == "5"
    error = (await second.json())["error"]
    assert (error["code"], error["details"]["limit"]) == ("rate_limited",
                                                          "merchant_simulation")
    # another merchant is not held back by it
    other = await _simulate(world, "rival", 10, 10)
    assert other.status == 200, await other.text()
    assert (await other.json())["draws"] == 100

    # leaving does not free the slot while the thread still computes
    first.cancel()
    again = await _simulate(world, "boxshop", 10, 10)
    assert again.status == 429

    deadline = time.monotonic() + 120
    while (resp := await _simulate(world, "boxshop", 10, 10)).status == 429:
        assert time.monotonic() < deadline, "the slot was never given back"
        await asyncio.sleep(0.2)
    assert resp.status == 200, await resp.text()


async def test_a_process_admits_four_simulations_at_once(
        world: World, example_config: dict[str, Any]) -> None:
    merchants = [f"m{i}" for i in range(5)]
    for merchant in merchants:
        await world.merchant(merchant, config=example_config)
    running = [asyncio.create_task(_simulate(world, m, 300, 1000)) for m in merchants[:4]]
    await _until_running(world, running[0])

    fifth = await _simulate(world, merchants[4], 10, 10)
    assert fifth.status == 429
    error = (await fifth.json())["error"]
    assert (error["code"], error["details"]["limit"]) == ("rate_limited", "simulation")
    for task in running:
        task.cancel()
