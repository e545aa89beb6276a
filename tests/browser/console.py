"""What the browser tests share: a real headless Chromium (Debian's ``chromium``, driven
by Playwright for Python) on the merchant console, the problems the page reports, and
the steps every console test takes (sign in, open a Plays panel, fill a new-entry form,
read the draft editor).

The tests skip only when /usr/bin/chromium or the ``playwright`` package is missing
(``.ci/run`` installs both): a test module sets ``pytestmark = NEEDS_CHROMIUM``. Set
``PETBOX_CONSOLE_SCREENSHOTS=<dir>`` to keep PNGs of each panel.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gameserver.db import models as m
from tests.conftest import World
from tests.integration.test_analytics import at, draw_row, insert_rows, ledger_row, player_row

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

try:
    from playwright.async_api import Locator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - CI installs it (pyproject test extra)
    async_playwright = None
    expect = None

NEEDS_CHROMIUM = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install -y chromium; .ci/run does it)"),
    pytest.mark.skipif(async_playwright is None,
                       reason="needs Playwright for Python (pip install playwright; "
                              "it is in the test extra)"),
]
"""The marks of every browser test module (``pytestmark = NEEDS_CHROMIUM``)."""

SHOTS = os.environ.get("PETBOX_CONSOLE_SCREENSHOTS", "")

async def shot(page: Page, name: str) -> None:
    """A full-page PNG ``<name>.png`` in PETBOX_CONSOLE_SCREENSHOTS, when it is set."""
    if SHOTS:  # Playwright creates the directory
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def expected_http_error(text: str) -> bool:
    """Chromium logs every 4xx answer (the refused key, the invalid draft, "no draft yet")
    and every 503 (refused for the moment); the console handles those (a 503 it sends
    again). Script errors and CSP violations still fail the test."""
    return text.startswith(("Failed to load resource: the server responded with a status of 4",
                            "Failed to load resource: the server responded with a status of 503"))


@contextlib.asynccontextmanager
async def open_console(width: int, timezone: str | None = None
                       ) -> AsyncIterator[tuple[Page, list[str]]]:
    """A Chromium page ``width`` px wide (in the time zone ``timezone``, else the
    machine's) and the problems it reports: script errors, CSP violations, native
    dialogs (4xx answers the console handles are not problems)."""
    assert async_playwright is not None
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 900},
                                          timezone_id=timezone)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                    if msg.type == "error" and not expected_http_error(msg.text) else None)
            page.on("dialog", lambda d: problems.append(f"unexpected native dialog: {d.message}"))
            yield page, problems
        finally:
            await browser.close()


async def sign_in(page: Page, api_key: str) -> None:
    """Type ``api_key`` into the console's sign-in form and press Sign in."""
    await page.get_by_label("API key").fill(api_key)
    await page.get_by_role("button", name="Sign in").click()


async def go_signed_in(page: Page, world: World, merchant: str,
                       game: str | None = None) -> None:
    """Load ``world``'s /console in ``page``, sign in with ``merchant``'s API key and,
    when given, pick ``game`` in the game picker (a test that intercepts requests
    routes them first, so it sees the page's first ones too)."""
    await page.goto(str(world.client.make_url("/console")))
    await sign_in(page, str(world.merchants[merchant].api_key))
    if game is not None:
        await page.get_by_label("Game").select_option(game)


@contextlib.asynccontextmanager
async def signed_in(world: World, merchant: str, *, width: int = 1360,
                    game: str | None = None, plays: str | None = None,
                    timezone: str | None = None) -> AsyncIterator[tuple[Page, list[str]]]:
    """:func:`open_console` on ``world``'s /console (in ``timezone``), signed in with
    ``merchant``'s API key; then ``game`` picked in the game picker, or the Plays tab
    opened on the panel whose button reads ``plays``. Yields the page and its problems,
    as open_console does."""
    async with open_console(width, timezone) as (page, problems):
        await go_signed_in(page, world, merchant, game)
        if plays is not None:
            await page.get_by_role("tab", name="Plays").click()
            await page.get_by_role("button", name=plays).click()
        yield page, problems


async def submit_form(page: Page, form: str, submit: str = "add", **fields: str | bool) -> None:
    """Fill a console form whose inputs are ``#<form>-<field>``, in the order given (a
    string is typed into an input or picked in a ``<select>``, a bool checks or unchecks
    a checkbox), then press its button ``#<form>-<submit>``."""
    for name, value in fields.items():
        field = page.locator(f"#{form}-{name}")
        if isinstance(value, bool):
            await field.set_checked(value)
        elif await field.evaluate("e => e.tagName") == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)
    await page.locator(f"#{form}-{submit}").click()


async def draft_config(page: Page) -> dict[str, Any]:
    """Open the Draft tab and read the config in its JSON editor."""
    await page.get_by_role("tab", name="Draft").click()
    draft: dict[str, Any] = json.loads(
        await page.get_by_label("Draft config (JSON)").input_value())
    return draft


COHORT_DAYS = [f"2025-12-{d:02d}" for d in range(10, 31)]


async def activity(world: World) -> int:
    """Three weeks of December players for the analytics panel, straight into SQL
    (as the persister would write them); returns how many players there are."""
    players, ledger, draws = [], [], []
    for k, day in enumerate(COHORT_DAYS):
        for i in range(3 + k % 4):
            user = f"p{k}-{i}"
            players.append(player_row(user, at(day, "10:00:00"), merchant="boxshop"))
            ledger.append(ledger_row(user, at(day, "10:00:00"), merchant="boxshop"))
            draws.append(draw_row(user, at(day, "10:01:00"), merchant="boxshop"))
            for later, keep in ((1, i % 2 == 0), (7, i % 3 == 0)):
                if keep and k + later < len(COHORT_DAYS):
                    ledger.append(ledger_row(user, at(COHORT_DAYS[k + later], "19:00:00"),
                                             merchant="boxshop"))
    await insert_rows(world.db, m.players, players)
    await insert_rows(world.db, m.ledger, ledger)
    await insert_rows(world.db, m.draws, draws)
    return len(players)


__all__ = ["CHROMIUM", "COHORT_DAYS", "NEEDS_CHROMIUM", "Locator", "Page", "activity",
           "draft_config", "expect", "go_signed_in", "open_console", "shot", "sign_in",
           "signed_in", "submit_form"]
