"""What a shopper needs to verify a draw, as docs/fairness.md promises it: the seed
hash and pity counters in getPlayer, old versions from getBoxSeries?version=N, and
the soft-pity step in the unit the server publishes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from economy.fairness import verify_record
from gameserver.appkeys import GAMES
from gameserver.games import parse_config
from gameserver.ops.provision import publish_config
from tests.conftest import World
from tests.integration.test_boxes_http import BOX_CONFIG

GAME = "/v1/games/squirrel"
SERIES = f"{GAME}/boxes/forest"
ROOT = Path(__file__).resolve().parents[2]


async def _boxshop(world: World) -> str:
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    return await world.token("alice", merchant_id="boxshop")


async def test_get_player_shows_seed_hash_and_pity(world: World) -> None:
    token = await _boxshop(world)
    series = await (await world.get(SERIES, token)).json()  # commits a seed
    drawn = await world.post(f"{SERIES}/draw", token, {"count": 1}, "d1")
    assert drawn.status == 200
    record = (await drawn.json())["draws"][0]
    me = await (await world.get(f"{GAME}/me", token)).json()
    boxes = me["player"]["boxes"]
    assert boxes["seed_hash"] == series["player"]["seed_hash"] == record["seed_hash"]
    assert boxes["nonce"] == 1
    assert boxes["series"]["forest"]["pity"] == record["pity_after"]
    plain = await world.token("bob")  # 'shop': a game without blind boxes
    assert "boxes" not in (await (await world.get(f"{GAME}/me", plain)).json())["player"]


async def test_old_versions_are_served_for_verification(world: World) -> None:
    token = await _boxshop(world)
    drawn = await world.post(f"{SERIES}/draw", token, {"count": 1}, "d1")
    record = (await drawn.json())["draws"][0]
    newer = copy.deepcopy(BOX_CONFIG)
    newer["boxes"]["series"]["forest"]["items"]["fig_a"]["weight"] = 60
    await publish_config(world.db, "boxshop", "squirrel", newer, int(world.clock.now()))
    await world.client.app[GAMES].refresh()
    live = await (await world.client.get(f"{SERIES}?merchant=boxshop")).json()
    assert live["game_version"] == 2 and live["table"] != record["table"]
    old = await world.client.get(f"{SERIES}?merchant=boxshop&version=1")
    assert old.status == 200
    body = await old.json()
    assert (body["game_version"], body["live_version"], body["stock_left"]) == (1, 2, None)
    assert body["table"] == record["table"]
    rotated = await world.post(f"{GAME}/boxes/seed/rotate", token, {}, "r1")
    seed = (await rotated.json())["revealed"]["server_seed"]
    v1 = parse_config(BOX_CONFIG).boxes.series["forest"]
    assert v1.table_hash == body["table"]
    assert verify_record(v1, record, seed)
    for query, status in (("version=9", 404), ("version=0", 422), ("version=x", 422),
                          ("version=%C2%B2", 422), ("version=" + "1" * 5000, 422)):
        resp = await world.client.get(f"{SERIES}?merchant=boxshop&{query}")
        assert resp.status == status, query


def test_fairness_doc_states_the_step_in_the_published_unit(example_config: Any) -> None:
    """It said "in millionths" while getBoxSeries publishes 0.05."""
    doc = (ROOT / "docs" / "fairness.md").read_text()
    assert "`step` is in millionths" not in doc
    assert "last nonce" not in doc
    step = example_config["boxes"]["series"]["forest_friends"]["pity"]["soft"]["step"]
    assert step == 0.05 and "`0.05`" in doc


async def test_the_integer_rule_is_the_documented_one(world: World) -> None:
    """docs/api.md: an integer of more than 18 digits is 400 malformed_json. 19- and
    20-digit integers fit orjson's 64 bits and were let through."""
    token = await world.token()
    for digits, status in ((18, 422), (19, 400), (20, 400), (25, 400)):
        raw = b'{"food": "snack", "x": ' + b"9" * digits + b"}"
        resp = await world.client.post(f"{GAME}/pet/feed", data=raw, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": f"k{digits}",
            "Content-Type": "application/json"})
        assert resp.status == status, digits
        code = (await resp.json())["error"]["code"]
        assert code == ("malformed_json" if status == 400 else "invalid_input"), digits


async def test_a_publish_is_served_at_once_by_the_answering_process(world: World) -> None:
    """The old version was served until the process's next poll (up to 0.5 s)."""
    games = world.client.app[GAMES]
    await games.stop()  # no poll: only the publish itself can make v2 live here
    token = await world.token()
    api = {"Authorization": f"Bearer {world.merchants['shop'].api_key}"}
    changed = copy.deepcopy(world.config)
    changed["foods"]["snack"]["xp"] = 7
    assert (await world.client.put("/v1/admin/games/squirrel/draft", json=changed,
                                   headers=api)).status == 200
    published = await world.client.post("/v1/admin/games/squirrel/publish", json={},
                                        headers=api)
    assert published.status == 200
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["game_version"] == 2
    rolled = await world.client.post("/v1/admin/games/squirrel/rollback",
                                     json={"version": 1}, headers=api)
    assert rolled.status == 200
    assert (await (await world.get(f"{GAME}/me", token)).json())["game_version"] == 3
