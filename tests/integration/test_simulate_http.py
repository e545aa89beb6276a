"""simulateGame over HTTP: the draft or a version, capped requests, merchant scope."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import World

PATH = "/v1/admin/games/squirrel/simulate"


async def call(world: World, body: Any, merchant: str = "shop") -> Any:
    return await world.post(PATH, str(world.merchants[merchant].api_key), body)


async def test_simulates_the_draft_reproducibly(world: World,
                                                example_config: dict[str, Any]) -> None:
    key = str(world.merchants["shop"].api_key)
    put = await world.client.put("/v1/admin/games/squirrel/draft", json=example_config,
                                 headers={"Authorization": f"Bearer {key}"})
    assert put.status == 200, await put.text()
    body = {"series": "forest_friends", "players": 20, "draws": 50, "seed": "s1"}

    first = await call(world, body)
    again = await call(world, body)

    assert first.status == 200, await first.text()
    report = await first.json()
    assert report == await again.json()
    assert (report["config"], report["series"], report["players"], report["draws"]) == \
        ("draft", "forest_friends", 20, 1000)
    assert sum(v["count"] for v in report["items"].values()) == 1000
    # v1 (BASIC_CONFIG) has no blind boxes
    assert (await call(world, {**body, "version": "1"})).status == 404


async def test_stock_names_limited_prizes_and_none_left_is_sold_out_at_0(
        world: World, example_config: dict[str, Any]) -> None:
    key = str(world.merchants["shop"].api_key)
    put = await world.client.put("/v1/admin/games/squirrel/draft", json=example_config,
                                 headers={"Authorization": f"Bearer {key}"})
    assert put.status == 200, await put.text()
    body = {"series": "forest_friends", "players": 5, "draws": 10, "seed": "s1"}
    typo = await call(world, {**body, "stock": {"coupon_10of": 0}})
    assert typo.status == 422, await typo.text()
    assert [p["path"] for p in (await typo.json())["error"]["details"]["problems"]] == [
        "$.stock.coupon_10of"]
    none_left = await call(world, {**body, "stock": {"coupon_10off": 0}})
    assert none_left.status == 200, await none_left.text()
    report = await none_left.json()
    assert report["sold_out_at_draw"] == {"coupon_10off": 0}
    assert report["items"]["coupon_10off"]["count"] == 0  # never drawn: none to give


async def test_default_stock_is_what_the_live_game_has_left(
        world: World, example_config: dict[str, Any]) -> None:
    """A forecast mid-event starts from the units still there: 30 of the coupon's 100
    gone, a simulation that names no stock starts from 70 (it started from 100); one
    that names another prize's stock still starts this one from 70."""
    config = copy.deepcopy(example_config)
    prizes = config["boxes"]["series"]["forest_friends"]["prizes"]
    other = "coupon_big"
    prizes[other] = {**prizes["coupon_10off"], "stock": 40, "template": "SHOP-BIG"}
    await world.merchant("busy", config=config)
    key = {"Authorization": f"Bearer {world.merchants['busy'].api_key}"}
    stock_url = "/v1/admin/games/squirrel/stock"
    assert (await world.client.get(stock_url, headers=key)).status == 200  # counted now
    took = await world.client.post(f"{stock_url}/coupon_10off", json={"add": -30},
                                   headers={**key, "Idempotency-Key": "take-30"})
    assert took.status == 200, await took.text()
    body = {"series": "forest_friends", "players": 5, "draws": 10, "seed": "s1"}
    report = await (await call(world, body, "busy")).json()
    assert report["stock"]["coupon_10off"] == 70
    assert report["stock"] == {"coupon_10off": 70, other: 40}
    named = await (await call(world, {**body, "stock": {other: 5}}, "busy")).json()
    assert named["stock"] == {"coupon_10off": 70, other: 5}


async def test_bad_and_huge_requests_are_422(world: World) -> None:
    for body, path in (({"series": "x", "players": 1001, "draws": 1000}, "$.draws"),
                       ({"series": "x", "batch": 3}, "$.batch"),
                       ({"series": "x", "batch": 10, "draws": 15}, "$.draws"),
                       ({"series": "x", "players": 0}, "$.players"),
                       ({}, "$.series")):
        resp = await call(world, body)
        assert resp.status == 422, body
        problems = (await resp.json())["error"]["details"]["problems"]
        assert path in [p["path"] for p in problems], body
    assert (await call(world, {"series": "x", "version": "9"})).status == 404
    await world.merchant("rival", game="other")
    assert (await call(world, {"series": "x"}, merchant="rival")).status == 404
