"""Flash sales and presales over HTTP against real Redis and SQL (SQLite, and PostgreSQL
with ``PETBOX_TEST_POSTGRES_URL``): ``getFlashSale``/``getPresale`` (public, cached stock),
``claimFlashSale``/``reservePresale`` (a hold in the value tier), payment through
``ingestOrder``, and the sweeper that ends unpaid holds and gives their units back.

Game ``squirrel`` of merchant ``fsshop``: sale ``midnight`` (stock 3, 1 per shopper,
pay within 600 s, starts an hour after the test clock) and presale ``early``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from sqlalchemy import select

from gameserver.api.flashsale import STOCK_CACHE
from gameserver.api.flashsale_sweep import HoldSweeper
from gameserver.appkeys import CLOCK, GAMES, SERVICES, SETTINGS, VALUE
from gameserver.db import models as m
from gameserver.http.auth import body_signature
from gameserver.jobs.webhooks import OUTBOX
from gameserver.ops.metrics import METRICS
from gameserver.state.stockgate import Piece
from tests.conftest import BASIC_CONFIG, World, retry_503

NOW = 1_767_225_600
START = NOW + 3600
PAY = 600
GAME = "/v1/games/squirrel"
SALE = f"{GAME}/flashsales/midnight"
PRESALE = f"{GAME}/presales/early"
SHOP = "fsshop"

CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
CONFIG["flashsales"] = {"midnight": {
    "title": "Midnight nuts", "sku": "NUTS-11", "price_fen": 990, "list_price_fen": 2990,
    "starts_at": START, "stock": 3, "per_shopper": 1, "pay_seconds": PAY}}
CONFIG["presales"] = {"early": {
    "title": "Gift box", "sku": "BOX-11", "price_fen": 19900, "deposit_fen": 2000,
    "benefit": "deposit_multiplier", "multiplier_pct": 200, "reserve_from": NOW - 60,
    "reserve_until": NOW + 600, "event_at": NOW + 1200, "convert_until": NOW + 1800,
    "stock": 2, "per_shopper": 1},
    "deposit": {
    "title": "Gift box with a tracked deposit", "sku": "BOX-12", "deposit_sku": "BOX-12-DEP",
    "price_fen": 19900, "deposit_fen": 2000, "benefit": "deposit_multiplier",
    "multiplier_pct": 200, "reserve_from": NOW - 60, "reserve_until": NOW + 600,
    "event_at": NOW + 1200, "convert_until": NOW + 1800, "stock": 2, "per_shopper": 1}}


@pytest.fixture
async def fw(world: World) -> World:
    await world.merchant(SHOP, config=CONFIG)
    world.client.app[STOCK_CACHE].ttl = 0  # every read fresh, unless a test says otherwise
    return world


def token(world: World, user: str) -> str:
    return world.mint(user, SHOP)


async def claim(world: World, user: str, key: str, path: str = f"{SALE}/claim",
                body: Any = None) -> Any:
    """Claim (or reserve), retrying a 503 with the same key as clients do: under a loaded
    machine the value tier's SQL may answer slowly once, and then holds nothing."""
    resp = await retry_503(lambda: world.client.post(
        path, json={} if body is None else body,
        headers={"Authorization": f"Bearer {token(world, user)}", "Idempotency-Key": key}))
    return resp, await resp.json()


async def public(world: World, path: str = SALE, merchant: str = SHOP) -> Any:
    resp = await world.client.get(f"{path}?merchant={merchant}")
    return resp.status, await resp.json()


async def order(world: World, user: str, order_id: str, skus: list[str],
                paid_at: int = 0) -> Any:
    """The merchant's signed paid order (``paid_at`` 0: paid now)."""
    ts = str(int(world.clock.now()))
    body = json.dumps({"merchant": SHOP, "game": "squirrel", "user": user,
                       "order_id": order_id, "status": "paid", "amount_fen": 990,
                       "skus": skus, "paid_at": paid_at}).encode()
    secret = world.merchants[SHOP].signing_secret
    resp = await world.client.post("/v1/events/orders", data=body, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": body_signature(secret, ts, body)})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def grants(world: World, ref: str = "flash:midnight") -> tuple[list[str], tuple[int, ...]]:
    g, s = m.grants, m.prize_stock
    async with world.db.engine.connect() as conn:
        statuses = sorted(r[0] for r in await conn.execute(select(g.c.status).where(
            g.c.merchant_id == SHOP, g.c.ref == ref)))
        row = (await conn.execute(select(s.c.total, s.c.taken, s.c.granted).where(
            s.c.merchant_id == SHOP, s.c.ref == ref))).first()
    return statuses, tuple(int(v) for v in row or ())


def sweeper(world: World) -> HoldSweeper:
    app = world.client.app
    return HoldSweeper([app[SERVICES]], app[GAMES], app[CLOCK], app[SETTINGS].shards, 1.0,
                       outbox=app[OUTBOX])


async def events(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await world.client.app[OUTBOX].list(SHOP, "squirrel")
    return [(e.event, e.key, e.data) for e in rows]


async def test_before_the_start_public_countdown_and_claims_refused(fw: World) -> None:
    status, view = await public(fw)
    assert status == 200
    assert (view["status"], view["starts_in"], view["server_time"], view["stock_left"]) == (
        "upcoming", 3600, NOW, 3)
    fw.clock.advance(3599)
    resp, body = await claim(fw, "ann", "k1")
    assert (resp.status, body["error"]["code"]) == (409, "not_started")
    assert resp.headers["Retry-After"] == "1"
    assert body["error"]["details"] == {"sale": "midnight", "starts_at": START,
                                        "server_time": START - 1, "retry_after": 1}
    assert (await grants(fw))[0] == []  # refused, not queued: nothing held


async def test_claim_holds_once_per_key_pay_and_expire(fw: World) -> None:
    fw.clock.advance(3600)
    resp, held = await claim(fw, "ann", "k1")
    assert resp.status == 200, held
    assert (held["status"], held["pay_by"], held["price_fen"]) == ("held", START + PAY, 990)
    again, same = await claim(fw, "ann", "k1")
    assert same == held and again.headers["Idempotent-Replayed"] == "true"
    resp, err = await claim(fw, "ann", "k2")
    assert (resp.status, err["error"]["code"]) == (409, "purchase_limit_reached")
    _, bob = await claim(fw, "bob", "k1")
    assert await grants(fw) == (["confirmed", "confirmed"], (3, 2, 2))
    assert (await public(fw))[1]["stock_left"] == 1

    me = await (await fw.client.get(f"{GAME}/me", headers={
        "Authorization": f"Bearer {token(fw, 'ann')}"})).json()
    assert [h["hold"] for h in me["player"]["sale_holds"]] == [held["hold"]]

    paid = await order(fw, "ann", "T1", ["NUTS-11"])
    assert paid["sale_holds"] == [{"kind": "flash_sale", "sale": "midnight",
                                   "hold": held["hold"], "result": "paid"}]
    fw.clock.advance(PAY)  # the pay_by instant: nothing expires yet
    assert await sweeper(fw).run_once() == (0, 0)
    fw.clock.advance(1)
    stranger = await order(fw, "cat", "T2", ["NUTS-11"])  # never claimed
    assert stranger["sale_holds"][0]["result"] == "no_hold"
    assert await sweeper(fw).run_once() == (1, 1)  # bob's released, ann's sold
    assert await grants(fw) == (["released", "sold"], (3, 1, 1))
    assert (await public(fw))[1]["stock_left"] == 2
    assert await sweeper(fw).run_once() == (0, 0)  # nothing twice
    assert await events(fw) == [("flashsale.released", f"flashsale.released:{bob['hold']}", {
        "user": "bob", "sale": "midnight", "hold": bob["hold"], "until": START + PAY,
        "sku": "NUTS-11", "price_fen": 990, "reason": "expired"})]
    me = await (await fw.client.get(f"{GAME}/me", headers={
        "Authorization": f"Bearer {token(fw, 'bob')}"})).json()
    assert [(h["hold"], h["status"]) for h in me["player"]["sale_holds"]] == [
        (bob["hold"], "expired")]
    # bob may claim again; his unit came back to the stock
    resp, _ = await claim(fw, "bob", "k2")
    assert resp.status == 200
    # the merchant's export has the sold unit and bob's new hold, not the released one
    export = await fw.client.get("/v1/admin/games/squirrel/export", headers={
        "Authorization": f"Bearer {fw.merchants[SHOP].api_key}"})
    lines = [json.loads(x) for x in (await export.text()).splitlines()]
    assert sorted((g["user"], g["status"]) for g in lines if g["type"] == "grant") == [
        ("ann", "sold"), ("bob", "confirmed")]


async def test_an_order_paid_before_the_claim_pays_no_hold(fw: World) -> None:
    """The merchant reports an order of the sale's SKU paid an hour before the shopper's
    claim (bought at full price, before the hold existed): it is answered ``no_hold``,
    the hold stays unpaid and, unpaid at ``pay_by``, its unit goes back to the stock."""
    fw.clock.advance(3600)
    resp, held = await claim(fw, "ann", "k1")
    assert resp.status == 200, held
    old = await order(fw, "ann", "T0", ["NUTS-11"], paid_at=START - 3600)
    assert (old["order"], old["duplicate"]) == ("T0", False)
    assert old["sale_holds"] == [{"kind": "flash_sale", "sale": "midnight", "hold": None,
                                  "result": "no_hold"}]
    me = await (await fw.client.get(f"{GAME}/me", headers={
        "Authorization": f"Bearer {token(fw, 'ann')}"})).json()
    assert [(h["hold"], h["status"], h["order"]) for h in me["player"]["sale_holds"]] == [
        (held["hold"], "held", None)]
    fw.clock.advance(PAY + 1)
    assert await sweeper(fw).run_once() == (1, 0)  # released, not sold
    assert await grants(fw) == (["released"], (3, 0, 0))


async def test_an_order_paid_in_time_reported_after_the_release_is_honoured(
        fw: World) -> None:
    """Ann pays before pay_by but the merchant's webhook comes after the sweeper released
    her hold (its unit back on sale): the order takes one unit again and pays a new
    hold, once however often the webhook is retried; the sweeper then counts it sold."""
    fw.clock.advance(3600)
    _, held = await claim(fw, "ann", "k1")
    fw.clock.advance(PAY + 1)
    assert await sweeper(fw).run_once() == (1, 0)
    assert await grants(fw) == (["released"], (3, 0, 0))
    paid = await order(fw, "ann", "T1", ["NUTS-11"], paid_at=START + PAY - 10)
    new = paid["sale_holds"][0]["hold"]
    assert new != held["hold"] and paid["sale_holds"] == [
        {"kind": "flash_sale", "sale": "midnight", "hold": new, "result": "paid",
         "late": True, "replaces": held["hold"]}]
    assert "refund_due" not in paid
    again = await order(fw, "ann", "T1", ["NUTS-11"], paid_at=START + PAY - 10)
    assert again == {**paid, "duplicate": True}
    assert await grants(fw) == (["confirmed", "released"], (3, 1, 1))
    assert await sweeper(fw).run_once() == (0, 1)  # the new hold: sold, never released
    assert await grants(fw) == (["released", "sold"], (3, 1, 1))
    assert (await public(fw))[1]["stock_left"] == 2
    me = await (await fw.client.get(f"{GAME}/me", headers={
        "Authorization": f"Bearer {token(fw, 'ann')}"})).json()
    assert sorted((h["hold"], h["status"], h["order"]) for h in me["player"]["sale_holds"]) == (
        sorted([(held["hold"], "expired", "T1"), (new, "paid", "T1")]))
    # only the release was told to the merchant
    assert [e[0] for e in await events(fw)] == ["flashsale.released"]


async def test_a_late_order_with_nothing_left_is_answered_refund_and_counted(
        fw: World) -> None:
    """Ann's hold was released and the three units went to others before her late
    webhook: nothing is oversold, the answer says refund (sale_holds and refund_due),
    and /metrics counts it once, however often the webhook is retried."""
    fw.clock.advance(3600)
    _, held = await claim(fw, "ann", "k1")
    fw.clock.advance(PAY + 1)
    assert await sweeper(fw).run_once() == (1, 0)
    for user in ("b", "c", "d"):
        assert (await claim(fw, user, "k"))[0].status == 200
    late = await order(fw, "ann", "T1", ["NUTS-11"], paid_at=START + PAY)
    assert late["sale_holds"] == [{"kind": "flash_sale", "sale": "midnight",
                                   "hold": held["hold"], "result": "refund",
                                   "reason": "sold_out"}]
    assert late["refund_due"] == [{"kind": "flash_sale", "sale": "midnight", "sku": "NUTS-11",
                                   "price_fen": 990, "reason": "sold_out"}]
    assert await order(fw, "ann", "T1", ["NUTS-11"], paid_at=START + PAY) == {
        **late, "duplicate": True}
    assert await grants(fw) == (["confirmed"] * 3 + ["released"], (3, 3, 3))
    registry = fw.client.app[METRICS].registry
    assert registry.get_sample_value("petbox_order_refunds_due_total", {
        "kind": "flash_sale", "reason": "sold_out"}) == 1.0
    me = await (await fw.client.get(f"{GAME}/me", headers={
        "Authorization": f"Bearer {token(fw, 'ann')}"})).json()
    assert [(h["status"], h["order"]) for h in me["player"]["sale_holds"]] == [
        ("expired", None)]


async def test_sold_out_at_once_and_the_cache_keeps_polls_off_redis(fw: World) -> None:
    fw.clock.advance(3600)
    for user in ("a", "b", "c"):
        assert (await claim(fw, user, "k"))[0].status == 200
    resp, err = await claim(fw, "d", "k")
    assert (resp.status, err["error"]["code"]) == (409, "sold_out")
    assert err["error"]["details"] == {"sale": "midnight", "stock_left": 0, "stock_pending": 0}
    cache = fw.client.app[STOCK_CACHE]
    cache.ttl, cache.reads = 60.0, 0
    cache.clear()
    views = await asyncio.gather(*[public(fw) for _ in range(50)])
    assert {(s, v["status"], v["stock_left"], v["stock_pending"]) for s, v in views} == {
        (200, "sold_out", 0, 0)}
    assert cache.reads == 1
    resp, err = await claim(fw, "e", "k")  # answered from the cache: the gate is not asked
    assert (resp.status, err["error"]["code"], cache.reads) == (409, "sold_out", 1)
    assert await grants(fw) == (["confirmed"] * 3, (3, 3, 3))


async def raw_claim(world: World, user: str, key: str) -> tuple[int, Any, str | None]:
    """One claim, not retried: its status, body and Retry-After."""
    resp = await world.client.post(f"{SALE}/claim", json={}, headers={
        "Authorization": f"Bearer {token(world, user)}", "Idempotency-Key": key})
    return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def in_flight(world: World, attempt: str, ref: str = "flash:midnight",
                    merchant: str = SHOP) -> list[Piece]:
    """One unit of ``ref`` taken from the gate by an attempt that has not reached SQL yet
    (what a claim holds while its grant is written, or after its process died there)."""
    tier = world.client.app[VALUE]
    deadline_ms = int(world.clock.now() * 1000) + tier.hold_ttl_ms
    taken = await tier.gate.reserve(merchant, "squirrel", attempt, deadline_ms, {ref: 1})
    assert taken.missing == {}
    return taken.pieces


async def test_sold_out_says_what_claims_in_flight_hold_and_a_unit_back_sells(
        fw: World) -> None:
    """The last unit held by a claim still settling: others are told sold out *for now*,
    how many units may come back and when to look again (the view says so too); when
    that claim fails and gives its unit back, the next claim gets it."""
    fw.clock.advance(3600)
    for user in ("a", "b"):
        assert (await claim(fw, user, "k"))[0].status == 200
    pieces = await in_flight(fw, "attempt-1")
    status, err, retry = await raw_claim(fw, "c", "k")
    assert (status, err["error"]["code"], retry) == (409, "sold_out", "1")
    assert err["error"]["details"] == {"sale": "midnight", "stock_left": 0,
                                       "stock_pending": 1, "retry_after": 1}
    _, view = await public(fw)
    assert (view["status"], view["stock_left"], view["stock_pending"]) == ("sold_out", 0, 1)
    assert await grants(fw) == (["confirmed"] * 2, (3, 2, 2))  # the 409 changed nothing
    await fw.client.app[VALUE].gate.give_back(SHOP, "squirrel", pieces)  # that claim failed
    _, view = await public(fw)
    assert (view["status"], view["stock_left"], view["stock_pending"]) == ("live", 1, 0)
    status, held, _ = await raw_claim(fw, "c", "k2")
    assert (status, held["status"]) == (200, "held")
    status, err, retry = await raw_claim(fw, "d", "k")
    assert (status, err["error"]["code"], retry) == (409, "sold_out", None)
    assert err["error"]["details"]["stock_pending"] == 0
    _, view = await public(fw)
    assert (view["status"], view["stock_left"], view["stock_pending"]) == ("sold_out", 0, 0)
    assert await grants(fw) == (["confirmed"] * 3, (3, 3, 3))


async def test_a_stuck_hold_is_left_to_the_reconciler_not_retried_for(fw: World) -> None:
    """A hold older than a grant's longest SQL try belongs to a dead process or a commit
    whose answer was lost: the reconciler settles it at its deadline, so shoppers are
    told a plain sold out meanwhile (the unit comes back on sale then), not to look
    again every second for it."""
    fw.clock.advance(3600)
    for user in ("a", "b"):
        assert (await claim(fw, user, "k"))[0].status == 200
    pieces = await in_flight(fw, "attempt-1")
    assert (await raw_claim(fw, "c", "k"))[1]["error"]["details"]["stock_pending"] == 1
    fw.clock.advance(fw.client.app[VALUE].live_hold_ms / 1000 + 1)
    status, err, retry = await raw_claim(fw, "c", "k2")
    assert (status, err["error"]["details"]["stock_pending"], retry) == (409, 0, None)
    assert (await public(fw))[1]["stock_pending"] == 0
    await fw.client.app[VALUE].gate.give_back(SHOP, "squirrel", pieces)  # as the reconciler
    status, held, _ = await raw_claim(fw, "c", "k3")
    assert (status, held["status"]) == (200, "held")
    assert await grants(fw) == (["confirmed"] * 3, (3, 3, 3))


async def test_a_hold_whose_commit_went_unanswered_is_aged_out_of_pending(fw: World) -> None:
    """An attempt whose SQL COMMIT got no answer leaves its hold to the reconciler and
    ages it past the live window at once (the value tier's ``age_holds``): claims are
    told a plain sold out, not to wait for it; its deadline only ever moves earlier."""
    fw.clock.advance(3600)
    for user in ("a", "b"):
        assert (await claim(fw, user, "k"))[0].status == 200
    pieces = await in_flight(fw, "attempt-1")
    tier, now_ms = fw.client.app[VALUE], int(fw.clock.now() * 1000)
    assert (await raw_claim(fw, "c", "k"))[1]["error"]["details"]["stock_pending"] == 1
    aged = now_ms + tier.hold_ttl_ms - tier.live_hold_ms
    await tier.gate.age_holds(SHOP, "squirrel", pieces, aged)
    await tier.gate.age_holds(SHOP, "squirrel", pieces, now_ms + tier.hold_ttl_ms)  # later: no
    status, err, _ = await raw_claim(fw, "c", "k2")
    assert (status, err["error"]["details"]["stock_pending"]) == (409, 0)
    holds = tier.gate.holds_key(SHOP, "squirrel", pieces[0].bucket)
    assert await tier.redis.zscore(holds, pieces[0].member) == aged  # still the reconciler's
    await tier.gate.give_back(SHOP, "squirrel", pieces)
    await tier.gate.age_holds(SHOP, "squirrel", pieces, aged)  # ended: not made again
    assert await tier.redis.zscore(holds, pieces[0].member) is None


async def test_a_claim_short_at_the_gate_behind_claims_in_flight_is_pending(fw: World) -> None:
    """The view said units were left (cached), but claims in flight took them before this
    one reached the gate: it is told what they hold."""
    fw.clock.advance(3600)
    cache = fw.client.app[STOCK_CACHE]
    cache.ttl = 60.0
    assert (await public(fw))[1]["stock_left"] == 3  # cached: (3 left, 0 pending)
    pieces = [p for i in range(3) for p in await in_flight(fw, f"attempt-{i}")]
    status, err, retry = await raw_claim(fw, "c", "k")
    assert (status, err["error"]["code"], retry) == (409, "sold_out", "1")
    assert err["error"]["details"]["stock_pending"] == 3
    await fw.client.app[VALUE].gate.give_back(SHOP, "squirrel", pieces)
    cache.clear()
    status, held, _ = await raw_claim(fw, "c", "k2")
    assert (status, held["status"]) == (200, "held")
    assert await grants(fw) == (["confirmed"], (3, 1, 1))


async def test_bad_input_unknown_sale_other_merchant(fw: World) -> None:
    fw.clock.advance(3600)
    resp, err = await claim(fw, "ann", "k1", body={"qty": 2})
    assert (resp.status, err["error"]["code"]) == (422, "invalid_input")
    resp = await fw.client.post(f"{SALE}/claim", json={}, headers={
        "Authorization": f"Bearer {token(fw, 'ann')}"})
    assert resp.status == 400
    resp, err = await claim(fw, "ann", "k1", path=f"{GAME}/flashsales/nope/claim")
    assert (resp.status, err["error"]["code"]) == (404, "sale_not_found")
    assert (await public(fw, merchant="shop"))[0] == 404  # another merchant's game
    assert (await public(fw, merchant="nobody"))[0] == 404
    assert (await fw.client.get(SALE)).status == 422  # no token, no merchant
    assert (await grants(fw))[0] == []


async def test_presale_reserve_convert_and_release(fw: World) -> None:
    status, view = await public(fw, PRESALE)
    assert (status, view["status"], view["stock_left"], view["deposit_value_fen"]) == (
        200, "reserving", 2, 4000)
    resp, ann = await claim(fw, "ann", "r1", path=PRESALE)
    assert resp.status == 200 and ann["until"] == NOW + 1800
    _, bob = await claim(fw, "bob", "r1", path=PRESALE)
    resp, err = await claim(fw, "cat", "r1", path=PRESALE)
    assert (resp.status, err["error"]["code"]) == (409, "sold_out")
    fw.clock.advance(1200)  # the event
    converted = await order(fw, "ann", "F1", ["BOX-11"])
    assert converted["sale_holds"] == [{"kind": "presale", "sale": "early", "hold": ann["hold"],
                                        "result": "converted", "deposit_value_fen": 4000}]
    fw.clock.advance(601)  # past convert_until
    assert await sweeper(fw).run_once() == (1, 1)
    assert await grants(fw, "presale:early") == (["released", "sold"], (2, 1, 1))
    assert await events(fw) == [("presale.released", f"presale.released:{bob['hold']}", {
        "user": "bob", "sale": "early", "hold": bob["hold"], "until": NOW + 1800,
        "sku": "BOX-11", "price_fen": 19900, "reason": "expired", "deposit_fen": 2000,
        "deposit_order": None})]
    assert bob["hold"] != ann["hold"]
    assert (await public(fw, PRESALE))[1]["status"] == "ended"


async def refund(world: World, user: str, order_id: str, skus: list[str]) -> Any:
    """The merchant's signed refund of ``order_id``."""
    ts = str(int(world.clock.now()))
    body = json.dumps({"merchant": SHOP, "game": "squirrel", "user": user,
                       "order_id": order_id, "status": "refunded", "amount_fen": 2000,
                       "skus": skus}).encode()
    resp = await world.client.post("/v1/events/orders", data=body, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": body_signature(world.merchants[SHOP].signing_secret, ts, body)})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_refunded_deposit_is_not_deducted_at_conversion(fw: World) -> None:
    """A deposit order refunded before the event unmarks the deposit: the conversion
    answers deposit_value_fen 0, not the multiplied deposit the shopper got back."""
    path = f"{GAME}/presales/deposit"
    _, ann = await claim(fw, "ann", "r1", path=path)
    _, bob = await claim(fw, "bob", "r1", path=path)
    for user, dep in (("ann", "D1"), ("bob", "D2")):
        paid = await order(fw, user, dep, ["BOX-12-DEP"])
        assert paid["sale_holds"][0]["result"] == "deposit_paid"
    back = await refund(fw, "ann", "D1", ["BOX-12-DEP"])
    assert back["flashsale"] == {"deposits_refunded": [ann["hold"]]}
    again = await refund(fw, "ann", "D1", ["BOX-12-DEP"])  # a duplicate delivery: replayed
    assert again == {**back, "duplicate": True}
    fw.clock.advance(1200)  # the event
    for user, hold, deduct in (("ann", ann["hold"], 0), ("bob", bob["hold"], 4000)):
        converted = await order(fw, user, f"F-{user}", ["BOX-12"])
        assert converted["sale_holds"] == [{"kind": "presale", "sale": "deposit", "hold": hold,
                                            "result": "converted", "deposit_value_fen": deduct}]


async def test_a_deposit_webhook_after_the_conversion_is_recognised(fw: World) -> None:
    """The final payment's webhook came before the deposit's: the deposit order is
    answered already_converted (the conversion's order, and the 0 it deducted), not
    no_reservation; a retry replays it and the reservation is sold, never released."""
    path = f"{GAME}/presales/deposit"
    _, ann = await claim(fw, "ann", "r1", path=path)
    fw.clock.advance(1200)  # the event
    final = await order(fw, "ann", "F1", ["BOX-12"])
    assert final["sale_holds"] == [{"kind": "presale", "sale": "deposit", "hold": ann["hold"],
                                    "result": "converted", "deposit_value_fen": 0}]
    deposit = await order(fw, "ann", "D1", ["BOX-12-DEP"], paid_at=NOW + 5)
    assert deposit["sale_holds"] == [{"kind": "presale", "sale": "deposit",
                                      "hold": ann["hold"], "result": "already_converted",
                                      "order": "F1", "deposit_value_fen": 0}]
    assert await order(fw, "ann", "D1", ["BOX-12-DEP"], paid_at=NOW + 5) == {
        **deposit, "duplicate": True}
    fw.clock.advance(601)  # past convert_until
    assert await sweeper(fw).run_once() == (0, 1)
    assert await events(fw) == []


async def test_gate_and_sql_agree_after_releases(fw: World) -> None:
    """After claims, an expiry and a sweep, the Redis gate says what SQL says is left."""
    fw.clock.advance(3600)
    for user in ("a", "b"):
        await claim(fw, user, "k")
    fw.clock.advance(PAY + 1)
    await sweeper(fw).run_once()
    _, (total, taken, _) = await grants(fw)
    gate = await fw.client.app[VALUE].stock_left(SHOP, "squirrel", {"flash:midnight": 3})
    assert gate.left == {"flash:midnight": total - taken} == {"flash:midnight": 3}


async def test_one_key_sent_twice_at_once_holds_one_unit(fw: World) -> None:
    fw.clock.advance(3600)
    (r1, b1), (r2, b2) = await asyncio.gather(claim(fw, "ann", "same"), claim(fw, "ann", "same"))
    assert (r1.status, r2.status) == (200, 200) and b1 == b2
    assert await grants(fw) == (["confirmed"], (3, 1, 1))


async def test_two_sweepers_at_once_end_each_hold_once(fw: World) -> None:
    """Two hosts' passes overlapping (a lease holder paused past its lifetime): each
    hold is released once, its unit given back once, its webhook stored once."""
    fw.clock.advance(3600)
    for user in ("a", "b", "c"):
        await claim(fw, user, "k")
    fw.clock.advance(PAY + 1)
    first, second = await asyncio.gather(sweeper(fw).run_once(), sweeper(fw).run_once())
    # A hold one pass found busy (the other pass's key in flight) or slow is left to
    # the next pass; a third pass ends what is left, and nothing ends twice.
    third = await sweeper(fw).run_once()
    assert first[0] + second[0] + third[0] == 3 and first[1] + second[1] + third[1] == 0
    assert await sweeper(fw).run_once() == (0, 0)
    assert await grants(fw) == (["released"] * 3, (3, 0, 0))
    assert len(await events(fw)) == 3
    gate = await fw.client.app[VALUE].stock_left(SHOP, "squirrel", {"flash:midnight": 3})
    assert gate.left == {"flash:midnight": 3}


async def test_a_shopper_key_never_blocks_the_end_of_their_hold(fw: World) -> None:
    """The end of a hold committed under ``hold-end-<hold>``, a key the shopper can send
    (the claim tells them the hold id): an action of theirs under it first made the
    sweep's commit 422, and the hold was never released. Now the sweep's key is outside
    the shopper's alphabet."""
    fw.clock.advance(3600)
    resp, held = await claim(fw, "bob", "k1")
    assert resp.status == 200, held
    adopted = await fw.client.post(f"{GAME}/pet", json={"species": "squirrel", "name": "B"},
                                   headers={"Authorization": f"Bearer {token(fw, 'bob')}",
                                            "Idempotency-Key": f"hold-end-{held['hold']}"})
    assert adopted.status == 201, await adopted.text()
    fw.clock.advance(PAY + 1)
    assert await sweeper(fw).run_once() == (1, 0)  # released, none sold
    assert await grants(fw) == (["released"], (3, 0, 0))
    assert (await public(fw))[1]["stock_left"] == 3
