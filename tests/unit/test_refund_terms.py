"""Refunds after the merchant edited a purchase task: a refund measures what the order
earned against the terms it counted with (kept in its record), so no edit makes a
refund take back more than the refunded amount paid for; records from a release that
did not keep them go by today's terms, bounded the same way."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mechanics import refunds as r
from mechanics import tasks as t
from mechanics.orders import apply_paid_order
from mechanics.orderstate import OrderRecord
from mechanics.state import PlayerState
from tests.unit.factory import T0, NoRng, config

SH = ZoneInfo("Asia/Shanghai")
RNG = NoRng()
SPEND = {"name": "Spend ¥100", "kind": "purchase", "limit": 3, "spend_fen": 10_000,
         "reward": {"currency": {"acorn": 10}}}
BIG = {"name": "One order of ¥200", "kind": "purchase", "min_order_fen": 20_000,
       "reward": {"currency": {"gem": 5}}}


def cfg(spend: dict[str, Any] | None = None, big: dict[str, Any] | None = None) -> Any:
    return config(tasks={"spend100": {**SPEND, **(spend or {})}, "big": {**BIG, **(big or {})}})


def pay(c: Any, state: PlayerState | None, oid: str, fen: int, now: int = T0) -> PlayerState:
    return apply_paid_order(state, t.Order(oid, fen), now, RNG, c, tz=SH).state


def part(c: Any, state: PlayerState, oid: str, fen: int) -> t.Outcome:
    return r.apply_partial_refund(state, r.PartialRefund(oid, "r1", fen), T0 + 60, RNG, c,
                                  tz=SH)


def previous_release(state: PlayerState) -> PlayerState:
    """The state as a host of the release before the terms were kept writes it back (it
    reads an order record's first 8 fields)."""
    wire = state.to_wire()
    back = PlayerState.from_wire(wire)
    back.orders = {oid: OrderRecord.from_wire(rec.to_wire()[:8])
                   for oid, rec in back.orders.items()}
    return back


EDITS = [({"limit": 1}, {}), ({"spend_fen": 20_000}, {}), ({"min_order_fen": 40_000}, {}),
         ({}, {"min_order_fen": 50_000})]


@pytest.mark.parametrize("kept", [True, False], ids=["terms-kept", "older-record"])
@pytest.mark.parametrize(("spend", "big"), EDITS,
                         ids=["limit-lowered", "spend_fen-raised", "min-raised", "per-order-min"])
def test_a_task_edited_after_payment_takes_back_what_the_refund_paid_for(
        spend: dict[str, Any], big: dict[str, Any], kept: bool) -> None:
    state = pay(cfg(), None, "A", 30_000)  # 3 completions (30 acorns) and the gems
    assert state.wallet == {"acorn": 130, "gem": 5}
    state = state if kept else previous_release(state)
    out = part(cfg(spend, big), state, "A", 1)  # 1 fen of ¥300: one ¥100 completion at most
    assert out.response["taken_back"] == {"spend100": 1, "big": 0}
    assert out.state.wallet == {"acorn": 120, "gem": 5}
    rest = t.apply_refund(out.state, t.Refund("A"), T0 + 120, RNG, cfg(spend, big), tz=SH)
    assert rest.response["taken_back"] == {"spend100": 2, "big": 1}  # all of it, once
    assert rest.state.wallet == {"acorn": 100, "gem": 0}


def test_a_refund_of_an_order_that_earned_nothing_takes_nothing_after_a_limit_cut() -> None:
    state = pay(cfg(), pay(cfg(), None, "A", 30_000), "B", 10_000, T0 + 10)  # B: limit reached
    assert state.orders["B"].tasks["spend100"][1] == 0 and state.wallet["acorn"] == 130
    out = t.apply_refund(state, t.Refund("B"), T0 + 60, RNG, cfg({"limit": 1}), tz=SH)
    assert out.response["taken_back"] == {"spend100": 0}  # B is below "big"
    assert out.state.wallet["acorn"] == 130 and out.state.orders["A"].tasks["spend100"][1] == 3


COUPONS = {"c10": {"name": "¥10 off", "value_fen": 1000, "stock": 100},
           "c20": {"name": "¥20 off", "value_fen": 2000, "stock": 100}}


def with_coupon(coupon: str) -> Any:
    reward = {"currency": {"acorn": 10}, **({"coupon": coupon} if coupon else {})}
    return config(tasks={"spend100": {**SPEND, "reward": reward}}, coupons=COUPONS)


@pytest.mark.parametrize(("then", "now", "owed"), [
    ("", "c10", {}),                # added after the payment: none was issued
    ("c10", "c20", {"coupon:c10": 3}),  # swapped: the coupons issued are owed
    ("c10", "", {"coupon:c10": 3}),     # removed: the same
], ids=["added", "swapped", "removed"])
def test_a_refund_owes_the_coupons_the_order_issued_whatever_the_reward_says_now(
        then: str, now: str, owed: dict[str, int]) -> None:
    paid = apply_paid_order(None, t.Order("A", 30_000), T0, RNG, with_coupon(then), tz=SH)
    assert [(g.ref, g.units) for g in paid.grants] == ([("coupon:c10", 3)] if then else [])
    out = t.apply_refund(paid.state, t.Refund("A"), T0 + 60, RNG, with_coupon(now), tz=SH)
    assert out.response["debt"] == owed and out.state.debts == owed
    part_of = r.apply_partial_refund(paid.state, r.PartialRefund("A", "r1", 10_000), T0 + 60,
                                     RNG, with_coupon(now), tz=SH)
    assert part_of.state.debts == {k: 1 for k in owed}  # one completion's coupon


def test_a_record_from_before_coupons_were_kept_owes_the_rewards_coupon() -> None:
    """Its ``given`` has no coupon key at all: each completion issued the reward's coupon
    unless it was out of stock (what the releases that wrote it owed)."""
    paid = apply_paid_order(None, t.Order("A", 30_000), T0, RNG, with_coupon(""), tz=SH)
    paid.state.orders["A"].given["spend100"].pop("coupon:", None)
    out = t.apply_refund(paid.state, t.Refund("A"), T0 + 60, RNG, with_coupon("c10"), tz=SH)
    assert out.state.debts == {"coupon:c10": 3}


def test_after_the_period_a_completion_orders_paid_for_together_stays_with_them() -> None:
    """A's refund leaves 1 completion that B and C (¥60 each) pay for together: it
    passes to C. The next day 1 fen of C leaves ¥119.99 of that day's orders: it stays,
    as it would have that day; C's whole refund then takes it back, B's nothing more."""
    c = cfg()
    state = pay(c, pay(c, pay(c, None, "A", 30_000), "B", 6_000, T0 + 10), "C", 6_000, T0 + 20)
    state = t.apply_refund(state, t.Refund("A"), T0 + 60, RNG, c, tz=SH).state
    assert state.orders["C"].tasks["spend100"][1] == 1 and state.wallet["acorn"] == 110
    state = pay(c, state, "D", 100, T0 + 86_400)  # the next day
    out = r.apply_partial_refund(state, r.PartialRefund("C", "r1", 1), T0 + 86_460, RNG, c,
                                 tz=SH)
    assert out.response["taken_back"] == {"spend100": 0} and out.state.wallet["acorn"] == 110
    out = t.apply_refund(out.state, t.Refund("C"), T0 + 86_520, RNG, c, tz=SH)
    assert out.response["taken_back"] == {"spend100": 1} and out.state.wallet["acorn"] == 100
    out = t.apply_refund(out.state, t.Refund("B"), T0 + 86_580, RNG, c, tz=SH)
    assert out.response["taken_back"] == {"spend100": 0} and out.state.wallet["acorn"] == 100
