"""Exchange (换购): costs, duplicates, per-player limits, global reservations."""

from __future__ import annotations

import contextlib
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.errors import (
    BalanceLimit,
    DomainError,
    ExchangeLimitReached,
    InsufficientDuplicates,
    InsufficientFunds,
    InsufficientItems,
    InvalidInput,
    OfferUnavailable,
    UnknownItem,
)
from mechanics.exchange import Exchange, exchange
from mechanics.state import PlayerState
from tests.unit.factory import T0, NoRng, config

SH = ZoneInfo("Asia/Shanghai")
DAY = 86_400
RNG = NoRng()
OFFERS = {
    "hat": {"name": "Hat", "cost": {"currency": {"acorn": 50}}, "gives": {"items": {"hat": 1}},
            "per_player": 1},
    "dups": {"name": "3 duplicates → ticket", "duplicates": {"items": ["fig_a", "fig_b"],
                                                              "count": 3},
             "gives": {"items": {"ticket": 1}}, "per_player": 2, "period": "daily"},
    "coupon": {"name": "Coupon", "cost": {"currency": {"gem": 5}}, "gives": {"coupon": "c10"},
               "global_limit": 100},
    "flash": {"name": "Flash", "cost": {"currency": {"acorn": 1}},
              "gives": {"currency": {"gem": 1}}, "starts_at": T0 + 100, "ends_at": T0 + 200},
    "cones": {"name": "Cones → acorns", "cost": {"items": {"pine_cone": 3}},
              "gives": {"currency": {"acorn": 20}}},
}
CFG = config(offers=OFFERS)


def player(**inventory: int) -> PlayerState:
    return PlayerState(created_at=T0, wallet={"acorn": 100, "gem": 10}, inventory=inventory)


def test_currency_for_item_once() -> None:
    out = exchange(player(), Exchange("hat"), T0, RNG, CFG, tz=SH)
    assert out.state.wallet["acorn"] == 50 and out.state.inventory == {"hat": 1}
    assert [(e.kind, e.name, e.delta, e.reason) for e in out.ledger] == [
        ("currency", "acorn", -50, "exchange:hat"), ("item", "hat", 1, "exchange:hat")]
    assert out.reservations == []
    with pytest.raises(ExchangeLimitReached) as e:
        exchange(out.state, Exchange("hat"), T0 + 400 * DAY, RNG, CFG, tz=SH)
    assert e.value.details == {"offer": "hat", "limit": 1, "period": "once"}


def test_duplicates_most_plentiful_first() -> None:
    out = exchange(player(fig_a=3, fig_b=2), Exchange("dups"), T0, RNG, CFG, tz=SH)
    assert out.state.inventory == {"fig_a": 1, "fig_b": 1, "ticket": 1}
    assert out.response["paid"] == {"currency": {}, "items": {"fig_a": 2, "fig_b": 1}}


def test_duplicates_chosen_by_the_player() -> None:
    out = exchange(player(fig_a=3, fig_b=4), Exchange("dups", {"fig_b": 3}), T0, RNG, CFG,
                   tz=SH)
    assert out.state.inventory == {"fig_a": 3, "fig_b": 1, "ticket": 1}
    with pytest.raises(InvalidInput):
        exchange(player(fig_a=9), Exchange("dups", {"fig_a": 2}), T0, RNG, CFG, tz=SH)
    with pytest.raises(InvalidInput):
        exchange(player(hat=9), Exchange("dups", {"hat": 3}), T0, RNG, CFG, tz=SH)
    with pytest.raises(InsufficientDuplicates):
        exchange(player(fig_a=3, fig_b=9), Exchange("dups", {"fig_a": 3}), T0, RNG, CFG, tz=SH)


def test_the_first_copy_is_never_a_duplicate() -> None:
    with pytest.raises(InsufficientDuplicates) as e:
        exchange(player(fig_a=2, fig_b=2), Exchange("dups"), T0, RNG, CFG, tz=SH)
    assert e.value.code == "insufficient_duplicates"
    assert e.value.details == {"have": 2, "need": 3}


def test_daily_limit_resets_at_local_midnight() -> None:
    state = player(fig_a=20)
    state = exchange(state, Exchange("dups"), T0, RNG, CFG, tz=SH).state
    state = exchange(state, Exchange("dups"), T0 + 1, RNG, CFG, tz=SH).state
    with pytest.raises(ExchangeLimitReached):
        exchange(state, Exchange("dups"), T0 + DAY - 1, RNG, CFG, tz=SH)
    out = exchange(state, Exchange("dups"), T0 + DAY, RNG, CFG, tz=SH)
    assert out.state.exchanges["dups"] == [out.state.exchanges["dups"][0], 1]
    assert out.response["player"]["exchanges"]["dups"] == {"used": 1, "limit": 2}


def test_coupon_offer_reserves_global_and_coupon_stock() -> None:
    out = exchange(player(), Exchange("coupon"), T0, RNG, CFG, tz=SH)
    assert out.reservations == [("offer:coupon", 1), ("coupon:c10", 1)]
    assert out.response["granted"] == {"currency": {}, "items": {}, "coupons": {"c10": 1}}
    assert out.state.wallet["gem"] == 5


@pytest.mark.parametrize(("now", "ok"), [(T0 + 99, False), (T0 + 100, True),
                                         (T0 + 199, True), (T0 + 200, False)])
def test_offer_window(now: int, ok: bool) -> None:
    if ok:
        assert exchange(player(), Exchange("flash"), now, RNG, CFG, tz=SH).state.wallet == {
            "acorn": 99, "gem": 11}
    else:
        with pytest.raises(OfferUnavailable):
            exchange(player(), Exchange("flash"), now, RNG, CFG, tz=SH)


@pytest.mark.parametrize(("state", "offer", "error"), [
    (player(), "nope", UnknownItem),
    (PlayerState(created_at=T0, wallet={"acorn": 49}), "hat", InsufficientFunds),
    (player(pine_cone=2), "cones", InsufficientItems),
    (player(hat=1), "hat", BalanceLimit),  # a paid reward is never clamped
])
def test_refusals_change_nothing(state: PlayerState, offer: str,
                                 error: type[Exception]) -> None:
    before = state.to_wire()
    with pytest.raises(error):
        exchange(state, Exchange(offer), T0, RNG, CFG, tz=SH)
    assert state.to_wire() == before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(OFFERS)), st.integers(0, DAY)), max_size=30),
       st.integers(0, 8), st.integers(0, 8), st.integers(0, 6))
def test_balances_never_negative(steps: list[tuple[str, int]], a: int, b: int,
                                 cones: int) -> None:
    state = player(**{k: v for k, v in {"fig_a": a, "fig_b": b, "pine_cone": cones}.items()
                      if v})
    now = T0
    for offer, wait in steps:
        now += wait
        with contextlib.suppress(DomainError):
            state = exchange(state, Exchange(offer), now, RNG, CFG, tz=SH).state
        assert all(v >= 0 for v in state.wallet.values())
        assert all(v > 0 for v in state.inventory.values())
        assert state.inventory.get("hat", 0) <= 1
