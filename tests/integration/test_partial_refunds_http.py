"""Partial refunds (部分退款) through the signed ``ingestOrder`` webhook: a refund id
applies once (a replay answers the first response), a whole refund after partial ones
takes back what is left, every refund reaches ``order_events`` once and experiment GMV
nets them all; the plays see only the SKUs a partial refund lists."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from economy.abstats import Moments
from economy.config import parse_game_config
from gameserver.appkeys import DB, STORE
from gameserver.db import models as m
from gameserver.db.experiments import measure
from gameserver.ops.settings import Settings
from tests.conftest import World
from tests.integration.loopgame import Shopper, loop_config, post_order, signed_order
from tests.integration.test_boxes_http import persister
from tests.integration.test_groupbuy_http import GB_CONFIG, create, join, me, ok, token
from tests.unit.test_experiments import raw_with

TASKS = {
    "spend100": {"name": "Spend ¥100", "kind": "purchase", "limit": 3, "spend_fen": 10_000,
                 "reward": {"currency": {"acorn": 10}}},
    "big": {"name": "One order of ¥200", "kind": "purchase", "min_order_fen": 20_000,
            "reward": {"currency": {"gem": 5}}},
}
PAID = {"user": "alice", "order_id": "o1", "status": "paid", "amount_fen": 30_000}
R1 = {**PAID, "status": "refunded", "refund_id": "R-1", "amount_fen": 10_000}
SWITCHED_OFF = "test_with_the_switch_off_a_refund_id_is_refused_and_changes_nothing"


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Partial refunds on (``PETBOX_PARTIAL_REFUNDS``), but for the test of the switch."""
    return settings.with_overrides(partial_refunds=request.node.originalname != SWITCHED_OFF)


async def test_a_partial_refund_applies_once_and_a_whole_refund_takes_the_rest(
        client: Any, db: Any, clock: Any) -> None:
    world = World(client, db, clock, loop_config(tasks=TASKS))
    await world.merchant()
    # orders dated on the test clock, inside the experiment's window read below
    client.app[STORE].entry_time_from_clock = True
    alice = Shopper(world, "alice")
    assert (await post_order(world, **PAID))[1]["tasks"] == {"spend100": 3, "big": 1}
    status, out = await post_order(world, **R1)
    assert (status, out) == (200, {
        "order": "o1", "refund": "R-1", "known": True, "duplicate": False,
        "amount_fen": 10_000, "clamped": False, "refunded_fen": 10_000,
        "remaining_fen": 20_000, "refunded": False, "taken_back": {"spend100": 1, "big": 0},
        "debt": {}})
    # the webhook retried, even signed again later: the first answer, marked a duplicate
    clock.advance(30)
    body, headers = signed_order(world.merchants["shop"].signing_secret,
                                 int(clock.now()), **R1)
    resp = await client.post("/v1/events/orders", data=body, headers=headers)
    assert resp.status == 200 and await resp.json() == {**out, "duplicate": True}
    assert resp.headers["Idempotent-Replayed"] == "true"
    status, err = await post_order(world, **{**R1, "amount_fen": 5_000})
    assert (status, err["error"]["code"]) == (422, "idempotency_mismatch")
    wallet = (await alice.me())["player"]["wallet"]
    assert (wallet["acorn"], wallet["gem"]) == (120, 5)  # one of three completions back
    status, out = await post_order(world, **{**R1, "refund_id": "R-2", "amount_fen": 5_000})
    assert status == 200 and out["taken_back"] == {"spend100": 1, "big": 1}  # 15 000 left
    assert (out["refunded_fen"], out["remaining_fen"]) == (15_000, 15_000)
    # the whole refund: what is left (the ¥200 task's completion went back already)
    whole = {**PAID, "status": "refunded"}
    status, out = await post_order(world, **whole)
    assert (status, out) == (200, {"order": "o1", "known": True, "duplicate": False,
                                   "taken_back": {"spend100": 1, "big": 0}, "debt": {}})
    assert await post_order(world, **whole) == (200, {**out, "duplicate": True})
    late = await post_order(world, **{**R1, "refund_id": "R-3"})
    assert late[1]["amount_fen"] == 0 and late[1]["clamped"] is True
    wallet = (await alice.me())["player"]["wallet"]
    assert (wallet["acorn"], wallet["gem"]) == (100, 0)

    # o2: refunded in part only; GMV nets every refund of each order once
    await post_order(world, **{**PAID, "order_id": "o2"})
    await post_order(world, **{**R1, "order_id": "o2"})
    await persister(world).run_once()
    e, p = m.order_events, m.order_refunds
    async with client.app[DB].engine.begin() as conn:
        got = (await conn.execute(select(e.c.order_id, e.c.kind, e.c.amount_fen).order_by(
            e.c.order_id, e.c.kind))).all()
        parts = (await conn.execute(select(p.c.order_id, p.c.refund_id, p.c.amount_fen
                                           ).order_by(p.c.order_id, p.c.refund_id))).all()
        await conn.execute(insert(m.experiment_exposures).values(
            merchant_id="shop", game_id="squirrel", experiment="e1", user_id="alice",
            arm="control", game_version=1, day=0, commit_id="x", seq=0, ts_ms=0))
    assert [tuple(row) for row in got] == [
        ("o1", "paid", 30_000), ("o1", "refunded", 15_000), ("o2", "paid", 30_000)]
    assert [tuple(row) for row in parts] == [
        ("o1", "R-1", 10_000), ("o1", "R-2", 5_000), ("o2", "R-1", 10_000)]
    exp = parse_game_config(raw_with()).experiments["e1"]
    results = await measure(client.app[DB], "shop", "squirrel", exp, ZoneInfo("UTC"),
                            int(clock.now()))
    assert results["gmv_per_shopper"] == {"control": Moments(1, 20_000, 20_000 ** 2)}


async def test_partial_refund_bodies_are_checked(client: Any, db: Any, clock: Any) -> None:
    world = World(client, db, clock, loop_config(tasks=TASKS))
    await world.merchant()
    cases = [({**PAID, "refund_id": "R-1"}, "$.refund_id"),
             ({**R1, "amount_fen": 0}, "$.amount_fen"),
             ({**R1, "refund_id": "R 1"}, "$.refund_id"),
             ({**R1, "refund_id": "R/1"}, "$.refund_id")]
    for body, path in cases:
        status, out = await post_order(world, **body)
        assert (status, out["error"]["code"]) == (422, "invalid_input"), body
        assert [p["path"] for p in out["error"]["details"]["problems"]] == [path]
    assert (await Shopper(world, "alice").me())["version"] == 0


async def test_only_the_skus_a_partial_refund_lists_reach_the_plays(world: World) -> None:
    """Bob's order paid a complete group's seat and tea: refunding the tea (no SKU
    listed) leaves the group alone; refunding the seat (its SKU) takes its reward back."""
    await world.merchant("gbshop", config=GB_CONFIG)
    ann, bob = token(world, "ann"), token(world, "bob")
    code = (await ok(await create(world, ann, "duo", "o1")))["code"]
    await ok(await join(world, bob, "duo", code, "j1"))

    async def send(**fields: Any) -> Any:
        body, headers = signed_order(
            world.merchants["gbshop"].signing_secret, int(world.clock.now()),
            merchant="gbshop", user="bob", order_id="gb-1", **fields)
        return await ok(await world.client.post("/v1/events/orders", data=body,
                                                headers=headers))

    await send(status="paid", amount_fen=1990, skus=[f"groupbuy:{code}", "TEA-1"])
    tea = await send(status="refunded", refund_id="RT", amount_fen=1000)
    assert "groupbuy" not in tea and tea["remaining_fen"] == 990
    assert (await me(world, bob))["wallet"]["gem"] == 5
    seat = await send(status="refunded", refund_id="RS", amount_fen=990,
                      skus=[f"groupbuy:{code}"])
    assert seat["groupbuy"] == {"groups": [{"group": code, "refunded": True, "debt": {}}]}
    assert seat["refunded"] is True
    player = await me(world, bob)
    assert player["wallet"]["gem"] == 0
    assert [g["state"] for g in player["groupbuys"]] == ["refunded"]


async def test_with_the_switch_off_a_refund_id_is_refused_and_changes_nothing(
        client: Any, db: Any, clock: Any) -> None:
    """PETBOX_PARTIAL_REFUNDS off (the default, while older hosts may run): a refund
    with refund_id is refused in 422 at $.refund_id; the order keeps all it earned, and a
    whole refund still works."""
    world = World(client, db, clock, loop_config(tasks=TASKS))
    await world.merchant()
    alice = Shopper(world, "alice")
    await post_order(world, **PAID)
    before = await alice.me()
    status, out = await post_order(world, **R1)
    assert status == 422 and out["error"]["code"] == "partial_refunds_off"
    assert [p["path"] for p in out["error"]["details"]["problems"]] == ["$.refund_id"]
    assert "PETBOX_PARTIAL_REFUNDS" in out["error"]["message"]
    after = await alice.me()
    assert after["version"] == before["version"]
    assert after["player"]["wallet"] == before["player"]["wallet"]
    status, out = await post_order(world, **{**PAID, "status": "refunded"})
    assert (status, out["taken_back"]) == (200, {"spend100": 3, "big": 1})
