"""Flash sales and presales: pure rules and config section, exact at every boundary
(start and end instants, the last unit, the per-shopper limit, payment at the deadline,
expiry of holds)."""

from __future__ import annotations

import copy
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from economy.config import GameConfig, parse_game_config, value_totals
from economy.errors import ConfigInvalid, Refusal
from economy.flashsale import (
    Eligibility,
    FlashSale,
    NotEligible,
    NotStarted,
    PerShopperLimit,
    SaleEnded,
    SaleNotFound,
    SoldOut,
)
from mechanics import flashsale as rules
from mechanics.flashsalepay import pay_sale_holds
from mechanics.flashsalestate import SaleHold
from mechanics.orders import apply_paid_order
from mechanics.orderstate import OrderRecord
from mechanics.outcome import StockHold, ValueGrant
from mechanics.state import PlayerState, new_player
from mechanics.tasks import Order
from mechanics.taskstate import TaskProgress
from tests.conftest import BASIC_CONFIG

START = 1_800_000_000
PAY = 600
SH = ZoneInfo("Asia/Shanghai")


def flash_raw(**over: Any) -> dict[str, Any]:
    return {"title": "Midnight nuts", "sku": "NUTS-11", "price_fen": 990, "starts_at": START,
            "stock": 100, "pay_seconds": PAY, **over}


def presale_raw(**over: Any) -> dict[str, Any]:
    return {"title": "Gift box", "sku": "BOX-11", "deposit_sku": "BOX-DEP", "price_fen": 19900,
            "deposit_fen": 2000, "benefit": "deposit_multiplier", "multiplier_pct": 250,
            "reserve_from": START - 7 * 86400, "reserve_until": START - 3600,
            "event_at": START, "convert_until": START + 86400, "stock": 50,
            "per_shopper": 2, **over}


def config(flash: dict[str, Any] | None = None, presales: dict[str, Any] | None = None,
           **extra: Any) -> GameConfig:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["tasks"] = {"join": {"name": "Join", "kind": "follow", "period": "once",
                             "reward": {"currency": {"acorn": 1}}},
                    "browse": {"name": "Browse", "kind": "browse",
                               "reward": {"currency": {"acorn": 1}}}}
    raw["flashsales"] = {"midnight": flash_raw()} if flash is None else flash
    raw["presales"] = {"early": presale_raw()} if presales is None else presales
    raw.update(extra)
    return parse_game_config(raw)


CFG = config()


def chance(*out: str, seed: int = 7) -> rules.Chance:
    return rules.Chance(random.Random(seed), frozenset(out))


def claim(state: PlayerState | None, now: int, cfg: GameConfig = CFG, sale: str = "midnight",
          out: tuple[str, ...] = ()) -> Any:
    return rules.claim_flashsale(state, rules.Claim(sale), now, chance(*out), cfg)


def reserve(state: PlayerState | None, now: int, cfg: GameConfig = CFG) -> Any:
    return rules.reserve_presale(state, rules.Claim("early"), now, chance(), cfg)


def pay(state: PlayerState, order: Order, now: int, cfg: GameConfig = CFG,
        out: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """:func:`pay_sale_holds`'s answer (its state change is on ``state``)."""
    part = pay_sale_holds(state, order, now, random.Random(3), cfg, frozenset(out))
    return None if part is None else part.response


# -- config ---------------------------------------------------------------------------


def test_config_defaults_model_and_stock_refs() -> None:
    assert CFG.flashsales == {"midnight": FlashSale(
        id="midnight", title="Midnight nuts", sku="NUTS-11", price_fen=990, list_price_fen=0,
        starts_at=START, ends_at=0, stock=100, per_shopper=1, pay_seconds=PAY,
        eligibility=Eligibility())}
    early = CFG.presales["early"]
    assert (early.deposit_value_fen, early.ref) == (5000, "presale:early")
    totals = value_totals(CFG)
    assert (totals["flash:midnight"], totals["presale:early"]) == (100, 50)


@pytest.mark.parametrize(("flash", "presales", "path"), [
    ({"m": flash_raw(ends_at=START)}, {}, "$.flashsales.m.ends_at"),
    ({"m": flash_raw(list_price_fen=100)}, {}, "$.flashsales.m.list_price_fen"),
    ({"m": flash_raw(eligibility={"task": "nope"})}, {}, "$.flashsales.m.eligibility.task"),
    ({"m": flash_raw(eligibility={"member_task": "x"})}, {},
     "$.flashsales.m.eligibility.member_task"),
    ({}, {"p": presale_raw(reserve_until=START - 7 * 86400)}, "$.presales.p.reserve_until"),
    ({}, {"p": presale_raw(event_at=START - 7200)}, "$.presales.p.event_at"),
    ({}, {"p": presale_raw(convert_until=START)}, "$.presales.p.convert_until"),
    ({}, {"p": presale_raw(deposit_fen=0)}, "$.presales.p.deposit_fen"),
    ({}, {"p": presale_raw(deposit_sku="BOX-11")}, "$.presales.p.deposit_sku"),
    ({"m": flash_raw(sku="BOX-11")}, {"p": presale_raw()}, "$.presales.p.sku"),
    ({"m": flash_raw(stock=0)}, {}, "$.flashsales.m.stock"),
    ({"m": flash_raw(pay_seconds=29)}, {}, "$.flashsales.m.pay_seconds"),
])
def test_config_problems_name_their_path(flash: dict[str, Any], presales: dict[str, Any],
                                         path: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        config(flash, presales)
    assert path in [p["path"] for p in err.value.problems], err.value.problems


def test_a_presale_may_open_the_purchase_at_the_reservation_close() -> None:
    cfg = config({}, {"p": presale_raw(event_at=START - 3600)})
    assert cfg.presales["p"].event_at == START - 3600


# -- claims ---------------------------------------------------------------------------


def test_one_second_before_the_start_is_refused_not_queued() -> None:
    with pytest.raises(NotStarted) as err:
        claim(None, START - 1)
    assert err.value.details == {"sale": "midnight", "starts_at": START,
                                 "server_time": START - 1, "retry_after": 1}


def test_a_claim_at_the_start_instant_holds_one_unit_until_pay_by() -> None:
    out = claim(None, START)
    hid = out.response["hold"]
    assert out.response == {"hold": hid, "sale": "midnight", "status": "held",
                            "claimed_at": START, "until": START + PAY, "pay_by": START + PAY,
                            "sku": "NUTS-11", "price_fen": 990}
    assert out.reservations == [StockHold("flash:midnight", 1)]
    assert out.grants == [ValueGrant("flash:midnight", "flash_hold", "flash_hold:midnight",
                                     {"hold": hid, "sale": "midnight", "until": START + PAY,
                                      "sku": "NUTS-11", "price_fen": 990})]
    assert out.state.sale_holds == {hid: SaleHold("f", "midnight", START, START + PAY)}
    assert len(hid) == 16 and int(hid, 16) >= 0


def test_the_end_instant_is_closed_and_the_second_before_open() -> None:
    cfg = config({"midnight": flash_raw(ends_at=START + 3600)})
    assert claim(None, START + 3599, cfg).response["status"] == "held"
    with pytest.raises(SaleEnded):
        claim(None, START + 3600, cfg)


def test_sold_out_is_refused_and_reserves_nothing() -> None:
    with pytest.raises(SoldOut) as err:
        claim(None, START, out=("flash:midnight",))
    assert err.value.details == {"sale": "midnight", "stock_left": 0, "stock_pending": 0}


def test_sold_out_says_how_many_units_claims_in_flight_hold() -> None:
    """Nothing left but units held by claims still settling: sold out for now, with how
    many may come back and when to look again."""
    held = rules.Chance(random.Random(7), frozenset({"flash:midnight"}), {"flash:midnight": 2})
    with pytest.raises(SoldOut) as err:
        rules.claim_flashsale(None, rules.Claim("midnight"), START, held, CFG)
    assert (err.value.code, err.value.kind) == ("sold_out", Refusal.CONFLICT)
    assert err.value.details == {"sale": "midnight", "stock_left": 0, "stock_pending": 2,
                                 "retry_after": 1}
    early = CFG.presales["early"]
    with pytest.raises(SoldOut) as err:
        rules.reserve_presale(None, rules.Claim("early"), early.reserve_from,
                              rules.Chance(random.Random(7), frozenset({"presale:early"}),
                                           {"presale:early": 1}), CFG)
    assert err.value.details["stock_pending"] == 1
    other = rules.Chance(random.Random(7), frozenset({"flash:other"}), {"flash:other": 3})
    assert rules.claim_flashsale(None, rules.Claim("midnight"), START, other,
                                 CFG).reservations == [StockHold("flash:midnight", 1)]


def test_the_last_unit_is_claimed_while_other_refs_are_out() -> None:
    """Only this sale's ref being out refuses; the gate decides who gets the last unit."""
    out = claim(None, START, out=("presale:early", "flash:other"))
    assert out.reservations == [StockHold("flash:midnight", 1)]


def test_unknown_sale_is_not_found() -> None:
    with pytest.raises(SaleNotFound):
        claim(None, START, sale="nope")


def test_per_shopper_limit_counts_held_and_paid_not_expired() -> None:
    first = claim(None, START).state
    with pytest.raises(PerShopperLimit) as err:
        claim(first, START + PAY)  # still held at the pay_by instant
    assert err.value.details == {"sale": "midnight", "per_shopper": 1}
    again = claim(first, START + PAY + 1)  # the first expired: a new claim may hold
    assert len(again.state.sale_holds) == 2
    paid = first.copy()
    next(iter(paid.sale_holds.values())).status = "paid"
    with pytest.raises(PerShopperLimit):
        claim(paid, START + 10 * PAY)


KEEP = rules.SETTLED_KEEP_S
TWO = config({"midnight": flash_raw(), "other": flash_raw(sku="OTHER-1")})
"""Two open-ended sales (no ``ends_at``), one unit per shopper each."""


def _bought_midnight() -> tuple[PlayerState, str]:
    """A shopper who bought midnight's one unit at START (paid at once)."""
    state = claim(None, START, TWO).state
    assert pay(state, Order("T1", 990, ("NUTS-11",)), START + 1, TWO)
    return state, next(iter(state.sale_holds))


def test_per_shopper_holds_for_an_open_ended_sale_after_the_hold_is_dropped() -> None:
    """A bought hold is dropped 30 days after its deadline (by any later claim of the
    shopper's), but its unit still counts: the shopper may not buy that sale again."""
    state, hid = _bought_midnight()
    dropped_at = START + PAY + KEEP + 1
    kept = claim(state, dropped_at - 1, TWO, sale="other").state  # the last second kept
    assert hid in kept.sale_holds and kept.sale_bought == {}
    later = claim(state, dropped_at, TWO, sale="other").state
    assert list(later.sale_holds.values()) == [
        SaleHold("f", "other", dropped_at, dropped_at + PAY)]
    assert later.sale_bought == {"f:midnight": 1}
    with pytest.raises(PerShopperLimit) as err:
        claim(later, dropped_at + 365 * 86_400, TWO)
    assert err.value.details == {"sale": "midnight", "per_shopper": 1}
    # A second round of pruning keeps the count (nothing more to fold in).
    again = claim(later, dropped_at + 2 * KEEP, TWO, sale="other").state
    assert again.sale_bought == {"f:midnight": 1}


def test_counts_add_up_and_an_expired_hold_is_dropped_without_one() -> None:
    cfg = config({"midnight": flash_raw(per_shopper=3), "other": flash_raw(sku="OTHER-1")})
    state = claim(None, START, cfg).state
    pay(state, Order("T1", 990, ("NUTS-11",)), START + 1, cfg)
    state = claim(state, START + 10, cfg).state  # held, never paid: expires
    expired = next(h for h, v in state.sale_holds.items() if v.status == "held")
    state = rules.expire_sale_hold(state, rules.ExpireHold(expired), START + 10 + PAY + 1,
                                   random.Random(1), cfg).state
    state.sale_bought = {"f:midnight": 1}  # one bought and dropped before
    later = claim(state, START + 10 + PAY + KEEP + 1, cfg, sale="other").state
    assert later.sale_bought == {"f:midnight": 2}
    assert [h.sale for h in later.sale_holds.values()] == ["other"]
    with pytest.raises(PerShopperLimit):
        claim(claim(later, START + 2 * KEEP, cfg).state, START + 2 * KEEP, cfg)


def test_counts_of_sales_no_longer_configured_are_dropped() -> None:
    """The state stays bounded: one count at most per sale the config has."""
    state, _ = _bought_midnight()
    state.sale_bought = {"f:gone": 2, "p:early": 1, "p:gone": 1}
    later = claim(state, START + PAY + KEEP + 1, TWO, sale="other").state
    assert later.sale_bought == {"f:midnight": 1, "p:early": 1}


def test_a_state_stored_before_the_bought_counts_loads_and_keeps_the_limit() -> None:
    """The wire form the server wrote before ``sale_bought`` (key ``fb``) existed: holds
    under ``fs`` only. It loads with no counts, a bought hold dropped from it still
    counts, and a state with no counts is written without ``fb`` (the same bytes)."""
    old_wire = {"c": START - 100, "w": {"acorn": 0}, "ls": START + 1,
                "fs": {"00000000000000a1": ["f", "midnight", START, START + PAY, "paid",
                                            "T1", ""]}}
    state = PlayerState.from_wire(old_wire)
    assert state.sale_holds == {"00000000000000a1": SaleHold(
        "f", "midnight", START, START + PAY, "paid", "T1", "")}
    assert state.sale_bought == {}
    assert "fb" not in state.to_wire()
    with pytest.raises(PerShopperLimit):
        claim(state, START + PAY + KEEP + 1, TWO)
    later = claim(state, START + PAY + KEEP + 1, TWO, sale="other").state
    assert later.sale_bought == {"f:midnight": 1}
    assert later.to_wire()["fb"] == {"f:midnight": 1}
    assert PlayerState.from_wire(later.to_wire()).sale_bought == {"f:midnight": 1}
    with pytest.raises(PerShopperLimit):
        claim(later, START + 2 * KEEP, TWO)


def _shopper(tasks: dict[str, int] | None = None, orders: int = 0) -> PlayerState:
    state = new_player(CFG, START - 100)
    state.tasks = {t: TaskProgress(period=1, count=n) for t, n in (tasks or {}).items()}
    state.orders = {f"o{i}": OrderRecord(at=START - 50, amount=100) for i in range(orders)}
    return state


def test_eligibility_member_task_order_history() -> None:
    cfg = config({"midnight": flash_raw(eligibility={"member_task": "join", "task": "browse",
                                                     "min_orders": 2})})
    with pytest.raises(NotEligible) as err:
        claim(_shopper(), START, cfg)
    assert err.value.details == {"sale": "midnight", "requirement": "member", "task": "join"}
    with pytest.raises(NotEligible) as err:
        claim(_shopper({"join": 1, "browse": 0}), START, cfg)
    assert err.value.details["requirement"] == "task"
    with pytest.raises(NotEligible) as err:
        claim(_shopper({"join": 1, "browse": 1}, orders=1), START, cfg)
    assert err.value.details == {"sale": "midnight", "requirement": "orders", "min_orders": 2,
                                 "orders": 1}
    refunded = _shopper({"join": 1, "browse": 1}, orders=2)
    refunded.orders["o0"].refunded = True
    with pytest.raises(NotEligible):
        claim(refunded, START, cfg)
    assert claim(_shopper({"join": 1, "browse": 1}, orders=2), START, cfg).reservations
    with pytest.raises(NotEligible) as err:
        claim(None, START, cfg)
    assert err.value.details["requirement"] == "new_shopper"


def test_refusal_order_eligibility_before_limit_before_stock() -> None:
    cfg = config({"midnight": flash_raw(eligibility={"min_orders": 1})})
    with pytest.raises(NotEligible):
        claim(_shopper(), START, cfg, out=("flash:midnight",))
    held = claim(_shopper(orders=1), START, cfg).state
    with pytest.raises(PerShopperLimit):
        claim(held, START, cfg, out=("flash:midnight",))


# -- payment and expiry -------------------------------------------------------------------


def _paid(state: PlayerState, skus: tuple[str, ...], now: int, paid_at: int = 0,
          order_id: str = "T1") -> dict[str, Any] | None:
    return pay(state, Order(order_id, 990, skus, paid_at), now, CFG)


def test_an_order_paid_at_the_pay_by_instant_pays_the_hold() -> None:
    state = claim(None, START).state
    hid = next(iter(state.sale_holds))
    part = _paid(state, ("NUTS-11",), START + PAY)
    assert part == {"sale_holds": [{"kind": "flash_sale", "sale": "midnight", "hold": hid,
                                    "result": "paid"}]}
    assert state.sale_holds[hid].status == "paid" and state.sale_holds[hid].order == "T1"


def test_an_order_paid_a_second_late_pays_the_hold_the_sweeper_has_not_ended() -> None:
    """Past pay_by but not yet ended, the hold still has its unit: the paid order pays
    it (answered late), takes no unit, and the sweeper then counts it sold."""
    state = claim(None, START).state
    hid = next(iter(state.sale_holds))
    part = pay_sale_holds(state, Order("T1", 990, ("NUTS-11",), 0), START + PAY + 1,
                          random.Random(3), CFG, frozenset())
    assert part is not None and part.response == {"sale_holds": [
        {"kind": "flash_sale", "sale": "midnight", "hold": hid, "result": "paid",
         "late": True}]}
    assert (part.reservations, part.grants) == ([], [])
    assert (state.sale_holds[hid].status, state.sale_holds[hid].order) == ("paid", "T1")
    ended = rules.expire_sale_hold(state, rules.ExpireHold(hid), START + PAY + 2,
                                   random.Random(1), CFG)
    assert ended.response == {"hold": hid, "result": "paid"}


def _expired() -> tuple[PlayerState, str]:
    """A shopper whose hold (claimed at START) the sweeper ended unpaid."""
    state = claim(None, START).state
    hid = next(iter(state.sale_holds))
    state = rules.expire_sale_hold(state, rules.ExpireHold(hid), START + PAY + 1,
                                   random.Random(1), CFG).state
    return state, hid


def test_a_late_order_for_an_ended_hold_takes_one_unit_again_once() -> None:
    state, hid = _expired()
    part = pay_sale_holds(state, Order("T1", 990, ("NUTS-11",), START + PAY - 5),
                          START + PAY + 100, random.Random(3), CFG, frozenset())
    assert part is not None
    new = part.response["sale_holds"][0]["hold"]
    assert new != hid and part.response == {"sale_holds": [
        {"kind": "flash_sale", "sale": "midnight", "hold": new, "result": "paid",
         "late": True, "replaces": hid}]}
    assert part.reservations == [StockHold("flash:midnight", 1)]
    assert part.grants == [ValueGrant("flash:midnight", "flash_hold", "flash_hold:midnight", {
        "hold": new, "sale": "midnight", "until": START + PAY, "sku": "NUTS-11",
        "price_fen": 990, "replaces": hid, "order": "T1"})]
    assert state.sale_holds[new] == SaleHold("f", "midnight", START, START + PAY, "paid", "T1")
    assert (state.sale_holds[hid].status, state.sale_holds[hid].order) == ("expired", "T1")
    # the sweeper sells the new hold; a second order finds nothing to make good
    assert rules.expire_sale_hold(state, rules.ExpireHold(new), START + PAY + 101,
                                  random.Random(1), CFG).response["result"] == "paid"
    assert pay(state, Order("T2", 990, ("NUTS-11",)), START + PAY + 200) == {"sale_holds": [
        {"kind": "flash_sale", "sale": "midnight", "hold": None, "result": "no_hold"}]}


def test_a_late_order_with_none_left_is_answered_refund_and_changes_nothing() -> None:
    state, hid = _expired()
    before = state.copy()
    part = pay_sale_holds(state, Order("T1", 990, ("NUTS-11",)), START + PAY + 100,
                          random.Random(3), CFG, frozenset({"flash:midnight"}))
    assert part is not None and part.response == {
        "sale_holds": [{"kind": "flash_sale", "sale": "midnight", "hold": hid,
                        "result": "refund", "reason": "sold_out"}],
        "refund_due": [{"kind": "flash_sale", "sale": "midnight", "sku": "NUTS-11",
                        "price_fen": 990, "reason": "sold_out"}]}
    assert (part.reservations, part.grants) == ([], [])
    assert state.sale_holds == before.sale_holds


def test_a_late_order_over_the_per_shopper_limit_is_answered_refund() -> None:
    """The shopper holds a newer unit (claimed after the late order was paid): making
    the ended hold good as well would give them two of a one-per-shopper sale."""
    state, hid = _expired()
    state = claim(state, START + PAY + 100).state  # past the merchant clock's allowance
    assert pay(state, Order("T1", 990, ("NUTS-11",), START + PAY + 10), START + PAY + 110) == {
        "sale_holds": [{"kind": "flash_sale", "sale": "midnight", "hold": hid,
                        "result": "refund", "reason": "purchase_limit_reached"}],
        "refund_due": [{"kind": "flash_sale", "sale": "midnight", "sku": "NUTS-11",
                        "price_fen": 990, "reason": "purchase_limit_reached"}]}
    assert state.sale_holds[hid].order == ""


def test_paid_at_before_the_deadline_counts_when_the_webhook_comes_later() -> None:
    state = claim(None, START).state
    part = _paid(state, ("NUTS-11",), START + PAY + 30, paid_at=START + PAY)
    assert part is not None and part["sale_holds"][0]["result"] == "paid"


def test_an_order_paid_before_the_claim_pays_no_hold() -> None:
    """An order paid an hour (or a minute and a second) before the claim was bought at
    full price before the hold existed: it pays nothing and is answered as an order with
    no hold; one paid a minute before it (the merchant's clock behind ours) pays it."""
    state = claim(None, START + 3600).state
    hid = next(iter(state.sale_holds))
    no_hold = {"sale_holds": [{"kind": "flash_sale", "sale": "midnight", "hold": None,
                               "result": "no_hold"}]}
    assert _paid(state, ("NUTS-11",), START + 3601, paid_at=START) == no_hold
    assert _paid(state, ("NUTS-11",), START + 3601, paid_at=START + 3600 - 61,
                 order_id="T2") == no_hold
    assert state.sale_holds[hid] == SaleHold("f", "midnight", START + 3600, START + 3600 + PAY)
    assert _paid(state, ("NUTS-11",), START + 3601, paid_at=START + 3600 - 60, order_id="T3") == {
        "sale_holds": [{"kind": "flash_sale", "sale": "midnight", "hold": hid,
                        "result": "paid"}]}
    assert (state.sale_holds[hid].status, state.sale_holds[hid].order) == ("paid", "T3")


def test_an_old_order_pays_only_the_holds_made_before_it() -> None:
    """Two holds: an order paid between the claims pays the older one, never the newer."""
    cfg = config({"midnight": flash_raw(per_shopper=2)})
    first = claim(None, START, cfg).state
    both = claim(first, START + 1000, cfg).state
    older = next(iter(first.sale_holds))
    newer = next(h for h in both.sale_holds if h != older)
    order = Order("T1", 990, ("NUTS-11",), START + 50)
    assert pay(both, order, START + 1100, cfg) == {"sale_holds": [
        {"kind": "flash_sale", "sale": "midnight", "hold": older, "result": "paid"}]}
    again = Order("T2", 990, ("NUTS-11",), START + 60)
    assert pay(both, again, START + 1100, cfg) == {"sale_holds": [
        {"kind": "flash_sale", "sale": "midnight", "hold": None, "result": "no_hold"}]}
    assert (both.sale_holds[older].status, both.sale_holds[newer].status) == ("paid", "held")


def test_an_order_without_a_sale_sku_is_none_of_its_business() -> None:
    state = claim(None, START).state
    assert _paid(state, ("OTHER",), START + 1) is None


def test_expiry_exact_at_the_deadline() -> None:
    state = claim(None, START).state
    hid = next(iter(state.sale_holds))

    def expire(s: PlayerState, now: int, h: str = hid) -> Any:
        return rules.expire_sale_hold(s, rules.ExpireHold(h), now, random.Random(1), CFG)

    assert expire(state, START + PAY).response == {"hold": hid, "result": "held"}
    done = expire(state, START + PAY + 1)
    assert done.response == {"hold": hid, "result": "expired"}
    assert done.state.sale_holds[hid].status == "expired"
    assert expire(done.state, START + PAY + 99).response["result"] == "expired"
    _paid(state, ("NUTS-11",), START + 5)
    assert expire(state, START + PAY + 1).response["result"] == "paid"
    assert expire(state, START + PAY + 1, "0" * 16).response["result"] == "missing"


# -- presales -------------------------------------------------------------------------


def test_reservation_window_instants() -> None:
    early = CFG.presales["early"]
    with pytest.raises(NotStarted):
        reserve(None, early.reserve_from - 1)
    out = reserve(None, early.reserve_from)
    assert out.response["until"] == early.convert_until
    assert out.response["deposit_value_fen"] == 5000
    assert out.reservations == [StockHold("presale:early", 1)]
    assert out.grants[0].kind == "presale_hold"
    assert reserve(None, early.reserve_until - 1).reservations
    with pytest.raises(SaleEnded):
        reserve(None, early.reserve_until)


def test_presale_limit_deposit_and_conversion_at_the_event() -> None:
    early = CFG.presales["early"]
    now = early.reserve_from
    state = reserve(reserve(None, now).state, now + 1).state
    with pytest.raises(PerShopperLimit):
        reserve(state, now + 2)
    first = min(state.sale_holds, key=lambda h: state.sale_holds[h].at)
    assert _paid(state, ("BOX-DEP",), now + 5, order_id="D1") == {"sale_holds": [
        {"kind": "presale", "sale": "early", "hold": first, "result": "deposit_paid"}]}
    # Before the event the final order converts nothing.
    assert _paid(state, ("BOX-11",), START - 1)["sale_holds"][0]["result"] == "no_reservation"  # type: ignore[index]
    part = _paid(state, ("BOX-11", "BOX-11"), START, order_id="F1")
    assert part is not None
    results = part["sale_holds"]
    assert results[0] == {"kind": "presale", "sale": "early", "hold": first,
                          "result": "converted", "deposit_value_fen": 5000}
    assert results[1]["result"] == "converted" and results[1]["deposit_value_fen"] == 0
    assert {h.status for h in state.sale_holds.values()} == {"paid"}


def test_a_deposit_paid_before_the_reservation_marks_nothing() -> None:
    """A deposit order paid before the reservation was made is not this reservation's
    deposit (answered as a deposit with no reservation); one paid within the merchant
    clock's allowance of it is."""
    early = CFG.presales["early"]
    now = early.reserve_from + 3600
    state = reserve(None, now).state
    hid = next(iter(state.sale_holds))
    assert _paid(state, ("BOX-DEP",), now + 5, paid_at=now - 61, order_id="D0") == {
        "sale_holds": [{"kind": "presale", "sale": "early", "hold": None,
                        "result": "no_reservation"}]}
    assert state.sale_holds[hid].deposit_order == ""
    assert _paid(state, ("BOX-DEP",), now + 5, paid_at=now - 60, order_id="D1") == {
        "sale_holds": [{"kind": "presale", "sale": "early", "hold": hid,
                        "result": "deposit_paid"}]}
    assert state.sale_holds[hid].deposit_order == "D1"


def test_a_deposit_order_after_the_conversion_is_recognised_once() -> None:
    """The final payment's webhook overtook the deposit's: the deposit order is that
    converted reservation's (already_converted, with the converting order and the 0 it
    deducted), recorded once; another deposit order finds no reservation."""
    early = CFG.presales["early"]
    state = reserve(None, early.reserve_from).state
    hid = next(iter(state.sale_holds))
    assert pay(state, Order("F1", 19900, ("BOX-11",)), START)["sale_holds"] == [  # type: ignore[index]
        {"kind": "presale", "sale": "early", "hold": hid, "result": "converted",
         "deposit_value_fen": 0}]
    late = Order("D1", 2000, ("BOX-DEP",), early.reserve_from + 5)
    assert pay(state, late, START + 10) == {"sale_holds": [
        {"kind": "presale", "sale": "early", "hold": hid, "result": "already_converted",
         "order": "F1", "deposit_value_fen": 0}]}
    assert (state.sale_holds[hid].status, state.sale_holds[hid].deposit_order) == (
        "paid", "D1")
    assert pay(state, Order("D2", 2000, ("BOX-DEP",)), START + 20) == {"sale_holds": [
        {"kind": "presale", "sale": "early", "hold": None, "result": "no_reservation"}]}


def test_a_final_order_paid_before_the_reservation_converts_nothing() -> None:
    """The config opens the purchase no earlier than the reservations close, but an edit
    may move both before a reservation already made: a final order paid before that
    reservation still converts nothing."""
    early = CFG.presales["early"]
    state = reserve(None, early.reserve_until - 10).state
    hid = next(iter(state.sale_holds))
    opened = early.reserve_until - 1000
    cfg = config(presales={"early": presale_raw(event_at=opened, reserve_until=opened)})
    old = Order("F0", 19900, ("BOX-11",), early.reserve_until - 71)
    assert pay(state, old, START, cfg) == {"sale_holds": [
        {"kind": "presale", "sale": "early", "hold": None, "result": "no_reservation"}]}
    assert state.sale_holds[hid].status == "held"
    new = Order("F1", 19900, ("BOX-11",), early.reserve_until - 10)
    assert pay(state, new, START, cfg)["sale_holds"][0]["hold"] == hid  # type: ignore[index]


def test_presale_views_by_phase() -> None:
    early = CFG.presales["early"]
    at = {early.reserve_from - 1: "upcoming", early.reserve_from: "reserving",
          early.reserve_until: "waiting", early.event_at: "buying",
          early.convert_until: "buying", early.convert_until + 1: "ended"}
    assert {t: rules.presale_status(early, t, 5) for t in at} == at
    assert rules.presale_status(early, early.reserve_from, 0) == "sold_out"
    view = rules.presale_view(early, START - 10, 7)
    assert (view["event_in"], view["stock_left"], view["deposit_value_fen"]) == (10, 7, 5000)
    assert view["stock_pending"] == 0
    assert rules.presale_view(early, early.reserve_from, 0, pending=1)["stock_pending"] == 1


# -- views ----------------------------------------------------------------------------


def test_flash_view_countdown_in_server_time() -> None:
    sale = CFG.flashsales["midnight"]
    view = rules.flash_view(sale, START - 90, 100)
    assert view == {"sale": "midnight", "title": "Midnight nuts", "sku": "NUTS-11",
                    "price_fen": 990, "list_price_fen": None, "starts_at": START,
                    "ends_at": None, "server_time": START - 90, "starts_in": 90,
                    "status": "upcoming", "stock": 100, "stock_left": 100,
                    "stock_pending": 0, "per_shopper": 1, "pay_seconds": PAY,
                    "eligibility": {"member_task": None, "task": None, "min_orders": 0}}
    assert rules.flash_view(sale, START, 1)["status"] == "live"
    assert rules.flash_view(sale, START, 0)["status"] == "sold_out"
    assert rules.flash_view(sale, START + 5, -1)["stock_left"] == 0
    held = rules.flash_view(sale, START, 0, pending=2)
    assert (held["status"], held["stock_left"], held["stock_pending"]) == ("sold_out", 0, 2)


def test_player_view_lists_holds_newest_first_and_is_left_out_without() -> None:
    assert rules.sale_holds_view(new_player(CFG, START), CFG, START, SH) is None
    state = claim(claim(None, START).state, START + PAY + 5).state
    view = rules.sale_holds_view(state, CFG, START + PAY + 5, SH)
    assert view is not None
    assert [(v["status"], v["claimed_at"]) for v in view] == [
        ("held", START + PAY + 5), ("expired", START)]
    assert view[0]["kind"] == "flash_sale" and view[0]["price_fen"] == 990


def test_a_paid_order_runs_tasks_then_the_hook_and_a_duplicate_neither() -> None:
    state = claim(None, START).state
    out = apply_paid_order(state, Order("T9", 990, ("NUTS-11",)), START + 1, random.Random(1),
                           CFG, tz=SH)
    assert out.response["order"] == "T9" and out.response["duplicate"] is False
    assert out.response["sale_holds"][0]["result"] == "paid"
    again = apply_paid_order(out.state, Order("T9", 990, ("NUTS-11",)), START + 2,
                             random.Random(1), CFG, tz=SH)
    assert again.response == {"order": "T9", "duplicate": True, "tasks": {}}
    plain = apply_paid_order(state, Order("T8", 5, ("OTHER",)), START + 1, random.Random(1),
                             CFG, tz=SH)
    assert "sale_holds" not in plain.response


def test_a_late_order_pays_a_hold_that_still_has_its_unit_before_an_ended_older_one(
        ) -> None:
    """Two holds of a two-per-shopper sale, both past pay_by: the older one ended by the
    sweeper (its unit back in the stock, now sold out), the newer one not yet ended (its
    unit still the shopper's). A late order pays the newer one: the shopper has a unit
    for it. Before, the older hold was taken first, the order was answered refund
    (sold_out), and the sweeper then released the newer hold's unit to someone else."""
    cfg = config({"midnight": flash_raw(per_shopper=2)})
    state = claim(None, START, cfg).state
    older = next(iter(state.sale_holds))
    state = claim(state, START + 10, cfg).state
    newer = next(h for h in state.sale_holds if h != older)
    state = rules.expire_sale_hold(state, rules.ExpireHold(older), START + PAY + 1,
                                   random.Random(1), cfg).state
    part = pay_sale_holds(state, Order("T1", 990, ("NUTS-11",), START + PAY + 20),
                          START + PAY + 30, random.Random(3), cfg,
                          frozenset({"flash:midnight"}))
    assert part is not None and part.response == {"sale_holds": [
        {"kind": "flash_sale", "sale": "midnight", "hold": newer, "result": "paid",
         "late": True}]}
    assert (part.reservations, part.grants) == ([], [])
    assert (state.sale_holds[newer].status, state.sale_holds[newer].order) == ("paid", "T1")
    assert (state.sale_holds[older].status, state.sale_holds[older].order) == ("expired", "")
