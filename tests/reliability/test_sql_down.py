"""Fault 5: SQL unreachable for 30 s under load (PostgreSQL behind a TCP proxy the
test cuts: every connection reset, new ones refused).

Pass criteria: play (feeds, draws that win no limited prize) goes on from Redis;
value grants fail closed with a retryable 503 (``Retry-After``); the persister's
backlog is bounded by what was played, visible in ``/metrics``, and drains to 0
when SQL is back, with every acknowledged operation in SQL and nothing twice.

SQLite has no server to cut (a locked file makes every write wait out the 10 s
busy timeout instead of failing): this test runs on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from gameserver.ops.embedded import RedisProcess
from tests.reliability.harness import Book, check_invariants, scaled, write_figures
from tests.reliability.tcpproxy import TcpProxy
from tests.reliability.test_redis_faults import GAME, _op, _players, _sql_settled

pytestmark = pytest.mark.slow


async def _backlog(world: Any) -> dict[str, float]:
    text = await (await world.client.get("/metrics")).text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for kind in ("dirty", "ledger"):
            if line.startswith(f'petbox_persister_backlog{{kind="{kind}"}}'):
                out[kind] = float(line.split()[-1])
    return out


async def test_sql_down_30s_under_load(aof_redis: RedisProcess, db_url: str,
                                       make_world: Any) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL behind a TCP proxy (SQLite has no server to cut)")
    down_s = scaled("SQL_DOWN_SECONDS", 30)
    url = make_url(db_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        world = await make_world(aof_redis.url, database_url=proxied)
        book = Book()
        tokens = await _players(world, 8)
        for user, tok in tokens.items():
            await _op(world, book, user, tok, "adopt", f"adopt-{user}")
            await _op(world, book, user, tok, "draw", f"first-draw-{user}")  # the gate is up
        # Ops acknowledged just before the cut may not be drained yet: they count too.
        acked_before = sum(len(ops) for ops in book.acked.values())
        proxy.cut()
        started = time.monotonic()
        statuses: Counter[str] = Counter()
        backlog_max: dict[str, float] = {"dirty": 0, "ledger": 0}
        acked_down = 0
        n = 0
        while time.monotonic() - started < down_s:
            for user, tok in tokens.items():
                n += 1
                op = ("feed", "draw")[n % 2]
                before = len(book.acked[user])
                if op == "draw":
                    resp = await world.post(f"{GAME}/boxes/forest/draw", tok, {"count": 1},
                                            f"d-{n}")
                    statuses[f"draw {resp.status}"] += 1
                    if resp.status == 200:
                        body = await resp.json()
                        assert all(d["item"] != "coupon_x" for d in body["draws"])
                        book.acked[user].append((f"d-{n}", "draw", body))
                    else:
                        assert resp.status == 503 and int(resp.headers["Retry-After"]) >= 1
                        book.unknown[user].append(f"d-{n}")
                else:
                    status = await _op(world, book, user, tok, "feed", f"f-{n}")
                    statuses[f"feed {status}"] += 1
                    assert status == 200
                acked_down += len(book.acked[user]) - before
            seen = await _backlog(world)
            backlog_max = {k: max(v, seen.get(k, 0)) for k, v in backlog_max.items()}
            await asyncio.sleep(0.05)
        assert backlog_max["ledger"] > 0  # visible in /metrics
        assert backlog_max["ledger"] <= acked_before + acked_down  # bounded by what was played
        proxy.restore()
        restored = time.monotonic()
        while (await _backlog(world)) != {"dirty": 0, "ledger": 0}:
            assert time.monotonic() - restored < 60
            await asyncio.sleep(0.1)
        drained = time.monotonic() - restored
        facts = await _sql_settled(world, aof_redis.url)
    finally:
        await proxy.close()
    figures = check_invariants(facts, book)
    figures.update(down_s=down_s, statuses_down=dict(statuses), acked_while_down=acked_down,
                   backlog_max=backlog_max, drained_after_restore_s=round(drained, 2))
    write_figures("sql_down", figures)
