"""``ingestOrder``: merchant-signed order webhooks drive purchase tasks (追单),
idempotent by order id; refunds take back what is unspent and record the rest."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from gameserver.appkeys import DB
from gameserver.db import models as m
from gameserver.http.auth import body_signature
from tests.conftest import World
from tests.integration.loopgame import Shopper, loop_config, loop_world, post_order, signed_order
from tests.integration.test_boxes_http import persister

__all__ = ["loop_world"]

ORDER = {"user": "alice", "order_id": "o1", "status": "paid", "amount_fen": 100}


async def test_paid_order_advances_purchase_tasks_once(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    status, out = await post_order(loop_world, **ORDER)
    assert status == 200
    assert out == {"order": "o1", "duplicate": False, "tasks": {"buy_any": 1, "spend99": 0}}
    assert (await alice.me())["player"]["wallet"]["acorn"] == 105
    # the webhook retried: same body (even signed again later) → the first answer
    body, headers = signed_order(loop_world.merchants["shop"].signing_secret,
                                 int(loop_world.clock.now()) + 30, **ORDER)
    loop_world.clock.advance(30)
    resp = await loop_world.client.post("/v1/events/orders", data=body, headers=headers)
    # ... except that it says it is a duplicate (it said false with Idempotent-Replayed)
    assert resp.status == 200 and await resp.json() == {**out, "duplicate": True}
    assert resp.headers["Idempotent-Replayed"] == "true"
    me = await alice.me()
    assert me["player"]["wallet"]["acorn"] == 105 and me["version"] == 1
    status, err = await post_order(loop_world, **{**ORDER, "amount_fen": 200})
    assert (status, err["error"]["code"]) == (422, "idempotency_mismatch")


async def test_spend_task_and_refund(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    await post_order(loop_world, **ORDER)
    status, out = await post_order(loop_world, **{**ORDER, "order_id": "o2",
                                                  "amount_fen": 9900, "skus": ["SKU-1"]})
    assert status == 200 and out["tasks"] == {"buy_any": 1, "spend99": 1}
    me = (await alice.me())["player"]
    assert me["wallet"]["acorn"] == 110 and me["inventory"] == {"ticket": 1}
    assert me["tasks"]["spend99"]["spend_fen"] == 10_000
    status, out = await post_order(loop_world, **{**ORDER, "order_id": "o2",
                                                  "status": "refunded"})
    assert status == 200
    assert out == {"order": "o2", "known": True, "duplicate": False,
                   "taken_back": {"buy_any": 1, "spend99": 1}, "debt": {}}
    me = (await alice.me())["player"]
    assert me["wallet"]["acorn"] == 105 and me["inventory"] == {}
    again = await post_order(loop_world, **{**ORDER, "order_id": "o2", "status": "refunded"})
    assert again == (200, {**out, "duplicate": True})  # the replay says it is one


async def test_refund_of_spent_reward_records_debt(client: Any, db: Any, clock: Any) -> None:
    tasks = loop_config()["tasks"]
    tasks["buy_any"]["reward"] = {"currency": {"gem": 5}}
    world = World(client, db, clock, loop_config(tasks=tasks))
    await world.merchant()
    alice = Shopper(world, "alice")
    await post_order(world, **ORDER)
    assert (await alice.post("/exchange", {"offer": "ticket"}))[0] == 200  # 3 gems spent
    status, out = await post_order(world, **{**ORDER, "status": "refunded"})
    assert status == 200 and out["taken_back"] == {"buy_any": 1, "spend99": 0}
    assert out["debt"] == {"currency:gem": 3}
    me = (await alice.me())["player"]
    assert me["wallet"]["gem"] == 0 and me["debts"] == {"currency:gem": 3}


async def test_bad_signatures_and_windows_change_nothing(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    secret = loop_world.merchants["shop"].signing_secret
    now = int(loop_world.clock.now())
    body, headers = signed_order(secret, now, **ORDER)
    cases = [
        {**headers, "X-Petbox-Signature": body_signature("wrong", str(now), body)},
        {**headers, "X-Petbox-Signature": ""},
        {k: v for k, v in headers.items() if k != "X-Petbox-Timestamp"},
    ]
    for case in cases:
        resp = await loop_world.client.post("/v1/events/orders", data=body, headers=case)
        assert resp.status == 401, case
        assert (await resp.json())["error"]["code"] == "unauthorized"
    # a captured webhook replayed after the window
    loop_world.clock.advance(301)
    resp = await loop_world.client.post("/v1/events/orders", data=body, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["details"] == {"server_time": now + 301}
    status, _ = await post_order(loop_world, ts=now + 301 + 301, **ORDER)  # from the future
    assert status == 401
    assert (await alice.me())["version"] == 0


async def test_order_for_another_merchant(loop_world: Any) -> None:
    await loop_world.merchant("rival", game="rival-game")
    alice = Shopper(loop_world, "alice")
    # rival names itself as the signer but sends an order of shop's
    status, out = await post_order(loop_world, merchant="rival",
                                   headers={"X-Petbox-Merchant": "rival"}, **ORDER)
    assert (status, out["error"]["code"]) == (422, "order_wrong_merchant")
    assert out["error"]["details"] == {"merchant": "shop"}
    # without naming itself, its signature does not verify as shop's
    status, out = await post_order(loop_world, merchant="rival", **ORDER)
    assert (status, out["error"]["code"]) == (401, "unauthorized")
    # shop signing an order for rival's game: that game does not exist for shop
    status, out = await post_order(loop_world, **{**ORDER, "game": "rival-game"})
    assert (status, out["error"]["code"]) == (404, "not_found")
    assert (await alice.me())["version"] == 0


async def test_invalid_order_bodies(loop_world: Any) -> None:
    status, out = await post_order(loop_world, **{**ORDER, "status": "cancelled"})
    assert (status, out["error"]["code"]) == (422, "invalid_input")
    status, out = await post_order(loop_world, **{**ORDER, "order_id": "has space"})
    assert (status, out["error"]["code"]) == (422, "invalid_input")
    resp = await loop_world.client.post("/v1/events/orders", data=b"{nope",
                                        headers={"X-Petbox-Timestamp": "1"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "malformed_json"
    assert (await post_order(loop_world, **ORDER))[0] == 200


async def test_an_order_without_a_merchant_says_what_is_missing(loop_world: Any) -> None:
    """It answered "signature does not match", which sent people to check their HMAC."""
    raw = json.dumps({"game": "squirrel", "user": "alice", "order_id": "o9",
                       "status": "paid"}).encode()
    ts = str(int(loop_world.clock.now()))
    resp = await loop_world.client.post("/v1/events/orders", data=raw, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": body_signature(
            loop_world.merchants["shop"].signing_secret, ts, raw)})
    assert resp.status == 401
    assert "X-Petbox-Merchant" in (await resp.json())["error"]["message"]


async def test_an_order_and_the_shoppers_own_keys_never_collide(loop_world: Any) -> None:
    """The order's player key was ``order-paid-<id>``, a key a shopper can send too: a
    shopper's action under it turned the paid order into 422 idempotency_mismatch (its
    tasks never advanced), and an order first made the shopper's action 422."""
    alice = Shopper(loop_world, "alice")
    status, adopted = await alice.post("/pet", {"species": "squirrel", "name": "A"},
                                       "order-paid-o1")
    assert status == 201, adopted
    status, out = await post_order(loop_world, **ORDER)
    assert status == 200, out
    assert out == {"order": "o1", "duplicate": False, "tasks": {"buy_any": 1, "spend99": 0}}
    status, out = await post_order(loop_world, **{**ORDER, "order_id": "o3"})
    assert status == 200, out
    status, played = await alice.post("/pet/play", {}, "order-paid-o3")
    assert status == 200, played
    assert "error" not in played
    assert (await alice.me())["player"]["wallet"]["acorn"] == 110  # both orders, once


async def test_the_longest_order_id_is_kept_in_sql(loop_world: Any) -> None:
    """``order-refunded-`` and a 64-character order id made a 79-character player key,
    past SQL's 64 (``responses.idem_key``): the key now fits, and the refund's response
    reaches SQL with the rest of the commit."""
    order_id = "o" * 64
    paid = await post_order(loop_world, **{**ORDER, "order_id": order_id})
    refunded = await post_order(loop_world, **{**ORDER, "order_id": order_id,
                                               "status": "refunded"})
    assert paid[0] == refunded[0] == 200
    await persister(loop_world).run_once()
    r = m.responses
    async with loop_world.client.app[DB].engine.connect() as conn:
        keys = (await conn.execute(select(r.c.idem_key).where(r.c.user_id == "alice"))).all()
        longest = (await conn.execute(select(func.max(func.length(r.c.idem_key))))).scalar()
    assert len(keys) == 2
    assert longest is not None and longest <= 64
    again = await post_order(loop_world, **{**ORDER, "order_id": order_id,
                                            "status": "refunded"})
    assert again == (200, {**refunded[1], "duplicate": True})


async def test_a_timestamp_in_other_digits_is_401_not_500(loop_world: Any) -> None:
    """``X-Petbox-Timestamp`` must be ASCII digits: a superscript two passed
    ``str.isdigit`` and then failed ``int()`` (a 500)."""
    raw = json.dumps(ORDER).encode()
    resp = await loop_world.client.post("/v1/events/orders", data=raw, headers={
        "Content-Type": "application/json", "X-Petbox-Merchant": "shop",
        "X-Petbox-Timestamp": "17²", "X-Petbox-Signature": "0" * 64})
    assert resp.status == 401
    assert (await resp.json())["error"]["details"] == {
        "server_time": int(loop_world.clock.now())}
