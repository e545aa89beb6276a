"""Versioned game configs over HTTP: drafts, publish, versions, rollback, diff.

Real Redis and SQL (SQLite and PostgreSQL); the app's GameRegistry polls SQL,
so "live within a second" is measured against the real poll loop.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from gameserver.appkeys import GAMES
from tests.conftest import BASIC_CONFIG, World

BASE = "/v1/admin/games"


def key(world: World, merchant: str = "shop") -> str:
    return str(world.merchants[merchant].api_key)


async def put(world: World, game: str, body: Any, merchant: str = "shop") -> Any:
    return await world.client.put(f"{BASE}/{game}/draft", json=body,
                                  headers={"Authorization": f"Bearer {key(world, merchant)}"})


async def post(world: World, path: str, body: Any, merchant: str = "shop") -> Any:
    return await world.post(f"{BASE}/{path}", key(world, merchant), body)


async def get(world: World, path: str, merchant: str = "shop") -> Any:
    return await world.get(f"{BASE}/{path}", key(world, merchant))


def with_hamster() -> dict[str, Any]:
    """BASIC_CONFIG with a cheaper snack, a new species and a new food."""
    config = copy.deepcopy(BASIC_CONFIG)
    config["foods"]["snack"]["price"]["acorn"] = 12
    config["foods"]["nut"] = {"name": "Nut", "price": {"acorn": 5}, "effects": {"satiety": 5},
                              "xp": 1}
    config["species"]["hamster"] = copy.deepcopy(config["species"]["squirrel"])
    config["species"]["hamster"]["name"] = "Hamster"
    return config


async def test_invalid_draft_lists_every_problem_and_stores_nothing(world: World) -> None:
    bad = copy.deepcopy(BASIC_CONFIG)
    bad["timezone"] = "Mars/Olympus"
    bad["currencies"]["acorn"]["initial"] = 5000  # over max 1000
    bad["foods"]["snack"]["price"] = {"gold": 10}
    bad["foods"]["snack"]["effects"]["charm"] = 3

    resp = await put(world, "squirrel", bad)

    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "config_invalid"
    assert sorted(p["path"] for p in body["error"]["details"]["problems"]) == [
        "$.currencies.acorn.initial", "$.foods.snack.effects.charm",
        "$.foods.snack.price.gold", "$.timezone"]
    assert (await get(world, "squirrel/draft")).status == 404
    listing = await (await get(world, "squirrel/versions")).json()
    assert listing["draft"] is None and listing["live_version"] == 1


async def test_structural_problems_have_paths(world: World) -> None:
    bad = copy.deepcopy(BASIC_CONFIG)
    del bad["name"]
    bad["currencies"]["acorn"]["max"] = "lots"
    bad["colour"] = "red"

    resp = await put(world, "squirrel", bad)

    assert resp.status == 422
    problems = (await resp.json())["error"]["details"]["problems"]
    assert sorted((p["path"], p["message"]) for p in problems) == [
        ("$.colour", "is not a known field"),
        ("$.currencies.acorn.max", "must be an integer"),
        ("$.name", "is required"),
    ]
    assert (await put(world, "squirrel", [1, 2])).status == 422
    malformed = await world.client.put(f"{BASE}/squirrel/draft", data=b"{nope",
                                       headers={"Authorization": f"Bearer {key(world)}"})
    assert malformed.status == 400


async def test_draft_publish_is_live_within_a_second(world: World) -> None:
    games = world.client.app[GAMES]
    assert (await games.get("shop", "squirrel")).version == 1
    token = await world.token("u1")
    refused = await world.post("/v1/games/squirrel/pet", token,
                               {"species": "hamster", "name": "Ham"}, key="adopt-1")
    assert refused.status == 404

    resp = await put(world, "squirrel", with_hamster())
    assert resp.status == 200, await resp.text()
    draft = await (await get(world, "squirrel/draft")).json()
    assert (draft["config"], draft["problems"], draft["live_version"]) == (with_hamster(), [], 1)

    published = await post(world, "squirrel/publish", {"note": "hamsters"})
    assert published.status == 200
    body = await published.json()
    assert (body["version"], body["changed"], body["note"]) == (2, True, "hamsters")
    started = time.monotonic()
    while (await games.get("shop", "squirrel")).version != 2:
        assert time.monotonic() - started < 1.0, "publish not live within 1 s"
        await asyncio.sleep(0.02)

    adopted = await world.post("/v1/games/squirrel/pet", token,
                               {"species": "hamster", "name": "Ham"}, key="adopt-2")
    assert adopted.status == 201, await adopted.text()


async def test_publish_twice_changes_nothing_and_needs_a_draft(world: World) -> None:
    none = await post(world, "squirrel/publish", {})
    assert none.status == 409
    assert (await none.json())["error"]["code"] == "no_draft"

    await put(world, "squirrel", BASIC_CONFIG)  # the same config as the live v1
    same = await (await post(world, "squirrel/publish", {})).json()
    assert (same["version"], same["changed"]) == (1, False)

    await put(world, "squirrel", with_hamster())
    first = await (await post(world, "squirrel/publish", {})).json()
    again = await (await post(world, "squirrel/publish", {})).json()
    assert (first["version"], first["changed"], again["version"], again["changed"]) == \
        (2, True, 2, False)
    listing = await (await get(world, "squirrel/versions")).json()
    assert [v["version"] for v in listing["versions"]] == [2, 1]


async def test_bad_publish_bodies(world: World) -> None:
    await put(world, "squirrel", with_hamster())
    resp = await post(world, "squirrel/publish", {"note": "x" * 201})
    assert resp.status == 422
    assert (await post(world, "squirrel/rollback", {"version": 0})).status == 422
    assert (await post(world, "squirrel/rollback", {})).status == 422
    listing = await (await get(world, "squirrel/versions")).json()
    assert listing["live_version"] == 1


async def test_rollback_publishes_the_old_config_as_a_new_version(world: World) -> None:
    await put(world, "squirrel", with_hamster())
    await post(world, "squirrel/publish", {"note": "hamsters"})
    pricier = with_hamster()
    pricier["foods"]["nut"]["price"]["acorn"] = 50
    await put(world, "squirrel", pricier)
    await post(world, "squirrel/publish", {"note": "pricier nuts"})

    resp = await post(world, "squirrel/rollback", {"version": 2, "note": "too dear"})

    assert resp.status == 200
    body = await resp.json()
    assert (body["version"], body["changed"], body["note"]) == \
        (4, True, "rollback to v2: too dear")
    v4 = await (await get(world, "squirrel/versions/4")).json()
    v2 = await (await get(world, "squirrel/versions/2")).json()
    assert (v4["config"], v4["checksum"], v4["live"], v2["live"]) == \
        (with_hamster(), v2["checksum"], True, False)
    listing = await (await get(world, "squirrel/versions")).json()
    assert listing["live_version"] == 4
    assert [(v["version"], v["note"]) for v in listing["versions"]] == [
        (4, "rollback to v2: too dear"), (3, "pricier nuts"), (2, "hamsters"), (1, "")]
    # the draft is the merchant's work in progress: rollback leaves it alone
    assert (await (await get(world, "squirrel/draft")).json())["config"] == pricier
    again = await (await post(world, "squirrel/rollback", {"version": 2})).json()
    assert (again["version"], again["changed"]) == (4, False)
    games = world.client.app[GAMES]
    started = time.monotonic()
    while (await games.get("shop", "squirrel")).version != 4:
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(0.02)


async def test_a_version_that_drops_a_live_species_is_refused(world: World) -> None:
    """Pets may be of a species the live version has: neither a publish nor a rollback
    may remove it (their pets' stats, stages and produce are read from it)."""
    await put(world, "squirrel", with_hamster())
    await post(world, "squirrel/publish", {"note": "hamsters"})
    expected = {"code": "config_invalid", "message": "game config has 1 problem(s)",
                "details": {"problems": [{"path": "$.species.hamster", "message": (
                    "is in the live version and pets may be of it: a species cannot be "
                    "removed or renamed (change its name field instead)")}]}}

    rollback = await post(world, "squirrel/rollback", {"version": 1})
    await put(world, "squirrel", BASIC_CONFIG)
    publish = await post(world, "squirrel/publish", {})

    for resp in (rollback, publish):
        assert resp.status == 422
        assert (await resp.json())["error"] == expected
    listing = await (await get(world, "squirrel/versions")).json()
    assert (listing["live_version"], len(listing["versions"])) == (2, 2)


async def test_unknown_versions_are_404(world: World) -> None:
    for path in ("squirrel/versions/9", "squirrel/versions/0", "squirrel/versions/abc",
                 "squirrel/versions/1/diff/9", "squirrel/versions/9/diff/live",
                 "squirrel/versions/live/diff/draft", "nope/versions", "nope/draft",
                 "squirrel/versions/99999999999999999999"):
        resp = await get(world, path)
        assert resp.status == 404, path
    resp = await post(world, "squirrel/rollback", {"version": 9})
    assert resp.status == 404
    assert (await resp.json())["error"]["details"] == {"game": "squirrel", "version": 9}


async def test_rollback_to_another_games_version_is_404(world: World) -> None:
    from gameserver.ops.provision import publish_config

    for n in range(3):  # game "other" of the same merchant has versions 1..3
        config = copy.deepcopy(BASIC_CONFIG)
        config["name"] = f"Other {n}"
        await publish_config(world.db, "shop", "other", config, int(world.clock.now()))

    resp = await post(world, "squirrel/rollback", {"version": 3})

    assert resp.status == 404
    listing = await (await get(world, "squirrel/versions")).json()
    assert (listing["live_version"], len(listing["versions"])) == (1, 1)


async def test_another_merchants_game_is_404(world: World) -> None:
    await world.merchant("rival", game="other")
    await put(world, "squirrel", with_hamster())
    for path in ("squirrel/draft", "squirrel/versions", "squirrel/versions/1",
                 "squirrel/versions/1/diff/draft", "squirrel/analytics", "squirrel/export"):
        assert (await get(world, path, merchant="rival")).status == 404, path
    for path, body in (("squirrel/publish", {}), ("squirrel/rollback", {"version": 1})):
        assert (await post(world, path, body, merchant="rival")).status == 404, path
    # a rival's PUT makes the rival's own game of that name; shop's is untouched
    assert (await put(world, "squirrel", BASIC_CONFIG, merchant="rival")).status == 200
    assert (await post(world, "squirrel/publish", {}, merchant="rival")).status == 200
    mine = await (await get(world, "squirrel/draft")).json()
    assert mine["config"] == with_hamster()
    listing = await (await get(world, "squirrel/versions")).json()
    assert listing["live_version"] == 1


async def test_admin_routes_refuse_player_tokens(world: World) -> None:
    token = await world.token("u1")
    resp = await world.client.put(f"{BASE}/squirrel/draft", json=BASIC_CONFIG,
                                  headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403
    assert (await world.client.get(f"{BASE}/squirrel/versions")).status == 401


async def test_new_game_from_draft(world: World) -> None:
    resp = await put(world, "fresh", BASIC_CONFIG)
    assert resp.status == 200
    listing = await (await get(world, "fresh/versions")).json()
    assert (listing["live_version"], listing["versions"]) == (None, [])
    assert listing["draft"]["checksum"] == (await resp.json())["checksum"]
    token = await world.token("u1")
    assert (await world.get("/v1/games/fresh/me", token)).status == 404  # nothing live yet
    body = await (await post(world, "fresh/publish", {})).json()
    assert (body["version"], body["changed"]) == (1, True)


async def test_diff_is_exact(world: World) -> None:
    await put(world, "squirrel", with_hamster())
    await post(world, "squirrel/publish", {})

    resp = await get(world, "squirrel/versions/1/diff/2")

    assert resp.status == 200
    body = await resp.json()
    hamster = copy.deepcopy(BASIC_CONFIG["species"]["squirrel"])
    hamster["name"] = "Hamster"
    assert body == {
        "game": "squirrel", "from": "v1", "to": "v2",
        "summary": {"added": 2, "removed": 0, "changed": 1},
        "changes": [
            {"path": "$.foods.nut", "op": "added",
             "to": {"name": "Nut", "price": {"acorn": 5}, "effects": {"satiety": 5}, "xp": 1}},
            {"path": "$.foods.snack.price.acorn", "op": "changed", "from": 10, "to": 12},
            {"path": "$.species.hamster", "op": "added", "to": hamster},
        ],
    }
    back = await (await get(world, "squirrel/versions/2/diff/1")).json()
    assert [(c["path"], c["op"]) for c in back["changes"]] == [
        ("$.foods.nut", "removed"), ("$.foods.snack.price.acorn", "changed"),
        ("$.species.hamster", "removed")]
    draft = copy.deepcopy(with_hamster())
    draft["currencies"]["acorn"]["max"] = 2000
    await put(world, "squirrel", draft)
    pending = await (await get(world, "squirrel/versions/live/diff/draft")).json()
    assert (pending["from"], pending["to"], pending["changes"]) == ("v2", "draft", [
        {"path": "$.currencies.acorn.max", "op": "changed", "from": 1000, "to": 2000}])
    same = await (await get(world, "squirrel/versions/2/diff/live")).json()
    assert same["changes"] == []


async def test_openapi_documents_every_config_route(world: World) -> None:
    doc = await (await world.client.get("/openapi.json")).json()
    ids = {op["operationId"]: (method, path) for path, item in doc["paths"].items()
           for method, op in item.items()}
    assert ids["putGameDraft"] == ("put", "/v1/admin/games/{game}/draft")
    assert ids["publishGame"] == ("post", "/v1/admin/games/{game}/publish")
    assert ids["listGameVersions"] == ("get", "/v1/admin/games/{game}/versions")
    assert ids["rollbackGame"] == ("post", "/v1/admin/games/{game}/rollback")
    assert ids["getAnalytics"] == ("get", "/v1/admin/games/{game}/analytics")
    assert ids["exportEvents"] == ("get", "/v1/admin/games/{game}/export")
    assert {"getGameDraft", "getGameVersion", "diffGameVersions"} <= ids.keys()


async def test_a_host_dependent_time_zone_is_refused(world: World) -> None:
    """``localtime`` is in this host's zone directory, yet means each host's own zone."""
    for zone, why in [("localtime", "is the host's own zone"),
                      ("Factory", "is tzdata's placeholder")]:
        resp = await put(world, "squirrel", copy.deepcopy(BASIC_CONFIG) | {"timezone": zone})

        assert resp.status == 422
        error = (await resp.json())["error"]
        assert error["code"] == "config_invalid"
        [problem] = error["details"]["problems"]
        assert problem["path"] == "$.timezone"
        assert problem["message"].startswith(f"{zone} {why}")
    assert (await get(world, "squirrel/draft")).status == 404
