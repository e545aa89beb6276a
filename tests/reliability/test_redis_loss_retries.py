"""Redis restarted empty right after a burst (issue: reliability gaps D2 and D3).

Forty shoppers play at once, one request at a time each, so a shopper's n-th
acknowledged action is its version n. Redis is killed the moment the last reply
arrived, its AOF deleted, and it comes back empty. Then:

- **D2**: no player's SQL state is ahead of its ledger: every acknowledged draw of a
  version the SQL state includes has its ledger rows in SQL;
- **D3**: every acknowledged key is retried with its request: a key whose action the
  SQL state includes is replayed with exactly its first response, never applied again;
  a key whose action Redis lost (the flush window) is applied once, and each
  shopper's version afterwards says so (no action twice); a key replayed from SQL has
  its effect in the SQL state (its state travelled with its stored response).

The second test holds the gap that burst can only fall into by chance: commits whose
ledger (and stored responses) reached SQL while their state was held back behind a
later commit, then Redis restarted empty. A replayed key's effect is in the state read
back, and a flash-sale hold confirmed in SQL's grants is too (the shopper cannot claim
past ``per_shopper``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import time
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select

from gameserver.db import models as m
from gameserver.ops.embedded import RedisProcess
from gameserver.persister import PassReport
from tests.conftest import app_persister, retry_503
from tests.reliability.harness import MERCHANT, REL_CONFIG, write_figures
from tests.reliability.test_redis_faults import GAME, restart_empty

SHOPPERS = 40
ROUNDS = 8


def _request(version: int) -> tuple[str, dict[str, Any]]:
    """The action a shopper's ``version``-th request makes: adopt, then feed and draw."""
    if version == 1:
        return f"{GAME}/pet", {"species": "squirrel", "name": "Nut"}
    if version % 2 == 0:
        return f"{GAME}/boxes/forest/draw", {"count": 1}
    return f"{GAME}/pet/feed", {"food": "snack"}


async def _shopper(world: Any, user: str, tok: str,
                   acked: dict[str, list[tuple[str, Any]]]) -> None:
    for version in range(1, ROUNDS + 1):
        path, body = _request(version)
        resp = await world.post_retrying(path, tok, body, f"{user}-{version}")
        assert resp.status in (200, 201), await resp.text()
        acked[user].append((f"{user}-{version}", await resp.json()))


async def _version(world: Any, tok: str) -> int:
    """The shopper's version as the server answers it now (a 503 retried)."""
    resp = await retry_503(lambda: world.get(f"{GAME}/me", tok))
    assert resp.status == 200, await resp.text()
    return int((await resp.json())["version"])


async def _sql_state(world: Any) -> tuple[dict[str, int], dict[str, set[int]]]:
    """SQL's player versions, and the versions of each player's ledger rows."""
    p, ledger = m.players, m.ledger
    async with world.db.engine.connect() as conn:
        versions = {u: int(v) for u, v in await conn.execute(
            select(p.c.user_id, p.c.version).where(p.c.merchant_id == MERCHANT))}
        rows = await conn.execute(select(ledger.c.user_id, ledger.c.player_version)
                                  .where(ledger.c.merchant_id == MERCHANT))
        ledgered: dict[str, set[int]] = defaultdict(set)
        for user, version in rows:
            ledgered[user].add(int(version))
    return versions, ledgered


async def test_retries_after_redis_lost_its_data(aof_redis: RedisProcess,
                                                 make_world: Any) -> None:
    # Durability, not latency: SQL calls may wait as background jobs do (10 s).
    world = await make_world(aof_redis.url, flush_interval=0.05, sql_timeout=10.0)
    tokens = {f"b{i}": await world.token(f"b{i}", merchant_id=MERCHANT)
              for i in range(SHOPPERS)}
    acked: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    await asyncio.gather(*[_shopper(world, u, t, acked) for u, t in tokens.items()])

    aof_redis.kill()  # the moment the burst's last reply arrived
    await restart_empty(aof_redis, world)

    versions, ledgered = await _sql_state(world)
    # D2: every draw (even versions) the SQL state includes has its ledger rows.
    ahead = {u: v for u, v in versions.items()
             if any(n not in ledgered[u] for n in range(2, v + 1, 2))}
    assert ahead == {}, f"SQL states ahead of their ledger: {ahead}"

    outcomes: Counter[str] = Counter()
    for user, tok in tokens.items():
        sql_version = versions.get(user, 0)
        reapplied = 0
        for version, (key, first) in enumerate(acked[user], start=1):
            path, body = _request(version)
            before = await _version(world, tok)
            resp = await world.post(path, tok, body, key)
            unknown = resp.status == 503  # the outcome is open: retry the key, as clients do
            if unknown:
                resp = await world.post_retrying(path, tok, body, key)
            again = await resp.json()
            replayed = resp.headers.get("Idempotent-Replayed") == "true"
            grew = await _version(world, tok) - before
            assert grew in (0, 1), (user, key, grew)  # never applied twice
            if unknown and grew == 1:
                # The 503'd attempt (or its retry) applied the lost action, once; a
                # replay then answers that application, not the first response.
                assert resp.status in (200, 201), (user, key, resp.status)
                reapplied += 1
                outcomes["reapplied_after_503"] += 1
                continue
            assert not replayed or (resp.status in (200, 201) and again == first)
            if version <= sql_version:
                # D3: SQL holds this action: its retry is its first response again.
                assert replayed, (user, key, resp.status, json.dumps(again)[:300])
                outcomes["replayed_in_sql_state"] += 1
            elif replayed:
                outcomes["replayed_lost_from_state"] += 1
            elif resp.status in (200, 201):
                reapplied += 1
                outcomes["reapplied"] += 1
            else:  # refused, e.g. a feed whose adoption was lost too: changes nothing
                outcomes[f"refused_{resp.status}"] += 1
            assert grew == (1 if resp.status in (200, 201) and not replayed else 0), \
                (user, key, resp.status, replayed, grew)
        me = await (await world.get(f"{GAME}/me", tok)).json()
        # No action twice: the version grew by the retries that applied, and only by them.
        assert me["version"] == sql_version + reapplied, (user, sql_version, reapplied, me)

    # The same key with another request is still told apart after the loss.
    mismatch = await world.post(f"{GAME}/pet/feed", tokens["b0"], {"food": "snack"}, "b0-2")
    assert mismatch.status == 422
    assert (await mismatch.json())["error"]["code"] == "idempotency_mismatch"

    acks = sum(len(v) for v in acked.values())
    assert sum(outcomes.values()) == acks
    assert outcomes["replayed_lost_from_state"] == 0, outcomes
    write_figures("redis_lost_after_burst", {
        "shoppers": SHOPPERS, "acked": acks,
        "players_in_sql": len(versions), "states_ahead_of_ledger": len(ahead),
        "acks_lost_from_state": acks - outcomes["replayed_in_sql_state"],
        **dict(outcomes)})


SALE_SHOP = "relsale"
"""A merchant whose game is the blind-box game with a live flash sale (1 per shopper)."""


def sale_config() -> dict[str, Any]:
    config = copy.deepcopy(REL_CONFIG)
    config["flashsales"] = {"midnight": {
        "title": "Midnight nuts", "sku": "NUTS-11", "price_fen": 990, "list_price_fen": 2990,
        "starts_at": int(time.time()) - 60, "stock": 5, "per_shopper": 1,
        "pay_seconds": 600}}
    return config


async def _responses(world: Any) -> set[str]:
    r = m.responses
    async with world.db.engine.connect() as conn:
        return {key for (key,) in await conn.execute(select(r.c.idem_key))}


async def test_a_drained_commit_keeps_its_effect_after_redis_lost_its_data(
        aof_redis: RedisProcess, make_world: Any) -> None:
    """Acknowledged commits whose ledger and stored responses reached SQL while their
    state was held back (a later commit of the same shopper not drained yet), then
    Redis restarted empty: a retry of a drained key replays, and the state read back
    has its effect; a flash-sale shopper's hold is in the state read back, so they
    cannot claim past ``per_shopper``. (Before the ledger entries carried their
    states, the replay came with a state that lacked the effect, and the shopper held
    two units.)"""
    world = await make_world(aof_redis.url, run_persister=False)
    await world.merchant(SALE_SHOP, game="squirrel", config=sale_config())
    persister = app_persister(world.client.app)  # its passes run by hand, stage by stage
    await persister.run_once()  # epochs and consumer groups
    pet = await world.token("pet", merchant_id=MERCHANT)
    buyer = await world.token("buyer", merchant_id=SALE_SHOP)
    feed, claim = f"{GAME}/pet/feed", f"{GAME}/flashsales/midnight/claim"
    adopt = (f"{GAME}/pet", {"species": "squirrel", "name": "Nut"})

    first: dict[str, Any] = {}
    for tok, key, (path, body) in [(pet, "pet-1", adopt),
                                   (pet, "pet-2", (feed, {"food": "snack"})),
                                   (buyer, "buyer-1", (claim, {}))]:
        resp = await world.post_retrying(path, tok, body, key)
        assert resp.status in (200, 201), await resp.text()
        first[key] = await resp.json()
    report = PassReport()
    await persister.drain_ledger(report)  # their ledger and stored responses: in SQL
    assert report.ok and report.ledger_entries == 3
    # One more commit each: its entry is not drained, so the flush holds the state back.
    for tok, key, (path, body) in [(pet, "pet-3", (feed, {"food": "snack"})),
                                   (buyer, "buyer-2", adopt)]:
        resp = await world.post_retrying(path, tok, body, key)
        assert resp.status in (200, 201), await resp.text()
    await persister.flush_dirty(report)
    assert report.ok and await _responses(world) == {"pet-1", "pet-2", "buyer-1"}

    aof_redis.kill()
    shutil.rmtree(aof_redis.data_dir)  # no AOF: Redis comes back empty
    aof_redis.start()
    for _ in range(20):  # the first pass may meet a pooled connection to the old Redis
        if (await persister.run_once()).lost_shards:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the persister never saw the data loss")

    # (a) The drained feed replays, and the state read back has it: adopted and fed.
    again = await world.post_retrying(feed, pet, {"food": "snack"}, "pet-2")
    assert (again.status, again.headers.get("Idempotent-Replayed")) == (200, "true")
    assert await again.json() == first["pet-2"]
    me = await (await world.get(f"{GAME}/me", pet)).json()
    assert me["version"] == 2, me
    assert me["player"]["pet"]["xp"] == first["pet-2"]["player"]["pet"]["xp"]

    # (b) The hold SQL's grants confirm is in the state read back: no second unit.
    held = first["buyer-1"]["hold"]
    me = await (await world.get(f"{GAME}/me", buyer)).json()
    assert [h["hold"] for h in me["player"]["sale_holds"]] == [held], me
    replay = await world.post_retrying(claim, buyer, {}, "buyer-1")
    assert (replay.status, await replay.json()) == (200, first["buyer-1"])
    more = await world.post_retrying(claim, buyer, {}, "buyer-3")
    assert more.status == 409, await more.text()
    assert (await more.json())["error"]["code"] == "purchase_limit_reached"
    g = m.grants
    async with world.db.engine.connect() as conn:
        units = (await conn.execute(select(g.c.user_id, g.c.status).where(
            g.c.merchant_id == SALE_SHOP))).all()
    assert [tuple(u) for u in units] == [("buyer", "confirmed")]
