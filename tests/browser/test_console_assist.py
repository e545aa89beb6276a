"""The console's friend-assist panel in a real headless Chromium: a published campaign's
results (getAssistCampaignAdmin), an assist looked up by its share code
(getAssistAdmin), and a campaign added to the draft editor.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, draft_config, expect, shot, signed_in, submit_form
from tests.conftest import World
from tests.integration.test_assist_http import ASSIST_CONFIG, help_, started, token
from tests.integration.test_poll_http import flush_all

pytestmark = NEEDS_CHROMIUM


async def test_assist_panel_shows_results_finds_an_assist_and_drafts_one(world: World) -> None:
    await world.merchant("helpshop", config=ASSIST_CONFIG)
    code = await started(world, "olga")
    for helper in ("hana", "hugo"):
        assert (await help_(world, token(world, helper), code, f"h-{helper}")).status == 200
    await started(world, "oscar")
    await flush_all(world)
    async with signed_in(world, "helpshop", plays="Friend assist") as (page, problems):
        card = page.locator("#assist-campaign-friends")
        await expect(card.locator(".assist-started .stat-value")).to_have_text("2")
        await expect(card.locator(".assist-open .stat-value")).to_have_text("2")
        await expect(card.locator(".assist-helps .stat-value")).to_have_text("2")
        await expect(card.locator(f'tr[data-assist="{code}"] td.num')).to_have_text("2/3")
        await card.locator("#assist-code-friends").fill(code)
        await card.locator("#assist-find-friends").click()
        await expect(card.locator(".assist-owner")).to_have_text("olga")
        await expect(card.locator(".assist-helpers")).to_have_text("hana, hugo")
        await shot(page, "plays-assist")

        await submit_form(page, "assist-new", id="d11", title="Five friends", needed="5",
                          coupon="c10")
        await expect(page.locator("#assist-drafted")).to_have_text(
            "In the draft: friends, aged, d11")
        draft = await draft_config(page)
        assert draft["assists"]["d11"] == {
            "title": "Five friends", "needed": 5, "duration_s": 86400,
            "owner_reward": {"coupon": "c10"}, "helps_per_day": 5, "helps_per_campaign": 50,
            "new_fans_only": False}
        assert draft["assists"]["friends"] == ASSIST_CONFIG["assists"]["friends"]
    assert problems == []
