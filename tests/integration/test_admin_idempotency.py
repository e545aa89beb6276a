"""Idempotency-Keys on merchant writes, against real Redis and SQL (SQLite and PostgreSQL).

Per operation: the same key twice applies once (exact values after), the same key with
another body is 422, a missing key is 400 where it is required, a key still running is
409. setStock's two halves (SQL, then the Redis gate) are each applied once across a
crash in between, a Redis data loss and a restart (the record is in SQL)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from sqlalchemy import insert, select

from gameserver.appkeys import ADMIN_REQUESTS, DB, REDIS, VALUE
from gameserver.db import models as m
from gameserver.db.admin_requests import LEASE_S, Claim
from gameserver.jobs.housekeeping import purge_old_admin_requests
from gameserver.jobs.reconciler import Reconciler
from gameserver.state.value import stock_change_followup
from tests.conftest import BASIC_CONFIG, World
from tests.integration.test_boxes_http import BOX_CONFIG, persister

SHOP = "boxshop"
ADMIN = "/v1/admin/games/squirrel"
STOCK = f"{ADMIN}/stock/coupon_x"
REF = "prize:coupon_x"


async def boxshop(world: World) -> str:
    """Merchant ``boxshop`` with game squirrel (coupon_x, stock 100); its API key."""
    await world.merchant(SHOP, game="squirrel", config=BOX_CONFIG)
    return str(world.merchants[SHOP].api_key)


async def send(world: World, api_key: str, method: str, path: str, body: Any,
               key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await world.client.request(method, path, data=json.dumps(body).encode(),
                                      headers=headers)


async def stock_row(world: World, api_key: str) -> dict[str, Any]:
    resp = await world.client.get(f"{ADMIN}/stock",
                                  headers={"Authorization": f"Bearer {api_key}"})
    assert resp.status == 200
    rows = {r["ref"]: r for r in (await resp.json())["stock"]}
    return dict(rows[REF])


async def gate(world: World) -> int | None:
    """Units left in the Redis gate, over all its buckets (None: no gate)."""
    left = await world.client.app[VALUE].gate.left(SHOP, "squirrel", [REF])
    return None if left is None else sum(left[REF])


async def error_code(resp: Any) -> str:
    return str((await resp.json())["error"]["code"])


# -- setStock -------------------------------------------------------------------------


async def test_set_stock_retry_applies_once(world: World) -> None:
    """The reported bug: {"add": 10} twice with one key went 100 → 110 → 120."""
    api_key = await boxshop(world)
    first = await send(world, api_key, "POST", STOCK, {"add": 10}, "stock-1")
    again = await send(world, api_key, "POST", STOCK, {"add": 10}, "stock-1")
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    assert (await first.json())["stock"]["total"] == 110
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await stock_row(world, api_key))["total"] == 110
    assert await gate(world) == 110
    other = await send(world, api_key, "POST", STOCK, {"add": 10}, "stock-2")
    assert (await other.json())["stock"]["total"] == 120  # a new key is a new change
    assert await gate(world) == 120


async def test_set_stock_needs_a_key_and_refuses_reuse(world: World) -> None:
    api_key = await boxshop(world)
    missing = await send(world, api_key, "POST", STOCK, {"add": 10}, None)
    assert missing.status == 400
    assert await error_code(missing) == "idempotency_key_required"
    assert set((await missing.json())["error"]) == {"code", "message", "details"}
    bad = await send(world, api_key, "POST", STOCK, {"add": 10}, "not a key!")
    assert bad.status == 400
    assert (await stock_row(world, api_key))["total"] == 100
    assert (await send(world, api_key, "POST", STOCK, {"add": 10}, "k1")).status == 200
    other_body = await send(world, api_key, "POST", STOCK, {"add": 11}, "k1")
    assert other_body.status == 422
    assert await error_code(other_body) == "idempotency_mismatch"
    other_route = await send(world, api_key, "PUT", f"{ADMIN}/draft", BOX_CONFIG, "k1")
    assert other_route.status == 422
    assert (await stock_row(world, api_key))["total"] == 110
    assert await gate(world) == 110


async def test_set_stock_refusal_does_not_use_up_the_key(world: World) -> None:
    api_key = await boxshop(world)
    below = await send(world, api_key, "POST", STOCK, {"add": -101}, "k2")
    assert below.status == 409
    assert await error_code(below) == "stock_below_taken"
    ok = await send(world, api_key, "POST", STOCK, {"add": -100}, "k2")
    assert ok.status == 200
    assert (await ok.json())["stock"]["total"] == 0
    assert await gate(world) == 0


async def test_set_stock_key_still_running_is_409_then_taken_over(world: World) -> None:
    """A key claimed by a request that is still running (or died before committing)."""
    api_key = await boxshop(world)
    app = world.client.app
    raw = json.dumps({"add": 5}).encode()
    await app[ADMIN_REQUESTS].begin(SHOP, "k3", "setStock", _hash("POST", STOCK, raw))
    running = await send(world, api_key, "POST", STOCK, {"add": 5}, "k3")
    assert running.status == 409
    assert await error_code(running) == "idempotency_in_progress"
    assert running.headers.get("Retry-After") == "1"
    assert (await stock_row(world, api_key))["total"] == 100
    world.clock.advance(LEASE_S + 1)  # its process died: the claim's lease ran out
    taken_over = await send(world, api_key, "POST", STOCK, {"add": 5}, "k3")
    assert taken_over.status == 200
    assert (await taken_over.json())["stock"]["total"] == 105
    assert (await send(world, api_key, "POST", STOCK, {"add": 5}, "k3")).status == 200
    assert (await stock_row(world, api_key))["total"] == 105
    assert await gate(world) == 105


async def committed_without_redis_step(world: World, key: str, add: int) -> None:
    """What a process that died between setStock's SQL commit and its Redis step leaves:
    the SQL change and the key's record (with the follow-up owed), the gate untouched."""
    app = world.client.app
    value, requests = app[VALUE], app[ADMIN_REQUESTS]
    totals = {REF: 100}
    epoch = await value.ensure_stock(SHOP, "squirrel", totals)
    raw = json.dumps({"add": add}).encode()
    claim = await requests.begin(SHOP, key, "setStock", _hash("POST", STOCK, raw))
    assert isinstance(claim, Claim)
    async with app[DB].engine.begin() as conn:
        row = await value.change_stock_in(conn, SHOP, "squirrel", REF, add)
        await requests.finish_in(conn, claim, 200,
                                 json.dumps({"game": "squirrel", "stock": row}).encode(),
                                 stock_change_followup("squirrel", epoch, REF, add))


async def test_set_stock_crash_before_redis_step_is_finished_once_by_the_retry(
        world: World) -> None:
    api_key = await boxshop(world)
    await committed_without_redis_step(world, "k4", 10)
    assert await gate(world) == 100  # the Redis step is owed
    first = await send(world, api_key, "POST", STOCK, {"add": 10}, "k4")
    assert first.status == 200
    assert (await first.json())["stock"]["total"] == 110
    assert await gate(world) == 110
    await send(world, api_key, "POST", STOCK, {"add": 10}, "k4")
    assert await gate(world) == 110
    assert (await stock_row(world, api_key))["total"] == 110


async def test_set_stock_redis_step_runs_once_even_if_its_record_is_lost(
        world: World) -> None:
    """The Redis step ran but the process died before clearing the follow-up: the mark
    beside the gate makes the retry's second run a no-op."""
    api_key = await boxshop(world)
    await committed_without_redis_step(world, "k5", 10)
    app = world.client.app
    a = m.admin_requests
    async with app[DB].engine.connect() as conn:
        followup = (await conn.execute(select(a.c.followup).where(
            a.c.idem_key == "k5"))).scalar_one()
    await app[VALUE].settle_stock_change(SHOP, "k5", followup)  # applied, not cleared
    assert await gate(world) == 110
    await send(world, api_key, "POST", STOCK, {"add": 10}, "k5")
    assert await gate(world) == 110


async def test_set_stock_owed_redis_step_is_settled_by_the_reconciler(world: World) -> None:
    api_key = await boxshop(world)
    await committed_without_redis_step(world, "k6", -30)
    app = world.client.app
    reconciler = Reconciler([app[VALUE]], 60, older_than_s=60, admin=app[ADMIN_REQUESTS])
    assert await reconciler.settle_followups() == 0  # too young: its request may be running
    world.clock.advance(61)
    assert await reconciler.settle_followups() == 1
    assert await gate(world) == 70
    assert await reconciler.settle_followups() == 0
    again = await send(world, api_key, "POST", STOCK, {"add": -30}, "k6")
    assert (await again.json())["stock"]["total"] == 70
    assert await gate(world) == 70


async def test_set_stock_after_redis_data_loss(world: World) -> None:
    """Redis loses everything (keys, gate, marks): the record in SQL still answers the
    retry, and the rebuilt gate counts the change once (from SQL), even with the Redis
    step still owed (it belonged to the lost gate generation)."""
    api_key = await boxshop(world)
    app = world.client.app
    assert (await send(world, api_key, "POST", STOCK, {"add": 10}, "k7")).status == 200
    await committed_without_redis_step(world, "k8", 5)
    await app[REDIS].flushall()
    for key, add in (("k7", 10), ("k8", 5), ("k7", 10)):
        resp = await send(world, api_key, "POST", STOCK, {"add": add}, key)
        assert resp.status == 200
        assert resp.headers.get("Idempotent-Replayed") == "true"
    assert (await stock_row(world, api_key))["total"] == 115
    assert await gate(world) == 115


# -- grantPlayer ----------------------------------------------------------------------

GRANT = f"{ADMIN}/players/alice/grant"


async def _played(world: World, user: str = "alice") -> None:
    token = await world.token(user, merchant_id=SHOP)
    resp = await world.post("/v1/games/squirrel/pet", token,
                            {"species": "squirrel", "name": "A"}, f"adopt-{user}")
    assert resp.status == 201, await resp.text()


async def _wallet(world: World, api_key: str, user: str = "alice") -> Any:
    resp = await world.client.get(f"{ADMIN}/players/{user}",
                                  headers={"Authorization": f"Bearer {api_key}"})
    return (await resp.json())["player"]["wallet"] if resp.status == 200 else resp.status


async def test_grant_retry_applies_once(world: World) -> None:
    api_key = await boxshop(world)
    await _played(world)
    body = {"wallet": {"acorn": 50}, "items": {"fig_a": 2}, "reason": "ticket 7"}
    first = await send(world, api_key, "POST", GRANT, body, "g1")
    again = await send(world, api_key, "POST", GRANT, body, "g1")
    assert first.status == again.status == 200
    assert await first.read() == await again.read()
    assert (await first.json())["wallet"] == {"acorn": 1050}
    assert (await _wallet(world, api_key))["acorn"] == 1050
    mismatch = await send(world, api_key, "POST", GRANT, {**body, "reason": "other"}, "g1")
    assert mismatch.status == 422
    assert await error_code(mismatch) == "idempotency_mismatch"
    missing = await send(world, api_key, "POST", GRANT, body, None)
    assert missing.status == 400
    assert await error_code(missing) == "idempotency_key_required"
    assert (await _wallet(world, api_key))["acorn"] == 1050


async def test_grant_retry_after_redis_data_loss_applies_once(world: World) -> None:
    api_key = await boxshop(world)
    await _played(world)
    body = {"wallet": {"acorn": 50}, "reason": "campaign"}
    first = await send(world, api_key, "POST", GRANT, body, "g2")
    assert first.status == 200
    await persister(world).run_once()  # the grant reaches SQL
    await world.client.app[REDIS].flushall()  # then Redis loses everything
    again = await send(world, api_key, "POST", GRANT, body, "g2")
    assert again.status == 200
    assert await again.read() == await first.read()
    assert (await _wallet(world, api_key))["acorn"] == 1050


async def test_grant_to_a_user_who_never_played(world: World) -> None:
    api_key = await boxshop(world)
    body = {"wallet": {"acorn": 50}, "reason": "welcome"}
    phantom = await send(world, api_key, "POST", GRANT, body, "g3")
    assert phantom.status == 404
    assert await error_code(phantom) == "player_not_found"
    assert await _wallet(world, api_key) == 404  # nothing was created
    created = await send(world, api_key, "POST", GRANT, {**body, "create": True}, "g3")
    assert created.status == 200  # the refusal did not use the key up
    assert (await created.json())["wallet"] == {"acorn": 1050}
    assert (await _wallet(world, api_key))["acorn"] == 1050


async def test_creating_a_player_with_an_impossible_id_is_422(world: World) -> None:
    """Asked to create a player whose id no player can have, the request is at fault
    (422 at ``$.user``), not a missing player (404); nothing is granted, the key unused."""
    api_key = await boxshop(world)
    body = {"wallet": {"acorn": 50}, "reason": "welcome", "create": True}
    bad = await send(world, api_key, "POST", f"{ADMIN}/players/a%20b/grant", body, "g4")
    assert bad.status == 422
    err = (await bad.json())["error"]
    assert (err["code"], err["details"]["problems"][0]["path"]) == ("invalid_input", "$.user")
    plain = await send(world, api_key, "POST", f"{ADMIN}/players/a%20b/grant",
                       {**body, "create": False}, "g4")
    assert (plain.status, await error_code(plain)) == (404, "player_not_found")


async def test_negative_grants_are_refused(world: World) -> None:
    api_key = await boxshop(world)
    await _played(world)
    for body in ({"wallet": {"acorn": -5}, "reason": "x"},
                 {"items": {"fig_a": -1}, "reason": "x"}):
        resp = await send(world, api_key, "POST", GRANT, body, "g4")
        assert resp.status == 422
        assert await error_code(resp) == "invalid_input"
    assert (await _wallet(world, api_key))["acorn"] == 1000


# -- configs: putGameDraft, publishGame, rollbackGame -----------------------------------


def _variant(price: int) -> dict[str, Any]:
    config = copy.deepcopy(BASIC_CONFIG)
    config["foods"]["snack"]["price"]["acorn"] = price
    return config


async def _versions(world: World, api_key: str) -> tuple[int, list[int]]:
    resp = await world.client.get(f"{ADMIN}/versions",
                                  headers={"Authorization": f"Bearer {api_key}"})
    body = await resp.json()
    return body["live_version"], [v["version"] for v in body["versions"]]


async def _draft_price(world: World, api_key: str) -> int:
    resp = await world.client.get(f"{ADMIN}/draft",
                                  headers={"Authorization": f"Bearer {api_key}"})
    return int((await resp.json())["config"]["foods"]["snack"]["price"]["acorn"])


async def test_put_draft_retry_answers_first_response(world: World) -> None:
    api_key = str(world.merchants["shop"].api_key)
    first = await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(11), "d1")
    assert first.status == 200
    later = await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(12), None)
    assert later.status == 200
    again = await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(11), "d1")
    assert again.status == 200
    assert await again.json() == await first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await _draft_price(world, api_key) == 12  # the retry did not overwrite
    mismatch = await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(13), "d1")
    assert mismatch.status == 422
    assert await error_code(mismatch) == "idempotency_mismatch"
    assert await _draft_price(world, api_key) == 12


async def test_publish_retry_publishes_once(world: World) -> None:
    api_key = str(world.merchants["shop"].api_key)
    assert (await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(11), None)).status == 200
    first = await send(world, api_key, "POST", f"{ADMIN}/publish", {"note": "a"}, "p1")
    assert (await first.json())["version"] == 2
    assert (await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(12), None)).status == 200
    again = await send(world, api_key, "POST", f"{ADMIN}/publish", {"note": "a"}, "p1")
    assert again.status == 200
    assert await again.json() == await first.json()
    assert await _versions(world, api_key) == (2, [2, 1])  # the new draft was not published
    mismatch = await send(world, api_key, "POST", f"{ADMIN}/publish", {"note": "b"}, "p1")
    assert mismatch.status == 422
    assert await _versions(world, api_key) == (2, [2, 1])


async def test_rollback_retry_rolls_back_once(world: World) -> None:
    api_key = str(world.merchants["shop"].api_key)
    await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(11), None)
    await send(world, api_key, "POST", f"{ADMIN}/publish", {}, None)  # v2
    first = await send(world, api_key, "POST", f"{ADMIN}/rollback", {"version": 1}, "r1")
    assert (await first.json())["version"] == 3
    await send(world, api_key, "PUT", f"{ADMIN}/draft", _variant(12), None)
    await send(world, api_key, "POST", f"{ADMIN}/publish", {}, None)  # v4
    again = await send(world, api_key, "POST", f"{ADMIN}/rollback", {"version": 1}, "r1")
    assert again.status == 200
    assert await again.json() == await first.json()
    assert await _versions(world, api_key) == (4, [4, 3, 2, 1])
    mismatch = await send(world, api_key, "POST", f"{ADMIN}/rollback", {"version": 2}, "r1")
    assert mismatch.status == 422
    assert await _versions(world, api_key) == (4, [4, 3, 2, 1])


async def test_keys_are_per_merchant(world: World) -> None:
    api_key = await boxshop(world)
    shop_key = str(world.merchants["shop"].api_key)
    assert (await send(world, api_key, "POST", STOCK, {"add": 1}, "same")).status == 200
    resp = await send(world, shop_key, "PUT", f"{ADMIN}/draft", _variant(11), "same")
    assert resp.status == 200  # another merchant's key space


# -- retention and the document --------------------------------------------------------


async def test_housekeeping_purges_old_keys_but_not_owed_followups(world: World) -> None:
    await boxshop(world)
    app = world.client.app
    now = int(world.clock.now() * 1000)
    day = 86_400_000
    a = m.admin_requests
    rows = [("old", now - 2 * day, None), ("owed", now - 2 * day, {"kind": "stock_change"}),
            ("young", now - day // 2, None)]
    async with app[DB].engine.begin() as conn:
        for key, created, followup in rows:
            await conn.execute(insert(a).values(
                merchant_id=SHOP, idem_key=key, operation="setStock", request_hash="h",
                status="done", token="t", response_status=200, response_body=b"{}",
                followup=followup, created_ms=created, claimed_ms=created))
    assert await purge_old_admin_requests(app[DB], now - day) == 1
    async with app[DB].engine.connect() as conn:
        left = sorted((await conn.execute(select(a.c.idem_key))).scalars())
    assert left == ["owed", "young"]


async def test_openapi_documents_the_keys(world: World) -> None:
    doc = await (await world.client.get("/openapi.json")).json()
    ops = {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}
    for op_id, required in (("setStock", True), ("grantPlayer", True), ("putGameDraft", False),
                            ("publishGame", False), ("rollbackGame", False)):
        header = [p for p in ops[op_id]["parameters"] if p["name"] == "Idempotency-Key"]
        assert len(header) == 1 and header[0]["in"] == "header", op_id
        assert header[0]["required"] is required, op_id
        assert "idempotency_mismatch" in header[0]["description"]
        assert {"400", "409", "422"} <= set(ops[op_id]["responses"]), op_id
    assert "player_not_found" in ops["grantPlayer"]["description"]


def _hash(method: str, path: str, raw: bytes) -> str:
    """``common.request_hash`` of a request (method, path, body)."""
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + raw).hexdigest()[:32]


# -- grantPlayer's explicit deductions --------------------------------------------------


async def test_a_deduction_is_its_own_field_applied_once(world: World) -> None:
    api_key = await boxshop(world)
    await _played(world)
    body = {"wallet": {"acorn": 10}, "deduct": {"wallet": {"acorn": 300}},
            "reason": "refund correction"}
    first = await send(world, api_key, "POST", GRANT, body, "d1")
    again = await send(world, api_key, "POST", GRANT, body, "d1")
    assert first.status == again.status == 200
    assert await again.json() == await first.json()
    assert (await first.json())["wallet"] == {"acorn": 710}  # 1000 + 10 - 300, once
    assert (await _wallet(world, api_key))["acorn"] == 710
    await persister(world).run_once()  # the ledger reaches SQL behind the commit
    ledger = (await (await world.client.get(f"{ADMIN}/players/alice", headers={
        "Authorization": f"Bearer {api_key}"})).json())["ledger"]
    deltas = [(e["delta"], e["reason"]) for e in ledger if e["reason"].startswith("admin:")]
    assert sorted(deltas) == [(-300, "admin:refund correction"),
                              (10, "admin:refund correction")]


async def test_a_deduction_beyond_the_balance_changes_nothing(world: World) -> None:
    api_key = await boxshop(world)
    await _played(world)
    too_much = {"deduct": {"wallet": {"acorn": 1001}, "items": {}}, "reason": "x"}
    resp = await send(world, api_key, "POST", GRANT, too_much, "d2")
    assert resp.status == 409
    assert await error_code(resp) == "insufficient_funds"
    items = await send(world, api_key, "POST", GRANT,
                       {"deduct": {"items": {"fig_a": 1}}, "reason": "x"}, "d3")
    assert items.status == 409
    assert await error_code(items) == "insufficient_items"
    assert (await _wallet(world, api_key))["acorn"] == 1000


# -- rotateSeed -------------------------------------------------------------------------


async def test_rotate_seed_retry_rotates_once(world: World) -> None:
    await boxshop(world)
    token = await world.token("alice", merchant_id=SHOP)
    rotate = "/v1/games/squirrel/boxes/seed/rotate"
    committed = await world.post(rotate, token, {}, "rot-0")  # commits a first seed
    first = await world.post(rotate, token, {}, "rot-1")
    again = await world.post(rotate, token, {}, "rot-1")
    assert committed.status == first.status == again.status == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == await first.json()
    revealed = (await first.json())["revealed"]
    assert revealed is not None
    assert revealed["seed_hash"] == (await committed.json())["seed_hash"]
    assert hashlib.sha256(bytes.fromhex(revealed["server_seed"])).hexdigest() == \
        revealed["seed_hash"]
    after = await world.post(rotate, token, {}, "rot-2")  # a new key rotates again, and
    assert (await after.json())["revealed"]["seed_hash"] == \
        (await first.json())["seed_hash"]  # reveals the seed rot-1 made, once


# -- grantPlayer's key is the merchant's, never the shopper's ---------------------------


async def _adopted(world: World, key: str) -> Any:
    token = await world.token("alice", merchant_id=SHOP)
    return await world.post("/v1/games/squirrel/pet", token,
                            {"species": "squirrel", "name": "A"}, key)


async def test_a_shopper_key_does_not_block_a_grant_under_the_same_key(world: World) -> None:
    """The reported bug: a shopper acted with key K, then the merchant's grant with K
    (a key the merchant never used) was 422 idempotency_mismatch."""
    api_key = await boxshop(world)
    adopted = await _adopted(world, "K")
    assert adopted.status == 201, await adopted.text()
    grant = await send(world, api_key, "POST", GRANT,
                       {"wallet": {"acorn": 50}, "reason": "ticket 8"}, "K")
    assert grant.status == 200, await grant.text()
    assert grant.headers.get("Idempotent-Replayed") is None
    assert (await grant.json())["wallet"] == {"acorn": 1050}
    again = await _adopted(world, "K")  # the shopper's key still answers theirs
    assert again.status == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.read() == await adopted.read()
    assert (await _wallet(world, api_key))["acorn"] == 1050


async def test_a_grant_key_does_not_block_the_shopper(world: World) -> None:
    """The other direction: after a grant with K2, alice's adoptPet with K2 applied."""
    api_key = await boxshop(world)
    body = {"wallet": {"acorn": 50}, "reason": "welcome", "create": True}
    grant = await send(world, api_key, "POST", GRANT, body, "K2")
    assert grant.status == 200, await grant.text()
    assert (await grant.json())["wallet"] == {"acorn": 1050}
    adopt = await _adopted(world, "K2")
    assert adopt.status == 201, await adopt.text()
    assert adopt.headers.get("Idempotent-Replayed") is None
    assert (await adopt.json())["player"]["pet"]["name"] == "A"
    retried = await send(world, api_key, "POST", GRANT, body, "K2")
    assert retried.status == 200
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert await retried.read() == await grant.read()
    other = await send(world, api_key, "POST", GRANT, {**body, "reason": "other"}, "K2")
    assert other.status == 422
    assert await error_code(other) == "idempotency_mismatch"
    assert (await _wallet(world, api_key))["acorn"] == 1050


LONG_KEY = "k" * 64
"""The longest merchant key: its player commit's key must still fit SQL's idem_key."""


async def test_a_grant_rerun_after_redis_data_loss_replays_the_player_commit(
        world: World) -> None:
    """The merchant's record is left running (the process died between the player
    commit and the record) and Redis loses everything once the commit reached SQL: the
    retry runs the player commit again, which SQL's stored response replays."""
    api_key = await boxshop(world)
    await _played(world)
    body = {"wallet": {"acorn": 50}, "reason": "campaign"}
    first = await send(world, api_key, "POST", GRANT, body, LONG_KEY)
    assert first.status == 200, await first.text()
    await persister(world).run_once()  # the grant and its response reach SQL
    a = m.admin_requests
    async with world.client.app[DB].engine.begin() as conn:
        await conn.execute(a.update().where(a.c.idem_key == LONG_KEY).values(
            status="running", response_status=None, response_body=None))
    await world.client.app[REDIS].flushall()
    world.clock.advance(LEASE_S + 1)  # the dead claim's lease is over
    again = await send(world, api_key, "POST", GRANT, body, LONG_KEY)
    assert again.status == 200, await again.text()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.read() == await first.read()
    assert (await _wallet(world, api_key))["acorn"] == 1050
    other = await send(world, api_key, "POST", GRANT, {**body, "reason": "x"}, LONG_KEY)
    assert other.status == 422
    assert await error_code(other) == "idempotency_mismatch"
    assert (await _wallet(world, api_key))["acorn"] == 1050
