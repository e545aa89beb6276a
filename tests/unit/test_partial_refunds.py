"""Partial refunds (部分退款): each refund id applies once, purchase tasks give back what
the rest of the order no longer earns, refunds are clamped at the paid amount, a whole
refund after them takes what is left, and refunds that come before the payment count."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.errors import InvalidInput, TooManyRefunds
from mechanics import refunds as r
from mechanics import tasks as t
from mechanics.flashsale import paid_orders
from mechanics.orders import apply_paid_order
from mechanics.orderstate import OrderRecord
from mechanics.state import PlayerState
from tests.unit.factory import T0, NoRng, config

SH = ZoneInfo("Asia/Shanghai")
DAY = 86_400
RNG = NoRng()
TASKS = {
    "spend100": {"name": "Spend ¥100", "kind": "purchase", "limit": 3, "spend_fen": 10_000,
                 "reward": {"currency": {"acorn": 10}}},
    "big": {"name": "One order of ¥200", "kind": "purchase", "min_order_fen": 20_000,
            "reward": {"currency": {"gem": 5}}},
}
CFG = config(tasks=TASKS)


def pay(state: PlayerState | None, oid: str, fen: int, now: int = T0) -> t.Outcome:
    return apply_paid_order(state, t.Order(oid, fen), now, RNG, CFG, tz=SH)


def part(state: PlayerState | None, oid: str, rid: str, fen: int,
         now: int = T0 + 60) -> t.Outcome:
    return r.apply_partial_refund(state, r.PartialRefund(oid, rid, fen), now, RNG, CFG, tz=SH)


def whole(state: PlayerState | None, oid: str, now: int = T0 + 120) -> t.Outcome:
    return t.apply_refund(state, t.Refund(oid), now, RNG, CFG, tz=SH)


def rows(out: t.Outcome) -> list[tuple[str, dict[str, object]]]:
    return [(rec.table, dict(rec.fields)) for rec in out.records]


def test_a_spend_task_gives_back_what_the_rest_no_longer_supports_once() -> None:
    paid = pay(None, "A", 30_000)
    assert paid.response["tasks"] == {"spend100": 3, "big": 1}
    assert paid.state.wallet["acorn"] == 130
    out = part(paid.state, "A", "r1", 10_000)
    assert out.response == {"order": "A", "refund": "r1", "known": True, "duplicate": False,
                            "amount_fen": 10_000, "clamped": False, "refunded_fen": 10_000,
                            "remaining_fen": 20_000, "refunded": False,
                            "taken_back": {"spend100": 1, "big": 0}, "debt": {}}
    assert out.state.wallet["acorn"] == 120 and out.state.wallet["gem"] == 5
    prog = out.state.tasks["spend100"]
    assert (prog.count, prog.spend) == (2, 20_000)
    assert [(e.name, e.delta) for e in out.ledger] == [("acorn", -10)]
    assert rows(out) == [("order_refunds", {"order_id": "A", "refund_id": "r1",
                                            "amount_fen": 10_000})]
    record = out.state.orders["A"]
    assert (record.refunded_fen, record.refunds, record.refunded) == (10_000, ["r1"], False)
    assert record.tasks["spend100"][1] == 2 and record.given["spend100"] == {
        "currency:acorn": 20, "coupon:": 0}
    again = part(out.state, "A", "r1", 10_000, T0 + 90)
    assert again.response == {**out.response, "duplicate": True, "amount_fen": 0,
                              "taken_back": {}}
    assert again.ledger == [] and again.records == []
    assert again.state.to_wire() == out.state.to_wire()


def test_a_per_order_task_is_kept_while_the_rest_qualifies() -> None:
    paid = pay(None, "A", 30_000)
    kept = part(paid.state, "A", "r1", 5_000)
    assert kept.response["taken_back"] == {"spend100": 1, "big": 0}
    assert kept.state.wallet["gem"] == 5 and kept.state.tasks["big"].count == 1
    assert kept.response["remaining_fen"] == 25_000
    below = part(kept.state, "A", "r2", 6_000, T0 + 70)
    assert below.response["taken_back"] == {"spend100": 1, "big": 1}
    assert below.response["remaining_fen"] == 19_000
    assert below.state.wallet["gem"] == 0 and below.state.tasks["big"].count == 0
    assert below.state.wallet["acorn"] == 110 and below.state.tasks["spend100"].count == 1
    later = part(below.state, "A", "r3", 1_000, T0 + 80)  # the task has nothing more to give
    assert later.response["taken_back"] == {"spend100": 0, "big": 0}
    assert later.state.wallet["gem"] == 0


def test_refunds_beyond_the_paid_amount_are_clamped_and_refund_the_order() -> None:
    paid = pay(None, "A", 30_000)
    first = part(paid.state, "A", "r1", 20_000)
    over = part(first.state, "A", "r2", 15_000, T0 + 70)
    assert over.response == {"order": "A", "refund": "r2", "known": True, "duplicate": False,
                             "amount_fen": 10_000, "clamped": True, "refunded_fen": 30_000,
                             "remaining_fen": 0, "refunded": True,
                             "taken_back": {"spend100": 1, "big": 0}, "debt": {}}
    assert first.response["taken_back"] == {"spend100": 2, "big": 1}
    assert rows(over) == [("order_refunds", {"order_id": "A", "refund_id": "r2",
                                             "amount_fen": 10_000})]
    assert over.state.wallet["acorn"] == 100 and over.state.wallet["gem"] == 0
    assert over.state.orders["A"].refunded and paid_orders(over.state) == 0
    nothing = part(over.state, "A", "r3", 5_000, T0 + 80)
    assert nothing.response["amount_fen"] == 0 and nothing.response["clamped"] is True
    assert nothing.response["duplicate"] is False and nothing.records == []
    assert nothing.state.orders["A"].refunds == ["r1", "r2"]
    assert whole(over.state, "A").response["duplicate"] is True  # as after a whole refund


def test_a_whole_refund_after_partial_ones_takes_back_what_is_left() -> None:
    paid = pay(None, "A", 30_000)
    first = part(paid.state, "A", "r1", 10_000)
    rest = whole(first.state, "A")
    assert rest.response == {"order": "A", "known": True, "duplicate": False,
                             "taken_back": {"spend100": 2, "big": 1}, "debt": {}}
    assert rows(rest) == [("order_events", {"order_id": "A", "kind": "refunded",
                                            "amount_fen": 20_000})]
    assert rest.state.wallet["acorn"] == 100 and rest.state.wallet["gem"] == 0
    prog = rest.state.tasks["spend100"]
    assert (prog.count, prog.spend) == (0, 0)
    late = part(rest.state, "A", "r2", 1_000, T0 + 200)
    assert late.response["amount_fen"] == 0 and late.ledger == []


def test_what_was_spent_is_owed_and_never_more_than_the_order_gave() -> None:
    """The order gave 5 of its 30 acorns (the wallet's limit kept the rest): its refunds
    take back 5 at most, in all; what was spent is debt."""
    full = PlayerState(created_at=T0, wallet={"acorn": 995})
    paid = pay(full, "A", 30_000)
    assert paid.state.wallet["acorn"] == 1000
    assert paid.state.orders["A"].given["spend100"] == {"currency:acorn": 5, "coupon:": 0}
    paid.state.wallet["acorn"] = 2  # spent
    first = part(paid.state, "A", "r1", 10_000)
    assert first.response["debt"] == {"currency:acorn": 3}
    assert first.state.wallet["acorn"] == 0 and first.state.debts == {"currency:acorn": 3}
    assert first.state.orders["A"].given["spend100"] == {"currency:acorn": 0, "coupon:": 0}
    rest = whole(first.state, "A")
    assert rest.response["taken_back"] == {"spend100": 2, "big": 1}
    assert rest.response["debt"] == {}  # nothing more of the acorns given is left to owe
    assert rest.state.debts == {"currency:acorn": 3} and rest.state.wallet["gem"] == 0


def test_after_the_period_the_order_keeps_what_the_rest_alone_supports() -> None:
    paid = pay(pay(None, "A", 30_000).state, "B", 100, T0 + DAY)  # a new day's progress
    out = part(paid.state, "A", "r1", 10_000, T0 + DAY + 60)
    assert out.response["taken_back"] == {"spend100": 1, "big": 0}
    assert out.state.wallet["acorn"] == 120
    prog = out.state.tasks["spend100"]
    assert (prog.count, prog.spend) == (0, 100)  # today's, which the order is not part of


def test_a_partial_refund_before_the_payment_counts_when_it_comes() -> None:
    early = part(None, "A", "r1", 10_000)
    assert early.response == {"order": "A", "refund": "r1", "known": False,
                              "duplicate": False, "amount_fen": 10_000, "clamped": False,
                              "refunded_fen": 10_000, "refunded": False, "taken_back": {},
                              "debt": {}}
    assert rows(early) == []  # petbox does not know the order: its payment writes it
    assert paid_orders(early.state) == 0  # not paid: it counts for no eligibility
    paid = pay(early.state, "A", 30_000, T0 + 100)
    assert paid.response == {"order": "A", "duplicate": False,
                             "tasks": {"spend100": 2, "big": 1}, "refunded_fen": 10_000}
    assert rows(paid) == [
        ("order_events", {"order_id": "A", "kind": "paid", "amount_fen": 30_000}),
        ("order_refunds", {"order_id": "A", "refund_id": t.EARLY_REFUNDS,
                           "amount_fen": 10_000})]
    assert paid.state.tasks["spend100"].spend == 20_000 and paid_orders(paid.state) == 1
    assert part(paid.state, "A", "r1", 10_000).response["duplicate"] is True
    rest = part(paid.state, "A", "r2", 20_000, T0 + 200)
    assert rest.response["refunded"] is True and rest.response["taken_back"] == {
        "spend100": 2, "big": 1}
    assert rest.state.wallet == {"acorn": 100, "gem": 0}


def test_refunds_before_the_payment_that_return_all_of_it() -> None:
    early = part(None, "A", "r1", 40_000)
    paid = pay(early.state, "A", 30_000, T0 + 100)
    assert paid.response == {"order": "A", "duplicate": False, "tasks": {},
                             "refunded_fen": 30_000, "refunded": True}
    assert paid.ledger == [] and paid.state.orders["A"].refunded
    tombstone = whole(part(None, "B", "r1", 100).state, "B")
    assert tombstone.response == {"order": "B", "known": False, "taken_back": {}, "debt": {}}
    assert tombstone.records == []
    late = pay(tombstone.state, "B", 30_000, T0 + 300)
    assert late.response["duplicate"] is True and late.ledger == []


def test_refund_ids_are_bounded_and_amounts_checked() -> None:
    state = pay(None, "A", 30_000).state
    for i in range(r.MAX_REFUNDS):
        state = part(state, "A", f"r{i}", 1).state
    with pytest.raises(TooManyRefunds) as e:
        part(state, "A", "one-more", 1)
    assert e.value.details == {"order_id": "A", "limit": r.MAX_REFUNDS}
    assert part(state, "A", "r0", 1).response["duplicate"] is True
    with pytest.raises(InvalidInput):
        part(None, "A", "r1", 0)


def test_the_order_record_wire_stays_small_and_reads_old_states() -> None:
    plain = pay(None, "A", 30_000).state.orders["A"]
    # the terms each task had when the order counted, after the fields older hosts read
    assert plain.to_wire()[6:] == [0, [], {"spend100": [3, 10_000, 0], "big": [1, 0, 20_000]}]
    assert OrderRecord.from_wire([T0, 100, 0, {}]) == OrderRecord(T0, 100)
    refunded = part(pay(None, "A", 30_000).state, "A", "r1", 10_000).state
    record = refunded.orders["A"]
    assert record.to_wire()[6:8] == [10_000, ["r1"]]
    assert PlayerState.from_wire(refunded.to_wire()).orders["A"] == record


EVENTS = st.lists(st.tuples(st.sampled_from(["pay", "part", "whole", "spend"]),
                            st.integers(min_value=0, max_value=3),
                            st.integers(min_value=0, max_value=40_000),
                            st.integers(min_value=0, max_value=DAY // 3)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_refunds_never_pass_the_order_nor_go_negative(
        events: list[tuple[str, int, int, int]]) -> None:
    """Whatever the order of payments, partial and whole refunds and spending: balances,
    debts and task progress never go negative, a paid order's refunds never pass its
    amount, and its refund rows (what GMV nets) neither."""
    state = PlayerState(created_at=T0, wallet={"acorn": 0, "gem": 0})
    now, paid_first, netted = T0, {}, {}
    for kind, n, fen, wait in events:
        now += wait
        oid = f"o{n}"
        if kind == "pay":
            out = pay(state, oid, fen, now)
        elif kind == "part":
            out = part(state, oid, f"r{fen % 4}", fen or 1, now)
        elif kind == "whole":
            out = whole(state, oid, now)
        else:
            state.wallet["acorn"] = max(0, state.wallet["acorn"] - fen % 30)
            continue
        for rec in out.records:
            fields = dict(rec.fields)
            if fields.get("kind") == "paid":
                assert oid not in paid_first  # an order is paid once
                paid_first[oid] = int(str(fields["amount_fen"]))
            else:  # a whole refund's row, or a partial one's (order_refunds)
                netted[oid] = netted.get(oid, 0) + int(str(fields["amount_fen"]))
        state = out.state
        assert all(v >= 0 for v in state.wallet.values())
        assert all(v > 0 for v in state.debts.values())
        assert all(p.count >= 0 and p.spend >= 0 for p in state.tasks.values())
        for record in state.orders.values():  # a tombstone (amount 0) keeps what came
            assert record.amount == 0 or record.refunded_fen <= record.amount
    assert netted.keys() <= paid_first.keys()  # no refund row of an order never paid
    for oid, amount in paid_first.items():
        assert netted.get(oid, 0) <= amount


HELD = {
    "daily": {"name": "Spend ¥99 a day", "kind": "purchase", "limit": 2, "spend_fen": 9_900,
              "reward": {"items": {"fig_a": 1}, "coupon": "c10"}},
    "weekly": {"name": "Spend ¥50 a week in ¥80 orders", "kind": "purchase",
               "period": "weekly", "limit": 3, "spend_fen": 5_000, "min_order_fen": 8_000,
               "reward": {"items": {"fig_b": 1}, "coupon": "c20"}},
    "any": {"name": "An order of ¥30", "kind": "purchase", "limit": 2, "min_order_fen": 3_000,
            "reward": {"currency": {"gem": 1}, "coupon": "c10"}},
}
"""each task's reward its own balance, which nothing else gives (and no limit caps);
two of them the same coupon (a coupon's debt is the shopper's, whichever task owes it)"""
HELD_KEYS = {"daily": "item:fig_a", "weekly": "item:fig_b", "any": "currency:gem"}
COUPONS = {"c10": {"name": "¥10 off", "value_fen": 1000, "stock": 100},
           "c20": {"name": "¥20 off", "value_fen": 2000, "stock": 100}}
STEPS = st.lists(st.tuples(st.sampled_from(["pay", "pay", "part", "whole", "spend"]),
                           st.integers(min_value=0, max_value=2),
                           st.sampled_from([1, 3_000, 5_000, 8_000, 9_900, 15_000])
                           | st.integers(min_value=1, max_value=25_000),
                           st.sampled_from([0, 60, DAY // 2, DAY]),
                           st.frozensets(st.sampled_from(list(COUPONS)))), max_size=25)
"""(what happens, to which order, how many fen, after how long, the coupons out of stock
when an order is paid)"""


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_no_completion_is_taken_back_twice_and_all_come_back_when_all_is_refunded(
        steps: list[tuple[str, int, int, int, frozenset[str]]]) -> None:
    """Whatever the orders, whole and partial refunds, days, spending and coupons out of
    stock: what a task gave less what its refunds took back (or recorded as debt) is
    never below 0, is exactly what the orders that still count hold, and is 0 once all
    are refunded. A coupon (never taken back: owed) is never owed beyond those issued,
    and all are owed once all is refunded, whichever orders' completions passed on."""
    cfg = config(tasks=HELD, coupons=COUPONS)
    state = PlayerState(created_at=T0, wallet={"gem": 0})
    now, spent = T0, dict.fromkeys(HELD_KEYS.values(), 0)
    issued = {f"coupon:{c}": 0 for c in COUPONS}

    def net(key: str) -> int:  # what the task's reward gave, less what was taken back
        kind, name = key.split(":")
        balance = (state.wallet if kind == "currency" else state.inventory).get(name, 0)
        return balance + spent[key] - state.debts.get(key, 0)

    def paid(oid: str, fen: int, out: frozenset[str] = frozenset()) -> PlayerState:
        outcome = apply_paid_order(state, t.Order(oid, fen), now, RNG, cfg, tz=SH,
                                   coupons_out=out)
        for g in outcome.grants:
            if g.reason.startswith(f"order:{oid}:") and g.ref in issued:
                issued[g.ref] += g.units
        return outcome.state

    def check() -> None:
        for tid, key in HELD_KEYS.items():
            held = sum(rec.tasks[tid][1] for rec in state.orders.values()
                       if rec.live and tid in rec.tasks)
            assert net(key) == held >= 0
        for key, n in issued.items():
            assert state.debts.get(key, 0) <= n

    for i, (kind, n, fen, wait, out) in enumerate(steps):
        now += wait
        if kind == "pay":
            state = paid(f"o{n}", fen, out)
        elif kind == "part":
            state = r.apply_partial_refund(state, r.PartialRefund(f"o{n}", f"r{i}", fen), now,
                                           RNG, cfg, tz=SH).state
        elif kind == "whole":
            state = t.apply_refund(state, t.Refund(f"o{n}"), now, RNG, cfg, tz=SH).state
        else:  # the shopper spends some of a reward: a refund owes what it cannot take
            key = list(HELD_KEYS.values())[n % 3]
            kind_, name = key.split(":")
            balances = state.wallet if kind_ == "currency" else state.inventory
            used = min(balances.get(name, 0), fen % 3)
            if used:
                balances[name] -= used
                spent[key] += used
                if not balances[name] and kind_ == "item":
                    del balances[name]
        check()
    now += DAY  # a new day's order starts the day's progress: older orders stand alone
    state = paid("last", 9_000)
    for oid in ["o0", "o1", "o2", "last"]:
        now += 60
        state = t.apply_refund(state, t.Refund(oid), now, RNG, cfg, tz=SH).state
        check()
    assert all(net(key) == 0 for key in HELD_KEYS.values())
    assert {key: state.debts.get(key, 0) for key in issued} == issued


ANY = {"any": {"name": "Any order", "kind": "purchase", "reward": {"currency": {"gem": 1}}}}


def test_a_partial_refund_of_a_0_fen_order_changes_nothing() -> None:
    """A 0-fen order (no amount_fen) has nothing to return: a partial refund neither
    refunds it wholly nor takes its task's reward back."""
    cfg = config(tasks=ANY)
    paid = apply_paid_order(None, t.Order("Z", 0), T0, RNG, cfg, tz=SH)
    assert paid.response["tasks"] == {"any": 1} and paid.state.wallet["gem"] == 1
    out = r.apply_partial_refund(paid.state, r.PartialRefund("Z", "r1", 500), T0 + 60, RNG,
                                 cfg, tz=SH)
    assert out.response == {"order": "Z", "refund": "r1", "known": True, "duplicate": False,
                            "amount_fen": 0, "clamped": True, "refunded_fen": 0,
                            "remaining_fen": 0, "refunded": False, "taken_back": {},
                            "debt": {}}
    assert out.ledger == [] and out.records == []
    assert out.state.to_wire() == paid.state.to_wire()
    # the same refund before the payment: the order still counts when it comes
    early = r.apply_partial_refund(None, r.PartialRefund("Z", "r1", 500), T0, RNG, cfg, tz=SH)
    late = apply_paid_order(early.state, t.Order("Z", 0), T0 + 60, RNG, cfg, tz=SH)
    assert late.response == {"order": "Z", "duplicate": False, "tasks": {"any": 1},
                             "refunded_fen": 0}
    assert late.state.wallet["gem"] == 1 and late.state.orders["Z"].live


def test_a_partial_refund_takes_back_what_the_days_spend_no_longer_reaches() -> None:
    """A ¥60 order, then another ¥60 that finishes the ¥100 spend task (it holds the
    completion): refunding ¥30 of the first leaves the day ¥90, so the completion goes
    back, taken from the order that held it; that order's refund takes nothing more."""
    first = pay(None, "A", 6_000)
    second = pay(first.state, "B", 6_000, T0 + 10)
    assert (first.response["tasks"], second.response["tasks"]) == (
        {"spend100": 0}, {"spend100": 1})
    out = part(second.state, "A", "r1", 3_000)
    assert out.response["taken_back"] == {"spend100": 1} and out.response["debt"] == {}
    assert out.state.wallet["acorn"] == 100
    prog = out.state.tasks["spend100"]
    assert (prog.count, prog.spend) == (0, 9_000)
    assert out.state.orders["A"].tasks["spend100"][1] == 0
    assert out.state.orders["B"].tasks["spend100"][1] == 0
    later = whole(pay(out.state, "C", 100, T0 + DAY).state, "B", T0 + DAY + 60)
    assert later.response["taken_back"] == {"spend100": 0} and later.ledger == []


def test_a_completion_taken_back_with_another_order_is_not_taken_again_in_part() -> None:
    """¥50 + ¥50 finish the task (B holds it); A's whole refund takes it back. The next
    day ¥1 of B is refunded: B's ¥49.99 alone never reached ¥100, but the completion is
    gone already, so nothing is taken (it was taken a second time)."""
    both = pay(pay(None, "A", 5_000).state, "B", 5_000, T0 + 10)
    out = whole(both.state, "A")
    assert out.response["taken_back"] == {"spend100": 1} and out.state.wallet["acorn"] == 100
    next_day = pay(out.state, "C", 100, T0 + DAY)  # starts the new day's progress
    later = part(next_day.state, "B", "r1", 1, T0 + DAY + 60)
    assert later.response["taken_back"] == {"spend100": 0} and later.ledger == []
    assert later.state.wallet["acorn"] == 100 and later.state.debts == {}


@pytest.mark.parametrize("orders", [
    [("A", 15_000), ("B", 5_000), ("C", 12_000)],  # A's refund takes C's completion too
    [("A", 30_000), ("B", 10_000)],  # B, which earned none (limit), keeps one of A's
], ids=["takes-from-others", "passes-to-others"])
@pytest.mark.parametrize("parts", [[100_000], [5_000, 100_000], [1, 4_999, 100_000]])
def test_partial_refunds_that_return_all_of_an_order_are_its_whole_refund(
        orders: list[tuple[str, int]], parts: list[int]) -> None:
    """Partial refunds reaching the paid amount (the last one clamped to what is left)
    leave what a whole refund leaves: the same balances, task progress and other
    orders' records; refunding the other orders the next day takes back the rest, once."""
    state: PlayerState | None = None
    for i, (oid, fen) in enumerate(orders):
        state = pay(state, oid, fen, T0 + i).state
    assert state is not None and state.wallet == {
        "acorn": 130, "gem": 5 if orders[0][1] >= 20_000 else 0}
    at_once = whole(state, "A")
    wholly, split, taken = at_once.state, state, dict.fromkeys(state.orders["A"].tasks, 0)
    for i, fen in enumerate(parts):
        out = part(split, "A", f"r{i}", fen, T0 + 60 + i)
        split = out.state
        taken = {k: taken[k] + out.response["taken_back"].get(k, 0) for k in taken}
    assert split.orders["A"].refunded
    assert wholly.wallet == split.wallet == {"acorn": 110, "gem": 0}
    assert taken == at_once.response["taken_back"]
    assert wholly.debts == split.debts == {}
    assert wholly.tasks["spend100"] == split.tasks["spend100"]
    others = [oid for oid, _ in orders[1:]]
    assert [wholly.orders[o] for o in others] == [split.orders[o] for o in others]
    for end in (wholly, split):
        end = pay(end, "D", 100, T0 + DAY).state  # the new day's progress
        for oid in [*others, "D"]:
            end = whole(end, oid, T0 + DAY + 60).state
        assert end.wallet == {"acorn": 100, "gem": 0} and end.debts == {}


def test_a_spend_task_loses_an_order_left_below_its_min_order_fen() -> None:
    """Spend ¥100 in orders of ¥200 or more: a ¥300 order earned 3; refunding ¥150 of
    it leaves ¥150, which no longer counts at all, so all 3 go back, once."""
    cfg = config(tasks={"bigspend": {"name": "Spend in big orders", "kind": "purchase",
                                     "limit": 5, "spend_fen": 10_000, "min_order_fen": 20_000,
                                     "reward": {"currency": {"acorn": 10}}}})

    def refund(state: PlayerState, rid: str, fen: int, now: int) -> t.Outcome:
        return r.apply_partial_refund(state, r.PartialRefund("A", rid, fen), now, RNG, cfg,
                                      tz=SH)

    paid = apply_paid_order(None, t.Order("A", 30_000), T0, RNG, cfg, tz=SH)
    assert paid.response["tasks"] == {"bigspend": 3}
    out = refund(paid.state, "r1", 15_000, T0 + 60)
    assert out.response["taken_back"] == {"bigspend": 3}
    assert out.state.wallet["acorn"] == 100
    prog = out.state.tasks["bigspend"]
    assert (prog.count, prog.spend) == (0, 0)
    later = refund(out.state, "r2", 5_000, T0 + 70)
    assert later.response["taken_back"] == {} and later.ledger == []
    assert later.state.tasks["bigspend"].spend == 0


def test_a_partial_refund_after_a_whole_refund_tombstone_is_unknown_and_a_no_op() -> None:
    tomb = whole(None, "B")
    out = part(tomb.state, "B", "r1", 100, T0 + 200)
    assert out.response == {"order": "B", "refund": "r1", "known": False, "duplicate": False,
                            "amount_fen": 0, "clamped": True, "refunded_fen": 0,
                            "refunded": True, "taken_back": {}, "debt": {}}
    assert out.records == [] and out.state.to_wire() == tomb.state.to_wire()
    again = whole(tomb.state, "B", T0 + 2 * DAY)  # replayed after the reply cache's 24 h
    assert again.response == {"order": "B", "known": False, "duplicate": True,
                              "taken_back": {}, "debt": {}}


def test_a_wholly_refunded_order_answers_past_the_refund_limit() -> None:
    state = pay(None, "A", 30_000).state
    for i in range(r.MAX_REFUNDS):
        state = part(state, "A", f"r{i}", 1).state
    state = whole(state, "A").state
    out = part(state, "A", "one-more", 1, T0 + 300)
    assert (out.response["amount_fen"], out.response["refunded"]) == (0, True)
    assert out.records == [] and out.ledger == []


def test_a_partial_refund_of_an_order_petbox_forgot_writes_no_row() -> None:
    """Like a whole refund of it: the order is older than petbox keeps orders."""
    paid = pay(None, "A", 30_000)
    later = T0 + t.ORDER_KEEP_S + DAY
    gone = pay(paid.state, "B", 100, later)
    assert "A" not in gone.state.orders
    assert whole(gone.state, "A", later + 60).records == []
    out = part(gone.state, "A", "r1", 10_000, later + 60)
    assert out.records == [] and out.response["known"] is False
