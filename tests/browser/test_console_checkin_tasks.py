"""The console's check-in and tasks panels in a real headless Chromium: each edits its
section of the draft through a form, refuses in the form what the config schema refuses
(nothing written), saves what it accepts (putGameDraft, read back here) and shows the
server's own problems when the server refuses the draft.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.browser.console import NEEDS_CHROMIUM, Page, draft_config, expect, shot, signed_in
from tests.conftest import BASIC_CONFIG, World

pytestmark = NEEDS_CHROMIUM

SHOP = "corner"
CONFIG: dict[str, Any] = {
    **copy.deepcopy(BASIC_CONFIG),
    "currencies": {"acorn": {"name": "Acorns", "initial": 100, "max": 100000},
                   "gem": {"name": "Gems", "initial": 0, "max": 1000}},
    "items": {"pine_cone": {"name": "Pine cone"}, "box_ticket": {"name": "Box ticket"}},
    "coupons": {"c5": {"name": "¥5 off", "stock": 100}},
    "checkin": {"cycle": [{"currency": {"acorn": 10}},
                          {"currency": {"acorn": 15}, "items": {"pine_cone": 1}}],
                "makeup": {"cost": {"currency": {"gem": 1}}, "per_cycle": 1, "window_days": 6}},
    "tasks": {"share_pet": {"name": "Share your squirrel", "kind": "share", "period": "daily",
                            "reward": {"currency": {"acorn": 10}}},
              "follow_shop": {"name": "Follow the shop", "kind": "follow", "period": "once",
                              "reward": {"items": {"pine_cone": 3}}}},
}


async def saved_draft(world: World) -> dict[str, Any]:
    """getGameDraft as the merchant's backend reads it."""
    key = world.merchants[SHOP].api_key
    resp = await world.client.get("/v1/admin/games/squirrel/draft",
                                  headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def edit_draft_json(page: Page, config: dict[str, Any]) -> None:
    """Replace the Draft tab's JSON (unsaved), as a merchant editing it by hand would."""
    await page.get_by_role("tab", name="Draft").click()
    await page.get_by_label("Draft config (JSON)").fill(json.dumps(config, indent=2))
    await expect(page.locator("#draft-state")).to_have_text("Unsaved changes")


async def test_checkin_form_refuses_a_bad_amount_and_saves_a_new_day(world: World) -> None:
    await world.merchant(SHOP, config=CONFIG)
    async with signed_in(world, SHOP, plays="Daily check-in") as (page, problems):
        await expect(page.locator("#ci-drafted")).to_have_text(
            "In the draft: a 2-day cycle, makeups: 1 a cycle, up to 6 days back.")
        await expect(page.locator("#ci-day2-cur-acorn")).to_have_value("15")
        await expect(page.locator("#ci-day2-item0")).to_have_value("pine_cone")

        # Refused in the form, worded as the schema words it; the draft is left alone.
        await page.locator("#ci-day2-cur-acorn").fill("-5")
        await page.locator("#ci-makeup-window").fill("32")
        await page.locator("#ci-save").click()
        box = page.locator("#ci-problems")
        await expect(box).to_contain_text("2 problems: nothing was changed.")
        await expect(box).to_contain_text("$.checkin.cycle[1].currency.acorn must be ≥ 0")
        await expect(box).to_contain_text("$.checkin.makeup.window_days must be ≤ 31")
        await expect(page.locator("#ci-day2-cur-acorn")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#ci-day2-cur-acorn")).to_be_focused()
        await shot(page, "plays-checkin-refused")

        # A third day (gems, an item, a coupon) with the keyboard, and a shorter window.
        await page.locator("#ci-day2-cur-acorn").fill("15")
        await page.locator("#ci-makeup-window").fill("3")
        await page.locator("#ci-add-day").click()
        await expect(page.locator("#ci-day3-cur-acorn")).to_be_focused()  # the new day's first
        await page.keyboard.press("Tab")
        await page.keyboard.type("2")
        await expect(page.locator("#ci-day3-cur-gem")).to_have_value("2")
        await page.locator("#ci-day3-add-item").press("Enter")
        await page.locator("#ci-day3-item0").select_option("box_ticket")
        await page.locator("#ci-day3-coupon").select_option("c5")
        await page.locator("#ci-day3-cur-gem").press("Enter")  # Enter saves, as the button
        await expect(page.locator("#toasts")).to_contain_text("Check-in saved in the draft")
        await expect(page.locator("#ci-drafted")).to_have_text(
            "In the draft: a 3-day cycle, makeups: 1 a cycle, up to 3 days back.")
        await shot(page, "plays-checkin")
        assert not problems

    draft = await saved_draft(world)
    assert draft["problems"] == []
    assert draft["config"]["checkin"] == {
        "cycle": [{"currency": {"acorn": 10}},
                  {"currency": {"acorn": 15}, "items": {"pine_cone": 1}},
                  {"currency": {"gem": 2}, "items": {"box_ticket": 1}, "coupon": "c5"}],
        "makeup": {"cost": {"currency": {"gem": 1}}, "per_cycle": 1, "window_days": 3}}
    assert {k: v for k, v in draft["config"].items() if k != "checkin"} == \
        {k: v for k, v in CONFIG.items() if k != "checkin"}


async def test_tasks_form_adds_and_changes_tasks_and_shows_the_servers_refusal(
        world: World) -> None:
    await world.merchant(SHOP, config=CONFIG)
    async with signed_in(world, SHOP, plays="Shop tasks") as (page, problems):
        await expect(page.locator("#tk-table tbody tr")).to_have_count(2)

        # A purchase task: its own fields show for that kind only; the id is checked first.
        await page.locator("#tk-id").fill("share_pet")
        await page.locator("#tk-name").fill("Spend ¥99 this week")
        await expect(page.locator("#tk-purchase-fields")).to_be_hidden()
        await page.locator("#tk-kind").select_option("purchase")
        await page.locator("#tk-period").select_option("weekly")
        await page.locator("#tk-limit").fill("2")
        await page.locator("#tk-spend").fill("99")
        await page.locator("#tk-skus").fill("SQ-NUTS\nSQ-GIFTBOX")
        await page.locator("#tk-reward-add-item").click()
        await page.locator("#tk-reward-item0").select_option("box_ticket")
        await page.locator("#tk-save").click()
        await expect(page.locator("#tk-problems")).to_contain_text(
            "$.tasks.share_pet is in the draft already: change it from the table")
        await page.locator("#tk-id").fill("spend_99")
        await page.locator("#tk-save").click()
        await expect(page.locator("#toasts")).to_contain_text("Task spend_99 saved in the draft")
        await expect(page.locator("#tk-table tbody tr")).to_have_count(3)

        # Change one: only the field touched changes, absent defaults stay absent.
        await page.locator("#tk-edit-follow_shop").click()
        await expect(page.locator("#tk-id")).to_have_value("follow_shop")
        await page.locator("#tk-name").fill("Follow us")
        await page.locator("#tk-save").click()
        await expect(page.locator("#toasts")).to_contain_text("Task follow_shop saved")
        saved = (await saved_draft(world))
        assert saved["problems"] == []
        assert saved["config"]["tasks"] == {
            "share_pet": CONFIG["tasks"]["share_pet"],
            "follow_shop": {**CONFIG["tasks"]["follow_shop"], "name": "Follow us"},
            "spend_99": {"name": "Spend ¥99 this week", "kind": "purchase", "period": "weekly",
                         "limit": 2, "reward": {"items": {"box_ticket": 1}}, "spend_fen": 9900,
                         "skus": ["SQ-NUTS", "SQ-GIFTBOX"]}}

        # pine_cone taken out of the items by hand: the task that grants it keeps it,
        # marked, and the server's refusal is shown with its path; nothing is saved.
        edited = copy.deepcopy(saved["config"])
        del edited["items"]["pine_cone"]
        await edit_draft_json(page, edited)
        await page.get_by_role("tab", name="Plays").click()
        await page.locator("#tk-edit-follow_shop").click()
        await expect(page.locator("#tk-reward-item0 option:checked")).to_have_text(
            "pine_cone (not in items)")
        await page.locator("#tk-save").click()
        result = page.locator("#tk-result .error-box")
        await expect(result).to_contain_text("$.tasks.follow_shop.reward.items.pine_cone "
                                             "unknown item")
        await expect(result).to_contain_text("HTTP 422")
        await shot(page, "plays-tasks-refused")
        assert (await saved_draft(world))["config"] == saved["config"]
        # The editor holds the refused change for the merchant to fix.
        assert (await draft_config(page))["tasks"]["follow_shop"]["name"] == "Follow us"
        assert not problems
