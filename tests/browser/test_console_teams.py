"""The console's Teams panel in a real headless Chromium: a published season's best
teams (``getTeamSeasonAdmin``), a team's members (``getTeamAdmin``), and a season added
to the draft editor.

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
from tests.integration.loopgame import Shopper
from tests.integration.test_teams_http import TEAM_CONFIG, create, persister


async def test_teams_panel_shows_the_board_and_a_team_and_drafts_a_season(
        client: object, db: object, clock: object) -> None:
    assert async_playwright is not None
    from playwright.async_api import expect

    world = World(client, db, clock, TEAM_CONFIG)  # type: ignore[arg-type]
    await world.merchant()
    ann, bob = Shopper(world, "ann"), Shopper(world, "bob")
    team = await create(ann, {"name": "Ants"})
    assert (await bob.post("/teams/s11/join", {"code": team["code"]}))[0] == 200
    assert (await bob.post("/checkin", {}))[0] == 200
    assert (await persister(world).run_once()).ok

    url = str(world.client.make_url("/console"))
    async with open_console(1360) as (page, problems):
        await page.goto(url)
        await page.get_by_label("API key").fill(world.merchants["shop"].api_key)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("tab", name="Plays").click()
        await page.get_by_role("button", name="Teams").click()

        row = page.locator(f'#season-s11 tr[data-team="{team["team"]}"]')
        await expect(row.locator("td").nth(2)).to_have_text("5")
        await expect(row.locator("td").nth(3)).to_have_text("2")
        await row.get_by_role("link", name="Ants").click()
        members = page.locator(f"#team-{team['team']} tr[data-user]")
        await expect(members).to_have_count(2)
        await expect(page.locator(f"#team-{team['team']} tr[data-user=bob] td.num")
                     ).to_have_text("5")
        await expect(page.locator(f"#team-{team['team']} code")).to_have_text(team["code"])
        await shot(page, "plays-teams")

        await page.locator("#teams-new-id").fill("d11")
        await page.locator("#teams-new-name").fill("Double 11")
        await page.locator("#teams-new-order").fill("30")
        await page.locator("#teams-new-add").click()
        await expect(page.get_by_text("In the draft: s11, open, d11")).to_be_visible()
        await page.get_by_role("tab", name="Draft").click()
        draft = json.loads(await page.get_by_label("Draft config (JSON)").input_value())
        added = draft["teams"]["d11"]
        assert (added["name"], added["max_size"], added["board"]) == ("Double 11", 5, "d11-teams")
        assert added["points"] == {"feed": 1, "checkin": 5, "order": 30}
        assert added["ends_at"] - added["starts_at"] == 10 * 86400
    assert problems == []
