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
from unittest.mock import ANY

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from gameserver.appkeys import KEYS, SETTINGS, SHADOW_DB
from gameserver.cli.main import main
from gameserver.db import models as m
from gameserver.db.erasure import pseudonym
from gameserver.persister import PassReport
from gameserver.state.keys import PlayerRef, shard_of
from tests.conftest import World, app_persister
from tests.integration.loopgame import signed_order
from tests.integration.test_analytics import grant_row, insert_rows
from tests.integration.test_boxes_http import persister
from tests.integration.test_coupon_wallet import WALLET_CONFIG
from tests.integration.test_flashsale_http import CONFIG as SALE_CONFIG
from tests.integration.test_groupbuy_http import GB_CONFIG
from tests.integration.test_poll_http import POLL_CONFIG
from tests.integration.test_shadow import SHADOW_HEADERS, shadow_token

GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"

CONFIG: dict[str, Any] = copy.deepcopy(WALLET_CONFIG)
CONFIG["leaderboards"] = {"draws": {"name": "Most boxes", "metric": "draws", "size": 10}}
"""Every draw wins a limited ¥5 coupon; a board of draws."""

HOLD_CONFIG: dict[str, Any] = copy.deepcopy(GB_CONFIG)
HOLD_CONFIG["presales"] = {"early": SALE_CONFIG["presales"]["early"]}
HOLD_CONFIG["currencies"]["ticket"] = POLL_CONFIG["currencies"]["ticket"]
HOLD_CONFIG["polls"] = {"best": POLL_CONFIG["polls"]["best"]}
"""Group buys (``tea``: 3 seats, an hour; ``duo``: 2), a presale (``early``) reserving
now and a poll (``best``)."""

USER_TABLES = (m.players, m.ledger, m.responses, m.grants, m.draws, m.revealed_seeds,
               m.experiment_exposures, m.experiment_days, m.order_events, m.order_refunds,
               m.aggregate_ledger)


@pytest.fixture
async def client(request: pytest.FixtureRequest, aiohttp_client: Any, settings: Any,
                 clock: Any) -> Any:
    """The app; a test's indirect parameter overrides more settings."""
    from gameserver.app import create_app

    more = getattr(request, "param", {})
    return await aiohttp_client(create_app(settings.with_overrides(
        **{"erase_tombstone": 0.5, "erase_wait": 10.0, **more}), clock=clock))


async def _rows(world: World, user: str, db: Any = None) -> dict[str, int]:
    """Rows naming ``user``, by table (tables with none left out; grants: those not void,
    as the holds of actions refused by the erasure end void); ``db``: another database
    (the shadow one) than the world's."""
    out = {}
    async with (db or world.db).connect() as conn:
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
    # (Draws are dated by their ledger entry's id, Redis' clock, which the test's clock
    # does not share: the report's day counts them or not, before and after alike.)
    assert totals_after["draws"] - totals["draws"] in {0, landed}
    assert totals_after == {**totals, "draws": totals_after["draws"],
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
    # Erased again (a new key) after coming back, having used a key of the first life
    # again (d1): both lives' rows under the pseudonym, one players row with the first
    # life's times (it was a 500: the grants' keys collided).
    await p.run_once()
    first = await _times(world, alias)
    second = await _admin(world, "POST", "/players/u1/erase", "e2")
    assert second.status == 200, await second.text()
    assert (await second.json())["pseudonymised"]["grants"] == 1
    assert await _rows(world, "u1") == {}
    assert await _rows(world, alias) == {
        "players": 1, "ledger": 2 + landed, "grants": 11 + landed, "draws": 11 + landed,
        "order_events": 1}
    assert await _times(world, alias) == (first[0], first[1] + 1, first[2])


async def _times(world: World, user: str) -> tuple[int, int, int | None]:
    p = m.players
    async with world.db.connect() as conn:
        row = (await conn.execute(select(p.c.created_at, p.c.last_seen, p.c.first_played_at)
                                  .where(p.c.user_id == user))).one()
    return int(row[0]), int(row[1]), row[2]


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
                          "order_events": 0, "order_refunds": 0, "aggregate_ledger": 0,
                          "aggregates": 0},
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


# Waits of 0.3 s; no cached copies (as with several workers): every action loads the
# player, so a block is seen at once (a host's cached copy meets only the tombstone).
@pytest.mark.parametrize("client", [{"erase_wait": 0.3, "state_cache": 0}], indirect=True)
async def test_refused_erasures_change_nothing_and_the_shopper_plays_on(
        world: World, redis: Any) -> None:
    await world.merchant("holdshop", config=HOLD_CONFIG)
    now = int(world.clock.now())
    users = ("ann", "bob", "cat", "dan")
    tok = {u: world.mint(u, "holdshop") for u in users}
    for u in users:
        assert (await world.post(f"{GAME}/pet", tok[u], {"species": "squirrel",
                                                          "name": "P"}, "a")).status == 201
    group = await (await world.post(f"{GAME}/groupbuys/tea", tok["ann"], {}, "g")).json()
    hold = await (await world.post(f"{GAME}/presales/early", tok["bob"], {}, "r")).json()
    # cat's grant in flight whose host died (the reconciler settles it later)
    await insert_rows(world.db, m.grants, [{**grant_row("cat", now, status="pending"),
                                            "merchant_id": "holdshop"}])
    await persister(world).run_once()
    assert (await world.post(f"{GAME}/pet/feed", tok["dan"], {"food": "snack"},
                             "f0")).status == 200  # dan's last change not in SQL yet
    keys = world.client.app[KEYS]

    def hash_key(user: str) -> str:
        return keys.player(PlayerRef("holdshop", "squirrel", user, shard_of(
            "holdshop", user, 4)))

    before = {u: (await _rows(world, u), await redis.hgetall(hash_key(u))) for u in users}
    me = {u: await (await world.get(f"{GAME}/me", tok[u])).json() for u in users}
    for user, code, holding in (
            ("ann", "erase_unsettled", [f"groupbuy:{group['group']}"]),
            ("bob", "erase_unsettled", [f"sale_hold:{hold['hold']}"]),
            ("cat", "erase_unsettled", ["pending_grants:1"]),  # after the block: undone
            ("dan", "erase_pending", None)):
        resp = await _admin(world, "POST", f"/players/{user}/erase", "e", merchant="holdshop")
        error = (await resp.json())["error"]
        assert (resp.status, error["code"], error["details"].get("holding")) == (
            409, code, holding), user
        assert await _rows(world, user) == before[user][0], user
        if user != "cat":  # cat's player was read back from SQL: the same state
            assert await redis.hgetall(hash_key(user)) == {
                **before[user][1], **({b"z": ANY} if user == "dan" else {})}, user
    assert {u: await (await world.get(f"{GAME}/me", tok[u])).json() for u in users} == me
    for u in users:  # they play on; dan once his block lapses, 2 s after the wait
        fed = await world.post(f"{GAME}/pet/feed", tok[u], {"food": "snack"}, "f1")
        if u == "dan":
            assert (fed.status, (await fed.json())["error"]["code"]) == (409, "player_erased")
            world.clock.advance(3)
            fed = await world.post(f"{GAME}/pet/feed", tok[u], {"food": "snack"}, "f1")
        assert fed.status == 200, (u, await fed.text())


async def test_erasing_a_real_shopper_leaves_shadow_data_and_twice_finds_nothing(
        world: World, redis: Any) -> None:
    from gameserver.ops.provision import create_merchant, publish_config

    app, now = world.client.app, int(world.clock.now())
    world.merchants["lt"] = await create_merchant(world.db, "lt", now, load_test=True)
    await publish_config(world.db, "lt", "squirrel", HOLD_CONFIG, now)
    real = world.mint("u1", "lt")
    bot = (await (await shadow_token(world, "u1")).json())["token"]
    shadow = {"Authorization": f"Bearer {bot}", **SHADOW_HEADERS}
    for headers in ({"Authorization": f"Bearer {real}"}, shadow):
        for key, path, body in (("a", "pet", {"species": "squirrel", "name": "P"}),
                                ("f", "pet/feed", {"food": "snack"})):
            resp = await world.client.post(f"{GAME}/{path}", json=body,
                                            headers={**headers, "Idempotency-Key": key})
            assert resp.status in (200, 201), await resp.text()
    await persister(world).run_once()
    await app_persister(app, shadow=True).run_once()

    async def shadow_state() -> Any:
        found = sorted([k async for k in redis.scan_iter(match="pbs:*u1*")])
        return (await _rows(world, "u1", app[SHADOW_DB]), found,
                [await redis.hgetall(k) if await redis.type(k) == b"hash" else None
                 for k in found])

    kept = await shadow_state()
    assert kept[0] == {"players": 1, "ledger": 1, "responses": 2} and len(kept[1]) == 3
    erased = await _admin(world, "POST", "/players/u1/erase", "e1", merchant="lt")
    assert erased.status == 200, await erased.text()
    alias = (await erased.json())["pseudonym"]
    assert await _rows(world, "u1") == {}
    assert await shadow_state() == kept
    again = await _admin(world, "POST", "/players/u1/erase", "e2", merchant="lt")
    assert again.status == 200 and (await again.json()) == {
        "pseudonym": alias, "deleted": dict.fromkeys(
            ("players.state", "responses", "experiment_exposures", "experiment_days"), 0),
        "pseudonymised": dict.fromkeys(("ledger", "grants", "draws", "revealed_seeds",
                                        "order_events", "order_refunds",
                                        "aggregate_ledger", "aggregates"), 0),
        "redis_keys_deleted": 0, "refused_until": (await again.json())["refused_until"]}
    assert await _rows(world, alias) == {"players": 1, "ledger": 1}
    resp = await world.client.post(f"{GAME}/pet/feed", json={"food": "snack"},
                                   headers={**shadow, "Idempotency-Key": "f2"})
    assert resp.status == 200, await resp.text()  # the shadow shopper plays on


async def test_shared_plays_are_waited_for_and_shared_states_renamed(world: World) -> None:
    await world.merchant("holdshop", config=HOLD_CONFIG)
    ann, bob = world.mint("ann", "holdshop"), world.mint("bob", "holdshop")
    voted = await world.post(f"{GAME}/polls/best/vote", ann, {"option": "red"}, "v1")
    assert voted.status == 200, await voted.text()
    group = await (await world.post(f"{GAME}/groupbuys/duo", ann, {}, "g1")).json()
    joined = await world.post(f"{GAME}/groupbuys/duo/join", bob, {"code": group["code"]}, "j1")
    assert joined.status == 200, await joined.text()  # complete: closed, names ann
    p = persister(world)
    # The players' half of a pass only: the shared plays' stage (another host's, say)
    # lags, and their records are in Redis only.
    report = PassReport()
    await p.drain_ledger(report)
    await p.flush_dirty(report)
    erasing = asyncio.create_task(_admin(world, "POST", "/players/ann/erase", "e1",
                                         merchant="holdshop"))
    await asyncio.sleep(0.1)
    await p.run_once()
    erased = await erasing
    assert erased.status == 200, await erased.text()
    await p.run_once()
    # (Erased at once, without the wait, the records came to SQL as ann's after it.)
    assert await _rows(world, "ann") == {}
    done = await erased.json()
    kept = done["pseudonymised"]
    assert (kept["aggregate_ledger"], kept["aggregates"]) == (2, 2)  # the poll, the group
    named = await _named(world, {"ann", "bob", done["pseudonym"]})
    assert named == {("groupbuy", "bob"), ("groupbuy", "pseudonym"), ("poll", "pseudonym")}
    bobs = await (await world.get(f"{GAME}/me", bob)).json()
    assert bobs["player"]["groupbuys"][0]["state"] == "complete"


async def _named(world: World, users: set[str]) -> set[tuple[str, str]]:
    """(kind, who) for every aggregate state in SQL naming one of ``users`` (the last one
    shown as "pseudonym"), anywhere in it (a member, a key, a list)."""
    import msgpack

    alias = max(users, key=len)
    found: set[tuple[str, str]] = set()

    def walk(kind: str, value: Any) -> None:
        if isinstance(value, str) and value in users:
            found.add((kind, "pseudonym" if value == alias else value))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(kind, k)
                walk(kind, v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(kind, v)

    async with world.db.connect() as conn:
        for kind, state in await conn.execute(select(m.aggregates.c.kind, m.aggregates.c.state)):
            walk(kind, msgpack.unpackb(state, raw=False, strict_map_key=False))
    return found
