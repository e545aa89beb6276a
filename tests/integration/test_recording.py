"""Recording real shopper traffic into load-test traces: opt-in, sampled by player,
pseudonymised, no credentials, replayable format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gameserver.app import create_app
from gameserver.ops.recording import RECORDER
from gameserver.ops.settings import Settings
from loadtests.trace import read_trace
from tests.conftest import BASIC_CONFIG, World

GAME = "/v1/games/squirrel"


@pytest.fixture
async def recording(aiohttp_client: Any, settings: Settings, clock: Any, db: Any,
                    tmp_path: Path) -> Any:
    settings = settings.with_overrides(record_dir=tmp_path / "traces", record_sample=1.0)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock))
    world = World(client, db, clock, BASIC_CONFIG)
    await world.merchant()
    return world, tmp_path / "traces"


async def test_shopper_requests_are_recorded_without_credentials(recording: Any) -> None:
    world, directory = recording
    token = await world.token("alice")
    await world.post(f"{GAME}/pet", token, {"species": "squirrel", "name": "Nutty"}, "a1")
    await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "f1")
    await world.post(f"{GAME}/pet/feed", token, {"food": "pizza"}, "f2")  # refused, but traffic
    await world.get(f"{GAME}/me", token)
    world.client.app[RECORDER].flush()

    header, records = read_trace(sorted(directory.iterdir()))
    recorded = list(records)
    assert header.source == "record"
    assert [(r.op, r.body) for r in recorded] == [
        ("createSession", None),  # recorded too; its body (the shopper in clear) is not
        ("adoptPet", {"species": "squirrel", "name": "Nutty"}),
        ("feedPet", {"food": "snack"}),
        ("feedPet", {"food": "pizza"}),
        ("getPlayer", None),
    ]
    assert [r.expect for r in recorded] == ["201", "201", "200", "404 unknown_item", "200"]
    assert {r.params["game"] for r in recorded[1:]} == {"squirrel"}
    players = {r.player for r in recorded}
    assert len(players) == 1 and "alice" not in next(iter(players))
    raw = b"".join(p.read_bytes() for p in directory.iterdir())
    assert token.encode() not in raw and b"sign" not in raw
