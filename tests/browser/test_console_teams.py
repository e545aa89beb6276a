"""The console's Teams panel in a real headless Chromium: a published season's best
teams (``getTeamSeasonAdmin``), a team's members (``getTeamAdmin``), and a season added
to the draft editor.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from tests.browser.console import NEEDS_CHROMIUM, draft_config, expect, shot, signed_in, submit_form
from tests.conftest import World
from tests.integration.loopgame import Shopper
from tests.integration.test_teams_http import TEAM_CONFIG, create, persister

pytestmark = NEEDS_CHROMIUM


async def test_teams_panel_shows_the_board_and_a_team_and_drafts_a_season(
        client: object, db: object, clock: object) -> None:
    world = World(client, db, clock, TEAM_CONFIG)  # type: ignore[arg-type]
    await world.merchant()
    ann, bob = Shopper(world, "ann"), Shopper(world, "bob")
    team = await create(ann, {"name": "Ants"})
    assert (await bob.post("/teams/s11/join", {"code": team["code"]}))[0] == 200
    assert (await bob.post("/checkin", {}))[0] == 200
    assert (await persister(world).run_once()).ok

    async with signed_in(world, "shop", plays="Teams") as (page, problems):
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

        await submit_form(page, "teams-new", id="d11", name="Double 11", order="30")
        await expect(page.get_by_text("In the draft: s11, open, d11")).to_be_visible()
        draft = await draft_config(page)
        added = draft["teams"]["d11"]
        assert (added["name"], added["max_size"], added["board"]) == ("Double 11", 5, "d11-teams")
        assert added["points"] == {"feed": 1, "checkin": 5, "order": 30}
        assert added["ends_at"] - added["starts_at"] == 10 * 86400
    assert problems == []
