"""Crash between the two commits of a vote: a real ``petbox serve`` exits (``os._exit``,
as abrupt as SIGKILL: no cleanup, no flush) right after the poll bucket's gate commit,
or right after the shopper's commit (before the owed record is settled). After a
restart each side converges exactly once:

- shopper A: crashed after the gate; the client retries with its key → the vote is
  counted once, paid once, rewarded once; further retries replay;
- shopper B: crashed after the gate; nobody retries → the owed reconciler applies the
  shopper's commit once; a late retry replays it;
- shopper C: crashed after the shopper's commit → the reconciler settles the record
  (the shopper's commit replays, nothing is applied twice).

Then a graceful stop flushes everything: SQL holds exactly one gate row per vote and
exactly the two ledger rows (price, reward) of each shopper's vote.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.ops.embedded import RedisProcess, free_port
from tests.conftest import BASIC_CONFIG
from tests.reliability.harness import ServerProc, Sessions, base_env, call, provision

pytestmark = pytest.mark.slow

MERCHANT = "voteshop"
GAME = "squirrel"


def poll_config(now: int) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
    config["currencies"]["ticket"] = {"name": "Tickets", "initial": 0, "max": 100}
    config["polls"] = {"best": {
        "title": "Best colour", "options": {"red": {"label": "Red"}, "blue": {"label": "Blue"}},
        "opens_at": now - 3600, "closes_at": now + 86400, "votes_per_day": 5,
        "cost": {"acorn": 5}, "reward": {"ticket": 1}, "buckets": 2}}
    return config


class Shop(Sessions):
    """HTTP calls of the test against whichever server process is up."""

    async def vote(self, user: str, key: str, option: str = "red") -> tuple[int, Any]:
        return await call(self.http, "POST", f"{self.server.base}/v1/games/{GAME}/polls/best/"
                          "vote", await self.tok(user), {"option": option}, key)

    async def wallet(self, user: str) -> dict[str, int]:
        return dict((await self.player(user))["wallet"])

    async def tallies(self) -> dict[str, int]:
        url = f"{self.server.base}/v1/games/{GAME}/polls/best?merchant={MERCHANT}"
        async with self.http.get(url) as resp:
            body = await resp.json()
        return {o["id"]: o["votes"] for o in body["options"]}


async def crash_on(shop: Shop, user: str, key: str, option: str) -> None:
    """Send the vote; the server dies in it (the client sees the connection drop)."""
    with pytest.raises(aiohttp.ClientError):
        await shop.vote(user, key, option)
    assert shop.server.proc is not None
    assert await asyncio.to_thread(shop.server.proc.wait, 30) == 137


async def until(check: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "did not converge"
        await asyncio.sleep(0.2)


PAID = {"acorn": 95, "ticket": 1}
"""A shopper's wallet after exactly one vote (100 acorns, price 5, reward 1 ticket)."""


async def test_crash_between_the_commits_converges_once(aof_redis: RedisProcess, db_url: str,
                                                        tmp_path: Path) -> None:
    base = base_env(tmp_path, aof_redis.url, db_url, PETBOX_OWED_AFTER="1",
                    PETBOX_RECONCILE_INTERVAL="0.3")
    creds = provision(base, tmp_path, MERCHANT, poll_config(int(time.time())))
    port, log = free_port(), tmp_path / "server.log"
    async with aiohttp.ClientSession() as http:
        for user, key, option, point in (("ann", "ka", "red", "after_gate"),
                                         ("ben", "kb", "blue", "after_gate"),
                                         ("cat", "kc", "red", "after_shopper")):
            # No background jobs on the crashing servers: only the request hits the point.
            server = ServerProc({**base, "PETBOX_TEST_FAILPOINT": point,
                                 "PETBOX_RUN_BACKGROUND": "0"}, port, log)
            server.start()
            shop = Shop(http, server, creds)
            await crash_on(shop, user, key, option)

        server = ServerProc(base, port, log)
        server.start()
        shop = Shop(http, server, creds)
        # A: the client retries at once (the reconciler may race it: once either way)
        status, body = await shop.vote("ann", "ka", "red")
        assert status == 200, body
        assert body["wallet"] == PAID and body["votes_today"] == 1

        async def reconciled() -> bool:  # B and C: the reconciler, nobody retries
            return (await shop.wallet("ben") == PAID
                    and await shop.wallet("cat") == PAID)
        await until(reconciled)
        assert await shop.tallies() == {"red": 2, "blue": 1}
        for user, key, option in (("ann", "ka", "red"), ("ben", "kb", "blue"),
                                  ("cat", "kc", "red")):
            status, body = await shop.vote(user, key, option)  # late retries replay
            assert status == 200 and body["wallet"] == PAID, body
            assert await shop.wallet(user) == PAID
        assert await shop.tallies() == {"red": 2, "blue": 1}
        assert server.terminate() == 0  # graceful: the final flush

    db = Database(db_url)
    try:
        async with db.connect() as conn:
            gates = (await conn.execute(
                select(m.aggregate_ledger.c.user_id, func.count())
                .group_by(m.aggregate_ledger.c.user_id))).all()
            ledger = (await conn.execute(
                select(m.ledger.c.user_id, m.ledger.c.name, m.ledger.c.delta)
                .where(m.ledger.c.reason == "vote:best")
                .order_by(m.ledger.c.user_id, m.ledger.c.name))).all()
            states = (await conn.execute(select(func.sum(m.aggregates.c.version)))).scalar()
    finally:
        await db.close()
    assert sorted(tuple(g) for g in gates) == [("ann", 1), ("ben", 1), ("cat", 1)]
    assert [tuple(r) for r in ledger] == [
        (u, name, delta) for u in ("ann", "ben", "cat")
        for name, delta in (("acorn", -5), ("ticket", 1))]
    assert states == 3  # three commits over the poll's buckets, each flushed
