"""The console's red-envelope rain and sampling panels in a real headless Chromium: a
rain's rounds with envelopes left and a simulation; a lottery campaign's applicants,
the draw button once the window is over, and the winners to ship to.

Skips only when /usr/bin/chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gameserver.appkeys import METRICS, REDIS
from gameserver.ops.settings import Settings
from tests.browser.console import NEEDS_CHROMIUM, expect, shot, signed_in
from tests.conftest import World
from tests.integration.test_rains_http import NOW, RAIN_CONFIG, grab, token
from tests.integration.test_samples_http import SAMPLE_CONFIG

pytestmark = NEEDS_CHROMIUM


CONFIG: dict[str, Any] = copy.deepcopy(RAIN_CONFIG)
CONFIG["tasks"] = copy.deepcopy(SAMPLE_CONFIG["tasks"])
CONFIG["samples"] = {"nuts": copy.deepcopy(SAMPLE_CONFIG["samples"]["nuts"])}
CONFIG["samples"]["nuts"]["stock"] = 2


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Production's Redis bound (2 s), so the 2.5 s pause below is a timeout."""
    return settings.with_overrides(redis_timeout=2.0)


async def test_rain_and_sampling_panels(world: World) -> None:
    world.clock.set(NOW + 1)
    await world.merchant("rainshop", config=CONFIG)
    for n in range(3):
        tok = token(world, f"g{n}")
        assert (await grab(world, tok, f"k{n}")).status == 200
        resp = await world.client.post("/v1/games/squirrel/samples/nuts/apply", json={},
                                       headers={"Authorization": f"Bearer {tok}",
                                                "Idempotency-Key": f"a{n}"})
        assert resp.status == 200, await resp.text()
    world.clock.set(NOW + 3600 + 5)  # the sampling window is over: the draw is due
    async with signed_in(world, "rainshop", plays="Red-envelope rain") as (page, problems):
        card = page.locator("#rain-midnight")
        await expect(card.locator("tr[data-round=r1] .envelopes-left")).to_have_text("197")
        await expect(card.locator("tr[data-round=r1] .badge")).to_have_text("ended")
        await card.get_by_role("button", name="Simulate").click()
        await expect(card.locator(".rain-sim-cost")).to_have_text("¥1000.00")
        await shot(page, "plays-rains")

        await page.get_by_role("button", name="Sampling").click()
        sample = page.locator("#sample-nuts")
        await expect(sample.locator(".sample-applicants")).to_have_text("3")
        await sample.get_by_role("button", name="Draw winners").click()
        await expect(sample.locator(".sample-winners")).to_have_text("2 of 2")
        await expect(sample.locator(".sample-winner-list")).to_contain_text("Ship to:")
        await shot(page, "plays-samples")
    assert problems == []


async def test_the_console_retries_a_write_petbox_refused_for_the_moment(world: World) -> None:
    """Redis stops running scripts for 2.5 s (``CLIENT PAUSE``) as the merchant clicks
    Draw winners: the first attempt times out on Redis and answers 503 with Retry-After;
    the console sends it again with the same Idempotency-Key, and the draw happens once."""
    world.clock.set(NOW + 1)
    await world.merchant("rainshop", config=CONFIG)
    for n in range(3):
        resp = await world.client.post("/v1/games/squirrel/samples/nuts/apply", json={},
                                       headers={"Authorization": f"Bearer {token(world, f'g{n}')}",
                                                "Idempotency-Key": f"a{n}"})
        assert resp.status == 200, await resp.text()
    world.clock.set(NOW + 3600 + 5)
    app = world.client.app
    async with signed_in(world, "rainshop", plays="Red-envelope rain") as (page, problems):
        await page.get_by_role("button", name="Sampling").click()
        sample = page.locator("#sample-nuts")
        await expect(sample.locator(".sample-applicants")).to_have_text("3")
        await app[REDIS].execute_command("CLIENT", "PAUSE", 2500, "WRITE")
        await sample.get_by_role("button", name="Draw winners").click()
        await expect(sample.locator(".sample-winners")).to_have_text("2 of 2", timeout=20_000)
    assert problems == []
    registry = app[METRICS].registry
    refused = registry.get_sample_value("petbox_request_seconds_count",
                                        {"operation": "drawSampleWinners", "status": "5xx"})
    served = registry.get_sample_value("petbox_request_seconds_count",
                                       {"operation": "drawSampleWinners", "status": "2xx"})
    assert (refused, served) == (1.0, 1.0)
