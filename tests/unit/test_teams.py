"""Teams' pure rules and config section, with exact expectations at every boundary."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from economy.config import GameConfig, parse_game_config
from economy.errors import ConfigInvalid, UnknownItem
from economy.teams import (
    AlreadyInTeam,
    LeaveNotAllowed,
    NotInTeam,
    RejoinTooSoon,
    SeasonNotOpen,
    TeamFull,
    TeamLimitReached,
    TeamNotFound,
)
from mechanics import teams as rules
from mechanics.checkin import CheckIn
from mechanics.outcome import Outcome, StockHold
from mechanics.pet import FeedPet, PlayWithPet, new_player
from mechanics.state import PlayerState
from mechanics.tasks import Order
from mechanics.teamstate import Membership
from tests.conftest import BASIC_CONFIG

START, END = 1_000_000, 1_000_000 + 7 * 86400
NOW = START + 100


def season_raw(**over: Any) -> dict[str, Any]:
    return {"name": "Double 11", "starts_at": START, "ends_at": END, "min_size": 2,
            "max_size": 3, "points": {"feed": 2, "checkin": 5, "order": 20},
            "milestones": {
                "m10": {"points": 10, "reward": {"currency": {"acorn": 7}}},
                "m50": {"points": 50, "reward": {"coupon": "c10"}}},
            "max_teams": 2, "rejoin_after_s": 600, **over}


def config(**over: Any) -> GameConfig:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["coupons"] = {"c10": {"name": "10 off", "stock": 5}}
    raw["teams"] = {"s11": season_raw(**over)}
    return parse_game_config(raw)


CFG = config()
SEASON = CFG.teams["s11"]


def created(user: str = "ann", now: int = NOW) -> rules.Team:
    out = rules.create_team(None, SEASON, user, "abcdefgh", "jkmnpqrs", "Ants", False, now)
    assert isinstance(out.state, rules.Team)
    return out.state


def joined(team: rules.Team, *users: str, now: int = NOW) -> rules.Team:
    for user in users:
        team = rules.join_team(team, SEASON, user, team.secret, now).state
    return team


def member_state(team: str = "abcdefgh", seq: int = 1, points: int = 0, **m: Any
                 ) -> PlayerState:
    state = new_player(CFG, NOW)
    state.teams = {"s11": Membership(team=team, seq=seq, points=points, joined=1, **m)}
    return state


# -- config ---------------------------------------------------------------------------


def test_config_defaults_and_model() -> None:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["teams"] = {"s": {"name": "S", "starts_at": START, "ends_at": END}}
    season = parse_game_config(raw).teams["s"]
    assert (season.min_size, season.max_size, season.points, season.milestones,
            season.allow_leave, season.max_teams, season.rejoin_after_s, season.keep_points,
            season.auto_match, season.board) == (
        1, 5, {"feed": 0, "checkin": 0, "order": 0}, (), True, 2, 0, True, False, "")
    assert [(m.id, m.points) for m in SEASON.milestones] == [("m10", 10), ("m50", 50)]


@pytest.mark.parametrize(("over", "path"), [
    ({"ends_at": START}, "$.teams.s11.ends_at"),
    ({"min_size": 4}, "$.teams.s11.min_size"),
    ({"max_size": 51}, "$.teams.s11.max_size"),
    ({"max_teams": 0}, "$.teams.s11.max_teams"),
    ({"milestones": {"m": {"points": 1, "reward": {"coupon": "nope"}}}},
     "$.teams.s11.milestones.m.reward.coupon"),
    ({"milestones": {"m": {"points": 1, "reward": {"currency": {"gold": 1}}}}},
     "$.teams.s11.milestones.m.reward.currency.gold"),
    ({"points": {"feed": -1}}, "$.teams.s11.points.feed"),
])
def test_config_problems_name_their_path(over: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        config(**over)
    assert [p["path"] for p in err.value.details["problems"]] == [path]


def test_a_team_board_id_must_not_clash_with_a_leaderboard() -> None:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["leaderboards"] = {"top": {"name": "Top", "metric": "xp"}}
    raw["teams"] = {"s11": season_raw(board="top", milestones={})}
    with pytest.raises(ConfigInvalid) as err:
        parse_game_config(raw)
    assert [p["path"] for p in err.value.details["problems"]] == ["$.teams.s11.board"]


# -- codes ----------------------------------------------------------------------------


def test_codes_come_from_the_entropy_given_and_split_back() -> None:
    team_id, secret = rules.code_from(bytes(range(32)))
    assert len(team_id) == 8 and len(secret) == 8
    assert set(team_id + secret) <= set(rules.ALPHABET)
    assert rules.split_code(team_id + secret, "s11") == (team_id, secret)
    assert rules.code_from(bytes(range(32))) == (team_id, secret)
    assert rules.code_from(bytes(range(1, 33))) != (team_id, secret)
    assert rules.code_from(bytes(16)) == ("a" * 8, "a" * 8)
    with pytest.raises(ValueError):
        rules.code_from(bytes(15))


def test_match_list_adds_once_and_removes() -> None:
    out = rules.list_team(None, "aaaaaaaa")
    out = rules.list_team(out.state, "bbbbbbbb")
    out = rules.list_team(out.state, "aaaaaaaa")
    assert out.state.open == ["aaaaaaaa", "bbbbbbbb"]
    assert rules.unlist_team(out.state, "aaaaaaaa").state.open == ["bbbbbbbb"]
    assert rules.unlist_team(None, "aaaaaaaa").state.open == []
    full = rules.MatchList([f"t{i}" for i in range(rules.MATCH_LIST_MAX)])
    assert rules.list_team(full, "new").response == {"listed": False}


@pytest.mark.parametrize("code", ["", "abc", "abcdefghjkmnpqrs1", "ABCDEFGHJKMNPQRS",
                                  "abcdefghjkmnpqr0"])
def test_a_malformed_code_is_a_team_not_found(code: str) -> None:
    with pytest.raises(TeamNotFound):
        rules.split_code(code, "s11")


# -- create and join ------------------------------------------------------------------


def test_create_seats_the_creator_and_owes_the_membership() -> None:
    out = rules.create_team(None, SEASON, "ann", "abcdefgh", "jkmnpqrs", "Ants", True, NOW)
    team = out.state
    assert (team.id, team.code, team.owner, team.open, team.joins) == (
        "abcdefgh", "abcdefghjkmnpqrs", "ann", True, 1)
    assert team.members == {"ann": rules.Member(1, NOW, 0)}
    assert out.owed is not None
    assert {k: out.owed[k] for k in ("effect", "season", "team", "seq")} == {
        "effect": rules.JOIN, "season": "s11", "team": "abcdefgh", "seq": 1}
    assert out.response["code"] == "abcdefghjkmnpqrs"
    assert out.record == {"u": "ann", "a": "join", "seq": 1}


def test_create_over_an_existing_id_is_refused() -> None:
    with pytest.raises(AlreadyInTeam):
        rules.create_team(created(), SEASON, "bob", "abcdefgh", "x", "", False, NOW)


@pytest.mark.parametrize("now", [START - 1, END, END + 1])
def test_nothing_forms_outside_the_season(now: int) -> None:
    with pytest.raises(SeasonNotOpen):
        rules.create_team(None, SEASON, "ann", "abcdefgh", "jkmnpqrs", "", False, now)
    with pytest.raises(SeasonNotOpen):
        rules.join_team(created(), SEASON, "bob", "jkmnpqrs", now)


def test_season_opens_at_its_start_instant() -> None:
    assert rules.create_team(None, SEASON, "ann", "abcdefgh", "s", "", False, START).state
    assert rules.join_team(created(), SEASON, "bob", "jkmnpqrs", END - 1).state


def test_join_by_code_takes_the_next_seat_until_full() -> None:
    team = joined(created(), "bob", "cid")
    assert {u: m.seq for u, m in team.members.items()} == {"ann": 1, "bob": 2, "cid": 3}
    with pytest.raises(TeamFull) as err:
        rules.join_team(team, SEASON, "dan", team.secret, NOW)
    assert err.value.details == {"team": "abcdefgh", "max_size": 3}


def test_join_does_not_change_the_team_it_was_given() -> None:
    team = created()
    rules.join_team(team, SEASON, "bob", team.secret, NOW)
    assert list(team.members) == ["ann"]


def test_a_member_cannot_join_again() -> None:
    with pytest.raises(AlreadyInTeam):
        rules.join_team(created(), SEASON, "ann", "jkmnpqrs", NOW)


def test_a_wrong_secret_or_a_missing_team_is_not_found() -> None:
    with pytest.raises(TeamNotFound):
        rules.join_team(created(), SEASON, "bob", "jkmnpqrt", NOW)
    with pytest.raises(TeamNotFound):
        rules.join_team(None, SEASON, "bob", "jkmnpqrs", NOW)


def test_auto_match_seats_only_in_open_teams() -> None:
    with pytest.raises(TeamNotFound):
        rules.join_team(created(), SEASON, "bob", None, NOW)
    team = rules.create_team(None, SEASON, "ann", "abcdefgh", "s", "", True, NOW).state
    assert "bob" in rules.join_team(team, SEASON, "bob", None, NOW).state.members


def test_shopper_checks_before_a_join() -> None:
    rules.check_can_join(None, SEASON, NOW)
    with pytest.raises(AlreadyInTeam):
        rules.check_can_join(member_state(), SEASON, NOW)
    left = member_state(team="", seq=0, left_at=NOW - 600)
    rules.check_can_join(left, SEASON, NOW)  # the wait is over at left_at + 600 exactly
    with pytest.raises(RejoinTooSoon) as err:
        rules.check_can_join(member_state(team="", seq=0, left_at=NOW - 599), SEASON, NOW)
    assert err.value.details["retry_after"] == 1
    two = member_state(team="", seq=0)
    two.teams["s11"].joined = 2
    with pytest.raises(TeamLimitReached):
        rules.check_can_join(two, SEASON, NOW)


# -- the shopper's side ---------------------------------------------------------------


def test_apply_join_sets_the_membership_once() -> None:
    owed = rules.create_team(None, SEASON, "ann", "abcdefgh", "s", "", False, NOW).owed
    assert owed is not None
    out = rules.apply_join(None, owed, NOW, CFG)
    assert out.state.teams == {"s11": Membership("abcdefgh", 1, 0, 1, 0, [])}
    assert out.response["team"] == "abcdefgh"
    other = dict(owed, team="zzzzzzzz", seq=4)
    again = rules.apply_join(out.state, other, NOW, CFG)  # raced a second join: kept
    assert again.state.teams == {"s11": Membership("abcdefgh", 1, 0, 1, 0, [])}


def test_apply_leave_ends_only_the_membership_it_names() -> None:
    state = member_state(points=9)
    stale = rules.apply_leave(state, {"season": "s11", "team": "abcdefgh", "seq": 2,
                                      "response": {}}, NOW, CFG)
    assert stale.state.teams["s11"].team == "abcdefgh"
    out = rules.apply_leave(state, {"season": "s11", "team": "abcdefgh", "seq": 1,
                                    "response": {"left": True}}, NOW + 5, CFG)
    assert out.state.teams["s11"] == Membership("", 0, 0, 1, NOW + 5, [])
    assert out.response == {"left": True}


# -- leave ----------------------------------------------------------------------------


def test_leave_keeps_the_points_with_the_team_by_default() -> None:
    team = joined(created(), "bob")
    team = rules.sync_points(team, SEASON, "bob", 2, 8, NOW).state
    out = rules.leave_team(team, SEASON, "bob", 2, 6, NOW)
    assert list(out.state.members) == ["ann"]
    assert (out.state.kept, out.state.points) == (8, 8)  # the team's copy was higher
    assert out.response == {"season": "s11", "team": "abcdefgh", "left": True,
                            "points_kept_by_team": 8, "team_points": 8}
    assert out.owed is not None and out.owed["seq"] == 2


def test_leave_takes_the_peeked_points_when_they_are_ahead() -> None:
    team = joined(created(), "bob")
    out = rules.leave_team(team, SEASON, "bob", 2, 6, NOW)
    assert out.state.kept == 6


def test_leave_without_keep_points_drops_them() -> None:
    season = config(keep_points=False).teams["s11"]
    team = joined(created(), "bob")
    team = rules.sync_points(team, season, "bob", 2, 8, NOW).state
    out = rules.leave_team(team, season, "bob", 2, 8, NOW)
    assert (out.state.kept, out.state.points, out.response["points_kept_by_team"]) == (0, 0, 0)


def test_leave_refusals() -> None:
    team = joined(created(), "bob")
    with pytest.raises(LeaveNotAllowed):
        rules.leave_team(team, config(allow_leave=False).teams["s11"], "bob", 2, 0, NOW)
    with pytest.raises(NotInTeam):
        rules.leave_team(team, SEASON, "cid", 3, 0, NOW)
    with pytest.raises(NotInTeam):
        rules.leave_team(team, SEASON, "bob", 1, 0, NOW)  # an earlier membership
    with pytest.raises(NotInTeam):
        rules.leave_team(None, SEASON, "bob", 2, 0, NOW)
    with pytest.raises(SeasonNotOpen):
        rules.leave_team(team, SEASON, "bob", 2, 0, END)


def test_a_seat_frees_on_leave_and_the_next_join_gets_a_new_seq() -> None:
    team = joined(created(), "bob", "cid")
    team = rules.leave_team(team, SEASON, "bob", 2, 0, NOW).state
    team = joined(team, "dan")
    assert {u: m.seq for u, m in team.members.items()} == {"ann": 1, "cid": 3, "dan": 4}


# -- points and milestones ------------------------------------------------------------


def test_sync_keeps_the_highest_report_of_the_same_membership() -> None:
    team = joined(created(), "bob")
    team = rules.sync_points(team, SEASON, "bob", 2, 4, NOW).state
    out = rules.sync_points(team, SEASON, "bob", 2, 3, NOW)  # late, lower report
    assert out.response == {"synced": False, "team_points": 4} and out.record is None
    out = rules.sync_points(team, SEASON, "bob", 1, 9, NOW)  # an ended membership
    assert out.state.members["bob"].points == 4
    out = rules.sync_points(team, SEASON, "zed", 1, 9, NOW)  # not a member
    assert out.state.points == 4
    assert rules.sync_points(None, SEASON, "bob", 2, 9, NOW).state is None


def test_milestones_are_reached_with_the_members_of_that_moment() -> None:
    team = created()
    team = rules.sync_points(team, SEASON, "ann", 1, 12, NOW).state
    assert team.reached == {}  # min_size 2: one member reaches nothing
    team = joined(team, "bob", now=NOW + 1)
    assert team.reached == {"m10": rules.Reached(NOW + 1, ["ann", "bob"])}
    team = rules.sync_points(team, SEASON, "bob", 2, 37, NOW + 2).state
    assert team.points == 49 and "m50" not in team.reached
    team = rules.sync_points(team, SEASON, "bob", 2, 38, NOW + 3).state
    assert team.reached["m50"] == rules.Reached(NOW + 3, ["ann", "bob"])
    team = joined(team, "cid", now=NOW + 4)
    assert team.reached["m50"].members == ["ann", "bob"]


def _outcome(state: PlayerState, response: dict[str, Any] | None = None) -> Outcome:
    return Outcome(state=state, response=response or {})


@pytest.mark.parametrize(("action", "response", "points"), [
    (FeedPet("snack"), {}, 2),
    (CheckIn(), {}, 5),
    (Order("o1", 100), {"duplicate": False}, 20),
    (Order("o1", 100), {"duplicate": True}, 0),
    (PlayWithPet(), {}, 0),
])
def test_member_actions_earn_points_by_config(action: Any, response: dict[str, Any],
                                              points: int) -> None:
    state = member_state(points=3)
    out = rules.contribute(action, _outcome(state.copy(), response), NOW, CFG)
    assert out.state.teams["s11"].points == 3 + points
    assert state.teams["s11"].points == 3  # the state it was given is untouched


def test_no_points_outside_the_season_or_without_a_team() -> None:
    for now in (START - 1, END):
        out = rules.contribute(FeedPet("snack"), _outcome(member_state()), now, CFG)
        assert out.state.teams["s11"].points == 0
    out = rules.contribute(FeedPet("snack"), _outcome(member_state(team="")), NOW, CFG)
    assert out.state.teams["s11"].points == 0
    plain = new_player(CFG, NOW)
    assert rules.contribute(FeedPet("snack"), _outcome(plain), NOW, CFG).state.teams == {}


def test_claim_grants_each_milestone_once_with_the_coupon_held() -> None:
    team = joined(created(), "bob")
    team = rules.sync_points(team, SEASON, "bob", 2, 60, NOW).state
    action = rules.ClaimMilestones("s11", "bob", team)
    out = rules.claim_milestones(member_state(seq=2), action, NOW, random.Random(1), CFG)
    assert out.response["claimed"] == {"m10": {"currency": {"acorn": 7}, "items": {}},
                                       "m50": {"currency": {}, "items": {},
                                               "coupons": {"c10": 1}}}
    assert out.reservations == [StockHold("coupon:c10", 1)]
    assert [g.reason for g in out.grants] == ["team:s11:m50"]
    assert out.state.wallet["acorn"] == 107
    assert out.state.teams["s11"].claimed == ["m10", "m50"]
    again = rules.claim_milestones(out.state, action, NOW, random.Random(1), CFG)
    assert again.response["claimed"] == {} and again.reservations == []
    assert again.state.wallet["acorn"] == 107


def test_claim_needs_the_current_team_and_membership_at_the_reach() -> None:
    team = joined(created(), "bob")
    team = rules.sync_points(team, SEASON, "bob", 2, 10, NOW).state
    late = joined(team, "cid")
    out = rules.claim_milestones(member_state(seq=3), rules.ClaimMilestones("s11", "cid", late),
                                 NOW, random.Random(1), CFG)
    assert out.response["claimed"] == {}
    with pytest.raises(NotInTeam):
        rules.claim_milestones(member_state(team=""), rules.ClaimMilestones("s11", "bob", team),
                               NOW, random.Random(1), CFG)
    with pytest.raises(UnknownItem):
        rules.claim_milestones(None, rules.ClaimMilestones("s12", "bob", team), NOW,
                               random.Random(1), CFG)


def test_coupon_out_of_stock_is_reported_and_the_rest_granted() -> None:
    team = joined(created(), "bob")
    team = rules.sync_points(team, SEASON, "bob", 2, 60, NOW).state
    out = rules.claim_milestones(member_state(seq=2), rules.ClaimMilestones("s11", "bob", team),
                                 NOW, random.Random(1), CFG, coupons_out=frozenset({"c10"}))
    assert out.response["claimed"]["m50"]["coupons_unavailable"] == {"c10": 1}
    assert out.reservations == []


# -- views and wire -------------------------------------------------------------------


def test_team_view_shows_members_by_points_and_the_code_to_members_only() -> None:
    team = joined(created(), "bob")
    team = rules.sync_points(team, SEASON, "bob", 2, 12, NOW).state
    view = rules.team_view(team, SEASON, "ann", NOW, rank=3)
    assert view["members"] == [
        {"user": "b***", "points": 12, "joined_at": NOW, "me": False, "owner": False},
        {"user": "a***", "points": 0, "joined_at": NOW, "me": True, "owner": True}]
    assert view["owner"] == "a***"
    assert (view["points"], view["size"], view["seats_left"], view["rank"], view["code"]) == (
        12, 2, 1, 3, "abcdefghjkmnpqrs")
    assert [(m["id"], m["reached_at"]) for m in view["milestones"]] == [("m10", NOW),
                                                                        ("m50", None)]
    assert "code" not in rules.team_view(team, SEASON, "zed", NOW)
    assert "code" not in rules.team_view(team, SEASON, None, NOW)


def test_shoppers_see_masked_ids_and_the_merchant_sees_them_whole() -> None:
    """A raw member id is the shopper's platform id (an openid); team ids are public on
    the team board, so any shopper could read a team's members."""
    team = joined(created("oAnnOpenid01"), "oBobOpenid02")
    seen_by_stranger = rules.team_view(team, SEASON, "zed", NOW)
    assert [(m["user"], m["me"], m["owner"]) for m in seen_by_stranger["members"]] == [
        ("oA***01", False, True), ("oB***02", False, False)]
    assert seen_by_stranger["owner"] == "oA***01"
    merchant = rules.team_view(team, SEASON, None, NOW, merchant=True)
    assert [m["user"] for m in merchant["members"]] == ["oAnnOpenid01", "oBobOpenid02"]
    assert merchant["owner"] == "oAnnOpenid01"


def test_team_and_slice_round_trip_on_the_wire() -> None:
    team = rules.sync_points(joined(created(), "bob"), SEASON, "bob", 2, 12, NOW).state
    assert rules.Team.from_wire(team.to_wire()) == team
    state = member_state(points=4, claimed=["m10"])
    wire = state.to_wire()
    assert wire["tm"] == {"s11": ["abcdefgh", 1, 4, 1, 0, ["m10"]]}
    assert PlayerState.from_wire(wire).teams == state.teams
    assert "tm" not in new_player(CFG, NOW).to_wire()


def test_player_view_part() -> None:
    assert rules.teams_view(member_state(points=4), CFG, NOW, None) == {
        "s11": {"team": "abcdefgh", "points": 4, "teams_joined": 1, "claimed": [],
                "status": "open"}}
    raw = copy.deepcopy(BASIC_CONFIG)
    assert rules.teams_view(new_player(CFG, NOW), parse_game_config(raw), NOW, None) is None


def test_announce_notes_reached_milestones_once() -> None:
    team = rules.sync_points(joined(created(), "bob"), SEASON, "bob", 2, 12, NOW).state
    assert team.unannounced() == ["m10"]
    assert rules.milestone_event(team, SEASON, "m10") == {
        "season": "s11", "team": "abcdefgh", "name": "Ants", "milestone": "m10",
        "points": 10, "reached_at": NOW, "members": ["ann", "bob"],
        "reward": {"currency": {"acorn": 7}, "items": {}}}
    done = rules.announce(team, ["m10", "m50"]).state  # m50 is not reached: not noted
    assert (done.announced, done.unannounced()) == (["m10"], [])
    assert rules.announce(done, ["m10"]).state.announced == ["m10"]
    assert rules.Team.from_wire(done.to_wire()) == done
