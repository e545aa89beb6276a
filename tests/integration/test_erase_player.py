"""``erasePlayer`` over HTTP against real Redis and SQL (SQLite and PostgreSQL): what goes,
what stays under a pseudonym, that totals do not move, that a retry replays, that an
action racing the erasure lands before it or is refused, and that a shopper who comes
back starts afresh; the refusals (nothing changed, the shopper plays on); shadow data
apart; ``petbox erase-player`` on the same Redis and SQL."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from gameserver.appkeys import KEYS, SETTINGS
from gameserver.cli.main import main
from gameserver.db import models as m
from gameserver.db.erasure import pseudonym
from tests.conftest import World
from tests.integration.loopgame import signed_order
from tests.integration.test_boxes_http import persister
from tests.integration.test_coupon_wallet import WALLET_CONFIG
from tests.integration.test_flashsale_http import CONFIG as SALE_CONFIG
from tests.integration.test_groupbuy_http import GB_CONFIG

GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"

CONFIG: dict[str, Any] = copy.deepcopy(WALLET_CONFIG)
CONFIG["leaderboards"] = {"draws": {"name": "Most boxes", "metric": "draws", "size": 10}}
"""Every draw wins a limited ¥5 coupon; a board of draws."""

HOLD_CONFIG: dict[str, Any] = copy.deepcopy(GB_CONFIG)
HOLD_CONFIG["presales"] = {"early": SALE_CONFIG["presales"]["early"]}
"""Group buys (``tea``: 3 seats, an hour) and a presale (``early``) reserving now."""

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


async def _admin(world: World, method: str, path: str, key: str | None = None,
                 merchant: str = "boxshop", shadow: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {world.merchants[merchant].api_key}"}
    if shadow:
        headers["X-Petbox-Shadow"] = "1"
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


async def test_erase_player_command(world: World, redis_url: str, db_url: str,
                                    tmp_path: Path) -> None:
    await world.merchant("holdshop", config=HOLD_CONFIG)
    ann, bob = world.mint("ann", "holdshop"), world.mint("bob", "holdshop")
    adopted = await world.post(f"{GAME}/pet", ann, {"species": "squirrel", "name": "A"}, "a1")
    assert adopted.status == 201
    assert (await world.post(f"{GAME}/pet/feed", ann, {"food": "snack"}, "f1")).status == 200
    assert (await world.post(f"{GAME}/groupbuys/tea", bob, {}, "g1")).status == 200
    await persister(world).run_once()
    settings = world.client.app[SETTINGS]
    env = {"PETBOX_DATABASE_URL": db_url, "PETBOX_REDIS_URL": redis_url,
           "PETBOX_TOKEN_SECRET": settings.token_secret, "PETBOX_SHARDS": "4",
           "PETBOX_DATA_DIR": str(tmp_path / "data"), "PETBOX_ERASE_WAIT": "2"}

    async def petbox(*args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, main, ["erase-player", *args],
                                       env=env)

    def who(user: str, *more: str) -> list[str]:
        return ["--merchant", "holdshop", "--game", "squirrel", "--user", user, *more]

    nogame = await petbox("--merchant", "holdshop", "--game", "nope", "--user", "ann")
    assert (nogame.exit_code, nogame.output) == (1, "Error: game not found\n  game: nope\n")
    held = await petbox(*who("bob"))
    assert held.exit_code == 3 and held.output.startswith("Error: erase_unsettled: ")
    assert "holding: groupbuy:" in held.output
    done = await petbox(*who("ann", "--key", "k1", "--json"))
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    alias = pseudonym(settings.token_secret, "holdshop", "ann")
    assert out == {"pseudonym": alias, "deleted": {
        "players.state": 1, "responses": 2, "experiment_exposures": 0, "experiment_days": 0},
        "pseudonymised": {"ledger": 1, "grants": 0, "draws": 0, "revealed_seeds": 0,
                          "order_events": 0, "order_refunds": 0, "aggregate_ledger": 0},
        "redis_keys_deleted": 2, "refused_until": out["refused_until"]}
    assert await _rows(world, "ann") == {}
    again = await petbox(*who("ann", "--key", "k1"))
    assert again.exit_code == 0, again.output
    lines = [" ".join(line.strip("│ ").split()) for line in again.output.splitlines()]
    assert "holdshop/squirrel: ann erased" in lines and "ledger │ pseudonymised │ 1" in lines
    assert f"kept rows now name {alias}" in lines
    assert lines[-1] == "(replayed: key k1 erased this shopper before; nothing done now)"
    # The route answers the same key with the command's result.
    replay = await _admin(world, "POST", "/players/ann/erase", "k1", merchant="holdshop")
    assert replay.headers["Idempotent-Replayed"] == "true" and await replay.json() == out
    refused = await world.post(f"{GAME}/pet/feed", ann, {"food": "snack"}, "f2")
    assert (refused.status, (await refused.json())["error"]["code"]) == (409, "player_erased")
