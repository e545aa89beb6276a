"""``erasePlayer`` over HTTP against real Redis and SQL (SQLite and PostgreSQL): what goes,
what stays under a pseudonym, that totals do not move, that a retry replays, that an
action racing the erasure lands before it or is refused, and that a shopper who comes
back starts afresh."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from gameserver.appkeys import KEYS, SETTINGS
from gameserver.db import models as m
from gameserver.db.erasure import pseudonym
from tests.conftest import World
from tests.integration.loopgame import signed_order
from tests.integration.test_boxes_http import persister
from tests.integration.test_coupon_wallet import WALLET_CONFIG

GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"

CONFIG: dict[str, Any] = copy.deepcopy(WALLET_CONFIG)
CONFIG["leaderboards"] = {"draws": {"name": "Most boxes", "metric": "draws", "size": 10}}
"""Every draw wins a limited ¥5 coupon; a board of draws."""

USER_TABLES = (m.players, m.ledger, m.responses, m.grants, m.draws, m.revealed_seeds,
               m.experiment_exposures, m.experiment_days, m.order_events, m.order_refunds,
               m.aggregate_ledger)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Any, clock: Any) -> Any:
    from gameserver.app import create_app

    return await aiohttp_client(create_app(
        settings.with_overrides(erase_tombstone=0.5, erase_wait=10.0), clock=clock))


async def _rows(world: World, user: str) -> dict[str, int]:
    """Rows naming ``user``, by table (tables with none left out; grants: those not void,
    as the holds of actions refused by the erasure end void)."""
    out = {}
    async with world.db.connect() as conn:
        for t in USER_TABLES:
            live = [t.c.status != "void"] if t is m.grants else []
            n = (await conn.execute(select(func.count()).select_from(t)
                                    .where(t.c.user_id == user, *live))).scalar_one()
            if n:
                out[t.name] = n
    return out


async def _admin(world: World, method: str, path: str, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {world.merchants['boxshop'].api_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await world.client.request(method, f"{ADMIN}{path}", json={}, headers=headers)


async def _totals(world: World) -> tuple[Any, Any]:
    stock = await (await _admin(world, "GET", "/stock")).json()
    report = await (await _admin(world, "GET", "/analytics?days=1")).json()
    return stock["stock"], report["totals"]


async def test_erase_deletes_and_pseudonymises_and_the_shopper_starts_afresh(
        world: World, redis: Any) -> None:
    await world.merchant("boxshop", config=CONFIG)
    u1 = await world.token("u1", merchant_id="boxshop")
    u2 = await world.token("u2", merchant_id="boxshop")
    assert (await world.post(f"{GAME}/boxes/forest/draw", u1, {"count": 10}, "d1")).status == 200
    assert (await world.post(f"{GAME}/boxes/forest/draw", u2, {"count": 1}, "d1")).status == 200
    body, headers = signed_order(world.merchants["boxshop"].signing_secret,
                                 int(world.clock.now()), merchant="boxshop", user="u1",
                                 order_id="o1", status="paid", amount_fen=990)
    assert (await world.client.post("/v1/events/orders", data=body,
                                    headers=headers)).status == 200
    p = persister(world)
    await p.run_once()
    board = world.client.app[KEYS].leaderboard("boxshop", "squirrel", "draws")
    assert await redis.zscore(board, "u1") == 10
    before = await _rows(world, "u1")
    assert before == {"players": 1, "ledger": 1, "responses": 2, "grants": 10, "draws": 10,
                      "order_events": 1}
    others = await _rows(world, "u2")
    stock, totals = await _totals(world)

    stop = asyncio.Event()

    async def persist() -> None:  # the server's persister, every 20 ms
        while not stop.is_set():
            await p.run_once()
            await asyncio.sleep(0.02)

    async def race(i: int) -> int:  # the shopper keeps drawing while erased
        await asyncio.sleep(0.002 * i)
        resp = await world.post(f"{GAME}/boxes/forest/draw", u1, {"count": 1}, f"r{i}")
        if resp.status != 200:
            assert (resp.status, (await resp.json())["error"]["code"]) == (409,
                                                                           "player_erased")
        return resp.status

    runner = asyncio.create_task(persist())
    erased, *raced = await asyncio.gather(_admin(world, "POST", "/players/u1/erase", "e1"),
                                          *(race(i) for i in range(6)))
    stop.set()
    await runner
    assert erased.status == 200, await erased.text()
    out = await erased.json()
    landed = raced.count(200)
    alias = pseudonym(world.client.app[SETTINGS].token_secret, "boxshop", "u1")
    assert out["pseudonym"] == alias and alias.startswith("erased:") and len(alias) == 39
    # Nothing names the shopper; what the merchant keeps is under the pseudonym.
    assert await _rows(world, "u1") == {}
    assert await _rows(world, alias) == {
        "players": 1, "ledger": 1 + landed, "grants": 10 + landed, "draws": 10 + landed,
        "order_events": 1}
    assert out["deleted"] == {"players.state": 1, "responses": 2 + landed,
                              "experiment_exposures": 0, "experiment_days": 0}
    async with world.db.connect() as conn:
        assert (await conn.execute(select(m.players.c.state).where(
            m.players.c.user_id == alias))).scalar_one() == b""
    assert await _rows(world, "u2") == others
    assert await redis.zscore(board, "u1") is None
    left = sorted([k.decode() async for k in redis.scan_iter(match="pb:*u1*")])
    assert left == [f"pb:{{{_tag(world, 'u1')}}}:p:boxshop:squirrel:u1"]  # the tombstone only
    # Totals do not move: stock, coupons, draws, players (racing draws that landed count).
    stock_after, totals_after = await _totals(world)
    assert [s["granted"] for s in stock_after] == [s["granted"] + landed for s in stock]
    assert totals_after == {**totals, "draws": totals["draws"] + landed,
                            "coupons_granted": totals["coupons_granted"] + landed}

    again = await _admin(world, "POST", "/players/u1/erase", "e1")
    assert again.status == 200 and await again.json() == out
    assert again.headers["Idempotent-Replayed"] == "true"
    refused = await world.post(f"{GAME}/boxes/forest/draw", u1, {"count": 1}, "late")
    assert (refused.status, (await refused.json())["error"]["code"]) == (409, "player_erased")

    world.clock.advance(1)
    await asyncio.sleep(0.6)  # the tombstone expires (Redis' clock)
    me = await (await world.get(f"{GAME}/me", u1)).json()
    assert me["version"] == 0 and me["player"]["coupons"] == {"won": 0}
    assert (await world.post(f"{GAME}/boxes/forest/draw", u1, {"count": 1}, "d1")).status == 200


def _tag(world: World, user: str) -> str:
    from gameserver.state.keys import shard_of, spread_tag

    return spread_tag("s", shard_of("boxshop", user, 4))
