"""The value tier gives its Redis units back whatever makes the SQL step fail, and a
key that already holds a live grant is refused as already applied (never twice).

Its SQL faults are real: the tier under test is built on a database reached through
them (:class:`SqlFaults`), never a subclass that raises."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from gameserver.appkeys import VALUE
from gameserver.db import models as m
from gameserver.db.connections import REQUEST_TIMEOUT
from gameserver.db.database import Database, make_engine
from gameserver.http.errors import UNAVAILABLE, Busy
from gameserver.state.keys import PlayerRef
from gameserver.state.value import HOLD_TTL_MS, GrantAlreadyMade, StockView, ValueTier
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState
from tests.integration.test_boxes_http import BOX_CONFIG
from tests.reliability.tcpproxy import TcpProxy

TOTALS = {"prize:coupon_x": 100}
REF = PlayerRef("boxshop", "squirrel", "alice", 0)
HUNG_BOUND_S = 0.3
"""The SQL bound of a tier whose database hangs: each attempt gives up this soon."""


def outcome() -> Outcome:
    return Outcome(state=PlayerState(created_at=0), response={},
                   reservations=[StockHold("prize:coupon_x", 1)],
                   grants=[ValueGrant("prize:coupon_x", "coupon", "draw:forest", {
                       "reservation": "prize:coupon_x", "series": "forest", "position": 0,
                       "value": {"type": "coupon"}})])


class SqlFaults:
    """The test's database behind a real fault, for value tiers built on it.

    PostgreSQL is reached through a TCP proxy, which can hang (nothing passes, new
    connections are never answered) or lose the answer to a COMMIT the server applied.
    SQLite has no network: its hang is another connection holding the file's write lock,
    so a write waits for the lock until its bound runs out, as a hung call does."""

    def __init__(self, app_tier: ValueTier, db_url: str) -> None:
        self.app_tier, self.db_url = app_tier, db_url
        self.proxy: TcpProxy | None = None
        self.db: Database | None = None

    async def start(self) -> SqlFaults:
        url = self.db_url
        if url.startswith("postgresql"):
            target = make_url(url)
            self.proxy = await TcpProxy(target.host or "127.0.0.1",
                                        target.port or 5432).start()
            url = target.set(host="127.0.0.1", port=self.proxy.port).render_as_string(
                hide_password=False)
        self.db = Database(url, make_engine(url, 5.0))
        await self.db.ping()  # SQLite: connected and set up before any lock is taken
        return self

    def tier(self, bound: float) -> ValueTier:
        """A value tier like the app's, on this database, each SQL call bounded by
        ``bound`` seconds."""
        assert self.db is not None
        app = self.app_tier
        tier = ValueTier(app.redis, app.keys, self.db.bounded(bound), app.clock, app.shards,
                         buckets=app.gate.buckets)
        tier.hold_ttl_ms, tier.live_hold_ms = app.hold_ttl_ms, app.live_hold_ms
        return tier

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """SQL hangs for the block (PostgreSQL: the proxy; SQLite: the file's write lock
        held by another connection)."""
        if self.proxy is not None:
            self.proxy.hang()
            try:
                yield
            finally:
                self.proxy.restore()
            return
        lock = sqlite3.connect(self.db_url.split("///", 1)[1], isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            lock.execute("ROLLBACK")
            lock.close()

    async def close(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()  # hung connection attempts end, and close
        if self.db is not None:
            await self.db.close()
        if self.proxy is not None:
            await self.proxy.close()


@pytest.fixture
async def tier(world: Any) -> ValueTier:
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    value: ValueTier = world.client.app[VALUE]
    await value.ensure_stock("boxshop", "squirrel", TOTALS)
    return value


@pytest.fixture
async def faults(tier: ValueTier, db_url: str) -> AsyncIterator[SqlFaults]:
    sql = await SqlFaults(tier, db_url).start()
    yield sql
    await sql.close()


async def left(tier: ValueTier) -> int:
    return (await tier.stock_left("boxshop", "squirrel", TOTALS)).left["prize:coupon_x"]


async def test_a_hanging_sql_step_gives_the_units_back(tier: ValueTier,
                                                        faults: SqlFaults) -> None:
    """Each attempt whose SQL step hangs past its bound is refused (503 ``busy``) and
    gives back the unit it reserved in the gate: five of them leave it whole."""
    hanging = faults.tier(HUNG_BOUND_S)
    with faults.hung():
        for _ in range(5):
            with pytest.raises(Busy):
                await hanging.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    assert await left(tier) == 100


async def one_granted(tier: ValueTier) -> None:
    """Exactly one unit of the coupon granted: 99 left in the gate and in SQL."""
    assert await left(tier) == 99
    report = await tier.stock_report("boxshop", "squirrel", list(TOTALS))
    assert report == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0, "granted": 1,
                       "left": 99}]


async def test_a_key_with_a_live_grant_is_already_applied(tier: ValueTier) -> None:
    hold = await tier.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    await tier.confirm(hold)
    assert await left(tier) == 99
    with pytest.raises(GrantAlreadyMade):
        await tier.hold(REF, "k1", "c2", outcome(), StockView(), TOTALS)
    await one_granted(tier)


async def test_a_retry_meeting_its_keys_pending_grant_is_told_to_retry(
        tier: ValueTier, world: Any) -> None:
    """A first attempt whose COMMIT went unanswered (CommitUnknown) left its grant rows
    pending and its player commit never happened. A retry with the same key is 503
    ``busy`` until the reconciler settles the rows, not ``idempotency_already_applied``
    ("already won a prize": it was a flash-sale claim that had won nothing); once the
    rows are voided the retry is granted, exactly once."""
    await tier._gate(REF, "c1", {"prize:coupon_x": 1}, StockView(), TOTALS)
    await tier._try_sql(REF, "k1", "c1", outcome(), {"prize:coupon_x": 1})
    world.clock.advance(HOLD_TTL_MS / 1000 + 1)
    assert await tier.reconcile_holds() == (0, 1)  # SQL has the rows: the hold is dropped
    assert await left(tier) == 99
    world.clock.advance(10)
    with pytest.raises(Busy) as busy:
        await tier.hold(REF, "k1", "c2", outcome(), StockView(), TOTALS)
    # settled from 60 s after the row was written, 41 s of which have passed
    assert busy.value.details["retry_after"] == 19
    assert await left(tier) == 99  # the retry's gate units went back
    world.clock.advance(20)
    assert await tier.reconcile() == (0, 1)  # no player commit: voided, unit back
    hold = await tier.hold(REF, "k1", "c3", outcome(), StockView(), TOTALS)
    await tier.confirm(hold)
    await one_granted(tier)


async def test_a_cancel_whose_void_commit_was_unanswered_gives_the_units_back(
        tier: ValueTier, world: Any, faults: SqlFaults) -> None:
    """A cancel (the player commit lost a race) whose void COMMIT took effect without an
    answer still gives the gate its unit: the reconciler releases only rows it voids
    itself, so before, the gate stayed one below SQL for good (a flash sale with 8 units
    left in SQL offered 7).

    PostgreSQL only: the void's COMMIT reaches the server through the proxy, which then
    loses the server's answer, so the tier's own bound runs out (``CommitUnknown``)."""
    if faults.proxy is None:
        pytest.skip("needs PostgreSQL behind a TCP proxy (a COMMIT's answer lost on the "
                    "network; SQLite has none)")
    lossy = faults.tier(REQUEST_TIMEOUT)
    hold = await lossy.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    assert await left(tier) == 99
    faults.proxy.lose_commit_answer()
    await lossy.cancel(hold)  # the outcome is known from the rows: nothing to raise
    assert faults.proxy.answers_lost == 1  # the void's COMMIT went unanswered
    assert await left(tier) == 100
    world.clock.advance(120)
    assert await tier.reconcile() == (0, 0)
    assert await tier.reconcile_holds() == (0, 0)
    assert await left(tier) == 100
    report = await tier.stock_report("boxshop", "squirrel", list(TOTALS))
    assert report == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0, "granted": 0,
                       "left": 100}]


async def test_units_of_a_dead_attempt_go_back_after_the_hold_deadline(
        tier: ValueTier, world: Any) -> None:
    """D1: a server killed between the gate and SQL (SQL hung, then SIGKILL) leaves units
    reserved in the gate that SQL never saw. Each reservation is a hold with a deadline;
    past it the reconciler gives back what SQL never took and drops what it did, so the
    gate converges to SQL's ``total − taken`` within the hold's lifetime + one pass."""
    for i in range(10):  # what ten killed attempts had done: the gate step only
        await tier._gate(REF, f"dead{i}", {"prize:coupon_x": 1}, StockView(), TOTALS)
    # One more got its SQL rows in, then died before it could end its hold.
    await tier._gate(REF, "insql", {"prize:coupon_x": 1}, StockView(), TOTALS)
    await tier._try_sql(REF, "k-insql", "insql", outcome(), {"prize:coupon_x": 1})
    assert await left(tier) == 89
    assert await tier.reconcile_holds() == (0, 0)  # deadlines not reached: maybe running

    world.clock.advance(HOLD_TTL_MS / 1000 + 1)
    assert await tier.reconcile_holds() == (10, 1)
    assert await left(tier) == 99  # = total 100 − taken 1 (the pending row)
    assert await tier.reconcile_holds() == (0, 0)  # each hold ends once
    assert await tier.reconcile(older_than_s=0) == (0, 1)  # its player commit never came
    assert await left(tier) == 100
    report = await tier.stock_report("boxshop", "squirrel", list(TOTALS))
    assert report == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0, "granted": 0,
                       "left": 100}]


async def test_a_settled_attempt_leaves_no_hold(tier: ValueTier, world: Any,
                                                faults: SqlFaults) -> None:
    """Neither a confirmed attempt nor one refused because SQL hung leaves a hold record
    in the gate, so the reconciler has nothing to give back later."""
    hold = await tier.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    await tier.confirm(hold)
    hanging = faults.tier(HUNG_BOUND_S)
    with faults.hung(), pytest.raises(Busy):
        await hanging.hold(REF, "k2", "c2", outcome(), StockView(), TOTALS)
    for bucket in range(tier.gate.buckets):
        assert await tier.redis.zcard(tier.gate.holds_key("boxshop", "squirrel", bucket)) == 0
    world.clock.advance(HOLD_TTL_MS / 1000 + 1)
    assert await tier.reconcile_holds() == (0, 0)
    assert await left(tier) == 99


async def test_a_counter_held_twice_in_one_outcome_reserves_both_units(
        tier: ValueTier) -> None:
    """Two rewards of one action may grant the same coupon: both units are reserved and
    both grant rows written, with the kind and reason the rule gave."""
    twice = Outcome(state=PlayerState(created_at=0), response={},
                    reservations=[StockHold("prize:coupon_x", 1), StockHold("prize:coupon_x", 2)],
                    grants=[ValueGrant("prize:coupon_x", "coupon", "checkin:day", {"n": 1}),
                            ValueGrant("prize:coupon_x", "coupon", "checkin:streak", {"n": 2},
                                       units=2)])
    hold = await tier.hold(REF, "k1", "c1", twice, StockView(), TOTALS)
    await tier.confirm(hold)
    assert hold.units == {"prize:coupon_x": 3} and len(hold.codes) == 3
    assert await left(tier) == 97
    g = m.grants
    async with tier.db.connect() as conn:
        rows = (await conn.execute(select(g.c.position, g.c.kind, g.c.reason, g.c.detail,
                                          g.c.status).order_by(g.c.position))).all()
    assert [tuple(r) for r in rows] == [
        (0, "coupon", "checkin:day", {"n": 1}, "confirmed"),
        (1, "coupon", "checkin:streak", {"n": 2}, "confirmed"),
        (2, "coupon", "checkin:streak", {"n": 2}, "confirmed")]
    report = await tier.stock_report("boxshop", "squirrel", list(TOTALS))
    assert report == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0, "granted": 3,
                       "left": 97}]


async def test_a_connection_reset_mid_call_is_unavailable(faults: SqlFaults) -> None:
    """A PostgreSQL connection reset while a call is under way (a network cut, the
    server restarted or failed over) is a dependency that is unavailable now (503 with
    Retry-After), like a refused connection or a timeout. asyncpg's
    ``ConnectionDoesNotExistError`` reaches SQLAlchemy as a plain ``DBAPIError``, which
    no handler took for one: a rehearsal's 7-second SQL cut answered 8 shoppers 500
    ``internal_error`` (adoptPet, checkIn, listMySamples, joinGroupBuy reading a player
    through from SQL)."""
    if faults.proxy is None:
        pytest.skip("needs PostgreSQL behind a TCP proxy (SQLite has no connection to cut)")
    assert faults.db is not None
    proxy = faults.proxy

    async def cut_soon() -> None:
        await asyncio.sleep(0.2)
        proxy.cut()

    cutting = asyncio.ensure_future(cut_soon())
    with pytest.raises(UNAVAILABLE):
        async with faults.db.bounded(REQUEST_TIMEOUT).connect() as conn:
            await conn.execute(text("SELECT pg_sleep(2)"))
    await cutting


async def test_a_connection_reset_after_the_grants_commit_keeps_its_units_held(
        tier: ValueTier, world: Any, faults: SqlFaults) -> None:
    """The grant's COMMIT reached PostgreSQL, which applied it, and the connection was
    reset before its answer came: the outcome is as unknown as that of an unanswered
    COMMIT (``CommitUnknown``), so the units stay held for the reconciler. Before, the
    attempt gave them back at once and the reconciler, voiding the pending rows, gave
    them back again: the gate one above SQL's ``total - taken`` for good."""
    if faults.proxy is None:
        pytest.skip("needs PostgreSQL behind a TCP proxy (a connection reset after a "
                    "COMMIT; SQLite has none)")
    lossy = faults.tier(REQUEST_TIMEOUT)
    faults.proxy.lose_commit_answer(reset=True)
    with pytest.raises(Busy):
        await lossy.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    assert faults.proxy.answers_lost == 1
    assert await left(tier) == 99  # SQL took the unit (a pending row): still held
    world.clock.advance(HOLD_TTL_MS / 1000 + 1)
    assert await tier.reconcile_holds() == (0, 1)  # SQL has the rows: the hold is dropped
    world.clock.advance(60)
    assert await tier.reconcile() == (0, 1)  # no player commit: voided, its unit back
    assert await left(tier) == 100
    report = await tier.stock_report("boxshop", "squirrel", list(TOTALS))
    assert report == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0, "granted": 0,
                       "left": 100}]
