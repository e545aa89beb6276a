"""Fixtures of the browser tests (their shared steps are in ``tests/browser/console.py``)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gameserver.ops.provision import publish_config
from tests.conftest import BASIC_CONFIG, World
from tests.integration.test_boxes_http import BOX_CONFIG


@pytest.fixture
async def db_url(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[str]:
    """SQLite only: the console reads and writes through the HTTP API, whose SQL the
    integration tests run on both backends; a browser test is a Chromium session, and
    running each twice cost the CI run about a minute."""
    path = tmp_path / "petbox.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def shop(world: World) -> World:
    """Merchant ``boxshop``: game ``squirrel`` with the blind-box series ``forest`` (v1),
    and a second game so the picker has a choice."""
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    await publish_config(world.db, "boxshop", "garden", copy.deepcopy(BASIC_CONFIG),
                         int(world.clock.now()))
    return world
