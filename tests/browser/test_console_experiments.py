"""The console's experiments panel in a real headless Chromium: create an experiment,
read its results (per-arm table and interval chart) after shoppers drew under it, see
that Stop asks first, that past its stop time it reads ended, and ship an arm (diff
first, then confirm).

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import time

from gameserver.appkeys import GAMES
from tests.browser.console import NEEDS_CHROMIUM, expect, shot, signed_in, submit_form
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

pytestmark = NEEDS_CHROMIUM


async def test_create_read_results_and_ship(world: World) -> None:
    world.clock.set(time.time())  # the panel starts experiments at the browser's now
    await world.merchant("abshop", config=AB_CONFIG)
    async with signed_in(world, "abshop", plays="Experiments") as (page, problems):
        await submit_form(page, "exp-new", "create", id="scarce", name="Scarcer rare",
                          hypothesis="a scarcer rare lowers D1", path=WEIGHT, value="10",
                          size="10", metric="draws_per_shopper")
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

        # Stopping cannot be undone, so it asks first; Cancel leaves the test running.
        await card.locator("#exp-scarce-stop").click()
        await expect(page.locator("#confirm")).to_contain_text("cannot run again")
        await page.get_by_role("button", name="Cancel").click()
        await expect(card.locator(".exp-status")).to_have_text("running")

        # past its stop time (14 days) it has ended: no Stop, its results final
        world.clock.set(time.time() + 15 * 86_400)
        await page.get_by_role("button", name="Experiments").click()
        await expect(card.locator(".exp-status")).to_have_text("ended")
        await expect(card.locator("#exp-scarce-stop")).to_have_count(0)

        await card.locator("#exp-scarce-ship-arm").select_option("treatment")
        await card.locator("#exp-scarce-ship").click()
        await expect(card.locator(".exp-diff")).to_contain_text(f"{WEIGHT}: 50 → 10")
        await card.locator("#exp-scarce-ship-confirm").click()
        await expect(page.locator("#exp-scarce .exp-status")).to_have_text("shipped")
    assert problems == []
    live = await ok(await world.client.get("/v1/admin/games/squirrel/versions/3",
                                           headers=admin(world)))
    assert live["config"]["boxes"]["series"]["forest"]["items"]["fig_b"]["weight"] == 10
