"""A flash-sale midnight against real Redis and SQL: 5,000 claims at once on a sale of
stock 100, once per backend: on SQLite with the gate spread over eight buckets (the
default: the stock spans eight slots), on PostgreSQL with it in one bucket. Exactly 100
held (SQL and the replies agree), every loser ``409 sold_out``, no 5xx but overload
answered by design (``503`` with ``Retry-After``, retried with the same key as a client
does); then half are paid through ``ingestOrder`` and the rest expire: sold + released
= 100, and the gate says what SQL says is left.

Every claimer is a new shopper (read through from SQL on the way): the cost of the
burst is mostly that, and the in-process HTTP (about 20 s a burst on a 2-core machine).
Sessions are minted with the signer (no HTTP) and a 503 is retried at once, so the
burst costs only the claims. One burst per backend: the bucket count shapes only the
Redis gate and the backend only the SQL side (the same conditional update whatever the
gate), so pairing them covers each at full size for half the four bursts' time."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from gameserver.appkeys import CLOCK, SERVICES, SIGNER, VALUE
from gameserver.db import models as m
from gameserver.http.auth import body_signature
from gameserver.ops.settings import Settings
from tests.conftest import World
from tests.integration.test_flashsale_http import CONFIG, GAME, PAY, SHOP, START, sweeper

STOCK = 100
BURST_CONFIG: dict[str, Any] = copy.deepcopy(CONFIG)
BURST_CONFIG["flashsales"]["midnight"]["stock"] = STOCK
CLAIMS = 5000


@pytest.fixture
def case(db_url: str) -> int:
    """The gate's buckets (``PETBOX_STOCK_BUCKETS``): eight (the default) on SQLite,
    which every run has, one on PostgreSQL."""
    return 8 if db_url.startswith("sqlite") else 1


@pytest.fixture
def settings(case: int, settings: Settings) -> Settings:
    """The claims run on ``case`` stock buckets."""
    return settings.with_overrides(stock_buckets=case)


async def _claim(world: World, tok: str, key: str, shed: list[str]
                 ) -> tuple[int, dict[str, Any]]:
    """A first claim, and its retries with the same key while it is answered 503 (with
    Retry-After, by design) — at once: the test must not sleep."""
    for _ in range(20):
        resp = await world.client.post(f"{GAME}/flashsales/midnight/claim", json={},
                                       headers={"Authorization": f"Bearer {tok}",
                                                "Idempotency-Key": key})
        body = await resp.json()
        if resp.status != 503:
            return resp.status, body
        assert resp.headers.get("Retry-After"), body
        shed.append(body["error"]["code"])
    raise AssertionError(f"{key} still refused after 20 tries")


async def _pay(world: World, user: str, order_id: str) -> dict[str, Any]:
    ts = str(int(world.clock.now()))
    body = json.dumps({"merchant": SHOP, "game": "squirrel", "user": user,
                       "order_id": order_id, "status": "paid", "amount_fen": 990,
                       "skus": ["NUTS-11"]}).encode()
    resp = await world.client.post("/v1/events/orders", data=body, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": body_signature(world.merchants[SHOP].signing_secret, ts, body)})
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def _sql(world: World) -> tuple[Counter[str], tuple[int, int, int]]:
    g, s = m.grants, m.prize_stock
    async with world.db.engine.connect() as conn:
        statuses = Counter(r[0] for r in await conn.execute(select(g.c.status).where(
            g.c.merchant_id == SHOP, g.c.ref == "flash:midnight")))
        row = (await conn.execute(select(s.c.total, s.c.taken, s.c.granted).where(
            s.c.merchant_id == SHOP, s.c.ref == "flash:midnight"))).one()
    return statuses, (int(row[0]), int(row[1]), int(row[2]))


async def test_five_thousand_claims_at_midnight_sell_exactly_the_stock(
        world: World) -> None:
    claims = CLAIMS
    await world.merchant(SHOP, config=BURST_CONFIG)
    app = world.client.app
    world.clock.advance(START - int(world.clock.now()))  # midnight
    now = int(app[CLOCK].now())
    users = [f"s{i}" for i in range(claims)]
    tokens = [app[SIGNER].mint(SHOP, u, now)[0] for u in users]
    shed: list[str] = []
    started = time.monotonic()
    results = await asyncio.gather(*[_claim(world, t, f"c-{i}", shed)
                                     for i, t in enumerate(tokens)])
    took = time.monotonic() - started
    tally = Counter(f"{s} {b.get('error', {}).get('code', '')}".strip() for s, b in results)
    print(f"\n{claims} claims in {took:.2f} s ({claims / took:.0f}/s): {dict(tally)}; "
          f"503 answers retried: {Counter(shed)}")
    assert tally == {"200": STOCK, "409 sold_out": claims - STOCK}, tally

    holders = [(users[i], b["hold"]) for i, (s, b) in enumerate(results) if s == 200]
    assert len({h for _, h in holders}) == STOCK
    # A confirmation SQL could not take in time (the burst's read-throughs fill the SQL
    # line on a loaded machine) stays pending until the reconciler confirms it from
    # the commit: settle those as it does, then every unit sold is confirmed.
    await app[SERVICES].value.reconcile(older_than_s=-1)
    statuses, stock = await _sql(world)
    assert statuses == {"confirmed": STOCK} and stock == (STOCK, STOCK, STOCK)

    # Half pay within the window, the others never do.
    paid = await asyncio.gather(*[_pay(world, u, f"T{n}") for n, (u, _) in
                                  enumerate(holders[::2])])
    assert all(p["sale_holds"][0]["result"] == "paid" for p in paid)
    world.clock.advance(PAY + 1)
    assert await sweeper(world).run_once() == (STOCK // 2, STOCK // 2)
    statuses, stock = await _sql(world)
    assert statuses == {"sold": STOCK // 2, "released": STOCK // 2}
    assert stock == (STOCK, STOCK // 2, STOCK // 2)
    gate = await app[VALUE].stock_left(SHOP, "squirrel", {"flash:midnight": STOCK})
    assert gate.left == {"flash:midnight": STOCK // 2}
