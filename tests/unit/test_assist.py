"""Friend assist's pure rules and config section, with exact expectations at every
boundary: self-help, one help per owner, the day and campaign caps, new fans, session
age, complete, expired, starts, and the owner's reward granted once."""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from economy.assist import (
    AlreadyHelped,
    AssistAlreadyOpen,
    AssistCampaignClosed,
    AssistComplete,
    AssistExpired,
    AssistNotFound,
    AssistStartsUsed,
    HelpLimitReached,
    NotNewFan,
    SelfAssist,
    SessionTooYoung,
)
from economy.config import GameConfig, parse_game_config
from economy.errors import ConfigInvalid
from mechanics import assist as rules
from mechanics.aggregate import OwedOther
from mechanics.assiststate import AssistProgress, MyAssist, open_assists
from mechanics.calendar import local_day
from mechanics.outcome import StockHold, ValueGrant
from mechanics.state import PlayerState, new_player
from mechanics.view import player_view
from tests.conftest import BASIC_CONFIG

SH = ZoneInfo("Asia/Shanghai")
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC, 08:00 in Shanghai
DAY = local_day(T0, SH)
CODE = "abcdefghij"


def campaign_raw(**over: Any) -> dict[str, Any]:
    return {"title": "Help me", "needed": 3, "duration_s": 86400,
            "owner_reward": {"coupon": "c10", "currency": {"acorn": 50}},
            "helper_reward": {"currency": {"ticket": 1}}, "helps_per_day": 2,
            "helps_per_campaign": 3, **over}


def config(**campaigns: dict[str, Any]) -> GameConfig:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["currencies"]["ticket"] = {"name": "Tickets", "initial": 0, "max": 2}
    raw["coupons"] = {"c10": {"name": "¥10 off", "stock": 5, "value_fen": 1000}}
    raw["assists"] = campaigns or {"friends": campaign_raw()}
    return parse_game_config(raw)


CONFIG = config()
FRIENDS = CONFIG.assists["friends"]


def started(owner: str = "olga", at: int = T0, helpers: list[str] | None = None
            ) -> rules.Assist:
    return rules.Assist("friends", CODE, owner, 3, at, at + 86400, helpers or [])


def help_(assist: rules.Assist | None, helper: str, state: PlayerState | None = None,
          now: int = T0 + 60, age: int = 10**6, campaign: Any = FRIENDS) -> Any:
    return rules.give(assist, campaign, CODE, helper, state, age, now, SH)


def helper_state(**progress: Any) -> PlayerState:
    state = new_player(CONFIG, T0 - 86400)
    state.assists["friends"] = AssistProgress(**progress)
    return state


# -- config ------------------------------------------------------------------------


def test_config_defaults_and_model() -> None:
    c = config(friends={"title": "T", "needed": 5, "duration_s": 3600,
                        "owner_reward": {"currency": {"acorn": 1}}}).assists["friends"]
    assert (c.needed, c.duration_s, c.opens_at, c.max_starts, c.helps_per_day,
            c.helps_per_campaign, c.new_fans_only, c.min_session_age_s) == \
        (5, 3600, 0, 1, 5, 50, False, 0)
    assert c.helper_reward.is_empty() and c.owner_reward.currency == {"acorn": 1}
    assert c.expiry(1000) == 4600
    assert config(friends=campaign_raw(closes_at=T0 + 10)).assists["friends"].expiry(T0) \
        == T0 + 10  # never after the campaign closes


@pytest.mark.parametrize(("over", "path"), [
    ({"closes_at": 5, "opens_at": 5}, "$.assists.friends.closes_at"),
    ({"owner_reward": {}}, "$.assists.friends.owner_reward"),
    ({"helper_reward": {"coupon": "c10"}}, "$.assists.friends.helper_reward.coupon"),
    ({"helps_per_day": 4}, "$.assists.friends.helps_per_day"),
    ({"owner_reward": {"coupon": "nope"}}, "$.assists.friends.owner_reward.coupon"),
    ({"helper_reward": {"currency": {"gold": 1}}},
     "$.assists.friends.helper_reward.currency.gold"),
    ({"needed": 0}, "$.assists.friends.needed"),
    ({"needed": 101}, "$.assists.friends.needed"),
    ({"duration_s": 59}, "$.assists.friends.duration_s"),
])
def test_config_problems_have_paths(over: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        config(friends=campaign_raw(**over))
    assert [p["path"] for p in err.value.problems] == [path]


def test_bad_campaign_id() -> None:
    with pytest.raises(ConfigInvalid) as err:
        config(**{"Bad!": campaign_raw()})
    assert [p["path"] for p in err.value.problems] == ["$.assists.Bad!"]


# -- start -------------------------------------------------------------------------


def test_start_gate_and_owner_side() -> None:
    assert rules.check_start(None, FRIENDS, T0) == 0
    gate = rules.start(None, FRIENDS, "olga", CODE, T0)
    assert gate.state == rules.Assist("friends", CODE, "olga", 3, T0, T0 + 86400, [], 0)
    assert gate.response == {"assist": CODE, "code": CODE, "campaign": "friends",
                             "needed": 3, "helps": 0, "expires_at": T0 + 86400}
    assert gate.owed == {"effect": rules.START_EFFECT, **gate.response}
    assert gate.others == ()
    out = rules.apply_start(None, gate.owed, T0, CONFIG)
    assert out.response == gate.response
    assert out.state.assists == {"friends": AssistProgress(
        started=1, mine={CODE: MyAssist(T0 + 86400, 3, "")})}
    again = rules.apply_start(out.state, gate.owed, T0 + 1, CONFIG)  # a replayed record
    assert again.state.assists == out.state.assists
    # erasePlayer waits for an open assist (its last help owes the owner), not after
    assert open_assists(out.state, T0 + 86399) == [f"assist:{CODE}"]
    assert open_assists(out.state, T0 + 86400) == []  # expired: no help counts
    out.state.assists["friends"].mine[CODE].reward = "granted"
    assert open_assists(out.state, T0) == []


def test_start_refusals() -> None:
    with pytest.raises(AssistAlreadyOpen):  # a concurrent start of the same round
        rules.start(started(), FRIENDS, "olga", CODE, T0)
    owner = rules.apply_start(None, rules.start(None, FRIENDS, "olga", CODE, T0).owed or {},
                              T0, CONFIG).state
    with pytest.raises(AssistAlreadyOpen) as err:
        rules.check_start(owner, FRIENDS, T0 + 86399)
    assert err.value.details == {"campaign": "friends", "code": CODE}
    with pytest.raises(AssistStartsUsed):  # expired, but max_starts is 1
        rules.check_start(owner, FRIENDS, T0 + 86400)
    twice = config(friends=campaign_raw(max_starts=2)).assists["friends"]
    assert rules.check_start(owner, twice, T0 + 86400) == 1  # the second round
    owner.assists["friends"].mine[CODE].reward = "granted"  # completed: not open
    assert rules.check_start(owner, twice, T0 + 1) == 1
    window = config(friends=campaign_raw(opens_at=T0, closes_at=T0 + 100)).assists["friends"]
    with pytest.raises(AssistCampaignClosed):
        rules.check_start(None, window, T0 - 1)
    assert rules.check_start(None, window, T0) == 0
    assert rules.check_start(None, window, T0 + 99) == 0
    with pytest.raises(AssistCampaignClosed):
        rules.check_start(None, window, T0 + 100)


# -- help: the gate ----------------------------------------------------------------


def test_help_counts_and_owes_the_helper() -> None:
    gate = help_(started(), "hana")
    assert gate.state.helpers == ["hana"] and gate.state.completed_at == 0
    assert gate.response == {"assist": CODE, "campaign": "friends", "helps": 1, "needed": 3,
                             "complete": False}
    assert gate.owed == {"effect": rules.HELP_EFFECT, **gate.response, "owner": "olga",
                         "day": DAY, "reward": {"currency": {"ticket": 1}, "items": {}}}
    assert gate.others == () and gate.record == {"e": "help", "u": "hana", "n": 1}


def test_the_needed_help_completes_and_owes_the_owner_once() -> None:
    gate = help_(started(helpers=["a", "b"]), "c", now=T0 + 500)
    assert gate.state.completed_at == T0 + 500 and gate.response["complete"] is True
    assert gate.response["helps"] == 3
    assert gate.others == (OwedOther("olga", "assist-reward:" + CODE, {
        "effect": rules.REWARD_EFFECT, "campaign": "friends", "code": CODE, "needed": 3,
        "expires_at": T0 + 86400, "reward": {"currency": {"acorn": 50}, "items": {},
                                             "coupon": "c10"}}),)
    with pytest.raises(AssistComplete) as err:  # the fourth
        help_(gate.state, "d", now=T0 + 501)
    assert err.value.details == {"code": CODE, "needed": 3}


@pytest.mark.parametrize(("assist", "helper", "now", "error"), [
    (None, "hana", T0, AssistNotFound),
    (started(), "olga", T0, SelfAssist),
    (started(helpers=["hana"]), "hana", T0, AlreadyHelped),
    (started(), "hana", T0 + 86400, AssistExpired),  # the expiry instant
])
def test_gate_refusals(assist: Any, helper: str, now: int, error: type) -> None:
    with pytest.raises(error):
        help_(assist, helper, now=now)


def test_last_second_before_expiry_counts() -> None:
    assert help_(started(), "hana", now=T0 + 86399).response["helps"] == 1


def test_self_help_refused_even_when_complete() -> None:
    done = help_(started(helpers=["a", "b"]), "c").state
    with pytest.raises(SelfAssist):
        help_(done, "olga")


def test_one_help_per_owner_over_rounds() -> None:
    with pytest.raises(AlreadyHelped):  # helped olga's earlier assist
        help_(started(), "hana", helper_state(helps=1, owners=["olga"], day=DAY, today=1))
    assert help_(started(owner="oscar"), "hana",
                 helper_state(helps=1, owners=["olga"], day=DAY, today=1)).response["helps"] == 1


def test_day_cap_boundary_and_reset() -> None:
    at_cap = helper_state(helps=2, owners=["x", "y"], day=DAY, today=2)
    with pytest.raises(HelpLimitReached) as err:
        help_(started(), "hana", at_cap)
    assert err.value.details == {"campaign": "friends", "per": "day", "limit": 2}
    one_left = helper_state(helps=1, owners=["x"], day=DAY, today=1)
    assert help_(started(), "hana", one_left).response["helps"] == 1
    yesterday = helper_state(helps=2, owners=["x", "y"], day=DAY - 1, today=2)
    assert help_(started(), "hana", yesterday).owed["day"] == DAY  # a new local day


def test_day_is_the_games_local_day() -> None:
    # 15:59:59 UTC is 23:59:59 in Shanghai; one second later is the next local day
    late = T0 + 8 * 3600 - 1 + 8 * 3600
    state = helper_state(helps=2, owners=["x", "y"], day=local_day(late, SH), today=2)
    with pytest.raises(HelpLimitReached):
        help_(started(), "hana", state, now=late)
    assert help_(started(), "hana", state, now=late + 1).response["helps"] == 1


def test_campaign_cap_boundary() -> None:
    with pytest.raises(HelpLimitReached) as err:
        help_(started(), "hana", helper_state(helps=3, owners=["x", "y", "z"], day=DAY - 5))
    assert err.value.details["per"] == "campaign"
    assert help_(started(), "hana", helper_state(helps=2, owners=["x", "y"])) \
        .response["helps"] == 1


def test_new_fan_rule() -> None:
    fans = config(friends=campaign_raw(new_fans_only=True)).assists["friends"]
    assist = started(at=T0)
    assert help_(assist, "new", None, campaign=fans).response["helps"] == 1  # never played
    joined_at_start = new_player(CONFIG, T0)
    assert help_(assist, "new", joined_at_start, campaign=fans).response["helps"] == 1
    with pytest.raises(NotNewFan):
        help_(assist, "old", new_player(CONFIG, T0 - 1), campaign=fans)
    assert help_(assist, "old", new_player(CONFIG, T0 - 1)).response["helps"] == 1  # rule off


def test_session_age_boundary() -> None:
    aged = config(friends=campaign_raw(min_session_age_s=600)).assists["friends"]
    with pytest.raises(SessionTooYoung) as err:
        help_(started(), "hana", age=599, campaign=aged)
    assert err.value.details == {"campaign": "friends", "min_session_age_s": 600,
                                 "retry_after": 1}
    assert help_(started(), "hana", age=600, campaign=aged).response["helps"] == 1


# -- the second commits ------------------------------------------------------------


def test_helper_side_counts_and_rewards_clamped() -> None:
    gate = help_(started(), "hana")
    out = rules.apply_help(None, gate.owed, T0 + 60, CONFIG)
    assert out.state.assists["friends"] == AssistProgress(day=DAY, today=1, helps=1,
                                                          owners=["olga"])
    assert out.response == {"assist": CODE, "campaign": "friends", "helps": 1, "needed": 3,
                            "complete": False, "reward": {"currency": {"ticket": 1},
                                                          "items": {}},
                            "wallet": {"acorn": 100, "ticket": 1}}
    full = out.state.copy()
    full.wallet["ticket"] = 2  # at its max: clamped, never refused
    again = rules.apply_help(full, {**gate.owed, "owner": "oscar"}, T0 + 61, CONFIG)
    assert again.state.wallet["ticket"] == 2
    assert again.state.assists["friends"].helps == 2
    assert again.state.assists["friends"].owners == ["olga", "oscar"]


def test_owner_reward_granted_once_through_the_value_tier() -> None:
    gate = help_(started(helpers=["a", "b"]), "c")
    owed = gate.others[0].owed
    owner = rules.apply_start(None, rules.start(None, FRIENDS, "olga", CODE, T0).owed or {},
                              T0, CONFIG).state
    out = rules.apply_reward(owner, owed, T0 + 100, CONFIG)
    assert out.response == {"assist": CODE, "campaign": "friends", "reward": "granted",
                            "granted": {"currency": {"acorn": 50}, "items": {},
                                        "coupons": {"c10": 1}}}
    assert out.state.wallet["acorn"] == 150
    assert out.reservations == [StockHold("coupon:c10", 1)]
    # The grant row keeps the coupon as configured, for the shopper's wallet.
    assert out.grants == [ValueGrant("coupon:c10", "coupon", "assist:friends",
                                     {"coupon": "c10", "count": 1, "reason": "assist:friends",
                                      "name": "¥10 off", "template": "",
                                      "face_value_fen": 1000, "valid_days": 0},
                                     1)]
    assert out.state.assists["friends"].mine[CODE].reward == "granted"
    assert out.state.assists["friends"].started == 1
    twice = rules.apply_reward(out.state, owed, T0 + 200, CONFIG)  # after the key expired
    assert twice.state.wallet == out.state.wallet
    assert (twice.reservations, twice.grants, twice.ledger) == ([], [], [])
    assert twice.response["granted"] == {}


def test_owner_reward_with_the_coupon_gone_and_before_the_start_record() -> None:
    owed = help_(started(helpers=["a", "b"]), "c").others[0].owed
    out = rules.apply_reward(None, owed, T0, CONFIG, frozenset({"c10"}))
    assert out.reservations == [] and out.state.wallet["acorn"] == 150
    mine = out.state.assists["friends"]
    assert mine.mine[CODE].reward == "coupon_unavailable" and mine.started == 1
    # the start's record applied after the reward's (a crash between): counted once
    start_owed = {"effect": rules.START_EFFECT, "assist": CODE, "code": CODE,
                  "campaign": "friends", "needed": 3, "helps": 0, "expires_at": T0 + 86400}
    after = rules.apply_start(out.state, start_owed, T0, CONFIG)
    assert after.state.assists["friends"].started == 1
    assert after.state.assists["friends"].mine[CODE].reward == "coupon_unavailable"


# -- views -------------------------------------------------------------------------


def test_assist_view_states() -> None:
    a = started(helpers=["hana"])
    view = rules.assist_view(a, FRIENDS, "hana", T0 + 10)
    assert view == {"assist": CODE, "code": CODE, "campaign": "friends", "title": "Help me",
                    "state": "open", "helps": 1, "needed": 3, "helps_left": 2,
                    "started_at": T0, "expires_at": T0 + 86400, "completed_at": None,
                    "mine": False, "helped": True,
                    "reward": {"currency": {"acorn": 50}, "items": {}, "coupon": "c10"},
                    "reward_state": "pending", "server_time": T0 + 10}
    assert rules.assist_view(a, FRIENDS, "olga", T0 + 86400)["state"] == "expired"
    done = help_(started(helpers=["a", "b"]), "c", now=T0 + 5).state
    assert rules.assist_view(done, FRIENDS, "olga", T0 + 6)["reward_state"] == "due"
    assert rules.assist_view(done, FRIENDS, "olga", T0 + 6, "granted")["reward_state"] \
        == "granted"
    assert rules.assist_view(done, FRIENDS, "x", T0 + 6)["reward_state"] == "earned"
    assert rules.assist_view(done, FRIENDS, "x", T0 + 90000)["state"] == "complete"


def test_player_view_shows_open_assists_and_helps_left() -> None:
    owner = rules.apply_start(None, rules.start(None, FRIENDS, "olga", CODE, T0).owed or {},
                              T0, CONFIG).state
    view = player_view(owner, CONFIG, T0 + 1, SH)["assists"]
    assert view == {"friends": {"open": [{"assist": CODE, "expires_at": T0 + 86400,
                                          "needed": 3}],
                                "rewarded": [], "starts_left": 0, "helps_left_today": 2,
                                "helps_left": 3}}
    assert player_view(owner, CONFIG, T0 + 86400, SH)["assists"]["friends"]["open"] == []
    helper = helper_state(helps=1, owners=["x"], day=DAY, today=1)
    assert player_view(helper, CONFIG, T0, SH)["assists"]["friends"]["helps_left_today"] == 1
    assert "assists" not in player_view(new_player(parse_game_config(BASIC_CONFIG), T0),
                                        parse_game_config(BASIC_CONFIG), T0, SH)


def test_wire_round_trip() -> None:
    a = started(helpers=["x", "y"])
    assert rules.Assist.from_wire(a.to_wire()) == a
    state = helper_state(helps=1, owners=["x"], day=DAY, today=1,
                         mine={CODE: MyAssist(5, 3, "granted")})
    assert PlayerState.from_wire(state.to_wire()).assists == state.assists


def test_early_refusals_leave_counted_helpers_and_unknown_state_to_the_gate() -> None:
    done = help_(started(helpers=["a", "b"]), "c").state
    with pytest.raises(AssistComplete):
        rules.refuse_early(done, FRIENDS, CODE, "d", T0)
    with pytest.raises(SelfAssist):
        rules.refuse_early(started(), FRIENDS, CODE, "olga", T0)
    with pytest.raises(AssistExpired):
        rules.refuse_early(started(), FRIENDS, CODE, "d", T0 + 86400)
    rules.refuse_early(done, FRIENDS, CODE, "c", T0)  # counted: their retry replays
    rules.refuse_early(None, FRIENDS, CODE, "d", T0)  # the gate says not found
    rules.refuse_early(started(), FRIENDS, CODE, "d", T0 + 86399)


def test_campaign_report_counts_by_state_and_lists_the_newest() -> None:
    done = help_(started(helpers=["a", "b"]), "c", now=T0 + 5).state
    old = rules.Assist("friends", "kkkkkkkkkk", "otto", 3, T0 - 90000, T0 - 3600, ["z"])
    new = rules.Assist("friends", "nnnnnnnnnn", "nora", 3, T0 + 1, T0 + 86401)
    report = rules.campaign_report([old, done, new], FRIENDS, T0 + 10, 2)
    assert {k: report[k] for k in ("started", "open", "complete", "expired", "helps")} == \
        {"started": 3, "open": 1, "complete": 1, "expired": 1, "helps": 4}
    assert report["recent"] == [
        {"assist": "nnnnnnnnnn", "owner": "nora", "state": "open", "helps": 0, "needed": 3,
         "started_at": T0 + 1, "completed_at": None},
        {"assist": CODE, "owner": "olga", "state": "complete", "helps": 3, "needed": 3,
         "started_at": T0, "completed_at": T0 + 5}]


def test_helper_sides_applied_out_of_order_across_midnight_count_each_on_its_day() -> None:
    # help 1 gated at 23:59:59 Shanghai, help 2 at 00:00:01: help 2's helper side lands
    # first (help 1's was left to the owed reconciler). Help 1 stays yesterday's, so it
    # neither resets today's count nor counts as today's.
    once = config(friends=campaign_raw(helps_per_day=1, helps_per_campaign=5))
    daily = once.assists["friends"]
    late = T0 + 16 * 3600 - 1
    today = local_day(late + 2, SH)
    assert today == local_day(late, SH) + 1
    first = help_(started(owner="olga"), "hana", None, now=late, campaign=daily)
    second = help_(started(owner="oscar"), "hana", None, now=late + 2, campaign=daily)
    assert (first.owed["day"], second.owed["day"]) == (today - 1, today)
    state = rules.apply_help(None, second.owed, late + 3, once).state
    state = rules.apply_help(state, first.owed, late + 4, once).state
    assert state.assists["friends"] == AssistProgress(day=today, today=1, helps=2,
                                                      owners=["oscar", "olga"])
    with pytest.raises(HelpLimitReached) as err:  # today's one help is used
        help_(started(owner="omar"), "hana", state, now=late + 5, campaign=daily)
    assert err.value.details == {"campaign": "friends", "per": "day", "limit": 1}
    view = rules.assists_view(state, once, late + 5, SH)
    assert view is not None and view["friends"]["helps_left_today"] == 0
    assert view["friends"]["helps_left"] == 3
    # the next local day starts afresh
    assert help_(started(owner="omar", at=late + 5), "hana", state, now=late + 86402,
                 campaign=daily).owed["day"] == today + 1
