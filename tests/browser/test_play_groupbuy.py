"""The console's group-buy panel in a real headless Chromium: a published offer's open
groups (code, members, seats left) and stock through ``listGroupBuysAdmin``, and a new
offer added to the draft editor.

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
from tests.integration.test_groupbuy_http import GB_CONFIG, create, join, ok, token


async def test_group_buy_panel_shows_open_groups_and_drafts_an_offer(world: World) -> None:
    assert async_playwright is not None
    from playwright.async_api import expect

    await world.merchant("gbshop", config=GB_CONFIG)
    code = (await ok(await create(world, token(world, "ann"), "rare", "o1")))["code"]
    await ok(await join(world, token(world, "bob"), "tea",
                        (await ok(await create(world, token(world, "cat"), "tea", "o2")))["code"],
                        "j1"))
    url = str(world.client.make_url("/console"))
    async with open_console(1360) as (page, problems):
        await page.goto(url)
        await page.get_by_label("API key").fill(world.merchants["gbshop"].api_key)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("tab", name="Plays").click()
        await page.get_by_role("button", name="Group buy").click()

        rare = page.locator("#groupbuy-rare")
        await expect(rare.locator(".groupbuy-open")).to_have_text("1")
        row = rare.locator(f'tr[data-group="{code}"] td')
        await expect(row.nth(1)).to_have_text("1/2: ann")
        await expect(row.nth(2)).to_have_text("1")
        await expect(rare).to_contain_text("stock: 2 left of 2, 0 rewarded")
        tea = page.locator("#groupbuy-tea")
        await expect(tea.locator("tr td").nth(1)).to_have_text("2/3: cat, bob")
        await shot(page, "plays-groupbuy")

        await page.locator("#groupbuy-new-id").fill("d11-trio")
        await page.locator("#groupbuy-new-title").fill("Trio at 59.9")
        await page.locator("#groupbuy-new-size").fill("3")
        await page.locator("#groupbuy-new-hours").fill("48")
        await page.locator("#groupbuy-new-price").fill("59.9")
        await page.locator("#groupbuy-new-auto").check()
        await page.locator("#groupbuy-new-add").click()
        await expect(page.get_by_text("In the draft: tea, duo, rare, five, d11-trio")
                     ).to_be_visible()
        await page.get_by_role("tab", name="Draft").click()
        draft = json.loads(await page.get_by_label("Draft config (JSON)").input_value())
        assert draft["groupbuys"]["d11-trio"] == {
            "title": "Trio at 59.9", "size": 3, "duration_s": 48 * 3600, "price_fen": 5990,
            "auto_complete": True}
        assert draft["groupbuys"]["tea"] == GB_CONFIG["groupbuys"]["tea"]  # kept as it was
    assert problems == []
