"""The console's event export in a real headless Chromium: the merchant picks the kinds
of event, the console pages through exportEvents by its cursor and downloads one NDJSON
file with exactly the API's lines of those kinds; a cursor the server refuses is shown
with the server's words.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, activity, expect, shot, signed_in
from tests.conftest import World

pytestmark = NEEDS_CHROMIUM

EXPORT = "/v1/admin/games/squirrel/export"
PAGE = 40  # lines a request, so the ~180 events take several


async def api_pages(world: World, limit: int | None) -> tuple[list[str], int]:
    """The export read by a merchant's backend: event lines, and requests it took."""
    key = world.merchants["boxshop"].api_key
    lines: list[str] = []
    cursor, requests = "", 0
    while True:
        params = {"cursor": cursor} | ({"limit": str(limit)} if limit else {})
        resp = await world.client.get(EXPORT, params=params,
                                      headers={"Authorization": f"Bearer {key}"})
        assert resp.status == 200, await resp.text()
        requests += 1
        *events, end = (await resp.text()).splitlines()
        lines += events
        cursor = end.split('"cursor":"')[1].split('"')[0]
        if '"more":true' not in end:
            return lines, requests


async def test_export_downloads_the_picked_kinds_page_by_page(shop: World) -> None:
    await activity(shop)
    everything, _ = await api_pages(shop, None)
    ledger = [line for line in everything if line.startswith('{"type":"ledger"')]
    draws = len(everything) - len(ledger)
    assert len(ledger) > 2 * PAGE and draws > 0
    _, requests = await api_pages(shop, PAGE)
    seen: list[str] = []
    async with signed_in(shop, "boxshop", game="squirrel") as (page, problems):
        page.on("request", lambda r: seen.append(r.url) if EXPORT in r.url else None)
        await page.get_by_role("tab", name="Analytics").click()
        form = page.locator("#export-form")
        await form.evaluate(f"f => {{ f.dataset.pageSize = '{PAGE}'; }}")

        # A cursor the server does not know: its refusal, with the path, in the form.
        await page.get_by_label("Only events after this cursor (optional)").fill("v1.7")
        await page.get_by_role("button", name="Download").click()
        error = page.locator("#export-error")
        await expect(error).to_contain_text("$.cursor")
        await expect(error).to_contain_text("HTTP 422")
        await page.get_by_label("Only events after this cursor (optional)").fill("")

        # Balance changes only (draws unticked), from the start.
        await page.get_by_label("Blind-box draws (draw)").uncheck()
        async with page.expect_download() as info:
            await page.get_by_role("button", name="Download").click()
        download = await info.value
        assert download.suggested_filename.startswith("squirrel-events-")
        path = await download.path()
        assert path.read_text(encoding="utf-8").splitlines() == ledger
        status = page.locator("#export-status")
        await expect(status).to_contain_text(
            f"{len(ledger)} events in {download.suggested_filename} (ledger {len(ledger)})")
        await expect(error).to_be_hidden()
        await expect(page.locator("#export-progress")).to_be_hidden()
        await shot(page, "analytics-export")
        assert len(seen) == 1 + requests  # the refused one, then the pages a backend reads
        assert not problems
