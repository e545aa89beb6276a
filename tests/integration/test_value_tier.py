"""The value tier gives its Redis units back whatever makes the SQL step fail, and a
key that already holds a live grant is refused as already applied (never twice)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gameserver.appkeys import VALUE
from gameserver.db import models as m
from gameserver.db.database import CommitUnknown
from gameserver.http.errors import Busy
from gameserver.state.keys import PlayerRef
from gameserver.state.value import HOLD_TTL_MS, GrantAlreadyMade, StockView, ValueTier
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState
from tests.integration.test_boxes_http import BOX_CONFIG

TOTALS = {"prize:coupon_x": 100}
REF = PlayerRef("boxshop", "squirrel", "alice", 0)


def outcome() -> Outcome:
    return Outcome(state=PlayerState(created_at=0), response={},
                   reservations=[StockHold("prize:coupon_x", 1)],
                   grants=[ValueGrant("prize:coupon_x", "coupon", "draw:forest", {
                       "reservation": "prize:coupon_x", "series": "forest", "position": 0,
                       "value": {"type": "coupon"}})])


class VoidAnswerLost(ValueTier):
    """SQL commits the void, and its answer is lost (CommitUnknown), as at a PostgreSQL
    midnight where a COMMIT went unanswered within the bound."""

    async def _settle(self, commit_ids: Any, status: str, db: Any = None,
                      at_ms: int | None = None) -> Any:
        counts = await (super()._settle(commit_ids, status, db) if at_ms is None
                        else super()._settle(commit_ids, status, db, at_ms))
        if status == "void":
            raise CommitUnknown("no answer to COMMIT within 1.5 s")
        return counts


class HangingSQL(ValueTier):
    async def _try_sql(self, *args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("the database did not answer")


@pytest.fixture
async def tier(world: Any) -> ValueTier:
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    value: ValueTier = world.client.app[VALUE]
    await value.ensure_stock("boxshop", "squirrel", TOTALS)
    return value


async def left(tier: ValueTier) -> int:
    return (await tier.stock_left("boxshop", "squirrel", TOTALS)).left["prize:coupon_x"]


async def test_a_hanging_sql_step_gives_the_units_back(tier: ValueTier) -> None:
    hanging = HangingSQL(tier.redis, tier.keys, tier.db, tier.clock, tier.shards)
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
        tier: ValueTier, world: Any) -> None:
    """A cancel (the player commit lost a race) whose void COMMIT took effect without an
    answer still gives the gate its unit: the reconciler releases only rows it voids
    itself, so before, the gate stayed one below SQL for good (a flash sale with 8 units
    left in SQL offered 7)."""
    lossy = VoidAnswerLost(tier.redis, tier.keys, tier.db, tier.clock, tier.shards)
    hold = await lossy.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    assert await left(tier) == 99
    await lossy.cancel(hold)  # the outcome is known from the rows: nothing to raise
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


async def test_a_settled_attempt_leaves_no_hold(tier: ValueTier, world: Any) -> None:
    hold = await tier.hold(REF, "k1", "c1", outcome(), StockView(), TOTALS)
    await tier.confirm(hold)
    hanging = HangingSQL(tier.redis, tier.keys, tier.db, tier.clock, tier.shards)
    with pytest.raises(Busy):
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
