"""Fault 9: SQL hung (PostgreSQL behind a TCP proxy that keeps every connection open,
accepts new ones and never answers: a stalled server or network, not a refusal).

Pass criteria: every shopper and merchant route answers within ``BOUND_S`` (the SQL
timeout, 1.5 s by default, plus a margin; a merchant report within ``REPORT_BOUND_S``,
its own 5 s bound plus the margin): Redis-only play ``200``; shopper login
``201`` from the cached signing secret; whatever needs SQL ``503`` with ``Retry-After``
(a drained key's replay: ``response_unavailable``); the Redis gate of the limited
coupon is unchanged (a refused grant gives its units back); after the hang, SQL and
the gate agree and play needs SQL again as before.

SQLite has no server to hang (a locked file makes a call wait its busy timeout, which
the same bound cuts): this test runs on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.engine import make_url

from gameserver.db import models as m
from gameserver.http.auth import session_signature
from gameserver.ops.embedded import RedisProcess
from gameserver.state.keys import Keys, PlayerRef, shard_of
from gameserver.state.stockgate import StockGate
from tests.reliability.harness import MERCHANT, REL_CONFIG, write_figures
from tests.reliability.tcpproxy import TcpProxy
from tests.reliability.test_sql_down import _backlog

pytestmark = pytest.mark.slow

GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"
BOUND_S = 2.0
"""Longest any route may take while SQL hangs (PETBOX_SQL_TIMEOUT is 1.5 s)."""
REPORT_BOUND_S = 5.5
"""Longest a merchant report may take (PETBOX_SQL_REPORT_TIMEOUT is 5 s)."""
REPORTS = {"getAnalytics"}
CLIENT_LIMIT_S = 20.0
"""The test's own client timeout: a route still silent after it counts as hung."""


class Timed:
    """Each request's status, error code, Retry-After and seconds, by route name."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.seen: dict[str, dict[str, Any]] = {}

    async def __call__(self, name: str, method: str, path: str, *, token: str | None = None,
                      body: Any = None, key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.monotonic()
        try:
            async with asyncio.timeout(CLIENT_LIMIT_S):
                resp = await self.world.client.request(method, path, json=body,
                                                       headers=headers)
                text = await resp.text()
            code = None
            if resp.status >= 400 and text.startswith("{"):
                code = (await resp.json())["error"]["code"]
            out = {"status": resp.status, "code": code,
                   "retry_after": resp.headers.get("Retry-After")}
        except TimeoutError:
            out = {"status": "hung", "code": None, "retry_after": None}
        out["s"] = round(time.monotonic() - started, 2)
        self.seen[name] = out
        return out


async def _drained(world: Any, redis_url: str, user: str, key: str) -> None:
    """Wait until the persister moved the response of ``key`` to SQL (its ledger entry
    is gone from Redis: a replay must read SQL)."""
    keys = Keys()
    ref = PlayerRef(MERCHANT, "squirrel", user, shard_of(MERCHANT, user, 4))
    client = aioredis.from_url(redis_url)
    try:
        started = time.monotonic()
        while True:
            entry = await client.hget(keys.idempotency(ref, key), "e")
            gone = entry is not None and not await client.xrange(
                keys.ledger(ref.shard), entry, entry)
            if gone and await _backlog(world) == {"dirty": 0, "ledger": 0}:
                return
            assert time.monotonic() - started < 30, "the persister never drained the key"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def _gate(redis_url: str) -> dict[bytes, bytes]:
    """The coupon's units left in the Redis gate, summed over its buckets."""
    client = aioredis.from_url(redis_url)
    try:
        left = await StockGate(client, Keys()).left(MERCHANT, "squirrel", ["prize:coupon_x"])
        return {} if left is None else {b"prize:coupon_x": b"%d" % sum(left["prize:coupon_x"])}
    finally:
        await client.aclose()


async def _sql_left(world: Any) -> int:
    s = m.prize_stock
    async with world.db.engine.connect() as conn:
        total, taken = (await conn.execute(select(s.c.total, s.c.taken).where(
            s.c.merchant_id == MERCHANT, s.c.ref == "prize:coupon_x"))).one()
    return int(total - taken)


def _signed(world: Any, user: str) -> dict[str, Any]:
    secret = world.merchants[MERCHANT].signing_secret
    ts = int(time.time())
    return {"merchant": MERCHANT, "user": user, "ts": ts,
            "sign": session_signature(secret, MERCHANT, user, ts)}


async def test_sql_hung_every_route_answers_in_time(aof_redis: RedisProcess, db_url: str,
                                                     make_world: Any) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL behind a TCP proxy (SQLite has no server to hang)")
    url = make_url(db_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        # secret_cache_seconds=0: createSession asks SQL every time, so the hang below
        # exercises the fallback to the cached secret (not merely a fresh cache hit).
        world = await make_world(aof_redis.url, database_url=proxied,
                                 secret_cache_seconds=0.0)
        call = Timed(world)
        api_key = world.merchants[MERCHANT].api_key
        tok = await world.token("u0", merchant_id=MERCHANT)
        pet = {"species": "squirrel", "name": "Nut"}
        assert (await call("adopt", "POST", f"{GAME}/pet", token=tok, body=pet,
                           key="adopt"))["status"] == 201
        assert (await call("first draw", "POST", f"{GAME}/boxes/forest/draw", token=tok,
                           body={"count": 1}, key="first-draw"))["status"] == 200
        assert (await call("feed", "POST", f"{GAME}/pet/feed", token=tok,
                           body={"food": "snack"}, key="drained"))["status"] == 200
        await _drained(world, aof_redis.url, "u0", "drained")
        gate_before = await _gate(aof_redis.url)
        assert gate_before  # the coupon's gate is up
        # The API key is cached for 10 s: the first merchant routes reach their own SQL.
        assert (await call("getStock before", "GET", f"{ADMIN}/stock",
                           token=api_key))["status"] == 200

        proxy.hang()
        hung_at = time.monotonic()
        shopper = [
            ("getPlayer", "GET", f"{GAME}/me", {"token": tok}),
            ("feedPet", "POST", f"{GAME}/pet/feed",
             {"token": tok, "body": {"food": "snack"}, "key": "feed-hung"}),
            ("getBoxSeries", "GET", f"{GAME}/boxes/forest", {"token": tok}),
            # Ten draws at a coupon nine in ten draws aim at: the grant needs SQL.
            ("drawBox coupon", "POST", f"{GAME}/boxes/forest/draw",
             {"token": tok, "body": {"count": 10}, "key": "draw-hung"}),
            ("listDraws", "GET", f"{GAME}/draws", {"token": tok}),
            ("replay drained key", "POST", f"{GAME}/pet/feed",
             {"token": tok, "body": {"food": "snack"}, "key": "drained"}),
            ("createSession", "POST", "/v1/sessions", {"body": _signed(world, "u9")}),
        ]
        merchant = [
            ("getStock", "GET", f"{ADMIN}/stock", {}),
            ("setStock", "POST", f"{ADMIN}/stock/coupon_x",
             {"body": {"add": 5}, "key": "stock-hung"}),
            ("getPlayerAdmin", "GET", f"{ADMIN}/players/u0", {}),
            ("getAnalytics", "GET", f"{ADMIN}/analytics", {}),
            ("exportEvents", "GET", f"{ADMIN}/export", {}),
            ("putGameDraft", "PUT", f"{ADMIN}/draft", {"body": REL_CONFIG}),
            ("publishGame", "POST", f"{ADMIN}/publish", {"body": {}}),
        ]
        for name, method, path, kw in shopper:
            await call(name, method, path, **kw)
        for name, method, path, kw in merchant:
            await call(name, method, path, token=api_key, **kw)
        hung_for = time.monotonic() - hung_at
        gate_during = await _gate(aof_redis.url)
        proxy.restore()

        # SQL back: what needed it works again, and the gate still matches SQL.
        restored = time.monotonic()
        while (await call("listDraws after", "GET", f"{GAME}/draws", token=tok))[
                "status"] != 200:
            assert time.monotonic() - restored < 30, call.seen["listDraws after"]
            await asyncio.sleep(0.2)
        back_s = time.monotonic() - restored
        gate_left = int(gate_during[b"prize:coupon_x"])
        sql_left = await _sql_left(world)
    finally:
        await proxy.close()

    figures = {"routes": call.seen, "hung_for_s": round(hung_for, 2),
               "max_s": max(r["s"] for n, r in call.seen.items() if n in
                            {x[0] for x in shopper + merchant}),
               "sql_back_after_restore_s": round(back_s, 2),
               "gate_left": gate_left, "sql_left": sql_left}
    write_figures("sql_hang", figures)
    expected: dict[str, tuple[int, str | None]] = {
        "createSession": (201, None), "getPlayer": (200, None), "feedPet": (200, None),
        "getBoxSeries": (200, None), "drawBox coupon": (503, "busy"),
        "listDraws": (503, "unavailable"), "replay drained key": (503, "response_unavailable"),
        **{name: (503, "unavailable") for name, *_ in merchant},
    }
    got = {name: (call.seen[name]["status"], call.seen[name]["code"]) for name in expected}
    assert got == expected, got
    bound = {n: REPORT_BOUND_S if n in REPORTS else BOUND_S for n in expected}
    slow = {n: call.seen[n]["s"] for n in expected if call.seen[n]["s"] > bound[n]}
    assert not slow, f"answered after more than its bound ({BOUND_S} s, reports " \
        f"{REPORT_BOUND_S} s): {slow}"
    no_retry = [n for n, (status, _) in expected.items()
                if status == 503 and not call.seen[n]["retry_after"]]
    assert not no_retry, f"503 without Retry-After: {no_retry}"
    assert gate_during == gate_before  # the refused grant gave its units back
    assert gate_left == sql_left  # and SQL agrees once it answers again


async def test_background_jobs_stuck_on_a_hung_sql_leave_requests_their_turns(
        db_url: str) -> None:
    """While SQL hangs, background jobs hold their calls for their longer bound. They
    wait in a line of their own (a quarter of the connections), so a request still gets
    a turn at once and answers within its own bound; in one shared line they held every
    turn and a request first waited up to the pool timeout (createSession 2.6 s against
    a 1.5 s bound in a full run)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL behind a TCP proxy (SQLite has no server to hang)")
    from sqlalchemy import text

    from gameserver.app import sql_lines
    from gameserver.db.connections import make_engine
    from gameserver.db.database import Database
    from gameserver.ops.settings import Settings

    url = make_url(db_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(sql_pool_size=3, sql_max_overflow=1, sql_timeout=0.5,
                        sql_background_timeout=3.0, sql_pool_timeout=2.0)
    line, background_line = sql_lines(settings)
    assert (line.size, background_line.size if background_line else None) == (3, 1)
    db = Database(proxied, make_engine(proxied, 3.0, pool_size=3, max_overflow=1,
                                       pool_timeout=2.0),
                  timeout=0.5, background_timeout=3.0, line=line,
                  background_line=background_line)

    async def select_one(on: Database) -> None:
        async with on.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await select_one(db)  # connected while SQL answers
        proxy.hang()
        jobs = [asyncio.create_task(select_one(db.background)) for _ in range(4)]
        await asyncio.sleep(0.2)  # every job has asked; one holds its line's turn
        started = time.monotonic()
        with pytest.raises(TimeoutError) as refused:
            await select_one(db)
        took = time.monotonic() - started
        assert "no SQL connection free" not in str(refused.value)  # its own bound, not the line
        assert took < 0.5 + 0.3, took
        proxy.restore()
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert all(r is None or isinstance(r, TimeoutError) for r in results), results
    finally:
        await proxy.close()
        await db.close()
