"""The console's experiments panel in a real headless Chromium: create an experiment,
read its results (per-arm table and interval chart) after shoppers drew under it, and
ship an arm (diff first, then confirm).

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import time

from gameserver.appkeys import GAMES
from tests.browser.test_console import (
    async_playwright,
    open_console,
    pytestmark,  # noqa: F401 - the same skips as the console test
    shot,
)
from tests.conftest import World
from tests.integration.test_experiments_http import (
    AB_CONFIG,
    ADMIN,
    SERIES,
    WEIGHT,
    admin,
    flush,
    ok,
    token,
)


async def test_create_read_results_and_ship(world: World) -> None:
    assert async_playwright is not None
    from playwright.async_api import expect

    world.clock.set(time.time())  # the panel starts experiments at the browser's now
    await world.merchant("abshop", config=AB_CONFIG)
    url = str(world.client.make_url("/console"))
    async with open_console(1360) as (page, problems):
        await page.goto(url)
        await page.get_by_label("API key").fill(world.merchants["abshop"].api_key)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("tab", name="Plays").click()
        await page.get_by_role("button", name="Experiments").click()

        await page.locator("#exp-new-id").fill("scarce")
        await page.locator("#exp-new-name").fill("Scarcer rare")
        await page.locator("#exp-new-hypothesis").fill("a scarcer rare lowers D1")
        await page.locator("#exp-new-path").fill(WEIGHT)
        await page.locator("#exp-new-value").fill("10")
        await page.locator("#exp-new-size").fill("10")
        await page.locator("#exp-new-metric").select_option("draws_per_shopper")
        await page.locator("#exp-new-create").click()
        card = page.locator("#exp-scarce")
        await expect(card.locator(".exp-status")).to_have_text("running")

        await world.client.app[GAMES].refresh()
        world.clock.set(time.time() + 5)  # started on the server's clock too
        for i in range(12):
            await ok(await world.post(f"{SERIES}/draw", token(world, f"s{i}"), {}, f"k{i}"))
        await flush(world)
        exposed = (await ok(await world.client.get(f"{ADMIN}/scarce/results",
                                                   headers=admin(world))))["exposed"]
        assert sum(exposed.values()) == 12

        await card.locator("#exp-scarce-results").click()
        for arm, n in exposed.items():
            await expect(card.locator(f"tr[data-arm={arm}] .exp-exposed")).to_have_text(str(n))
        await expect(card.locator("svg.exp-chart")).to_have_count(1)
        await shot(page, "plays-experiments")

        await card.locator("#exp-scarce-ship-arm").select_option("treatment")
        await card.locator("#exp-scarce-ship").click()
        await expect(card.locator(".exp-diff")).to_contain_text(f"{WEIGHT}: 50 → 10")
        await card.locator("#exp-scarce-ship-confirm").click()
        await expect(page.locator("#exp-scarce .exp-status")).to_have_text("shipped")
    assert problems == []
    live = await ok(await world.client.get("/v1/admin/games/squirrel/versions/3",
                                           headers=admin(world)))
    assert live["config"]["boxes"]["series"]["forest"]["items"]["fig_b"]["weight"] == 10
