"""Leaderboards: config validation and exact per-board scores of a player state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from economy.config import game_config_json_schema, parse_game_config
from economy.errors import ConfigInvalid
from economy.leaderboards import Leaderboard
from mechanics.boxstate import BoxState, SeriesProgress
from mechanics.checkinstate import CheckinState
from mechanics.leaderboard import board_scores, metric_score
from mechanics.state import PetState, PlayerState
from tests.unit.factory import T0, config, raw_config

BOARDS: dict[str, Any] = {
    "xp": {"name": "Top pets", "metric": "xp", "size": 10},
    "rich": {"name": "Richest", "metric": "currency:acorn"},
    "gems": {"name": "Gem hoard", "metric": "currency:gem", "size": 1000},
    "cones": {"name": "Pine cones", "metric": "item:pine_cone", "size": 1},
    "draws": {"name": "Box fans", "metric": "draws"},
    "loyal": {"name": "Most check-ins", "metric": "checkins"},
}


def _state(**over: Any) -> PlayerState:
    state = PlayerState(created_at=T0, wallet={"acorn": 340, "gem": 7},
                        inventory={"pine_cone": 3, "fig_a": 2})
    state.pet = PetState(species="squirrel", name="Nutty", stats={}, at=T0, xp=125,
                         adopted_at=T0)
    state.boxes = BoxState(series={"forest": SeriesProgress(total=12, today=2),
                                   "city": SeriesProgress(total=5)})
    state.checkin = CheckinState(runs=[[10, 12]], first=3, total=9)
    for k, v in over.items():
        setattr(state, k, v)
    return state


def test_boards_are_parsed_with_defaults() -> None:
    cfg = config(leaderboards=BOARDS)
    assert cfg.leaderboards["xp"] == Leaderboard("xp", "Top pets", "xp", 10)
    assert cfg.leaderboards["rich"] == Leaderboard("rich", "Richest", "currency:acorn", 100)
    assert (cfg.leaderboards["cones"].kind, cfg.leaderboards["cones"].ref) == ("item",
                                                                                "pine_cone")
    assert (cfg.leaderboards["draws"].kind, cfg.leaderboards["draws"].ref) == ("draws", "")
    assert list(cfg.leaderboards) == list(BOARDS)


def test_leaderboards_are_optional() -> None:
    assert config().leaderboards == {}


def test_every_board_scores_exactly() -> None:
    assert board_scores(_state(), config(leaderboards=BOARDS)) == {
        "xp": 125, "rich": 340, "gems": 7, "cones": 3, "draws": 17, "loyal": 9}


def test_a_new_player_scores_zero_everywhere() -> None:
    fresh = PlayerState(created_at=T0)
    assert board_scores(fresh, config(leaderboards=BOARDS)) == dict.fromkeys(BOARDS, 0)


def test_no_boards_no_scores() -> None:
    assert board_scores(_state(), config()) == {}


@pytest.mark.parametrize(("metric", "score"), [
    ("xp", 0), ("currency:acorn", 0), ("item:pine_cone", 0), ("draws", 0), ("checkins", 9)])
def test_missing_parts_score_zero(metric: str, score: int) -> None:
    state = _state(pet=None, wallet={}, inventory={}, boxes=BoxState())
    assert metric_score(state, Leaderboard("b", "B", metric, 10)) == score


def test_an_unknown_metric_is_a_bug_not_a_zero() -> None:
    with pytest.raises(ValueError):
        metric_score(_state(), Leaderboard("b", "B", "likes", 10))


@pytest.mark.parametrize(("board", "path", "message"), [
    ({"name": "B", "metric": "currency:shells"}, "$.leaderboards.b.metric",
     "unknown currency 'shells'"),
    ({"name": "B", "metric": "item:acorn"}, "$.leaderboards.b.metric", "unknown item 'acorn'"),
    ({"name": "B", "metric": "likes"}, "$.leaderboards.b.metric", "must match"),
    ({"name": "B", "metric": "currency:"}, "$.leaderboards.b.metric", "must match"),
    ({"name": "B", "metric": "xp", "size": 0}, "$.leaderboards.b.size", "must be ≥ 1"),
    ({"name": "B", "metric": "xp", "size": 1001}, "$.leaderboards.b.size", "must be ≤ 1000"),
    ({"name": "", "metric": "xp"}, "$.leaderboards.b.name", "length must be"),
    ({"metric": "xp"}, "$.leaderboards.b.name", "is required"),
    ({"name": "B", "metric": "xp", "top": 3}, "$.leaderboards.b.top", "is not a known field"),
])
def test_bad_boards_are_refused_with_their_path(board: dict[str, Any], path: str,
                                                message: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        parse_game_config(raw_config(leaderboards={"b": board}))
    assert [(p["path"], p["message"][:len(message)]) for p in err.value.problems] == [
        (path, message)]


def test_board_ids_are_identifiers() -> None:
    with pytest.raises(ConfigInvalid) as err:
        parse_game_config(raw_config(leaderboards={"Top:1": {"name": "B", "metric": "xp"}}))
    assert [p["path"] for p in err.value.problems] == ["$.leaderboards.Top:1"]


def test_boards_are_in_the_published_schema() -> None:
    schema = game_config_json_schema()["properties"]["leaderboards"]
    board = schema["additionalProperties"]
    assert board["required"] == ["name", "metric"]
    assert board["properties"]["size"] == {"type": "integer", "minimum": 1, "maximum": 1000,
                                           "description": "how many top players the board "
                                                          "shows", "default": 100}


def test_the_demo_game_has_two_boards() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "gameserver" / "examples" / "squirrel-omg.json"
    cfg = parse_game_config(json.loads(example.read_text()))
    assert {b.id: (b.metric, b.size) for b in cfg.leaderboards.values()} == {
        "top_squirrels": ("xp", 100), "box_collectors": ("draws", 50)}


def test_masked_ids_hide_the_middle() -> None:
    from mechanics.masking import masked_id

    assert [masked_id(u) for u in ("", "ab", "abc", "alice", "oABCDEFxyz")] == [
        "***", "***", "a***", "a***", "oA***yz"]


def test_short_ids_show_at_most_their_first_character_and_not_their_length() -> None:
    """Before, ``abc`` was ``a***c`` (two of three characters) and a 7-character id
    showed four; the form's length followed the id's (5 characters up to 6, 7 after)."""
    from mechanics.masking import masked_id

    ids = ["a", "ab", "abc", "abcd", "abcdefg", "abcdefghi", "abcdefghij",
           "oWx1-bob-openid"]
    assert [masked_id(u) for u in ids] == [
        "***", "***", "a***", "a***", "a***", "a***", "ab***ij", "oW***id"]
    assert {len(masked_id("x" * n)) for n in range(3, 10)} == {4}
    assert {len(masked_id("x" * n)) for n in range(10, 64)} == {7}


def test_display_name_follows_the_board() -> None:
    from economy.leaderboards import Leaderboard
    from mechanics.leaderboard import display_name
    from mechanics.petstate import PetState
    from mechanics.state import PlayerState

    pet = PlayerState(created_at=0)
    pet.pet = PetState("squirrel", "Hazel", {}, 0, 0, 0)
    named = Leaderboard("b", "B", "xp", 10, show="pet_name")
    masked = Leaderboard("b", "B", "xp", 10)
    assert display_name(pet, named, "oABCDEFxyz") == "Hazel"
    assert display_name(PlayerState(created_at=0), named, "oABCDEFxyz") == "oA***yz"
    assert display_name(pet, masked, "oABCDEFxyz") == "oA***yz"
