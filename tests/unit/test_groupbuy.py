"""Group buy's pure rules and config section, with exact expectations at every boundary:
open, join, full, expired, leave, per-shopper limit, completion once per member,
expiry (fail and auto-complete), the member's side in any order, refund after completion."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from economy.config import parse_game_config
from economy.errors import ConfigInvalid, InsufficientFunds, InvalidInput
from economy.groupbuy import (
    AlreadyInGroup,
    CannotLeaveGroup,
    GroupExpired,
    GroupFull,
    GroupLimitReached,
    GroupNotFound,
    GroupOffer,
    GroupOfferSoldOut,
)
from economy.rewards import Reward
from mechanics import groupbuy as rules
from mechanics.aggregate import OwedOther
from mechanics.groupbuystate import MyGroup
from mechanics.outcome import StockHold
from mechanics.pet import new_player
from mechanics.state import PlayerState
from tests.conftest import BASIC_CONFIG

T0 = 1_000_000
GID = "abcdefgh23"


def config(offers: dict[str, Any]) -> Any:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["currencies"]["gem"] = {"name": "Gems", "initial": 0, "max": 50}
    raw["items"] = {"ticket": {"name": "Ticket", "max": 10}}
    raw["coupons"] = {"c10": {"name": "¥10 off", "stock": 100, "value_fen": 1000}}
    raw["groupbuys"] = offers
    return parse_game_config(raw)


def offer_raw(**over: Any) -> dict[str, Any]:
    return {"title": "3 friends, ¥9.9", "size": 3, "duration_s": 3600, "cost": {"acorn": 10},
            "reward": {"currency": {"gem": 5}, "items": {}, "coupon": ""}, **over}


CFG = config({"tea": offer_raw(), "big": offer_raw(size=2, stock=10, auto_complete=True,
                                                     per_shopper=2)})
TEA: GroupOffer = CFG.groupbuys["tea"]
BIG: GroupOffer = CFG.groupbuys["big"]


def test_config_defaults_and_model() -> None:
    expected = GroupOffer(id="tea", title="3 friends, ¥9.9", size=3, duration_s=3600,
                          price_fen=0, cost={"acorn": 10}, reward=Reward({"gem": 5}),
                          per_shopper=1, stock=None, auto_complete=False)
    assert CFG.groupbuys["tea"] == expected
    assert CFG.groupbuys["big"].stock_ref == "groupbuy:big"


def test_stock_only_for_offers_with_stock() -> None:
    from economy.config import value_totals
    totals = value_totals(CFG)
    assert totals["groupbuy:big"] == 10
    assert "groupbuy:tea" not in totals


@pytest.mark.parametrize(("offer", "path"), [
    (offer_raw(size=1), "$.groupbuys.tea.size"),
    (offer_raw(size=51), "$.groupbuys.tea.size"),
    (offer_raw(duration_s=59), "$.groupbuys.tea.duration_s"),
    (offer_raw(cost={"gold": 1}), "$.groupbuys.tea.cost.gold"),
    (offer_raw(reward={"currency": {"gold": 1}, "items": {}, "coupon": ""}),
     "$.groupbuys.tea.reward.currency.gold"),
    (offer_raw(reward={"currency": {}, "items": {}, "coupon": "nope"}),
     "$.groupbuys.tea.reward.coupon"),
    (offer_raw(per_shopper=0), "$.groupbuys.tea.per_shopper"),
    (offer_raw(stock=-1), "$.groupbuys.tea.stock"),
])
def test_config_problems_name_their_path(offer: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        config({"tea": offer})
    assert [p["path"] for p in err.value.details["problems"]] == [path]


def opened(user: str = "ann", offer: GroupOffer = TEA, now: int = T0) -> rules.Group:
    return rules.open_group(None, GID, offer, user, now).state  # type: ignore[no-any-return]


def filled_to(n: int, offer: GroupOffer = TEA) -> rules.Group:
    group = opened(offer=offer)
    for i in range(1, n):
        group = rules.join_group(group, GID, offer, f"u{i}", T0 + i).state
    return group


def test_open_group() -> None:
    out = rules.open_group(None, GID, TEA, "ann", T0)
    assert out.state == rules.Group("tea", "ann", 3, T0, T0 + 3600, [("ann", T0)])
    assert out.response["group"] == out.response["code"] == GID
    assert (out.response["size"], out.response["seats_left"], out.response["state"],
            out.response["expires_at"]) == (3, 2, "open", T0 + 3600)
    assert out.response["members"] == [{"user": "a***", "joined_at": T0, "opener": True,
                                        "me": True}]
    assert out.owed is not None
    assert (out.owed["effect"], out.owed["role"], out.owed["cost"], out.owed["complete"]) == (
        rules.JOIN, "opener", {"acorn": 10}, False)
    assert out.others == ()


def test_open_on_a_taken_id_refuses() -> None:
    with pytest.raises(InvalidInput):
        rules.open_group(opened(), GID, TEA, "bob", T0)


def test_join_takes_a_seat() -> None:
    out = rules.join_group(opened(), GID, TEA, "bob", T0 + 5)
    assert out.state.members == [("ann", T0), ("bob", T0 + 5)]
    assert (out.state.state, out.response["seats_left"]) == ("open", 1)
    assert out.owed is not None and out.owed["complete"] is False and out.others == ()


def test_last_seat_completes_and_owes_every_member_once() -> None:
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    assert (out.state.state, out.state.closed_at, out.response["seats_left"]) == (
        "complete", T0 + 9, 0)
    assert out.owed is not None and out.owed["complete"] is True
    assert out.owed["reward"] == {"currency": {"gem": 5}, "items": {}}
    assert [(o.user, o.key) for o in out.others] == [
        ("ann", f"{rules.DONE}.{GID}"), ("u1", f"{rules.DONE}.{GID}")]
    assert all(o.owed["effect"] == rules.DONE for o in out.others)


def test_full_group_refuses_with_group_full() -> None:
    full = filled_to(3)
    with pytest.raises(GroupFull) as err:
        rules.join_group(full, GID, TEA, "dan", T0 + 10)
    assert err.value.code == "group_full"
    assert err.value.details == {"group": GID, "size": 3}


def test_expired_group_refuses_at_the_expiry_second() -> None:
    group = opened()
    rules.join_group(group, GID, TEA, "bob", T0 + 3599)  # one second before: fine
    with pytest.raises(GroupExpired) as err:
        rules.join_group(group, GID, TEA, "bob", T0 + 3600)
    assert err.value.code == "group_expired"


def test_unknown_group_or_other_offer_is_not_found() -> None:
    with pytest.raises(GroupNotFound):
        rules.join_group(None, GID, TEA, "bob", T0)
    with pytest.raises(GroupNotFound):
        rules.join_group(opened(), GID, BIG, "bob", T0)


def test_member_cannot_join_twice() -> None:
    with pytest.raises(AlreadyInGroup):
        rules.join_group(opened(), GID, TEA, "ann", T0 + 1)


def test_leave_before_fill_frees_the_seat_and_forbids_rejoining() -> None:
    two = filled_to(2)
    out = rules.leave_group(two, GID, TEA, "u1", T0 + 20)
    assert (out.state.members, out.state.gone, out.response["seats_left"]) == (
        [("ann", T0)], ["u1"], 2)
    assert out.owed is not None and out.owed["effect"] == rules.LEAVE
    with pytest.raises(AlreadyInGroup):
        rules.join_group(out.state, GID, TEA, "u1", T0 + 21)


@pytest.mark.parametrize(("group", "user", "now", "error"), [
    ("two", "ann", T0 + 1, CannotLeaveGroup),     # the opener stays
    ("full", "u1", T0 + 1, CannotLeaveGroup),     # filled: too late
    ("two", "zed", T0 + 1, GroupNotFound),        # not a member
    ("two", "u1", T0 + 3600, GroupExpired),       # expired
])
def test_leave_refusals(group: str, user: str, now: int, error: type[Exception]) -> None:
    g = filled_to(2) if group == "two" else filled_to(3)
    with pytest.raises(error):
        rules.leave_group(g, GID, TEA, user, now)


def test_expiry_fails_an_unfilled_group_and_owes_every_member_their_payment() -> None:
    two = filled_to(2)
    with pytest.raises(rules.NotDue):
        rules.expire_group(two, GID, TEA, T0 + 3599)
    out = rules.expire_group(two, GID, TEA, T0 + 3600)
    assert (out.state.state, out.state.closed_at, out.owed) == ("failed", T0 + 3600, None)
    assert out.others == (
        OwedOther("ann", f"{rules.FAILED}.{GID}", {"effect": rules.FAILED, "group": GID,
                                                "offer": "tea", "expires_at": T0 + 3600}),
        OwedOther("u1", f"{rules.FAILED}.{GID}", {"effect": rules.FAILED, "group": GID,
                                               "offer": "tea", "expires_at": T0 + 3600}))
    with pytest.raises(rules.NotDue):  # ended once: a second pass has nothing to do
        rules.expire_group(out.state, GID, TEA, T0 + 4000)
    with pytest.raises(GroupExpired):
        rules.join_group(out.state, GID, TEA, "bob", T0 + 10)


def test_expiry_with_auto_complete_fills_with_system_members() -> None:
    group = opened(offer=BIG)
    out = rules.expire_group(group, GID, BIG, T0 + 3600)
    assert (out.state.state, out.state.system, out.state.seats_left()) == ("complete", 1, 0)
    assert [(o.user, o.owed["effect"]) for o in out.others] == [("ann", rules.DONE)]
    view = rules.group_view(out.state, GID, BIG, T0 + 3600)
    assert [m.get("system", False) for m in view["members"]] == [False, True]


def test_complete_group_is_not_due() -> None:
    with pytest.raises(rules.NotDue):
        rules.expire_group(filled_to(3), GID, TEA, T0 + 9999)


def test_view_of_an_expired_group_shows_how_it_ended_before_the_sweep() -> None:
    group = opened()
    assert rules.group_view(group, GID, TEA, T0 + 3600)["state"] == "failed"
    assert rules.group_view(opened(offer=BIG), GID, BIG, T0 + 3600)["state"] == "complete"


# -- checks before the gate ---------------------------------------------------------------


def player(**groups: MyGroup) -> PlayerState:
    state = new_player(CFG, T0)
    state.groupbuys = dict(groups)
    return state


def test_per_shopper_limit_counts_open_and_complete_groups_only() -> None:
    assert rules.check_join(None, TEA, CFG, T0) == 0
    closed = player(g1=MyGroup("tea", "member", "failed", T0, T0, {}),
                    g2=MyGroup("tea", "member", "left", T0, T0, {}),
                    g3=MyGroup("big", "member", "open", T0, T0, {}))
    assert rules.check_join(closed, TEA, CFG, T0) == 0
    with pytest.raises(GroupLimitReached) as err:
        rules.check_join(player(g1=MyGroup("tea", "member", "complete", T0, T0, {})),
                         TEA, CFG, T0)
    assert err.value.details == {"offer": "tea", "per_shopper": 1}


def test_a_shopper_who_cannot_pay_is_refused() -> None:
    poor = player()
    poor.wallet["acorn"] = 9
    with pytest.raises(InsufficientFunds):
        rules.check_join(poor, TEA, CFG, T0)


def test_stock_must_cover_a_full_group() -> None:
    rules.check_stock(BIG, 2)
    rules.check_stock(TEA, 0)  # no stock configured: unlimited
    with pytest.raises(GroupOfferSoldOut) as err:
        rules.check_stock(BIG, 1)
    assert err.value.details == {"offer": BIG.id, "left": 1, "stock_pending": 0}
    with pytest.raises(GroupOfferSoldOut) as err:  # held by grants in flight: for now
        rules.check_stock(BIG, 1, pending=2)
    assert err.value.details == {"offer": BIG.id, "left": 1, "stock_pending": 2,
                                 "retry_after": 1}


# -- the member's side --------------------------------------------------------------------


def owed_of(out: Any) -> dict[str, Any]:
    assert out.owed is not None
    return out.owed  # type: ignore[no-any-return]


def test_join_charges_the_cost_once_and_records_the_group() -> None:
    owed = owed_of(rules.open_group(None, GID, TEA, "ann", T0))
    out = rules.apply_effect(None, owed, T0, CFG)
    assert out.state.wallet["acorn"] == 90
    assert out.state.groupbuys == {GID: MyGroup("tea", "opener", "open", T0 + 3600, T0,
                                                {"acorn": 10})}
    assert out.response["wallet"] == {"acorn": 90, "gem": 0}
    again = rules.apply_effect(out.state, owed, T0, CFG)  # a replayed record: no 2nd charge
    assert again.state.wallet["acorn"] == 90


def test_completion_rewards_once_and_the_last_joiner_in_its_own_commit() -> None:
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    last = rules.apply_effect(None, owed_of(out), T0 + 9, CFG)
    assert (last.state.wallet, last.state.groupbuys[GID].state,
            last.state.groupbuys[GID].rewarded) == ({"acorn": 90, "gem": 5}, "complete", True)
    ann = rules.apply_effect(None, owed_of(rules.open_group(None, GID, TEA, "ann", T0)), T0, CFG)
    done = rules.apply_effect(ann.state, out.others[0].owed, T0 + 9, CFG)
    assert done.state.wallet == {"acorn": 90, "gem": 5}
    twice = rules.apply_effect(done.state, out.others[0].owed, T0 + 9, CFG)
    assert twice.state.wallet == {"acorn": 90, "gem": 5}
    assert twice.response["reward"] == {"granted": False, "reason": "already"}


def test_completion_before_the_join_record_charges_once_and_rewards_once() -> None:
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    done = rules.apply_effect(None, out.others[1].owed, T0 + 9, CFG)  # u1's completion first
    joined_owed = owed_of(rules.join_group(opened(), GID, TEA, "u1", T0 + 1))
    late = rules.apply_effect(done.state, joined_owed, T0 + 10, CFG)
    assert late.state.wallet == {"acorn": 90, "gem": 5}
    assert (late.state.groupbuys[GID].state, late.state.groupbuys[GID].paid) == (
        "complete", {"acorn": 10})


def test_failure_refunds_what_was_paid_and_a_late_join_record_charges_nothing() -> None:
    fail = rules.expire_group(opened(), GID, TEA, T0 + 3600)
    ann = rules.apply_effect(None, owed_of(rules.open_group(None, GID, TEA, "ann", T0)), T0, CFG)
    back = rules.apply_effect(ann.state, fail.others[0].owed, T0 + 3600, CFG)
    assert back.state.wallet == {"acorn": 100, "gem": 0}
    assert (back.state.groupbuys[GID].state, back.state.groupbuys[GID].paid) == ("failed", {})
    assert back.response["refunded"] == {"acorn": 10}
    assert rules.apply_effect(back.state, fail.others[0].owed, T0 + 3601,
                              CFG).state.wallet == {"acorn": 100, "gem": 0}
    first = rules.apply_effect(None, fail.others[0].owed, T0 + 3600, CFG)
    late = rules.apply_effect(first.state, owed_of(rules.open_group(None, GID, TEA, "ann", T0)),
                              T0 + 3601, CFG)
    assert late.state.wallet == {"acorn": 100, "gem": 0}


def test_a_cost_the_wallet_no_longer_covers_becomes_a_debt_and_a_refund_clears_it() -> None:
    poor = player()
    poor.wallet["acorn"] = 4
    owed = owed_of(rules.join_group(opened(), GID, TEA, "bob", T0 + 1))
    paid = rules.apply_effect(poor, owed, T0 + 1, CFG)
    assert (paid.state.wallet["acorn"], paid.state.debts) == (0, {"currency:acorn": 6})
    left = rules.leave_group(rules.join_group(opened(), GID, TEA, "bob", T0 + 1).state, GID,
                             TEA, "bob", T0 + 2)
    back = rules.apply_effect(paid.state, owed_of(left), T0 + 2, CFG)
    assert (back.state.wallet["acorn"], back.state.debts) == (4, {})
    assert back.state.groupbuys[GID].state == "left"


def test_stocked_offer_reserves_one_unit_per_member_and_skips_it_when_gone() -> None:
    out = rules.join_group(opened(offer=BIG), GID, BIG, "bob", T0 + 1)
    got = rules.apply_effect(None, owed_of(out), T0 + 1, CFG)
    assert got.reservations == [StockHold("groupbuy:big", 1)]
    assert [(g.ref, g.kind) for g in got.grants] == [("groupbuy:big", "groupbuy")]
    gone = rules.apply_effect(None, owed_of(out), T0 + 1, CFG,
                              rules.Scarce(offers=frozenset({"big"})))
    assert (gone.reservations, gone.grants) == ([], [])
    assert gone.response["reward"] == {"granted": False, "reason": "sold_out"}
    assert gone.state.groupbuys[GID].rewarded is False


def test_refund_after_completion_takes_the_reward_back_once() -> None:
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    cat = rules.apply_effect(None, owed_of(out), T0 + 9, CFG).state
    cat.wallet["gem"] = 2  # spent 3 of the 5
    ref = rules.refund_completed(cat, GID, T0 + 100, CFG)
    assert (ref.state.wallet["gem"], ref.state.debts) == (0, {"currency:gem": 3})
    assert ref.state.groupbuys[GID].state == "refunded"
    assert rules.groups_in(ref.state, "tea") == 0  # no longer counts toward the limit
    again = rules.refund_completed(ref.state, GID, T0 + 101, CFG)
    assert (again.response, again.state.debts) == ({"group": GID, "refunded": False},
                                                   {"currency:gem": 3})


def test_a_refund_takes_back_only_what_a_balance_limit_let_the_reward_give() -> None:
    near_max = player()
    near_max.wallet["gem"] = 48  # max 50: the reward of 5 gives 2, 3 are lost
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    cat = rules.apply_effect(near_max, owed_of(out), T0 + 9, CFG).state
    assert cat.wallet["gem"] == 50
    assert cat.groupbuys[GID].given == {"currency": {"gem": 2}, "items": {}}
    assert MyGroup.from_wire(cat.groupbuys[GID].to_wire()) == cat.groupbuys[GID]
    ref = rules.refund_completed(cat, GID, T0 + 100, CFG)
    assert (ref.state.wallet["gem"], ref.state.debts) == (48, {})
    assert ref.response["debt"] == {}


def test_a_refund_owes_no_coupon_the_completion_could_not_give() -> None:
    coupon_cfg = config({"tea": offer_raw(reward={"currency": {"gem": 5}, "items": {},
                                                  "coupon": "c10"})})
    offer = coupon_cfg.groupbuys["tea"]
    out = rules.join_group(filled_to(2, offer), GID, offer, "cat", T0 + 9)
    got = rules.apply_effect(None, owed_of(out), T0 + 9, coupon_cfg,
                             rules.Scarce(coupons=frozenset({"c10"})))
    assert got.response["reward"]["coupons_unavailable"] == {"c10": 1}
    cat = got.state
    assert MyGroup.from_wire(cat.groupbuys[GID].to_wire()) == cat.groupbuys[GID]
    ref = rules.refund_completed(cat, GID, T0 + 100, coupon_cfg)
    assert (ref.state.wallet["gem"], ref.state.debts, ref.response["debt"]) == (0, {}, {})
    given = rules.apply_effect(None, owed_of(out), T0 + 9, coupon_cfg).state
    taken = rules.refund_completed(given, GID, T0 + 100, coupon_cfg)
    assert taken.state.debts == {"coupon:c10": 1}  # a coupon granted is owed back


def test_a_refund_takes_back_what_the_reward_gave_not_the_reward_configured_now() -> None:
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    cat = rules.apply_effect(None, owed_of(out), T0 + 9, CFG).state
    assert cat.wallet["gem"] == 5
    cat.wallet["gem"] = 30  # earned elsewhere
    raised = config({"tea": offer_raw(reward={"currency": {"gem": 40},
                                              "items": {"ticket": 2}, "coupon": "c10"})})
    ref = rules.refund_completed(cat, GID, T0 + 100, raised)
    assert (ref.state.wallet["gem"], ref.state.debts) == (25, {})
    assert ref.response["debt"] == {}


# -- what the shopper's slice keeps --------------------------------------------------------
# ``pair`` may be completed 25 times by one shopper (above the 20 other closed groups the
# slice keeps for the view); ``other`` is the offer whose groups the shopper closes many of.

LONG = config({"tea": offer_raw(),
               "pair": offer_raw(size=2, cost={}, per_shopper=25),
               "other": offer_raw(cost={}, per_shopper=100)})
PAIR: GroupOffer = LONG.groupbuys["pair"]
OTHER: GroupOffer = LONG.groupbuys["other"]
DAY = 86_400


def completed(state: PlayerState | None, offer: GroupOffer, gid: str, now: int,
              user: str = "xan") -> PlayerState:
    """``user`` takes the last seat of a group ``ann`` opened (and others filled)."""
    group = rules.open_group(None, gid, offer, "ann", now).state
    for i in range(2, offer.size):
        group = rules.join_group(group, gid, offer, f"u{i}", now).state
    out = rules.join_group(group, gid, offer, user, now)
    assert out.owed is not None and out.owed["complete"] is True
    return rules.apply_effect(state, out.owed, now, LONG).state


def left(state: PlayerState | None, gid: str, now: int, user: str = "xan") -> PlayerState:
    """``user`` joins an ``other`` group and leaves it: a closed group that no rule needs."""
    joined = rules.join_group(opened(offer=OTHER, now=now), gid, OTHER, user, now)
    state = rules.apply_effect(state, owed_of(joined), now, LONG).state
    gone = rules.leave_group(joined.state, gid, OTHER, user, now)
    return rules.apply_effect(state, owed_of(gone), now, LONG).state


def failed(state: PlayerState | None, gid: str, now: int, user: str = "xan") -> PlayerState:
    """``user`` joins a 3-seat ``tea`` group that expires unfilled."""
    joined = rules.join_group(opened(offer=TEA, now=now), gid, TEA, user, now)
    state = rules.apply_effect(state, owed_of(joined), now, LONG).state
    fail = rules.expire_group(joined.state, gid, TEA, now + TEA.duration_s)
    mine = next(o.owed for o in fail.others if o.user == user)
    return rules.apply_effect(state, mine, now + TEA.duration_s, LONG).state


def test_a_complete_group_counts_toward_the_limit_after_many_other_closed_groups() -> None:
    """The defect: 20 newer closed groups pushed the complete one out of the state, and
    the shopper could complete (and be rewarded for) a second group of the offer."""
    state = completed(None, TEA, "A", T0)
    for i in range(21):
        state = left(state, f"L{i}", T0 + 10 + i)
    for i in range(5):
        state = failed(state, f"F{i}", T0 + 100 + i)
    assert state.groupbuys["A"].state == "complete"
    assert rules.groups_in(state, "tea") == 1
    with pytest.raises(GroupLimitReached):
        rules.check_join(state, TEA, LONG, T0 + 200)


def test_a_per_shopper_limit_above_twenty_is_reached() -> None:
    state: PlayerState | None = None
    for i in range(24):
        state = completed(state, PAIR, f"P{i}", T0 + i)
    assert rules.check_join(state, PAIR, LONG, T0 + 50) == 24  # the 25th may still join
    state = completed(state, PAIR, "P24", T0 + 50)
    for i in range(30):
        state = left(state, f"L{i}", T0 + 100 + i)
    assert rules.groups_in(state, "pair") == 25
    with pytest.raises(GroupLimitReached) as err:
        rules.check_join(state, PAIR, LONG, T0 + 200)
    assert err.value.details == {"offer": "pair", "per_shopper": 25}


def test_a_refund_after_many_other_groups_takes_the_reward_back() -> None:
    state = completed(None, TEA, "A", T0)
    assert state.wallet == {"acorn": 90, "gem": 5}
    for i in range(30):
        state = left(state, f"L{i}", T0 + 10 + i)
    later = T0 + 365 * DAY  # the offer is still configured: a refund is honoured any time
    state = PlayerState.from_wire(state.to_wire())  # as stored and loaded again
    ref = rules.order_refunded(state, ("TEA-1", "groupbuy:A"), later, LONG)
    assert ref is not None
    assert ref.response == {"groups": [{"group": "A", "refunded": True, "debt": {}}]}
    assert ref.state.wallet == {"acorn": 90, "gem": 0}
    assert ref.state.groupbuys["A"].state == "refunded"
    assert rules.check_join(ref.state, TEA, LONG, later) == 0  # the limit frees its seat


def test_the_slice_keeps_what_rules_need_and_twenty_other_closed_groups() -> None:
    """1 complete ``tea`` + 25 complete ``pair`` + 1 open + the 20 newest of 40 closed
    ``other`` groups: 47 entries, however many more groups close."""
    state = completed(None, TEA, "A", T0)
    for i in range(25):
        state = completed(state, PAIR, f"P{i}", T0 + 1 + i)
    for i in range(40):
        state = left(state, f"L{i:02}", T0 + 100 + i)
    joined = rules.join_group(opened(offer=OTHER, now=T0 + 200), "O", OTHER, "xan", T0 + 200)
    state = rules.apply_effect(state, owed_of(joined), T0 + 200, LONG).state
    assert len(state.groupbuys) == 47
    assert sorted(g for g in state.groupbuys if g.startswith("L")) == [
        f"L{i:02}" for i in range(20, 40)]
    assert state.groupbuys["O"].state == "open"
    for i in range(40, 60):
        state = left(state, f"L{i:02}", T0 + 100 + i)
    assert len(state.groupbuys) == 47


def test_a_complete_group_of_a_removed_offer_goes_thirty_days_after_its_deadline() -> None:
    """Once the config no longer has the offer, the complete group is kept
    ``COMPLETE_KEEP_S`` after its deadline, then it is a closed group like any other."""
    assert rules.COMPLETE_KEEP_S == 30 * DAY
    state = completed(None, TEA, "A", T0)
    deadline = state.groupbuys["A"].expires_at
    assert deadline == T0 + 3600
    for i in range(20):
        state = left(state, f"L{i:02}", T0 + 10 + i)
    without_tea = config({"other": offer_raw(cost={}, per_shopper=100)})
    # one more closed group, recorded when the window has (not) run out
    joined = rules.join_group(opened(offer=OTHER, now=T0 + 40), "F", OTHER, "xan", T0 + 40)
    state = rules.apply_effect(state, owed_of(joined), T0 + 40, LONG).state
    assert len(state.groupbuys) == 22  # A, 20 left, F open
    fail = rules.expire_group(joined.state, "F", OTHER, T0 + 40 + OTHER.duration_s)
    mine = next(o.owed for o in fail.others if o.user == "xan")
    kept = rules.apply_effect(state, mine, deadline + 30 * DAY - 1, without_tea).state
    assert "A" in kept.groupbuys and len(kept.groupbuys) == 21  # A + the newest 20
    assert "L00" not in kept.groupbuys
    dropped = rules.apply_effect(state, mine, deadline + 30 * DAY, without_tea).state
    assert "A" not in dropped.groupbuys and len(dropped.groupbuys) == 20


def test_player_view_lists_open_groups_first() -> None:
    state = player(old=MyGroup("tea", "member", "failed", T0, T0 - 10, {}),
                   new=MyGroup("tea", "opener", "open", T0 + 60, T0, {"acorn": 10}))
    view = rules.groupbuys_view(state, CFG, T0, None)
    assert view is not None and [r["group"] for r in view] == ["new", "old"]
    no_offers = config({})
    assert rules.groupbuys_view(state, no_offers, T0, None) is None


def test_slice_on_the_wire_is_absent_until_used() -> None:
    fresh = new_player(CFG, T0)
    assert "gb" not in fresh.to_wire()
    state = player(g=MyGroup("tea", "opener", "open", T0 + 60, T0, {"acorn": 10}))
    wire = state.to_wire()
    assert wire["gb"] == {"g": ["tea", "opener", "open", T0 + 60, T0, {"acorn": 10}, False]}
    assert PlayerState.from_wire(wire).groupbuys == state.groupbuys


def test_group_wire_round_trip() -> None:
    group = rules.leave_group(filled_to(2), GID, TEA, "u1", T0 + 5).state
    assert rules.Group.from_wire(group.to_wire()) == group


def test_refund_hook_acts_on_refunds_naming_a_group_only() -> None:
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    cat = rules.apply_effect(None, owed_of(out), T0 + 9, CFG).state
    sku = f"groupbuy:{GID}"
    # a refund hook (Mechanic.on_refund): paid orders never reach it
    assert rules.order_refunded(cat, ("TEA-1",), T0, CFG) is None
    assert rules.order_refunded(cat, (sku,), T0, config({})) is None
    hooked = rules.order_refunded(cat, ("TEA-1", sku), T0 + 50, CFG)
    assert hooked is not None
    assert hooked.response == {"groups": [{"group": GID, "refunded": True, "debt": {}}]}
    assert hooked.state.wallet == {"acorn": 90, "gem": 0}


def test_a_group_listed_twice_in_a_refund_is_refunded_and_answered_once() -> None:
    """A member has one seat in a group, so its SKU twice is still that one seat: one
    answer, not a second ``"refunded": false`` that reads as a failure."""
    out = rules.join_group(filled_to(2), GID, TEA, "cat", T0 + 9)
    cat = rules.apply_effect(None, owed_of(out), T0 + 9, CFG).state
    sku = f"groupbuy:{GID}"
    hooked = rules.order_refunded(cat, (sku, "TEA-1", sku), T0 + 50, CFG)
    assert hooked is not None
    assert hooked.response == {"groups": [{"group": GID, "refunded": True, "debt": {}}]}
    assert hooked.state.wallet == {"acorn": 90, "gem": 0}
