"""The console's group-buy panel in a real headless Chromium: a published offer's open
groups (code, members, seats left) and stock through ``listGroupBuysAdmin``, and a new
offer added to the draft editor.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, draft_config, expect, shot, signed_in, submit_form
from tests.conftest import World
from tests.integration.test_groupbuy_http import GB_CONFIG, create, join, ok, token

pytestmark = NEEDS_CHROMIUM


async def test_group_buy_panel_shows_open_groups_and_drafts_an_offer(world: World) -> None:
    await world.merchant("gbshop", config=GB_CONFIG)
    code = (await ok(await create(world, token(world, "ann"), "rare", "o1")))["code"]
    await ok(await join(world, token(world, "bob"), "tea",
                        (await ok(await create(world, token(world, "cat"), "tea", "o2")))["code"],
                        "j1"))
    async with signed_in(world, "gbshop", plays="Group buy") as (page, problems):
        rare = page.locator("#groupbuy-rare")
        await expect(rare.locator(".groupbuy-open")).to_have_text("1")
        row = rare.locator(f'tr[data-group="{code}"] td')
        await expect(row.nth(1)).to_have_text("1/2: ann")
        await expect(row.nth(2)).to_have_text("1")
        await expect(rare).to_contain_text("stock: 2 left of 2, 0 rewarded")
        tea = page.locator("#groupbuy-tea")
        await expect(tea.locator("tr td").nth(1)).to_have_text("2/3: cat, bob")
        await shot(page, "plays-groupbuy")

        await submit_form(page, "groupbuy-new", id="d11-trio", title="Trio at 59.9", size="3",
                          hours="48", price="59.9", auto=True)
        await expect(page.get_by_text("In the draft: tea, duo, rare, five, d11-trio")
                     ).to_be_visible()
        draft = await draft_config(page)
        assert draft["groupbuys"]["d11-trio"] == {
            "title": "Trio at 59.9", "size": 3, "duration_s": 48 * 3600, "price_fen": 5990,
            "auto_complete": True}
        assert draft["groupbuys"]["tea"] == GB_CONFIG["groupbuys"]["tea"]  # kept as it was
    assert problems == []
