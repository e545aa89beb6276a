"""Shadow (load-test) traffic: served normally, written only to the shadow keyspace and
database, never to real players, stock, ledger or draws; purged at once."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from gameserver.appkeys import SHADOW, SHADOW_DB
from gameserver.auth import session_signature
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.persister import Persister
from gameserver.shadow import purge_shadow
from tests.integration.test_boxes_http import BOX_CONFIG, SERIES

SHADOW_HEADERS = {"X-Petbox-Shadow": "1"}


@pytest.fixture
async def loadtest(world: Any) -> Any:
    """A merchant approved for load testing, with the blind-box game."""
    from gameserver.provision import create_merchant, publish_config

    now = int(world.clock.now())
    world.merchants["lt"] = await create_merchant(world.db, "lt", now, load_test=True)
    await publish_config(world.db, "lt", "squirrel", BOX_CONFIG, now)
    return world


async def shadow_token(world: Any, user: str, merchant: str = "lt") -> Any:
    creds = world.merchants[merchant]
    ts = int(world.clock.now())
    return await world.client.post("/v1/sessions", json={
        "merchant": merchant, "user": user, "ts": ts, "shadow": True,
        "sign": session_signature(creds.signing_secret, merchant, user, ts, shadow=True)})


async def count(db: Database, table: Any) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_shadow_needs_an_approved_merchant_and_a_signed_flag(loadtest: Any) -> None:
    refused = await shadow_token(loadtest, "bot-1", merchant="shop")
    assert refused.status == 403
    creds = loadtest.merchants["lt"]
    ts = int(loadtest.clock.now())
    unsigned = await loadtest.client.post("/v1/sessions", json={
        "merchant": "lt", "user": "bot-1", "ts": ts, "shadow": True,
        "sign": session_signature(creds.signing_secret, "lt", "bot-1", ts)})
    assert unsigned.status == 401
    assert (await shadow_token(loadtest, "bot-1")).status == 201


async def test_shadow_token_and_header_go_together(loadtest: Any) -> None:
    token = (await (await shadow_token(loadtest, "bot-1")).json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    without = await loadtest.client.get("/v1/games/squirrel/me", headers=headers)
    assert without.status == 403
    real = await loadtest.token("alice", merchant_id="lt")
    forged = await loadtest.client.get("/v1/games/squirrel/me", headers={
        "Authorization": f"Bearer {real}", **SHADOW_HEADERS})
    assert forged.status == 403
    ok = await loadtest.client.get("/v1/games/squirrel/me", headers={**headers,
                                                                     **SHADOW_HEADERS})
    assert ok.status == 200


async def test_shadow_writes_never_reach_real_data(loadtest: Any) -> None:
    app = loadtest.client.app
    tokens = [(await (await shadow_token(loadtest, f"bot-{i}")).json())["token"]
              for i in range(30)]
    for i, token in enumerate(tokens):
        resp = await loadtest.client.post(f"{SERIES}/draw", json={"count": 10}, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": f"d{i}", **SHADOW_HEADERS})
        assert resp.status == 200
    shadow = app[SHADOW]
    await Persister(app[SHADOW].store.redis, shadow.keys, app[SHADOW_DB],
                    shadow.store.metrics, loadtest.clock, shards=4, consumer="t").run_once()
    for table in (m.players, m.ledger, m.draws, m.grants):
        assert await count(loadtest.db, table) == 0, table.name
    assert await count(app[SHADOW_DB], m.draws) == 300
    shadow_grants = await count(app[SHADOW_DB], m.grants)
    assert 0 < shadow_grants <= 100
    assert await count(loadtest.db, m.prize_stock) == 0  # real stock never touched

    real = await loadtest.token("alice", merchant_id="lt")
    disclosed = await (await loadtest.get(SERIES, real)).json()
    assert disclosed["stock_left"] == {"coupon_x": 100}
    stock = await (await loadtest.client.get(
        "/v1/admin/games/squirrel/stock",
        headers={"Authorization": f"Bearer {loadtest.merchants['lt'].api_key}"})).json()
    assert stock["stock"] == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0,
                               "granted": 0, "left": 100}]


async def test_purge_removes_every_shadow_key_and_row(loadtest: Any, redis_url: str) -> None:
    app = loadtest.client.app
    token = (await (await shadow_token(loadtest, "bot-1")).json())["token"]
    resp = await loadtest.client.post(f"{SERIES}/draw", json={"count": 1}, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "d1", **SHADOW_HEADERS})
    assert resp.status == 200
    real = await loadtest.token("alice", merchant_id="lt")
    await loadtest.post("/v1/games/squirrel/pet", real, {"species": "squirrel", "name": "N"},
                        "adopt")
    shadow_db = app[SHADOW_DB]
    before = {t.name: await count(shadow_db, t) for t in (m.prize_stock, m.grants)}
    assert before["prize_stock"] == 1
    client = aioredis.Redis.from_url(redis_url)
    shadow_keys = len([k async for k in client.scan_iter(match="pbs:*")])
    keys, rows = await purge_shadow(redis_url, shadow_db.url)
    assert (keys, rows) == (shadow_keys, sum(before.values()))
    assert [k async for k in client.scan_iter(match="pbs:*")] == []
    assert [k async for k in client.scan_iter(match="pb:*")] != []  # real keys stay
    await client.aclose()
    assert await count(app[SHADOW_DB], m.grants) == 0
    me = await loadtest.get("/v1/games/squirrel/me", real)
    assert (await me.json())["player"]["pet"]["name"] == "N"
