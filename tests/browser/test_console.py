"""The merchant console end to end in a real headless Chromium (Debian's ``chromium``,
driven by Playwright for Python): sign in with an API key, change a weight in the
draft, see validation problems, simulate, publish, roll back, add stock, look at
analytics — and see the published odds change in ``getBoxSeries``.

Skips only when /usr/bin/chromium or the ``playwright`` package is missing
(``.ci/run`` installs both). Set ``PETBOX_CONSOLE_SCREENSHOTS=<dir>`` to keep PNGs
of each panel.
"""

from __future__ import annotations

import asyncio
import copy
import json
from fractions import Fraction
from typing import Any

from tests.browser.console import (
    COHORT_DAYS,
    NEEDS_CHROMIUM,
    Locator,
    Page,
    activity,
    expect,
    go_signed_in,
    open_console,
    shot,
    sign_in,
)
from tests.conftest import World
from tests.integration.test_boxes_http import BOX_CONFIG

pytestmark = NEEDS_CHROMIUM


async def stock_tab(page: Page) -> Locator:
    """Open the Stock tab and wait for its table, which lists ``prize:coupon_x``."""
    await page.get_by_role("tab", name="Stock").click()
    stock = page.get_by_test_id("stock")
    await expect(stock).to_contain_text("prize:coupon_x")
    return stock


SERIES_PATH = "/v1/games/squirrel/boxes/forest?merchant=boxshop"


async def published_series(world: World, version: int) -> dict[str, Any]:
    """getBoxSeries once the registry has picked up ``version`` (it polls SQL twice a second)."""
    body: dict[str, Any] = {}
    for _ in range(100):
        resp = await world.client.get(SERIES_PATH)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        if body["game_version"] == version:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"version {version} never went live: {body.get('game_version')}")


def entry(series: dict[str, Any], item: str) -> dict[str, Any]:
    return next(e for e in series["items"] if e["id"] == item)


async def test_console_end_to_end(shop: World) -> None:
    players = await activity(shop)
    before = await published_series(shop, 1)
    assert entry(before, "fig_b")["base_probability_exact"] == "1/20"  # 50 of 1000
    api_key = str(shop.merchants["boxshop"].api_key)
    url = str(shop.client.make_url("/console"))

    async with open_console(1360) as (page, problems):
        # Sign in: a wrong key is refused with a clear message, the right one works.
        await page.goto(url)
        await shot(page, "01-login")
        await sign_in(page, "pbk_not-a-real-key")
        await expect(page.locator("#login-error")).to_contain_text("not accepted")
        await sign_in(page, api_key)
        await expect(page.get_by_role("tab", name="Draft")).to_have_attribute(
            "aria-selected", "true")
        assert await page.evaluate("sessionStorage.getItem('petbox.console.apiKey')") \
            == api_key
        await page.get_by_label("Game").select_option("squirrel")
        await expect(page.locator("#live-badge")).to_have_text("live v1")

        # The draft starts as a copy of live v1; an invalid weight is listed with its
        # JSON path, and the link selects that place in the editor.
        editor = page.get_by_label("Draft config (JSON)")
        await expect(editor).to_have_value(json.dumps(BOX_CONFIG, indent=2,
                                                      ensure_ascii=False))
        await editor.fill('{\n  "name": \n}')
        await expect(page.locator("#draft-problems .problem").first).to_contain_text(
            "line 3, column 1")
        await expect(page.get_by_role("button", name="Save draft")).to_be_disabled()
        await expect(page.locator("#draft-state")).to_have_text("Not valid JSON")
        bad = copy.deepcopy(BOX_CONFIG)
        bad["boxes"]["series"]["forest"]["items"]["fig_a"]["weight"] = -5
        await editor.fill(json.dumps(bad, indent=2))
        await page.get_by_role("button", name="Save draft").click()
        problem = page.locator("#draft-problems .problem").first
        await expect(problem).to_contain_text("$.boxes.series.forest.items.fig_a.weight")
        await expect(problem).to_contain_text("must be ≥ 0")
        await problem.click()
        selected = await editor.evaluate(
            "t => t.value.slice(t.selectionStart, t.selectionEnd)")
        assert selected == '"weight": -5'
        await shot(page, "02-draft-problems")

        # Fix it and change fig_b's weight with the odds editor (50 → 150).
        await page.get_by_label("Weight of fig_a in forest").fill("50")
        await page.get_by_label("Weight of fig_a in forest").press("Enter")
        await page.get_by_label("Weight of fig_b in forest").fill("150")
        await page.get_by_label("Weight of fig_b in forest").press("Enter")
        await expect(page.locator("#draft-state")).to_have_text("Unsaved changes")
        assert json.loads(await editor.input_value())["boxes"]["series"]["forest"][
            "items"]["fig_b"]["weight"] == 150
        await page.get_by_role("button", name="Save draft").click()
        await expect(page.locator("#draft-state")).to_have_text("Saved")
        await expect(page.locator("#problem-count")).to_have_text("valid")
        await shot(page, "03-draft-saved")

        # Simulate the draft: the chart and the table show the new weights.
        await page.get_by_role("tab", name="Simulate").click()
        await page.get_by_label("Series").select_option("forest")
        await page.get_by_label("Players").fill("200")
        await page.get_by_label("Draws per player").fill("50")
        await page.get_by_role("button", name="Run simulation").click()
        chart = page.locator("#sim-results figure.chart svg").first
        await expect(chart).to_be_visible()
        assert await chart.locator("rect.s-sim").count() == 3
        assert await chart.locator("rect.s-pub").count() == 3
        row = page.get_by_test_id("sim-table").locator("tr", has_text="fig_b")
        await expect(row).to_contain_text("13.64%")  # draft base odds 150/1100
        await expect(page.get_by_test_id("sim-draws")).to_contain_text("10,000")
        await shot(page, "04-simulation")

        # Publish with a note: the confirmation shows what changes.
        await page.get_by_role("tab", name="Publish & versions").click()
        await page.get_by_label("Note").fill("rarer coupon")
        await page.get_by_role("button", name="Publish draft").click()
        dialog = page.locator("dialog#confirm")
        await expect(dialog).to_contain_text("$.boxes.series.forest.items.fig_b.weight")
        await shot(page, "05-publish-confirm")
        await dialog.get_by_role("button", name="Publish").click()
        await expect(page.locator("#live-badge")).to_have_text("live v2")
        versions = page.get_by_test_id("versions")
        await expect(versions.locator("tr.is-live")).to_contain_text("rarer coupon")

        # The shopper-facing disclosure has the new odds, exactly.
        after = await published_series(shop, 2)
        fig_b = entry(after, "fig_b")
        assert fig_b["weight"] == 150
        assert fig_b["base_probability_exact"] == "3/22"
        assert Fraction(fig_b["base_probability_exact"]) == Fraction(150, 1100)
        assert fig_b["base_probability"] == 150 / 1100

        # The diff view, then roll back to v1 (published as v3).
        await page.get_by_role("button", name="Diff v1 to v2").click()
        await expect(page.locator("#diff-view")).to_contain_text("v1 → v2")
        await expect(page.locator("#diff-view")).to_contain_text("150")
        await shot(page, "06-versions")
        await page.get_by_role("button", name="Roll back to v1").click()
        await dialog.get_by_role("button", name="Roll back").click()
        await expect(page.locator("#live-badge")).to_have_text("live v3")
        rolled = await published_series(shop, 3)
        assert entry(rolled, "fig_b")["base_probability_exact"] == "1/20"

        # Stock: add five coupons.
        stock = await stock_tab(page)
        await page.get_by_label("Units to add to prize:coupon_x").fill("5")
        await page.get_by_label("Units to add to prize:coupon_x").press("Enter")
        await expect(stock.locator("tr", has_text="prize:coupon_x")).to_contain_text("105")
        # The bar says what the units are doing (none granted yet: an empty bar).
        await expect(page.get_by_test_id("meter-prize:coupon_x")).to_have_attribute(
            "title", "granted 0 (0 %), reserved 0, left 105 of 105 (100 %)")
        await shot(page, "07-stock")

        # Analytics: the DAU chart and the cohort tables render.
        await page.get_by_role("tab", name="Analytics").click()
        await expect(page.locator("#analytics-dau svg")).to_be_visible()
        await expect(page.locator("#analytics-totals .stat").first).to_contain_text(
            f"Players{players}")
        cohorts = page.locator("#analytics-cohorts tbody tr")
        await expect(cohorts).to_have_count(len(COHORT_DAYS))
        # The Dec 10 cohort: 3 new players, 2 back the next day (p0-0, p0-2).
        first = page.locator("#analytics-cohorts tr", has_text="2025-12-10")
        await expect(first.locator("td").nth(1)).to_have_text("67%")
        assert await page.locator("#analytics-dau svg rect.s-new").count() == 30
        await shot(page, "08-analytics")

        # Keyboard: arrows move between tabs.
        await page.get_by_role("tab", name="Analytics").press("ArrowLeft")
        await expect(page.get_by_role("tab", name="Stock")).to_be_focused()
        await expect(page.get_by_role("tab", name="Stock")).to_have_attribute(
            "aria-selected", "true")
    assert problems == []


async def test_a_stock_redraw_keeps_typed_units_and_shares_one_request(shop: World) -> None:
    """Refresh clicked twice while the stock table is loading sends one request, and the
    redraw keeps units the merchant typed but did not apply; applied units are cleared."""
    async with open_console(1360) as (page, problems):
        reads: list[str] = []
        answered: list[str] = []
        second_read, second_answer, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def slow_read(route: Any) -> None:
            if route.request.method != "GET":
                await route.continue_()
                return
            reads.append(route.request.url)
            if len(reads) > 1:
                second_read.set()
                await release.wait()
            await route.continue_()

        def on_response(response: Any) -> None:
            if response.request.method == "GET" and response.url.endswith("/squirrel/stock"):
                answered.append(response.url)
                if len(answered) >= 2:
                    second_answer.set()

        page.on("response", on_response)
        await page.route("**/v1/admin/games/squirrel/stock", slow_read)
        await go_signed_in(page, shop, "boxshop", "squirrel")
        stock = await stock_tab(page)
        units = page.get_by_label("Units to add to prize:coupon_x")
        await units.fill("7")
        await page.get_by_role("button", name="Refresh").click()
        await page.get_by_role("button", name="Refresh").click()
        await asyncio.wait_for(second_read.wait(), timeout=5)
        release.set()
        await asyncio.wait_for(second_answer.wait(), timeout=5)
        await page.wait_for_timeout(300)  # the answer drawn, and no third read sent
        assert len(reads) == 2
        await expect(units).to_have_value("7")

        await units.press("Enter")
        await expect(stock.locator("tr", has_text="prize:coupon_x")).to_contain_text("107")
        await expect(units).to_have_value("")
    assert problems == []


async def test_a_stock_load_answered_after_an_apply_does_not_draw_old_totals(
        shop: World) -> None:
    """Refresh, then Apply while that refresh is still on its way: the refresh's answer
    (read before the Apply) comes last and must not put the old totals back."""
    async with open_console(1360) as (page, problems):
        held: list[Any] = []
        fetched, release = asyncio.Event(), asyncio.Event()

        async def hold_one_read(route: Any) -> None:
            if route.request.method != "GET" or held or not release_armed:
                await route.continue_()
                return
            held.append(await route.fetch())  # answered now: the totals before the Apply
            fetched.set()
            await release.wait()
            await route.fulfill(response=held[0])

        release_armed = False
        await page.route("**/v1/admin/games/squirrel/stock", hold_one_read)
        await page.goto(str(shop.client.make_url("/console")))
        await sign_in(page, str(shop.merchants["boxshop"].api_key))
        await page.get_by_label("Game").select_option("squirrel")
        await page.get_by_role("tab", name="Stock").click()
        stock = page.get_by_test_id("stock")
        row = stock.locator("tr", has_text="prize:coupon_x")
        await expect(row.locator("td").first).to_have_text("100")
        release_armed = True
        await page.get_by_role("button", name="Refresh").click()
        await asyncio.wait_for(fetched.wait(), timeout=5)
        units = page.get_by_label("Units to add to prize:coupon_x")
        await units.fill("5")
        await units.press("Enter")
        await expect(row.locator("td").first).to_have_text("105")
        release.set()
        await page.wait_for_timeout(300)  # the held answer arrives and is not drawn
        await expect(row.locator("td").first).to_have_text("105")
    assert problems == []


async def test_a_retry_after_longer_than_the_console_waits_is_shown_not_resent(
        shop: World) -> None:
    """Add stock is answered 429 with Retry-After 60 (a gateway's, say): the console does
    not send it again after 5 s, before petbox said, but shows the refusal at once."""
    async with open_console(1360) as (page, problems):
        sent: list[str] = []

        async def limited(route: Any) -> None:
            sent.append(route.request.headers.get("idempotency-key", ""))
            await route.fulfill(status=429, headers={"Retry-After": "60"},
                                content_type="application/json",
                                body=json.dumps({"error": {"code": "rate_limited",
                                                           "message": "slow down",
                                                           "details": {}}}))

        await page.route("**/v1/admin/games/squirrel/stock/*", limited)
        await go_signed_in(page, shop, "boxshop", "squirrel")
        stock = await stock_tab(page)
        await page.get_by_label("Units to add to prize:coupon_x").fill("5")
        await page.get_by_label("Units to add to prize:coupon_x").press("Enter")
        await expect(page.locator("#stock-error")).to_contain_text("rate_limited",
                                                                   timeout=3000)
        assert len(sent) == 1
        await expect(stock.locator("tr", has_text="prize:coupon_x")).to_contain_text("100")
    assert problems == []


async def test_a_publish_whose_answer_was_lost_is_resent_with_its_key_and_applied_once(
        shop: World) -> None:
    """The publish reaches petbox, but its answer is lost (a gateway's 503): the console
    sends it again with the same Idempotency-Key, petbox replays the first answer, and
    exactly one version is published."""
    api_key = str(shop.merchants["boxshop"].api_key)
    auth = {"Authorization": f"Bearer {api_key}"}
    draft = copy.deepcopy(BOX_CONFIG)
    draft["boxes"]["series"]["forest"]["items"]["fig_b"]["weight"] = 150
    saved = await shop.client.put("/v1/admin/games/squirrel/draft", json=draft, headers=auth)
    assert saved.status == 200, await saved.text()
    async with open_console(1360) as (page, problems):
        sent: list[str] = []

        async def lost_once(route: Any) -> None:
            sent.append(route.request.headers.get("idempotency-key", ""))
            answer = await route.fetch()  # petbox applies it either way
            if len(sent) == 1:
                await route.fulfill(status=503, headers={"Retry-After": "1"},
                                    content_type="application/json",
                                    body=json.dumps({"error": {"code": "unavailable",
                                                               "message": "bad gateway",
                                                               "details": {}}}))
            else:
                await route.fulfill(response=answer)

        await page.route("**/v1/admin/games/squirrel/publish", lost_once)
        await go_signed_in(page, shop, "boxshop", "squirrel")
        await page.get_by_role("tab", name="Publish & versions").click()
        await page.get_by_role("button", name="Publish draft").click()
        await page.locator("dialog#confirm").get_by_role("button", name="Publish").click()
        await expect(page.locator("#live-badge")).to_have_text("live v2")
        assert len(sent) == 2 and sent[0] == sent[1] and sent[0].startswith("publish-")
    versions = await shop.client.get("/v1/admin/games/squirrel/versions", headers=auth)
    assert [v["version"] for v in (await versions.json())["versions"]] == [2, 1]
    assert problems == []
