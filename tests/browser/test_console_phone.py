"""The merchant console on a phone: 390 px wide in real Chromium. Signed in, on every
tab, nothing is wider than the viewport (the page does not scroll sideways and no
element sticks out past its right edge), and each tab can be reached and opened.

It was 609 px wide in a 390 px viewport, with a cut header and wrapped tabs (issue 18).
"""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, activity, expect, open_console, shot, sign_in
from tests.conftest import World

pytestmark = NEEDS_CHROMIUM

WIDTH = 390
TABS = ["Draft", "Simulate", "Versions", "Stock", "Analytics", "Plays"]

OVERFLOW = """width => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.getClientRects().length) continue;  // hidden
    if (el.closest('.tabs')) continue;  // the tab strip scrolls inside itself
    let clipped = false;  // inside a box that scrolls or clips (a wide table, the editor)
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX)) { clipped = true; break; }
    }
    if (clipped) continue;
    const r = el.getBoundingClientRect();
    if (r.right > width + 0.5 || r.left < -0.5) {
      out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}` +
               `${el.className && typeof el.className === 'string' ? '.' +
                  el.className.trim().split(/\\s+/).join('.') : ''} ` +
               `[${Math.round(r.left)}, ${Math.round(r.right)}]`);
    }
  }
  return {scroll: document.documentElement.scrollWidth, sticking_out: out.slice(0, 8)};
}"""


async def test_console_at_390_px(shop: World) -> None:
    await activity(shop)
    api_key = str(shop.merchants["boxshop"].api_key)
    url = str(shop.client.make_url("/console"))
    async with open_console(WIDTH) as (page, problems):
        await page.goto(url)
        assert await page.evaluate(OVERFLOW, WIDTH) == {"scroll": WIDTH, "sticking_out": []}
        await sign_in(page, api_key)
        await page.get_by_label("Game").select_option("squirrel")
        await expect(page.locator("#live-badge")).to_have_text("live v1")
        strip = await page.locator(".tabs").bounding_box()
        assert strip is not None and strip["width"] <= WIDTH
        for name in TABS:
            tab = page.get_by_role("tab", name=name)
            await tab.scroll_into_view_if_needed()
            box = await tab.bounding_box()
            # one row of tabs, each wholly on screen once scrolled to, big enough to tap
            assert box is not None and box["y"] - strip["y"] < 4, (name, box, strip)
            assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH + 0.5, (name, box)
            assert box["height"] >= 40, (name, box)
            await tab.click()
            await expect(tab).to_have_attribute("aria-selected", "true")
            await expect(page.locator(f"#{await tab.get_attribute('aria-controls')}")) \
                .to_be_visible()
            await page.wait_for_timeout(300)  # the panel's data and charts
            await shot(page, f"phone-{name.lower()}")
            assert await page.evaluate(OVERFLOW, WIDTH) == {"scroll": WIDTH,
                                                             "sticking_out": []}, name
        # The plays' forms (a reward editor a day, the task form) fit as well.
        for play in ("Daily check-in", "Shop tasks"):
            await page.get_by_role("button", name=play).click()
            await expect(page.locator("#ci-form, #tk-form")).to_be_visible()
            await shot(page, f"phone-{play.split()[-1]}")
            assert await page.evaluate(OVERFLOW, WIDTH) == {"scroll": WIDTH,
                                                             "sticking_out": []}, play
        assert problems == []
