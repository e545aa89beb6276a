"""Coupons out of stock: a free reward skips the coupon (``coupon_unavailable``) and
keeps the rest; a paid exchange for a coupon or a sold-out offer is refused."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from economy.errors import OfferSoldOut
from economy.rewards import Reward
from mechanics import pet
from mechanics import tasks as t
from mechanics.checkin import CheckIn, check_in
from mechanics.exchange import Exchange, exchange
from mechanics.grants import Effects, grant
from mechanics.state import PlayerState
from tests.unit.factory import T0, NoRng, config

SH = ZoneInfo("Asia/Shanghai")
RNG = NoRng()
OUT = frozenset({"c10"})
UNAVAILABLE = {"type": "coupon_unavailable", "coupon": "c10", "count": 1}


def test_grant_skips_an_out_coupon_and_keeps_the_rest() -> None:
    cfg = config()
    state, fx = PlayerState(created_at=T0, wallet={"acorn": 0}), Effects()
    out = grant(state, Reward(currency={"acorn": 5}, coupon="c10"), "r", cfg, fx, times=2,
                coupons_out=OUT)
    assert out == {"currency": {"acorn": 10}, "items": {}, "coupons_unavailable": {"c10": 2}}
    assert state.wallet == {"acorn": 10} and fx.reservations == []
    assert fx.events == [{**UNAVAILABLE, "count": 2, "reason": "r"}]


def test_grant_of_another_coupon_still_reserves() -> None:
    state, fx = PlayerState(created_at=T0), Effects()
    grant(state, Reward(coupon="c10"), "r", config(), fx, coupons_out=frozenset({"other"}))
    assert fx.reservations == [("coupon:c10", 1)]


def test_stage_coupon_skipped_when_out() -> None:
    cfg = config(foods={"feast": {"name": "Feast", "effects": {"satiety": 1}, "xp": 100}})
    state = pet.adopt(None, pet.AdoptPet("squirrel", "N"), T0, RNG, cfg).state
    out = pet.feed(state, pet.FeedPet("feast"), T0, RNG, cfg, coupons_out=OUT)
    assert out.response["stages"] == ["teen", "adult"]
    assert out.reservations == [] and out.state.inventory == {"ticket": 1}
    assert {**UNAVAILABLE, "reason": "stage:squirrel:adult"} in out.events
    assert out.state.pet is not None and out.state.pet.stage == 3  # not offered again


def test_checkin_day_with_out_coupon_still_counts() -> None:
    cfg = config(checkin={"cycle": [{"currency": {"acorn": 1}, "coupon": "c10"}]})
    out = check_in(None, CheckIn(), T0, RNG, cfg, tz=SH, coupons_out=OUT)
    assert out.response["streak"] == 1 and out.reservations == []
    assert out.state.wallet["acorn"] == 101
    assert {**UNAVAILABLE, "reason": "checkin:2026-01-01"} in out.events


def test_task_and_order_coupon_skipped_and_refund_owes_no_coupon() -> None:
    tasks = {"follow": {"name": "Follow", "kind": "follow", "reward": {"coupon": "c10"}},
             "buy": {"name": "Buy", "kind": "purchase",
                     "reward": {"currency": {"acorn": 5}, "coupon": "c10"}}}
    cfg = config(tasks=tasks)
    done = t.complete_task(None, t.CompleteTask("follow"), T0, RNG, cfg, tz=SH, coupons_out=OUT)
    assert done.reservations == [] and done.response["done"] == 1
    paid = t.apply_order(None, t.Order("o1", 100), T0, RNG, cfg, tz=SH, coupons_out=OUT)
    assert paid.reservations == [] and paid.state.orders["o1"].no_coupon == ["buy"]
    wire = paid.state.to_wire()
    assert PlayerState.from_wire(wire).orders["o1"].no_coupon == ["buy"]
    refund = t.apply_refund(paid.state, t.Refund("o1"), T0 + 1, RNG, cfg, tz=SH)
    assert refund.response["debt"] == {} and refund.state.debts == {}
    assert refund.state.wallet["acorn"] == 100


OFFERS = {
    "coupon": {"name": "Coupon", "cost": {"currency": {"acorn": 5}}, "gives": {"coupon": "c10"}},
    "limited": {"name": "Limited", "cost": {"currency": {"acorn": 5}},
                "gives": {"currency": {"gem": 1}}, "global_limit": 3},
}


@pytest.mark.parametrize(("offer", "kw", "ref"), [
    ("coupon", {"coupons_out": OUT}, "coupon:c10"),
    ("limited", {"offers_out": frozenset({"limited"})}, "offer:limited"),
])
def test_exchange_refused_when_sold_out(offer: str, kw: dict[str, frozenset[str]],
                                        ref: str) -> None:
    cfg = config(offers=OFFERS)
    state = PlayerState(created_at=T0, wallet={"acorn": 100})
    with pytest.raises(OfferSoldOut) as e:
        exchange(state, Exchange(offer), T0, RNG, cfg, tz=SH, **kw)  # type: ignore[arg-type]
    assert e.value.code == "offer_sold_out" and e.value.details == {"offer": offer, "ref": ref}
    ok = exchange(state, Exchange(offer), T0, RNG, cfg, tz=SH)
    assert ok.reservations
