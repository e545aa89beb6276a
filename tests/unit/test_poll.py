"""Voting's pure rules and config section, with exact expectations at every boundary."""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from economy.config import parse_game_config
from economy.errors import ConfigInvalid, InsufficientFunds
from economy.poll import Poll, PollClosed, PollNotOpen, UnknownOption, VoteLimitReached
from mechanics import poll as rules
from mechanics.calendar import local_day
from mechanics.pet import new_player
from tests.conftest import BASIC_CONFIG

OPENS, CLOSES = 1_000_000, 1_000_000 + 7 * 86400
SH = ZoneInfo("Asia/Shanghai")
POLL = Poll(id="best", title="Best", options={"red": "Red", "blue": "Blue"},
            opens_at=OPENS, closes_at=CLOSES, votes_per_day=2, cost={"acorn": 5},
            reward={"ticket": 3}, buckets=4)


def config(polls: dict[str, Any]) -> Any:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["currencies"]["ticket"] = {"name": "Tickets", "initial": 0, "max": 4}
    raw["polls"] = polls
    return parse_game_config(raw)


def poll_raw(**over: Any) -> dict[str, Any]:
    return {"title": "Best", "options": {"red": {"label": "Red"}, "blue": {"label": "Blue"}},
            "opens_at": OPENS, "closes_at": CLOSES, **over}


def test_config_defaults_and_model() -> None:
    polls = config({"best": poll_raw(cost={"acorn": 5})}).polls
    assert polls == {"best": Poll(id="best", title="Best",
                                  options={"red": "Red", "blue": "Blue"}, opens_at=OPENS,
                                  closes_at=CLOSES, votes_per_day=1, cost={"acorn": 5},
                                  reward={}, buckets=8)}


@pytest.mark.parametrize(("poll", "path"), [
    (poll_raw(closes_at=OPENS), "$.polls.best.closes_at"),
    (poll_raw(cost={"gold": 1}), "$.polls.best.cost.gold"),
    (poll_raw(reward={"gold": 1}), "$.polls.best.reward.gold"),
    (poll_raw(options={"red": {"label": "Red"}}), "$.polls.best.options"),
    (poll_raw(buckets=65), "$.polls.best.buckets"),
    (poll_raw(votes_per_day=0), "$.polls.best.votes_per_day"),
])
def test_config_problems_name_their_path(poll: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        config({"best": poll})
    assert [p["path"] for p in err.value.details["problems"]] == [path]


def test_poll_ids_are_short_enough_for_bucket_ids() -> None:
    with pytest.raises(ConfigInvalid):
        config({"p" * 41: poll_raw()})
    assert list(config({"p" * 40: poll_raw()}).polls) == ["p" * 40]


@pytest.mark.parametrize(("now", "error"), [
    (OPENS - 1, PollNotOpen), (CLOSES, PollClosed), (CLOSES + 1, PollClosed)])
def test_vote_outside_the_window_is_refused(now: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        rules.cast_vote(None, POLL, "u", "red", now, SH)


def test_vote_at_the_edges_of_the_window() -> None:
    assert rules.cast_vote(None, POLL, "u", "red", OPENS, SH).state.total == 1
    assert rules.cast_vote(None, POLL, "u", "red", CLOSES - 1, SH).state.total == 1


def test_unknown_option_is_refused() -> None:
    with pytest.raises(UnknownOption):
        rules.cast_vote(None, POLL, "u", "green", OPENS, SH)


def test_votes_per_day_in_the_game_timezone() -> None:
    # OPENS is 1970-01-12 21:46:40 in Shanghai: 2h13m20s before local midnight
    first = rules.cast_vote(None, POLL, "u", "red", OPENS, SH)
    assert first.response == {"poll": "best", "option": "red", "votes_today": 1,
                              "votes_left_today": 1}
    assert first.owed == {"effect": "poll_vote", "poll": "best", "option": "red",
                          "votes_today": 1, "votes_left_today": 1, "cost": {"acorn": 5},
                          "reward": {"ticket": 3}}
    assert first.record == {"u": "u", "o": "red", "d": local_day(OPENS, SH)}
    second = rules.cast_vote(first.state, POLL, "u", "blue", OPENS + 1, SH)
    with pytest.raises(VoteLimitReached):
        rules.cast_vote(second.state, POLL, "u", "red", OPENS + 2, SH)
    other = rules.cast_vote(second.state, POLL, "v", "red", OPENS + 2, SH)  # others may
    assert other.state.tallies == {"red": 2, "blue": 1} and other.state.total == 3
    midnight = OPENS + 8000  # 00:00 in Shanghai, 16:00 of the same day in UTC
    next_day = rules.cast_vote(second.state, POLL, "u", "red", midnight, SH)
    assert next_day.response["votes_today"] == 1
    assert next_day.state.voters == {"u": 1}  # yesterday's counts dropped
    with pytest.raises(VoteLimitReached):
        rules.cast_vote(second.state, POLL, "u", "red", midnight, UTC)
    assert second.state.tallies == {"red": 1, "blue": 1}  # the input was not changed


def test_bucket_wire_round_trip_and_stable_bucket() -> None:
    b = rules.cast_vote(None, POLL, "u", "red", OPENS, SH).state
    assert rules.PollBucket.from_wire(b.to_wire()) == b
    assert [rules.bucket_of("alice", 4) for _ in range(3)] == [rules.bucket_of("alice", 4)] * 3
    assert rules.bucket_id("best", 3) == "best-b3"


def test_price_is_checked_against_the_peeked_wallet() -> None:
    cfg = config({"best": poll_raw(cost={"acorn": 5})})
    rules.check_price(None, POLL, cfg, OPENS)  # a new shopper starts with 100
    poor = new_player(cfg, OPENS)
    poor.wallet["acorn"] = 4
    with pytest.raises(InsufficientFunds):
        rules.check_price(poor, POLL, cfg, OPENS)


def test_apply_vote_pays_rewards_and_never_refuses() -> None:
    cfg = config({"best": poll_raw()})
    owed = rules.cast_vote(None, POLL, "u", "red", OPENS, SH).owed
    assert owed is not None
    out = rules.apply_vote(None, owed, OPENS, cfg)
    assert out.state.wallet == {"acorn": 95, "ticket": 3}
    assert [(e.name, e.delta, e.before, e.after, e.reason) for e in out.ledger] == [
        ("acorn", -5, 100, 95, "vote:best"), ("ticket", 3, 0, 3, "vote:best")]
    again = rules.apply_vote(out.state, owed, OPENS, cfg)  # ticket max 4: clamped to +1
    assert again.state.wallet == {"acorn": 90, "ticket": 4}
    broke = new_player(cfg, OPENS)
    broke.wallet["acorn"] = 2  # spent between the price check and this commit
    owing = rules.apply_vote(broke, owed, OPENS, cfg)
    assert owing.state.wallet == {"acorn": 0, "ticket": 3}
    assert owing.state.debts == {"currency:acorn": 3}
    assert broke.wallet == {"acorn": 2, "ticket": 0}  # the input was not changed


def test_a_vote_reward_repays_a_debt_of_its_currency_first() -> None:
    cfg = config({"best": poll_raw(cost={}, reward={"acorn": 5})})
    owed = rules.cast_vote(None, cfg.polls["best"], "u", "red", OPENS, SH).owed
    assert owed is not None
    owing = new_player(cfg, OPENS)
    owing.debts = {"currency:acorn": 3}  # a refund took back a reward already spent
    out = rules.apply_vote(owing, owed, OPENS, cfg)
    assert (out.state.wallet["acorn"], out.state.debts) == (102, {})
    assert {"type": "debt_repaid", "reason": "vote:best",
            "repaid": {"currency:acorn": 3}} in out.events


def test_poll_view_sums_buckets_and_freezes_the_result() -> None:
    a = rules.cast_vote(None, POLL, "u", "red", OPENS, SH).state
    b = rules.cast_vote(None, POLL, "v", "blue", OPENS, SH).state
    b = rules.cast_vote(b, POLL, "w", "blue", OPENS, SH).state
    view = rules.poll_view(POLL, [a, None, b, None], OPENS + 5)
    assert view["status"] == "open" and view["result"] is None and view["total"] == 3
    assert view["options"] == [{"id": "red", "label": "Red", "votes": 1},
                               {"id": "blue", "label": "Blue", "votes": 2}]
    assert rules.poll_view(POLL, [None] * 4, OPENS - 1)["status"] == "upcoming"
    closed = rules.poll_view(POLL, [a, None, b, None], CLOSES)
    assert closed["result"] == {"frozen_at": CLOSES, "total": 3, "winners": ["blue"]}
    tie = rules.poll_view(POLL, [a, rules.cast_vote(None, POLL, "x", "blue", OPENS, SH).state],
                          CLOSES)
    assert tie["result"]["winners"] == ["red", "blue"]
    assert rules.poll_view(POLL, [None], CLOSES)["result"]["winners"] == []
