"""Tasks: browse tickets, per-period limits, purchase tasks by order, refunds."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.config import GameConfig
from economy.errors import (
    InvalidInput,
    OrderTooOld,
    TaskDrivenByOrders,
    TaskLimitReached,
    TicketExpired,
    TicketInvalid,
    TicketReused,
    TicketTooEarly,
    UnknownItem,
)
from mechanics import tasks as t
from mechanics.state import PlayerState
from mechanics.taskstate import TaskProgress
from tests.unit.factory import T0, FixedRng, NoRng, config

SH = ZoneInfo("Asia/Shanghai")
DAY = 86_400
RNG = NoRng()
TODAY = date(2026, 1, 1).toordinal()
"""the period key of T0's local day (Shanghai)"""
TASKS = {
    "browse15": {"name": "Browse 15 s", "kind": "browse", "limit": 2, "browse_s": 15,
                 "reward": {"currency": {"acorn": 5}}},
    "follow": {"name": "Follow", "kind": "follow", "period": "once",
               "reward": {"currency": {"gem": 2}}},
    "group": {"name": "Join group", "kind": "join_group", "period": "weekly",
              "reward": {"items": {"ticket": 1}}},
    "buy_any": {"name": "Buy anything", "kind": "purchase", "limit": 3,
                "reward": {"currency": {"acorn": 5}}},
    "spend99": {"name": "Spend ¥99", "kind": "purchase", "period": "weekly", "limit": 2,
                "spend_fen": 9900, "reward": {"items": {"ticket": 1}}},
    "nuts": {"name": "Buy nuts", "kind": "purchase", "period": "once", "min_order_fen": 1000,
             "skus": ["SKU-NUTS"], "reward": {"coupon": "c10"}},
}
CFG = config(tasks=TASKS)


def started(now: int, nonce: int = 0xABC, state: PlayerState | None = None) -> t.Ticket:
    out = t.start_task(state, t.StartTask("browse15", "u1"), now, FixedRng(nonce), CFG, tz=SH)
    raw = out.response["ticket"]
    return t.Ticket(raw["task"], raw["player"], raw["issued_at"], raw["nonce"])


def complete(state: PlayerState | None, task: str, now: int,
             ticket: t.Ticket | None = None, player: str = "u1") -> t.Outcome:
    return t.complete_task(state, t.CompleteTask(task, ticket, player), now, RNG, CFG, tz=SH)


def test_start_returns_ticket_data_and_changes_nothing() -> None:
    state = PlayerState(created_at=T0, wallet={"acorn": 1})
    out = t.start_task(state, t.StartTask("browse15", "u1"), T0, FixedRng(0xABC), CFG, tz=SH)
    assert out.response == {"task": "browse15", "complete_after": T0 + 15, "ticket": {
        "task": "browse15", "player": "u1", "issued_at": T0, "nonce": "0000000000000abc"}}
    assert out.state.to_wire() == state.to_wire() and out.ledger == []
    follow = t.start_task(None, t.StartTask("follow", "u1"), T0, RNG, CFG, tz=SH)
    assert follow.response["ticket"] is None


@pytest.mark.parametrize(("dt", "ok"), [(14, False), (15, True)])
def test_browse_needs_n_seconds_of_server_time(dt: int, ok: bool) -> None:
    ticket = started(T0)
    if ok:
        out = complete(None, "browse15", T0 + dt, ticket)
        assert out.response["granted"] == {"currency": {"acorn": 5}, "items": {}}
        assert out.state.wallet["acorn"] == 105 and out.response["done"] == 1
    else:
        with pytest.raises(TicketTooEarly) as e:
            complete(None, "browse15", T0 + dt, ticket)
        assert e.value.details == {"ready_at": T0 + 15, "retry_after": 1}


def test_ticket_reuse_and_daily_limit() -> None:
    ticket = started(T0)
    state = complete(None, "browse15", T0 + 20, ticket).state
    with pytest.raises(TicketReused) as e:
        complete(state, "browse15", T0 + 40, ticket)
    assert e.value.details == {"nonce": "0000000000000abc"}
    state = complete(state, "browse15", T0 + 60, started(T0 + 30, 1)).state
    with pytest.raises(TaskLimitReached) as e2:
        t.start_task(state, t.StartTask("browse15", "u1"), T0 + 70, FixedRng(2), CFG, tz=SH)
    assert e2.value.details == {"task": "browse15", "limit": 2, "period": "daily"}
    with pytest.raises(TaskLimitReached):
        complete(state, "browse15", T0 + 80, started(T0 + 60, 3))
    # the next local day (Shanghai midnight) resets the limit
    out = complete(state, "browse15", T0 + DAY + 15, started(T0 + DAY, 4))
    assert out.response["done"] == 1 and out.state.tasks["browse15"].nonces == [
        "0000000000000004"]


def test_ticket_started_before_midnight_counts_on_its_day() -> None:
    ticket = started(T0 - 10)  # 2025-12-31 23:59:50 in Shanghai
    out = complete(None, "browse15", T0 + 5, ticket)  # 2026-01-01 00:00:05
    assert out.response["granted"] == {"currency": {"acorn": 5}, "items": {}}
    assert (out.response["done"], out.response["limit"]) == (1, 2)  # 2025-12-31's
    assert out.response["player"]["tasks"]["browse15"]["done"] == 0  # today's
    assert out.state.tasks["browse15"] == TaskProgress(
        TODAY - 1, 1, 0, ["0000000000000abc"], prev=TaskProgress(0))
    with pytest.raises(TicketReused):
        complete(out.state, "browse15", T0 + 6, ticket)
    state = complete(out.state, "browse15", T0 + 30, started(T0 + 10, 1)).state
    out = complete(state, "browse15", T0 + 50, started(T0 + 20, 2))
    assert out.response["done"] == 2 and out.state.wallet["acorn"] == 115
    assert out.state.tasks["browse15"] == TaskProgress(
        TODAY, 2, 0, ["0000000000000001", "0000000000000002"],
        prev=TaskProgress(TODAY - 1, 1, 0, ["0000000000000abc"]))
    with pytest.raises(TaskLimitReached):  # today's two are done
        complete(out.state, "browse15", T0 + 70, started(T0 + 50, 3))


def test_ticket_of_yesterday_after_todays_completions_and_yesterdays_limit() -> None:
    late = started(T0 - 60, 7)  # 23:59:00, while yesterday's task was not done
    state = complete(None, "browse15", T0 - 30, started(T0 - 50, 5)).state
    state = complete(state, "browse15", T0 - 20, started(T0 - 40, 6)).state
    with pytest.raises(TaskLimitReached) as e:  # yesterday's two were done meanwhile
        complete(state, "browse15", T0 + 5, late)
    assert e.value.details == {"task": "browse15", "limit": 2, "period": "daily"}
    # one done yesterday, then one today: a ticket of yesterday still counts on it
    early = started(T0 - 10, 8)
    state = complete(None, "browse15", T0 - 20, started(T0 - 40, 6)).state
    state = complete(state, "browse15", T0 + 15, started(T0, 9)).state
    with pytest.raises(TicketReused):  # a ticket used yesterday, shown again today
        complete(state, "browse15", T0 + 16, started(T0 - 40, 6))
    out = complete(state, "browse15", T0 + 20, early)
    assert out.response["done"] == 2 and out.state.wallet["acorn"] == 115
    assert out.state.tasks["browse15"] == TaskProgress(
        TODAY, 1, 0, ["0000000000000009"],
        prev=TaskProgress(TODAY - 1, 2, 0, ["0000000000000006", "0000000000000008"]))
    with pytest.raises(TaskLimitReached):  # yesterday's two are done now
        complete(out.state, "browse15", T0 + 30, started(T0 - 5, 10))


def test_ticket_of_a_day_the_record_no_longer_knows_is_expired() -> None:
    # a record written before earlier periods were kept: yesterday's nonces are gone
    state = PlayerState(created_at=T0 - DAY, tasks={"browse15": TaskProgress(
        TODAY, 1, 0, ["0000000000000009"])})
    with pytest.raises(TicketExpired) as e:
        complete(state, "browse15", T0 + 20, started(T0 - 10))
    assert e.value.details == {"issued_at": T0 - 10, "reason": "period_ended"}


def test_ticket_too_old() -> None:
    ticket = started(T0 + 100)
    complete(None, "browse15", T0 + 3700, ticket)  # exactly the ttl: fine
    with pytest.raises(TicketExpired) as e:
        complete(None, "browse15", T0 + 3701, ticket)
    assert e.value.details["reason"] == "too_old"


@pytest.mark.parametrize(("ticket", "player", "reason"), [
    (None, "u1", "missing"),
    (t.Ticket("follow", "u1", T0, "n"), "u1", "other_task"),
    (t.Ticket("browse15", "u2", T0, "n"), "u1", "other_player"),
    (t.Ticket("browse15", "u1", T0 + 100, "n"), "u1", "issued_in_the_future"),
])
def test_forged_tickets(ticket: t.Ticket | None, player: str, reason: str) -> None:
    with pytest.raises(TicketInvalid) as e:
        complete(None, "browse15", T0 + 50, ticket, player)
    assert e.value.code == "ticket_invalid" and e.value.details == {"reason": reason}


def test_once_and_weekly_periods() -> None:
    state = complete(None, "follow", T0).state
    assert state.wallet["gem"] == 2
    with pytest.raises(TaskLimitReached):
        complete(state, "follow", T0 + 400 * DAY)
    state = complete(None, "group", T0).state  # Thursday 2026-01-01
    with pytest.raises(TaskLimitReached):
        complete(state, "group", T0 + 4 * DAY - 1)  # Sunday 23:59:59
    out = complete(state, "group", T0 + 4 * DAY)  # Monday 2026-01-05 00:00
    assert out.state.inventory == {"ticket": 2}


def test_unknown_and_purchase_tasks_cannot_be_claimed() -> None:
    with pytest.raises(UnknownItem) as e:
        complete(None, "nope", T0)
    assert e.value.details["kind"] == "task"
    with pytest.raises(TaskDrivenByOrders) as e2:
        complete(None, "buy_any", T0)
    assert e2.value.code == "task_driven_by_orders"
    with pytest.raises(TaskDrivenByOrders):
        t.start_task(None, t.StartTask("buy_any", "u1"), T0, RNG, CFG, tz=SH)


def order(state: PlayerState | None, oid: str, fen: int, now: int = T0,
          skus: tuple[str, ...] = ()) -> t.Outcome:
    return t.apply_order(state, t.Order(oid, fen, skus), now, RNG, CFG, tz=SH)


def refund(state: PlayerState | None, oid: str, now: int = T0 + 60) -> t.Outcome:
    return t.apply_refund(state, t.Refund(oid), now, RNG, CFG, tz=SH)


def test_orders_advance_purchase_tasks() -> None:
    a = order(None, "A", 6000)
    assert a.response == {"order": "A", "duplicate": False, "tasks": {"buy_any": 1,
                                                                       "spend99": 0}}
    assert a.state.wallet["acorn"] == 105
    b = order(a.state, "B", 5000, T0 + 10)
    assert b.response["tasks"] == {"buy_any": 1, "spend99": 1}
    assert b.state.inventory == {"ticket": 1} and b.state.tasks["spend99"].spend == 11_000
    again = order(b.state, "A", 6000, T0 + 20)
    assert again.response == {"order": "A", "duplicate": True, "tasks": {}}
    assert again.state.to_wire() == b.state.to_wire() and again.ledger == []


def test_buy_any_limit_and_sku_task_coupon() -> None:
    state: PlayerState | None = None
    for i in range(4):
        out = order(state, f"o{i}", 100, T0 + i)
        state = out.state
    assert out.response["tasks"] == {"buy_any": 0, "spend99": 0}
    assert state is not None and state.wallet["acorn"] == 115
    nuts = order(state, "n1", 1000, T0 + 9, ("SKU-X", "SKU-NUTS"))
    assert nuts.response["tasks"] == {"nuts": 1, "buy_any": 0, "spend99": 0}
    assert nuts.reservations == [("coupon:c10", 1)]
    small = order(None, "n2", 999, T0, ("SKU-NUTS",))
    assert "nuts" not in small.response["tasks"]


def test_refund_takes_back_unspent_and_records_debt() -> None:
    state = order(order(None, "A", 6000).state, "B", 5000, T0 + 10).state
    state.wallet["acorn"] = 7  # spent most acorns; ticket still there
    out = refund(state, "A")
    assert out.response == {"order": "A", "known": True, "duplicate": False,
                            "taken_back": {"buy_any": 1, "spend99": 1},
                            "debt": {}}
    assert out.state.wallet["acorn"] == 2 and out.state.inventory == {}
    assert out.state.tasks["spend99"].spend == 5000 and out.state.tasks["spend99"].count == 0
    assert out.state.tasks["buy_any"].count == 1
    out2 = refund(out.state, "B", T0 + 70)
    assert out2.response["debt"] == {"currency:acorn": 3}
    assert out2.state.wallet["acorn"] == 0 and out2.state.debts == {"currency:acorn": 3}
    assert [(e.name, e.delta, e.after) for e in out2.ledger] == [("acorn", -2, 0)]
    dup = refund(out2.state, "B", T0 + 80)
    assert dup.response["duplicate"] is True and dup.ledger == []
    again = order(out2.state, "C", 6000, T0 + 90)  # its reward repays the 3 owed first
    assert again.state.debts == {}
    assert [(e.name, e.delta, e.after) for e in again.ledger if e.name == "acorn"] == [
        ("acorn", 2, 2)]
    assert {"type": "debt_repaid", "reason": "order:C:buy_any",
            "repaid": {"currency:acorn": 3}} in again.events


def test_refund_after_the_period_takes_back_what_the_order_earned() -> None:
    state = order(order(None, "A", 6000).state, "B", 5000, T0 + 10).state
    out = refund(state, "B", T0 + 8 * DAY)
    assert out.response["taken_back"] == {"buy_any": 1, "spend99": 1}
    assert out.state.inventory == {} and out.state.wallet["acorn"] == 105


SHARED = config(tasks={"spend99": {"name": "Spend ¥99 a day", "kind": "purchase",
                                   "spend_fen": 9900, "reward": {"currency": {"acorn": 7}}}})
"""a daily spend task, limit 1: two orders can pay for its one completion together"""


def shared(state: PlayerState | None, oid: str, now: int, fen: int = 0) -> t.Outcome:
    """``oid`` paid ``fen`` (0: wholly refunded instead) under ``SHARED``."""
    if not fen:
        return t.apply_refund(state, t.Refund(oid), now, RNG, SHARED, tz=SH)
    return t.apply_order(state, t.Order(oid, fen), now, RNG, SHARED, tz=SH)


def test_a_completion_two_orders_paid_for_is_taken_back_once() -> None:
    """¥50 + ¥50 finish the ¥99 task (+7, order B holds it). Refunding A takes it back
    (the day's ¥50 no longer reaches ¥99), and B's record no longer holds it: B's
    refund takes nothing more, also the next day, once a ¥1 order started that day's
    progress (it took the 7 a second time: after the day only B's record can tell)."""
    a = shared(None, "A", T0, 5000)
    b = shared(a.state, "B", T0 + 10, 5000)
    assert (a.response["tasks"], b.response["tasks"]) == ({"spend99": 0}, {"spend99": 1})
    assert b.state.wallet["acorn"] == 107
    out = shared(b.state, "A", T0 + 60)
    assert out.response["taken_back"] == {"spend99": 1} and out.state.wallet["acorn"] == 100
    same_day = shared(out.state, "B", T0 + 70)
    next_day = shared(shared(out.state, "C", T0 + DAY, 100).state, "B", T0 + DAY + 60)
    for later in (same_day, next_day):
        assert later.response["taken_back"] == {"spend99": 0} and later.ledger == []
        assert later.state.wallet["acorn"] == 100 and later.state.debts == {}
    assert out.state.orders["B"].tasks["spend99"][1] == 0
    assert out.state.orders["B"].given["spend99"] == {"currency:acorn": 0, "coupon:": 0}


def test_a_completion_taken_from_another_order_owes_what_that_order_gave() -> None:
    """The 7 were spent: A's refund owes them (its own record gave none), once."""
    b = shared(shared(None, "A", T0, 5000).state, "B", T0 + 10, 5000)
    b.state.wallet["acorn"] = 3
    out = shared(b.state, "A", T0 + 60)
    assert out.response["debt"] == {"currency:acorn": 4}
    assert out.state.wallet["acorn"] == 0 and out.state.debts == {"currency:acorn": 4}
    next_day = shared(out.state, "C", T0 + DAY, 100)
    later = shared(next_day.state, "B", T0 + DAY + 60)
    assert later.response["debt"] == {} and later.state.debts == {"currency:acorn": 4}


def test_a_completion_taken_from_another_order_owes_no_coupon_it_did_not_give() -> None:
    """B's completion came when the coupon was out of stock: A's refund, which takes
    it back, owes the acorns it gave and no coupon."""
    cfg = config(tasks={"spend99": {"name": "Spend ¥99", "kind": "purchase",
                                    "spend_fen": 9900,
                                    "reward": {"coupon": "c10", "currency": {"acorn": 7}}}})
    a = t.apply_order(None, t.Order("A", 5000), T0, RNG, cfg, tz=SH)
    b = t.apply_order(a.state, t.Order("B", 5000), T0 + 10, RNG, cfg, tz=SH,
                      coupons_out=frozenset({"c10"}))
    out = t.apply_refund(b.state, t.Refund("A"), T0 + 60, RNG, cfg, tz=SH)
    assert out.response["taken_back"] == {"spend99": 1} and out.response["debt"] == {}
    assert out.state.wallet["acorn"] == 100 and out.state.debts == {}


def couponed(limit: int) -> GameConfig:
    """A daily ¥99 spend task and a per-order task (up to 5 a day), both giving c10."""
    return config(tasks={
        "spend99": {"name": "Spend ¥99", "kind": "purchase", "spend_fen": 9900,
                    "limit": limit, "reward": {"coupon": "c10", "currency": {"acorn": 7}}},
        "any": {"name": "Any order", "kind": "purchase", "limit": 5,
                "reward": {"coupon": "c10"}}})


@pytest.mark.parametrize(("limit", "a_out", "b_fen", "after_a", "after_b"), [
    (1, True, 9900, {}, {"coupon:c10": 1}),
    (2, False, 19800, {"coupon:c10": 1}, {"coupon:c10": 2}),
], ids=["passed-on-without-coupon", "passed-on-with-coupon"])
@pytest.mark.parametrize("older", [False, True], ids=["recorded-now", "by-an-older-release"])
def test_a_completion_passed_to_another_order_keeps_whether_it_gave_a_coupon(
        limit: int, a_out: bool, b_fen: int, after_a: dict[str, int],
        after_b: dict[str, int], older: bool) -> None:
    """A finishes the spend task, B pays enough to keep it when A is refunded, so it
    passes to B; c10 was out of stock for one of the two orders. Refunding both owes
    exactly the coupons issued: the completion passed on owes a coupon when A's got one,
    whatever B's own grant got (it owed B's: one too many, or one too few). Orders an
    older release recorded (no coupons in ``given``: only ``no_coupon`` tells) too."""
    cfg = couponed(limit)
    out_a, out_b = (frozenset({"c10"}), frozenset()) if a_out else (frozenset(),
                                                                    frozenset({"c10"}))
    a = t.apply_order(None, t.Order("A", 9900), T0, RNG, cfg, tz=SH, coupons_out=out_a)
    b = t.apply_order(a.state, t.Order("B", b_fen), T0 + 10, RNG, cfg, tz=SH,
                      coupons_out=out_b)
    assert (a.response["tasks"], b.response["tasks"]) == (
        {"spend99": 1, "any": 1}, {"spend99": limit - 1, "any": 1})
    issued = sum(g.units for g in a.grants + b.grants)
    assert issued == sum(after_b.values())
    if older:
        for record in b.state.orders.values():
            record.given = {tid: {k: v for k, v in gave.items() if not k.startswith("coupon:")}
                            for tid, gave in record.given.items()}
    first = t.apply_refund(b.state, t.Refund("A"), T0 + 60, RNG, cfg, tz=SH)
    assert first.response["taken_back"] == {"spend99": 0, "any": 1}
    assert first.state.debts == first.response["debt"] == after_a
    assert first.state.orders["B"].tasks["spend99"][1] == limit
    last = t.apply_refund(first.state, t.Refund("B"), T0 + 70, RNG, cfg, tz=SH)
    assert last.response["taken_back"] == {"spend99": limit, "any": 1}
    assert last.state.debts == after_b and last.state.wallet["acorn"] == 100
    assert a.state.orders["A"].given["spend99"] == {"currency:acorn": 7,
                                                    "coupon:c10": 0 if a_out else 1}
    assert a.state.orders["A"].no_coupon == (["spend99", "any"] if a_out else [])
    # B holds a completion that issued no coupon: an older release, which reads only
    # no_coupon, owes none for B's rather than one for each
    assert "spend99" in first.state.orders["B"].no_coupon


def test_a_completion_the_other_orders_still_pay_for_passes_to_them() -> None:
    """A ¥99 finishes the task, a second ¥99 adds nothing (limit 1). Refunding A takes
    nothing back (B still pays for it): B now holds it, so B's refund takes it back
    after the day too (it kept the 7 with both orders refunded: B's record held none)."""
    b = shared(shared(None, "A", T0, 9900).state, "B", T0 + 10, 9900)
    assert b.state.orders["B"].tasks["spend99"][1] == 0
    out = shared(b.state, "A", T0 + 60)
    assert out.response["taken_back"] == {"spend99": 0} and out.state.wallet["acorn"] == 107
    next_day = shared(out.state, "C", T0 + DAY, 100)
    later = shared(next_day.state, "B", T0 + DAY + 60)
    assert later.response["taken_back"] == {"spend99": 1}
    assert later.state.wallet["acorn"] == 100
    assert out.state.orders["B"].tasks["spend99"][1] == 1
    assert out.state.orders["B"].given["spend99"] == {"currency:acorn": 7, "coupon:": 0}


def test_refund_of_a_coupon_is_a_debt_and_an_event() -> None:
    state = order(None, "n1", 2000, T0, ("SKU-NUTS",)).state
    out = refund(state, "n1")
    assert out.state.debts == {"coupon:c10": 1}
    assert {"type": "coupon_clawback", "coupon": "c10", "count": 1,
            "reason": "refund:n1:nuts"} in out.events


def test_refund_takes_back_only_what_a_limit_let_the_order_give() -> None:
    """A reward capped at a balance's limit when the order came was taken back in full:
    the refund took a ticket and acorns the order never gave (or owed them as debt)."""
    full = PlayerState(created_at=T0, wallet={"acorn": 998}, inventory={"ticket": 5})
    paid = order(full, "A", 9900)
    assert paid.state.wallet["acorn"] == 1000 and paid.state.inventory["ticket"] == 5
    out = refund(paid.state, "A")
    assert out.response["taken_back"] == {"buy_any": 1, "spend99": 1}
    assert out.state.wallet["acorn"] == 998 and out.state.inventory["ticket"] == 5
    assert out.response["debt"] == {}
    paid.state.wallet["acorn"] = 0  # spent: what the order gave is owed, no more
    owed = refund(paid.state, "A")
    assert owed.response["debt"] == {"currency:acorn": 2}
    record = paid.state.orders["A"]  # what each task gave, remembered in the state
    # "coupon:" 0: the reward issued no coupon (a record without it is from before
    # coupons were kept)
    assert record.given == {"buy_any": {"currency:acorn": 2, "coupon:": 0},
                            "spend99": {"coupon:": 0}}
    assert PlayerState.from_wire(paid.state.to_wire()).orders["A"] == record


@pytest.mark.parametrize(("reward_now", "wallet_after"), [(1, 999), (300, 998)])
def test_refund_takes_back_what_the_order_gave_whatever_the_reward_says_now(
        reward_now: int, wallet_after: int) -> None:
    """The order gave 2 acorns (the limit kept 3 of 5). The merchant then lowers the
    reward to 1, or raises it to 300: the refund takes back at most the 2 given (1 at
    the lower reward), never more, and never credits anything."""
    full = PlayerState(created_at=T0, wallet={"acorn": 998}, inventory={"ticket": 5})
    paid = order(full, "A", 100)
    assert paid.state.wallet["acorn"] == 1000
    tasks = {**TASKS, "buy_any": {**TASKS["buy_any"],
                                  "reward": {"currency": {"acorn": reward_now}}}}
    out = t.apply_refund(paid.state, t.Refund("A"), T0 + 60, RNG, config(tasks=tasks), tz=SH)
    assert out.state.wallet["acorn"] == wallet_after
    assert out.response["debt"] == {}
    assert all(e.delta < 0 for e in out.ledger)


def test_refund_before_paid_leaves_a_tombstone() -> None:
    out = refund(None, "Z")
    assert out.response == {"order": "Z", "known": False, "taken_back": {}, "debt": {}}
    late = order(out.state, "Z", 9900, T0 + 100)
    assert late.response["duplicate"] is True and late.ledger == []


def test_order_validation_and_age() -> None:
    with pytest.raises(InvalidInput):
        order(None, "A", -1)
    with pytest.raises(InvalidInput):
        order(None, "", 100)
    old = t.Order("A", 100, (), T0 - t.ORDER_KEEP_S - 1)
    with pytest.raises(OrderTooOld) as e:
        t.apply_order(None, old, T0, RNG, CFG, tz=SH)
    assert e.value.details == {"order_id": "A", "paid_at": T0 - t.ORDER_KEEP_S - 1,
                               "oldest": T0 - t.ORDER_KEEP_S}
    t.apply_order(None, t.Order("A", 100, (), T0 - t.ORDER_KEEP_S), T0, RNG, CFG, tz=SH)


def test_order_records_are_bounded() -> None:
    state = PlayerState(created_at=T0)
    for i in range(t.ORDER_KEEP_MAX + 3):
        state = order(state, f"o{i}", 1, T0 + i).state
    assert len(state.orders) == t.ORDER_KEEP_MAX
    assert "o0" not in state.orders and f"o{t.ORDER_KEEP_MAX + 2}" in state.orders
    later = order(state, "late", 1, T0 + t.ORDER_KEEP_S + 1000).state
    assert list(later.orders) == ["late"]


EVENTS = st.lists(st.tuples(st.sampled_from(["pay", "refund", "spend"]),
                            st.integers(min_value=0, max_value=7),
                            st.integers(min_value=0, max_value=20_000),
                            st.integers(min_value=0, max_value=3 * DAY)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_orders_and_refunds_never_go_negative(events: list[tuple[str, int, int, int]]) -> None:
    state: PlayerState = PlayerState(created_at=T0, wallet={"acorn": 0, "gem": 0})
    now, wallet_sum = T0, 0
    for kind, oid, fen, wait in events:
        now += wait
        if kind == "pay":
            out = order(state, f"o{oid}", fen, now)
        elif kind == "refund":
            out = refund(state, f"o{oid}", now)
        else:
            spent = min(state.wallet.get("acorn", 0), fen % 20)
            state.wallet["acorn"] = state.wallet.get("acorn", 0) - spent
            wallet_sum -= spent
            state.inventory.pop("ticket", None) if fen % 2 else None
            continue
        wallet_sum += sum(e.delta for e in out.ledger if e.name == "acorn")
        state = out.state
        assert all(v >= 0 for v in state.wallet.values())
        assert all(v > 0 for v in state.inventory.values())
        assert all(v > 0 for v in state.debts.values())
        assert state.wallet["acorn"] == wallet_sum
        for prog in state.tasks.values():
            assert prog.count >= 0 and prog.spend >= 0


def test_player_view_shows_task_progress_in_the_current_period() -> None:
    state = order(order(None, "A", 6000).state, "B", 1000, T0 + 10).state
    view = t.player_view(state, CFG, T0 + 20, SH)["tasks"]
    assert view["buy_any"] == {"kind": "purchase", "period": "daily", "limit": 3, "done": 2,
                               "reward": {"currency": {"acorn": 5}, "items": {}}}
    assert view["spend99"]["spend_fen"] == 7000 and view["spend99"]["target_fen"] == 9900
    assert view["browse15"]["browse_s"] == 15 and view["browse15"]["done"] == 0
    assert t.player_view(state, CFG, T0 + 86_400, SH)["tasks"]["buy_any"]["done"] == 0
    assert t.player_view(state, CFG, T0 + 20)["tasks"] is None
