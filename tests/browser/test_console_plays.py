"""The console's Plays tab in a real headless Chromium: the play panels registered by
``play-<name>.js`` appear as buttons; the poll panel reads a published poll's live
tallies through the public ``getPoll`` and adds a poll to the draft editor.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, draft_config, expect, shot, signed_in, submit_form
from tests.conftest import World
from tests.integration.test_poll_http import POLL_CONFIG, token, vote

pytestmark = NEEDS_CHROMIUM

VOTES = {"red": 3, "blue": 1, "green": 0}


async def test_plays_tab_reads_poll_tallies_and_drafts_a_poll(world: World) -> None:
    await world.merchant("pollshop", config=POLL_CONFIG)
    n = 0
    for option, count in VOTES.items():
        for _ in range(count):
            n += 1
            resp = await vote(world, token(world, f"voter{n}"), option, f"v{n}")
            assert resp.status == 200, await resp.text()
    async with signed_in(world, "pollshop", plays="Polls") as (page, problems):
        card = page.locator("#poll-best")
        await expect(card.locator(".poll-total")).to_have_text("4")
        for option, count in VOTES.items():
            row = card.locator(f"tr[data-option={option}] td.num").first
            await expect(row).to_have_text(str(count))
        await expect(card.locator("tr[data-option=red] td").nth(2)).to_have_text("75.0%")
        await shot(page, "plays-poll")

        await submit_form(page, "poll-new", id="flavour", title="Next flavour",
                          options="pecan, cashew")
        await expect(page.get_by_text("In the draft: best, later, flavour")).to_be_visible()
        draft = await draft_config(page)
        added = draft["polls"]["flavour"]
        assert added["title"] == "Next flavour"
        assert added["options"] == {"o1": {"label": "pecan"}, "o2": {"label": "cashew"}}
        assert added["closes_at"] - added["opens_at"] == 7 * 86400
        assert draft["polls"]["best"] == POLL_CONFIG["polls"]["best"]  # kept as it was
    assert problems == []
