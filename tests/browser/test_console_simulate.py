"""Simulating an unsaved draft in the console: the console asks before it saves the
draft (it saved silently, issue 18), and a toast left from before never covers the
results (stale toasts are cleared when they come)."""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, expect, signed_in
from tests.conftest import World

pytestmark = NEEDS_CHROMIUM


async def test_simulate_asks_before_saving_the_draft(shop: World) -> None:
    api_key = str(shop.merchants["boxshop"].api_key)
    draft_url = "/v1/admin/games/squirrel/draft"
    auth = {"Authorization": f"Bearer {api_key}"}
    async with signed_in(shop, "boxshop", width=1280, game="squirrel") as (page, problems):
        await expect(page.locator("#live-badge")).to_have_text("live v1")
        await page.get_by_label("Weight of fig_b in forest").fill("150")
        await page.get_by_label("Weight of fig_b in forest").press("Enter")
        await expect(page.locator("#draft-state")).to_have_text("Unsaved changes")

        await page.get_by_role("tab", name="Simulate").click()
        await page.get_by_label("Series").select_option("forest")
        await page.get_by_label("Players").fill("50")
        await page.get_by_label("Draws per player").fill("20")
        await page.get_by_role("button", name="Run simulation").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("Save the draft to simulate it?")
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        assert (await shop.client.get(draft_url, headers=auth)).status == 404
        await expect(page.locator("#sim-results figure.chart")).to_have_count(0)

        # A toast left from before the run (as a save or a stock change leaves one).
        await page.evaluate("""() => document.getElementById('toasts').append(
            Object.assign(document.createElement('div'),
                          {className: 'toast', textContent: 'old news'}))""")
        await page.get_by_role("button", name="Run simulation").click()
        await dialog.get_by_role("button", name="Save and simulate").click()
        await expect(page.locator("#sim-results figure.chart svg").first).to_be_visible()
        await expect(page.locator("#toasts .toast")).to_have_count(0)
        saved = await shop.client.get(draft_url, headers=auth)
        assert saved.status == 200
        body = await saved.json()
        assert body["config"]["boxes"]["series"]["forest"]["items"]["fig_b"]["weight"] == 150
        assert problems == []
