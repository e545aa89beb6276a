"""The limited-stock gate split into buckets across slots: totals stay exact, nothing
is oversold, and no draw is refused while any bucket still has a unit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.crc import key_slot
from sqlalchemy import select

from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.ops.settings import Settings
from gameserver.state.keys import Keys, PlayerRef
from gameserver.state.redisclient import open_redis, wants_cluster
from gameserver.state.stockgate import deal
from gameserver.state.value import StockShort, StockView, ValueTier
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState

SHOP, GAME, REF = "boxshop", "squirrel", "prize:coupon_x"
BUCKETS = 8


def outcome(units: int = 1, ref: str = REF) -> Outcome:
    return Outcome(state=PlayerState(created_at=0), response={},
                   reservations=[StockHold(ref, units)],
                   grants=[ValueGrant(ref, "coupon", "draw:forest", {
                       "reservation": ref, "series": "forest", "position": i,
                       "value": {"type": "coupon"}}) for i in range(units)])


@pytest.fixture
async def hosts(redis_url: str, db_url: str) -> AsyncIterator[list[ValueTier]]:
    """Two hosts' value tiers (own Redis client, own SQL engine) on one Redis and SQL."""
    clock = ManualClock(1_767_225_600.0)
    # The server's client. On one Redis: a bounded pool that waits, so a thousand draws
    # share 32 connections. A cluster client's per-node pool refuses when full; the
    # server keeps it below the bound with admission control, which these tiers (no
    # HTTP in front) lack, so on a cluster they get a pool as large as the burst.
    pool = 1000 if await wants_cluster(redis_url, Settings(redis_url=redis_url)) else 32
    settings = Settings(redis_url=redis_url, redis_max_connections=pool, redis_timeout=10.0)
    tiers = [ValueTier(await open_redis(redis_url, settings), Keys(), Database(db_url), clock,
                       4, buckets=BUCKETS) for _ in range(2)]
    yield tiers
    for tier in tiers:
        await tier.redis.aclose()
        await tier.db.close()


async def buckets(tier: ValueTier, ref: str = REF) -> list[int]:
    left = await tier.gate.left(SHOP, GAME, [ref])
    assert left is not None
    return left[ref]


async def sql_row(tier: ValueTier, ref: str = REF) -> tuple[int, int, int]:
    s = m.prize_stock
    async with tier.db.connect() as conn:
        row = (await conn.execute(select(s.c.total, s.c.taken, s.c.granted)
                                  .where(s.c.ref == ref))).one()
    return int(row[0]), int(row[1]), int(row[2])


async def test_the_gate_is_dealt_over_buckets_in_distinct_slots(
        hosts: list[ValueTier]) -> None:
    tier = hosts[0]
    await tier.ensure_stock(SHOP, GAME, {REF: 100})
    assert await buckets(tier) == deal(100, BUCKETS) == [13, 13, 13, 13, 12, 12, 12, 12]
    tags = {key.split("{", 1)[1].split("}", 1)[0]
            for key in (tier.gate.stock_key(SHOP, GAME, b) for b in range(BUCKETS))}
    assert len(tags) == BUCKETS  # one hash tag, so one slot, per bucket
    slots = {key_slot(tag.encode()) for tag in tags}
    assert len(slots) == BUCKETS


async def test_a_thousand_concurrent_draws_on_stock_100_grant_exactly_100(
        hosts: list[ValueTier]) -> None:
    await hosts[0].ensure_stock(SHOP, GAME, {REF: 100})
    refusals: list[int] = []

    async def draw(i: int) -> bool:
        tier = hosts[i % 2]
        view = await tier.stock_left(SHOP, GAME, {REF: 100})
        try:
            hold = await tier.hold(PlayerRef(SHOP, GAME, f"u{i}", 0), f"k{i}", f"c{i}",
                                   outcome(), view, {REF: 100})
        except StockShort as short:
            refusals.append(short.left)  # what every bucket had left when asked
            return False
        await tier.confirm(hold)
        return True

    granted = await asyncio.gather(*(draw(i) for i in range(1000)))
    assert sum(granted) == 100
    assert len(refusals) == 900 and set(refusals) == {0}  # refused only with all empty
    assert await buckets(hosts[1]) == [0] * BUCKETS
    assert await sql_row(hosts[0]) == (100, 100, 100)
    for bucket in range(BUCKETS):  # every hold ended
        assert await hosts[0].redis.zcard(hosts[0].gate.holds_key(SHOP, GAME, bucket)) == 0


async def test_a_draw_whose_home_bucket_is_empty_takes_from_the_others(
        hosts: list[ValueTier]) -> None:
    tier = hosts[0]
    await tier.ensure_stock(SHOP, GAME, {REF: 3})
    assert await buckets(tier) == [1, 1, 1, 0, 0, 0, 0, 0]
    # Commit ids whose home is an empty bucket, and a view that knows nothing.
    ids = [c for c in (f"c{i}" for i in range(200)) if tier.gate.home(c) >= 3][:4]
    for n, commit in enumerate(ids[:3]):
        hold = await tier.hold(PlayerRef(SHOP, GAME, commit, 0), commit, commit, outcome(),
                               StockView(), {REF: 3})
        await tier.confirm(hold)
        assert sum(await buckets(tier)) == 2 - n
    with pytest.raises(StockShort):
        await tier.hold(PlayerRef(SHOP, GAME, "late", 0), "late", ids[3], outcome(),
                        StockView(), {REF: 3})
    assert await sql_row(tier) == (3, 3, 3)


async def test_units_no_single_bucket_has_are_gathered_from_several(
        hosts: list[ValueTier]) -> None:
    tier = hosts[0]
    await tier.ensure_stock(SHOP, GAME, {REF: 16})  # 2 per bucket
    hold = await tier.hold(PlayerRef(SHOP, GAME, "big", 0), "k", "c", outcome(5),
                           StockView(), {REF: 16})
    assert len(hold.pieces) == 3 and sum(sum(p.units.values()) for p in hold.pieces) == 5
    assert sum(await buckets(tier)) == 11
    await tier.cancel(hold)  # every piece back to its own bucket
    assert await buckets(tier) == [2] * BUCKETS
    assert await sql_row(tier) == (16, 0, 0)
    with pytest.raises(StockShort) as short:  # more than all buckets hold: nothing kept
        await tier.hold(PlayerRef(SHOP, GAME, "big", 0), "k2", "c2", outcome(17),
                        StockView(), {REF: 16})
    assert short.value.left == 16
    assert await buckets(tier) == [2] * BUCKETS


async def test_units_in_flight_across_buckets_are_told_apart_from_units_gone(
        hosts: list[ValueTier]) -> None:
    """With nothing left, what attempts in flight hold is summed over every bucket's
    holds (every slot); read only when asked for. A hold past the live window (its
    process died) or aged at once (its COMMIT went unanswered) is not counted."""
    tier = hosts[0]
    await tier.ensure_stock(SHOP, GAME, {REF: 16})  # 2 per bucket
    deadline = int(tier.clock.now() * 1000) + tier.hold_ttl_ms
    first = await tier.gate.reserve(SHOP, GAME, "flight-1", deadline, {REF: 5})
    second = await tier.gate.reserve(SHOP, GAME, "flight-2", deadline, {REF: 11})
    assert first.missing == {} == second.missing and len(second.pieces) > 1
    view = await tier.stock_left(SHOP, GAME, {REF: 16}, pending=True)
    assert (view.left, view.pending, view.tell_pending) == ({REF: 0}, {REF: 16}, True)
    assert (await tier.stock_left(SHOP, GAME, {REF: 16})).pending == {}  # not asked
    await tier.gate.age_holds(SHOP, GAME, second.pieces, deadline - tier.live_hold_ms)
    assert (await tier.stock_left(SHOP, GAME, {REF: 16}, pending=True)).pending == {REF: 5}

    short = StockView(tell_pending=True)  # a rule that tells the two apart
    with pytest.raises(StockShort):
        await tier.hold(PlayerRef(SHOP, GAME, "late", 0), "late", "late-c", outcome(), short,
                        {REF: 16})
    assert (short.left, short.pending) == ({REF: 0}, {REF: 5})
    plain = StockView()
    with pytest.raises(StockShort):
        await tier.hold(PlayerRef(SHOP, GAME, "late", 0), "late", "late-d", outcome(), plain,
                        {REF: 16})
    assert (plain.left, plain.pending) == ({REF: 0}, {})

    assert isinstance(tier.clock, ManualClock)
    tier.clock.advance(tier.live_hold_ms / 1000 + 1)  # the first is stuck now
    assert (await tier.stock_left(SHOP, GAME, {REF: 16}, pending=True)).pending == {REF: 0}
    await tier.gate.give_back(SHOP, GAME, first.pieces + second.pieces)
    assert await buckets(tier) == [2] * BUCKETS


async def test_lost_buckets_are_rebuilt_from_sql_minus_the_survivors(
        hosts: list[ValueTier]) -> None:
    tier = hosts[0]
    await tier.ensure_stock(SHOP, GAME, {REF: 100})
    for i in range(30):
        hold = await tier.hold(PlayerRef(SHOP, GAME, f"u{i}", 0), f"k{i}", f"c{i}",
                               outcome(), StockView(), {REF: 100})
        await tier.confirm(hold)
    before = await buckets(tier)
    assert sum(before) == 70
    # A cluster node lost its data: buckets 1, 4 and 6 are gone, the others survive.
    await tier.redis.delete(*(tier.gate.stock_key(SHOP, GAME, b) for b in (1, 4, 6)))
    view = await hosts[1].stock_left(SHOP, GAME, {REF: 100})
    assert view.left[REF] == 70  # exact: SQL left (70) minus the survivors' units
    after = await buckets(tier)
    assert [after[b] for b in (0, 2, 3, 5, 7)] == [before[b] for b in (0, 2, 3, 5, 7)]
    # Everything lost: dealt again from SQL.
    await tier.redis.flushall()
    assert (await tier.stock_left(SHOP, GAME, {REF: 100})).left[REF] == 70
    assert await buckets(tier) == deal(70, BUCKETS)


async def test_set_stock_removal_spans_buckets_once_per_key(hosts: list[ValueTier]) -> None:
    tier = hosts[0]
    epochs = await tier.ensure_stock(SHOP, GAME, {REF: 16})  # 2 per bucket
    assert await tier.apply_stock_change(SHOP, GAME, "rm", epochs, REF, -7, 60_000) == 1
    assert sum(await buckets(tier)) == 9 and min(await buckets(tier)) >= 0
    assert await tier.apply_stock_change(SHOP, GAME, "rm", epochs, REF, -7, 60_000) == 0
    assert sum(await buckets(tier)) == 9
    assert await tier.apply_stock_change(SHOP, GAME, "add", epochs, REF, 5, 60_000) == 1
    assert await tier.apply_stock_change(SHOP, GAME, "add", epochs, REF, 5, 60_000) == 0
    assert sum(await buckets(tier)) == 14
    await tier.redis.flushall()  # another generation: the change is SQL's to count
    assert await tier.apply_stock_change(SHOP, GAME, "x", epochs, REF, 5, 60_000) == -1


async def test_a_removal_of_units_held_in_flight_still_counts_once_they_come_back(
        hosts: list[ValueTier]) -> None:
    """``setStock`` removes units that draws in flight hold (the buckets have fewer than
    it removes). SQL's lower total refuses those draws and their units go back to the
    gate; the removal must outlast that, so the gate ends at SQL's total − taken, never
    above it (a prize disclosed and drawn that SQL no longer has)."""
    tier = hosts[0]
    await tier.ensure_stock(SHOP, GAME, {REF: 4})
    deadline = int(tier.clock.now() * 1000) + tier.hold_ttl_ms
    flight = await tier.gate.reserve(SHOP, GAME, "in-flight", deadline, {REF: 3})
    assert flight.missing == {}  # a hold's gate step: 3 units taken, SQL not yet asked
    assert (await tier.add_stock(SHOP, GAME, REF, -3))["left"] == 1  # SQL: total 1
    assert (await tier.stock_left(SHOP, GAME, {REF: 4})).left == {REF: 0}  # never below 0
    await tier.gate.give_back(SHOP, GAME, flight.pieces)  # SQL refused them (total 1)
    assert (await tier.stock_left(SHOP, GAME, {REF: 4})).left == {REF: 1}
    assert sum(await buckets(tier)) == 1
    await tier.confirm(await tier.hold(PlayerRef(SHOP, GAME, "u1", 0), "k1", "c1", outcome(),
                                       StockView(), {REF: 4}))
    with pytest.raises(StockShort) as short:
        await tier.hold(PlayerRef(SHOP, GAME, "u2", 0), "k2", "c2", outcome(), StockView(),
                        {REF: 4})
    assert short.value.left == 0
    assert sum(await buckets(tier)) == 0 and await sql_row(tier) == (1, 1, 1)


def removal_owed_elsewhere(tier: ValueTier, home: int) -> str:
    """A setStock key whose removal ends (below 0) on a bucket other than ``home``."""
    return next(k for k in (f"rm{i}" for i in range(100))
                if (tier.gate.home(k) - 1) % BUCKETS != home)


async def test_units_coming_back_pay_what_another_bucket_owes_first(
        hosts: list[ValueTier]) -> None:
    """A removal of units in flight leaves the last bucket it asks below 0; the units
    SQL then refuses come back to their own bucket. They pay the debt first: left
    there, a burst drew them (one bucket looked fine) and reached SQL to be refused."""
    tier = hosts[0]
    epochs = await tier.ensure_stock(SHOP, GAME, {REF: 16})  # 2 per bucket
    deadline = int(tier.clock.now() * 1000) + tier.hold_ttl_ms
    flight = await tier.gate.reserve(SHOP, GAME, "in-flight", deadline, {REF: 2})
    home = tier.gate.home("in-flight")
    assert [(p.bucket, p.units) for p in flight.pieces] == [(home, {REF: 2})]
    key = removal_owed_elsewhere(tier, home)
    async with tier.db.begin() as conn:  # setStock -15: SQL total 1, 1 left
        assert (await tier.change_stock_in(conn, SHOP, GAME, REF, -15))["left"] == 1
    assert await tier.apply_stock_change(SHOP, GAME, key, epochs, REF, -15, 60_000) == 1
    owed = (tier.gate.home(key) - 1) % BUCKETS
    assert await buckets(tier) == [-1 if b == owed else 0 for b in range(BUCKETS)]
    await tier.gate.give_back(SHOP, GAME, flight.pieces)  # SQL refused them: 2 > 1 left
    assert await buckets(tier) == [1 if b == home else 0 for b in range(BUCKETS)]
    burst = await asyncio.gather(*(tier.gate.reserve(SHOP, GAME, f"b{i}", deadline, {REF: 1})
                                   for i in range(6)))
    assert sum(not t.missing for t in burst) == 1  # what SQL has left: none refused there
    await asyncio.gather(*(tier.gate.give_back(SHOP, GAME, t.pieces) for t in burst))
    assert await buckets(tier) == [1 if b == home else 0 for b in range(BUCKETS)]
    assert sum(await buckets(tier)) == (await tier.stock_left(SHOP, GAME, {REF: 16})).left[REF]


async def test_the_reconciler_pays_debts_left_over_and_ends_moves_of_dead_movers(
        hosts: list[ValueTier]) -> None:
    """What no mover finished (a previous release's host gave units back to their own
    bucket; a mover died between its two scripts) is settled by the reconciler's pass:
    the buckets end at their sum, none below 0, each unit counted once."""
    tier = hosts[0]
    epochs = await tier.ensure_stock(SHOP, GAME, {REF: 24})  # 3 per bucket
    deadline = int(tier.clock.now() * 1000) + tier.hold_ttl_ms
    flight = await tier.gate.reserve(SHOP, GAME, "in-flight", deadline, {REF: 3})
    home = tier.gate.home("in-flight")
    key = removal_owed_elsewhere(tier, home)
    owed = (tier.gate.home(key) - 1) % BUCKETS
    async with tier.db.begin() as conn:  # SQL total 2, 2 left; the gate owes 1
        await tier.change_stock_in(conn, SHOP, GAME, REF, -22)
    await tier.apply_stock_change(SHOP, GAME, key, epochs, REF, -22, 60_000)
    for piece in flight.pieces:  # given back as a previous release does: no debt paid
        await tier.gate.end_hold(SHOP, GAME, piece.bucket, piece.member, True)
    assert (await buckets(tier))[home] == 3 and (await buckets(tier))[owed] == -1
    assert await tier.reconcile_holds() == (0, 0)
    assert await buckets(tier) == [2 if b == home else 0 for b in range(BUCKETS)]
    # Two movers die: one after its giver's step (the unit is in neither bucket), one
    # after the receiver's (the unit is in both, the giver still holding it).
    moves = [(await tier.gate._take(SHOP, GAME, home, f"pay.{owed}.{t}", deadline,
                                    {REF: 1}))[0] for t in ("dead1", "dead2")]
    assert moves[0] is not None and moves[1] is not None
    assert await tier.gate.pay(SHOP, GAME, moves[1], epochs.split(",")[owed]) == "ok"
    assert await buckets(tier) == [1 if b == owed else 0 for b in range(BUCKETS)]
    assert await tier.gate.in_flight(SHOP, GAME, [REF]) == {REF: 0}  # no attempt's units
    assert await tier.reconcile_holds() == (0, 0)  # not due yet
    assert isinstance(tier.clock, ManualClock)
    tier.clock.advance(tier.hold_ttl_ms / 1000 + 1)
    assert await tier.reconcile_holds() == (1, 1)  # the first given back, the second not
    assert await buckets(tier) == [1 if b in (home, owed) else 0 for b in range(BUCKETS)]
    assert await sql_row(tier) == (2, 0, 0)
