"""Bursts: 1,000 concurrent first-attempt draws against one app on a real Redis and SQL,
with nothing between the shoppers and the server (no connection limit on the client).

Before admission control the redis-py pool (256 connections, failing at once) answered
about half of such a burst with ``503 unavailable`` (``MaxConnectionsError``). Now
overload may only be answered by design (``503 overloaded`` / ``429``, with
``Retry-After``), and rarely; the value tier still grants exactly the stock, once each.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from gameserver.appkeys import VALUE
from gameserver.db import connections
from gameserver.db import models as m
from tests.conftest import ROOT
from tests.integration.test_boxes_http import BOX_CONFIG, SERIES

SHOPPERS = 1000
STOCK = 20
PLENTY = 100_000
BY_DESIGN = {"overloaded", "rate_limited"}



def _config(stock: int) -> dict[str, Any]:
    """The blind-box game with the coupon at weight 600 (six draws in seven aim at it)."""
    config: dict[str, Any] = copy.deepcopy(BOX_CONFIG)
    config["boxes"]["series"]["forest"]["prizes"]["coupon_x"].update(stock=stock, weight=600)
    return config


async def _burst(url: str, draws: list[tuple[str, str, int]]
                 ) -> list[tuple[int, str | None, dict[str, Any]]]:
    """Every draw at once from a child process (tests/reliability/burst_client.py):
    status, Retry-After and body of each first attempt, never retried."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.reliability.burst_client", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    job = json.dumps({"url": url, "draws": draws}).encode()
    out, _ = await asyncio.wait_for(child.communicate(job), timeout=120)
    assert child.returncode == 0
    return [(int(s), ra, body) for s, ra, body in json.loads(out)]


def _tally(results: list[tuple[int, str | None, dict[str, Any]]]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    for status, _, body in results:
        code = body.get("error", {}).get("code", "") if status >= 400 else ""
        statuses[f"{status} {code}".strip()] += 1
    return dict(statuses)


async def _tokens(world: Any) -> list[str]:
    sem = asyncio.Semaphore(50)

    async def token(i: int) -> str:
        async with sem:
            return str(await world.token(f"b{i}", merchant_id="burst"))

    return list(await asyncio.gather(*[token(i) for i in range(SHOPPERS)]))


async def _sql_grants(world: Any) -> tuple[Counter[str], int, tuple[int, int, int]]:
    """After settling what the burst left as the reconciler would (holds past their
    deadline: a grant whose COMMIT went unanswered within its bound; then pending
    grants): grant rows by status, distinct codes of the confirmed ones, and the
    coupon's (total, taken, granted)."""
    tier = world.client.app[VALUE]
    cleanups = set(connections._CLEANUPS)  # connections given up on, still closing
    started = time.perf_counter()
    if cleanups:
        await asyncio.wait(cleanups, timeout=30)
    print(f"{len(cleanups)} abandoned connections closed in "
          f"{time.perf_counter() - started:.2f} s")
    world.clock.advance(tier.hold_ttl_ms / 1000 + 1)
    held = await tier.reconcile_holds()
    settled = await tier.reconcile(older_than_s=-1)
    print(f"settled after the burst: holds (given back, dropped) {held}, "
          f"pending (confirmed, voided) {settled}")
    g, s = m.grants, m.prize_stock
    async with world.db.engine.connect() as conn:
        rows = (await conn.execute(select(g.c.status, g.c.code).where(
            g.c.merchant_id == "burst"))).all()
        stock = (await conn.execute(select(s.c.total, s.c.taken, s.c.granted).where(
            s.c.merchant_id == "burst", s.c.ref == "prize:coupon_x"))).one()
    codes = {code for status, code in rows if status == "confirmed"}
    return Counter(st for st, _ in rows), len(codes), (stock[0], stock[1], stock[2])


@pytest.mark.parametrize("stock", [STOCK, PLENTY], ids=["scarce", "plenty"])
async def test_thousand_concurrent_draws_on_a_limited_coupon(world: Any, stock: int) -> None:
    """``scarce`` (the issue's case): 20 coupons for ~3,400 draws aiming at one; the Redis
    gate turns the rest away without SQL: whatever is refused is refused by design with
    Retry-After, and exactly 20 are granted (fewer only when a grant failed closed, SQL
    out of reach on a loaded host: then its unit is back in the gate, none stranded).
    (How many are refused depends on what else the machine runs: the share is a
    capacity figure, measured on a quiet machine by ``bench/midnight_bench.py --play
    draw``, docs/benchmarks.md.) ``plenty``: every
    draw that aims at the coupon takes a SQL grant (two transactions on one hot stock
    row), so SQL caps throughput and admission control sheds the excess, by design only
    (with Retry-After), never a pool running dry; what was acknowledged is exactly what
    SQL holds."""
    await world.merchant("burst", game="squirrel", config=_config(stock))
    tokens = await _tokens(world)
    url = str(world.client.make_url(f"{SERIES}/draw"))
    counts = [10 if i % 3 == 0 else 1 for i in range(SHOPPERS)]
    started = time.perf_counter()
    results = await _burst(url, [(t, f"burst-{i}", counts[i]) for i, t in enumerate(tokens)])
    tally = _tally(results)
    print(f"\nBURST {stock=} {SHOPPERS} draws ({counts.count(10)} 10-draws) in "
          f"{time.perf_counter() - started:.2f} s: {tally}")

    # Anything but 200 is a refusal by design: admission (overloaded), the limiter,
    # or a grant failing closed (busy/unavailable: nothing granted), each with
    # Retry-After. Never a 500, never a pool running dry.
    by_design = BY_DESIGN | {"busy", "unavailable"}
    refused = [(s, ra, b) for s, ra, b in results if s != 200]
    assert all(s in (429, 503) and b["error"]["code"] in by_design and int(ra or 0) >= 1
               for s, ra, b in refused), (tally, refused[:3])

    acked = [r["item"] for s, _, b in results if s == 200 for r in b["draws"]]
    granted = acked.count("coupon_x")
    statuses, codes, (total, taken, in_sql) = await _sql_grants(world)
    # A grant that failed closed (busy/unavailable: SQL out of reach on a loaded host)
    # granted nothing and its unit goes back to the gate when the hold is settled below;
    # with none of those, the 20 coupons are all granted.
    failed_closed = sum(1 for _, _, b in refused if b["error"]["code"] in ("busy", "unavailable"))
    if stock == STOCK:
        assert granted == STOCK if not failed_closed else 0 < granted <= STOCK, (granted, tally)
    else:
        assert 0 < granted < stock
    assert statuses["confirmed"] == codes == taken == in_sql == granted, statuses
    assert statuses["pending"] == 0 and total == stock
    gate = await world.client.app[VALUE].stock_left("burst", "squirrel",
                                                     {"prize:coupon_x": stock})
    assert gate.left == {"prize:coupon_x": total - taken}
