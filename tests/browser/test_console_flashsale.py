"""The console's flash-sale panel in a real headless Chromium: a published sale's live
state (status, units left, taken and still being settled) from the public getFlashSale, the
presale's card, and a flash sale added to the draft editor.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gameserver.api.flashsale import STOCK_CACHE
from tests.browser.console import NEEDS_CHROMIUM, draft_config, expect, shot, signed_in, submit_form
from tests.conftest import World
from tests.integration.test_flashsale_http import CONFIG, SHOP, START, claim, in_flight

if TYPE_CHECKING:  # the tests skip, not fail, where Playwright is missing
    from playwright.async_api import Locator

pytestmark = NEEDS_CHROMIUM


async def card_shows(card: Locator, status: str, *, left: int, taken: int) -> None:
    """A sale's card: its status badge, units left, and units held or sold."""
    await expect(card.locator(".fs-status")).to_have_text(status)
    await expect(card.locator(".fs-left")).to_have_text(str(left))
    await expect(card.locator(".fs-taken")).to_have_text(str(taken))


async def test_plays_tab_shows_a_live_flash_sale_and_drafts_one(world: World) -> None:
    await world.merchant(SHOP, config=CONFIG)
    world.clock.advance(START - int(world.clock.now()))
    resp, _ = await claim(world, "ann", "k1")
    assert resp.status == 200
    async with signed_in(world, SHOP, plays="Flash sales") as (page, problems):
        await card_shows(page.locator("#flashsale-midnight"), "live", left=2, taken=1)
        await expect(page.locator("#presale-early .fs-status")).to_have_text("ended")
        await shot(page, "plays-flashsale")

        await submit_form(page, "fs-new", id="noon", title="Noon deal", sku="NOON-1",
                          stock="50")
        await expect(page.get_by_text("In the draft: midnight, noon")).to_be_visible()
        draft = await draft_config(page)
        added = draft["flashsales"]["noon"]
        assert (added["title"], added["sku"], added["stock"], added["price_fen"],
                added["pay_seconds"]) == ("Noon deal", "NOON-1", 50, 990, 900)
        assert not problems


async def test_a_sale_whose_last_unit_is_being_settled_says_so(world: World) -> None:
    """Sold out but for a unit a claim in flight holds: the card says it may come back
    (what shoppers are told as 还有机会), so the merchant does not read it as over."""
    await world.merchant(SHOP, config=CONFIG)
    world.client.app[STOCK_CACHE].ttl = 0
    world.clock.advance(START - int(world.clock.now()))
    for user in ("ann", "bob"):
        assert (await claim(world, user, "k1"))[0].status == 200
    await in_flight(world, "attempt-1")
    async with signed_in(world, SHOP, plays="Flash sales") as (page, problems):
        card = page.locator("#flashsale-midnight")
        await card_shows(card, "sold_out", left=0, taken=3)
        await expect(card.locator(".fs-pending")).to_have_text("1")
        await expect(card).to_contain_text("1 being settled (may come back)")
        await shot(page, "plays-flashsale-pending")
        assert not problems


D11_MIDNIGHT = 1_794_326_400
"""2026-11-11 00:00 in Asia/Shanghai (the game's zone): 2026-11-10 16:00 UTC."""


async def test_times_are_the_games_and_adding_a_drafted_id_changes_nothing(world: World) -> None:
    """A browser on UTC shows and takes times in the game's zone: the sale starting at
    09:00 there reads 09:00 GMT+8 (not 01:00), a start typed as 11-11 00:00 is midnight
    there (not 08:00). Adding a sale under an id the draft has is refused, the sale kept."""
    await world.merchant(SHOP, config=CONFIG)
    async with signed_in(world, SHOP, plays="Flash sales", timezone="UTC") as (page, problems):
        # The sale's first public read also sets its stock gate up from SQL (no claim
        # came before): on a loaded CI host with PostgreSQL that took over 5 s.
        await expect(page.locator("#flashsale-midnight")).to_contain_text(
            "Jan 1, 2026, 09:00 GMT+8", timeout=20_000)  # START, 01:00 UTC
        await expect(page.get_by_label("Starts (Asia/Shanghai)")).to_be_visible()
        await submit_form(page, "fs-new", id="d11", sku="D11-1", start="2026-11-11T00:00")
        await expect(page.get_by_text("In the draft: midnight, d11")).to_be_visible()
        await submit_form(page, "fs-new", id="midnight", sku="OTHER-1", stock="5")
        await expect(page.locator("#toasts")).to_contain_text(
            "Flash sale midnight is already in the draft")
        draft = await draft_config(page)
        assert draft["flashsales"]["d11"]["starts_at"] == D11_MIDNIGHT
        assert draft["flashsales"]["midnight"] == CONFIG["flashsales"]["midnight"]
        assert not problems
