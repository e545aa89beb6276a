"""Crash between the two commits of the join that fills a group: a real ``petbox serve``
exits (``os._exit``, as abrupt as SIGKILL) right after the group's gate commit, before
the joiner's commit and before any member's reward. After a restart, with nobody
retrying, the owed reconciler converges every member exactly once (the joiner pays and
is rewarded, the other members are rewarded); a late retry of the join replays. A
graceful stop then flushes: SQL holds exactly one ledger row per payment and reward.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.ops.embedded import RedisProcess, free_port
from tests.conftest import BASIC_CONFIG
from tests.reliability.harness import ServerProc, base_env, call, provision, token

pytestmark = pytest.mark.slow

MERCHANT, GAME = "gbshop", "squirrel"
CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
CONFIG["currencies"]["gem"] = {"name": "Gems", "initial": 0, "max": 100}
CONFIG["groupbuys"] = {"tea": {"title": "Tea for 3", "size": 3, "duration_s": 3600,
                               "cost": {"acorn": 10},
                               "reward": {"currency": {"gem": 5}, "items": {}, "coupon": ""}}}
DONE = {"acorn": 90, "gem": 5}
"""A member's wallet after exactly one completed group (paid 10, rewarded 5 gems)."""


# SQLite only: the protocol under test is Redis' (gate, owed records, reconciler); the
# write-behind of the same commits is checked on PostgreSQL by the HTTP tests, and the
# suite's budget does not pay for a second 25 s run.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_crash_after_the_filling_gate_converges_every_member_once(
        aof_redis: RedisProcess, db_url: str, tmp_path: Path) -> None:
    started: list[ServerProc] = []
    try:
        await scenario(aof_redis, db_url, tmp_path, started)
    finally:  # a failed run leaves no server behind
        for proc in (s.proc for s in started if s.proc is not None):
            if proc.poll() is None:
                proc.kill()


async def scenario(aof_redis: RedisProcess, db_url: str, tmp_path: Path,
                   started: list[ServerProc]) -> None:
    base = base_env(tmp_path, aof_redis.url, db_url, PETBOX_OWED_AFTER="1",
                    PETBOX_RECONCILE_INTERVAL="0.3")
    creds = provision(base, tmp_path, MERCHANT, CONFIG)
    port, log = free_port(), tmp_path / "server.log"
    url = f"/v1/games/{GAME}/groupbuys/tea"
    # no pooled connections: a connection to a server that was stopped is never reused
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        server = ServerProc({**base, "PETBOX_RUN_BACKGROUND": "0"}, port, log)
        server.start()
        started.append(server)
        toks = {u: await token(http, server.base, creds, u) for u in ("ann", "bob", "cat")}

        async def post(user: str, path: str, body: Any, key: str) -> tuple[int, Any]:
            return await call(http, "POST", f"{server.base}{path}", toks[user], body, key)

        status, opened = await post("ann", url, {}, "o1")
        assert status == 200 and opened["wallet"] == {"acorn": 90, "gem": 0}, opened
        code = opened["code"]
        status, body = await post("bob", f"{url}/join", {"code": code}, "j1")
        assert status == 200 and body["seats_left"] == 1, body
        assert server.terminate() == 0

        server = ServerProc({**base, "PETBOX_TEST_FAILPOINT": "after_gate",
                             "PETBOX_RUN_BACKGROUND": "0"}, port, log)
        server.start()
        started.append(server)
        with pytest.raises(aiohttp.ClientError):  # cat's join fills the group, then dies
            await post("cat", f"{url}/join", {"code": code}, "j2")
        assert await asyncio.to_thread(server.proc.wait, 30) == 137  # type: ignore[union-attr]

        server = ServerProc(base, port, log)  # with the owed reconciler; nobody retries
        server.start()
        started.append(server)

        async def wallets() -> dict[str, dict[str, int]]:
            out = {}
            for user in ("ann", "bob", "cat"):
                status, me = await call(http, "GET", f"{server.base}/v1/games/{GAME}/me",
                                        toks[user])
                assert status == 200, me
                out[user] = dict(me["player"]["wallet"])
            return out

        deadline = time.monotonic() + 20
        while await wallets() != {"ann": DONE, "bob": DONE, "cat": DONE}:
            assert time.monotonic() < deadline, await wallets()
            await asyncio.sleep(0.2)
        status, late = await post("cat", f"{url}/join", {"code": code}, "j2")  # replays
        assert status == 200 and late["wallet"] == DONE and late["state"] == "complete", late
        assert await wallets() == {"ann": DONE, "bob": DONE, "cat": DONE}
        assert server.terminate() == 0  # graceful: the final flush

    await check_ledger(db_url, code)


async def check_ledger(db_url: str, code: str) -> None:
    """Exactly one payment and one reward row per member in SQL."""
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            rows = (await conn.execute(
                select(m.ledger.c.user_id, m.ledger.c.name, m.ledger.c.delta)
                .where(m.ledger.c.reason == f"groupbuy:{code}")
                .order_by(m.ledger.c.user_id, m.ledger.c.name))).all()
    finally:
        await db.close()
    assert [tuple(r) for r in rows] == [(u, name, delta) for u in ("ann", "bob", "cat")
                                        for name, delta in (("acorn", -10), ("gem", 5))]
