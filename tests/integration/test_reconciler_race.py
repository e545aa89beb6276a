"""Two reconcilers (two hosts: two ValueTiers, two SQL engines, two Redis clients)
settling the same stale pending grant at once settle it exactly once, every time.

The bug this guards: each selected the pending rows, both ran the conditional
``UPDATE … WHERE status = 'pending'`` (the loser matched 0 rows) and both gave the
stock back from the rows they had *selected*: ``prize_stock.taken`` went negative
and the Redis gate rose above the stock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.state.keys import Keys, PlayerRef
from gameserver.state.value import StockView, ValueTier
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState

TRIALS = 100
STOCK = 100
REF_NAME = "prize:coupon_x"
TOTALS = {REF_NAME: STOCK}


def _outcome() -> Outcome:
    return Outcome(state=PlayerState(created_at=0), response={},
                   reservations=[StockHold(REF_NAME, 1)],
                   grants=[ValueGrant(REF_NAME, "coupon", "draw:forest", {
                       "reservation": REF_NAME, "series": "forest", "position": 0,
                       "value": {"type": "coupon"}})])


@pytest.fixture
async def hosts(redis_url: str, db_url: str) -> AsyncIterator[tuple[ValueTier, ValueTier]]:
    """Two hosts' value tiers sharing one Redis and one SQL database, and one clock."""
    clock = ManualClock(1_767_225_600.0)
    made: list[tuple[aioredis.Redis, Database]] = []
    tiers = []
    for _ in range(2):
        client, db = aioredis.from_url(redis_url), Database(db_url)
        made.append((client, db))
        tiers.append(ValueTier(client, Keys(), db, clock, shards=4))
    yield tiers[0], tiers[1]
    for client, db in made:
        await client.aclose()
        await db.close()


async def _sql_stock(tier: ValueTier) -> tuple[int, int]:
    s = m.prize_stock
    async with tier.db.connect() as conn:
        row = (await conn.execute(select(s.c.taken, s.c.granted).where(
            s.c.ref == REF_NAME))).one()
    return int(row[0]), int(row[1])


async def _void_count(tier: ValueTier) -> int:
    g = m.grants
    async with tier.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(g).where(
            g.c.status == "void"))).scalar_one())


async def test_two_reconcilers_settle_a_stale_grant_once(
        hosts: tuple[ValueTier, ValueTier]) -> None:
    a, b = hosts
    clock = a.clock
    assert isinstance(clock, ManualClock)
    await a.ensure_stock("boxshop", "squirrel", TOTALS)
    for trial in range(TRIALS):
        ref = PlayerRef("boxshop", "squirrel", f"u{trial}", 0)
        # A server held a unit (SQL pending) and died before its player commit.
        await a.hold(ref, f"k{trial}", f"c{trial}", _outcome(), StockView(), TOTALS)
        assert await _sql_stock(a) == (1, 0)
        clock.advance(120)  # older than any in-flight action
        results = await asyncio.gather(a.reconcile(older_than_s=60),
                                       b.reconcile(older_than_s=60))
        # Exactly one of them voided it; the other found nothing left to settle.
        assert sorted(results) == [(0, 0), (0, 1)], (trial, results)
        assert await _sql_stock(a) == (0, 0), trial
        assert (await b.stock_left("boxshop", "squirrel", TOTALS)).left == TOTALS, trial
        assert await _void_count(a) == trial + 1
