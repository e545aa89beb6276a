"""Redis restarted empty right after a burst (issue: reliability gaps D2 and D3).

Forty shoppers play at once, one request at a time each, so a shopper's n-th
acknowledged action is its version n. Redis is killed the moment the last reply
arrived, its AOF deleted, and it comes back empty. Then:

- **D2**: no player's SQL state is ahead of its ledger: every acknowledged draw of a
  version the SQL state includes has its ledger rows in SQL;
- **D3**: every acknowledged key is retried with its request: a key whose action the
  SQL state includes is replayed with exactly its first response, never applied again;
  a key whose action Redis lost (the flush window) is replayed from SQL or applied
  once, and each shopper's version afterwards says which (no action twice).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select

from gameserver.db import models as m
from gameserver.ops.embedded import RedisProcess
from tests.conftest import retry_503
from tests.reliability.harness import MERCHANT, write_figures
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
    write_figures("redis_lost_after_burst", {
        "shoppers": SHOPPERS, "acked": acks,
        "players_in_sql": len(versions), "states_ahead_of_ledger": len(ahead),
        "acks_lost_from_state": acks - outcomes["replayed_in_sql_state"],
        **dict(outcomes)})
