"""The console's flash-sale panel in a real headless Chromium: a published sale's live
state (status, units left and taken) from the public getFlashSale after a claim, the
presale's card, and a flash sale added to the draft editor.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import json

from tests.browser.test_console import (
    async_playwright,
    open_console,
    pytestmark,  # noqa: F401 - the same skips as the console test
    shot,
)
from tests.conftest import World
from tests.integration.test_flashsale_http import CONFIG, SHOP, START, claim


async def test_plays_tab_shows_a_live_flash_sale_and_drafts_one(world: World) -> None:
    assert async_playwright is not None
    from playwright.async_api import expect

    await world.merchant(SHOP, config=CONFIG)
    world.clock.advance(START - int(world.clock.now()))
    resp, _ = await claim(world, "ann", "k1")
    assert resp.status == 200
    url = str(world.client.make_url("/console"))
    async with open_console(1360) as (page, problems):
        await page.goto(url)
        await page.get_by_label("API key").fill(world.merchants[SHOP].api_key)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("tab", name="Plays").click()
        await page.get_by_role("button", name="Flash sales").click()

        card = page.locator("#flashsale-midnight")
        await expect(card.locator(".fs-status")).to_have_text("live")
        await expect(card.locator(".fs-left")).to_have_text("2")
        await expect(card.locator(".fs-taken")).to_have_text("1")
        await expect(page.locator("#presale-early .fs-status")).to_have_text("ended")
        await shot(page, "plays-flashsale")

        await page.locator("#fs-new-id").fill("noon")
        await page.locator("#fs-new-title").fill("Noon deal")
        await page.locator("#fs-new-sku").fill("NOON-1")
        await page.locator("#fs-new-stock").fill("50")
        await page.locator("#fs-new-add").click()
        await expect(page.get_by_text("In the draft: midnight, noon")).to_be_visible()
        await page.get_by_role("tab", name="Draft").click()
        draft = json.loads(await page.get_by_label("Draft config (JSON)").input_value())
        added = draft["flashsales"]["noon"]
        assert (added["title"], added["sku"], added["stock"], added["price_fen"],
                added["pay_seconds"]) == ("Noon deal", "NOON-1", 50, 990, 900)
        assert not problems
