"""Experiments as pure rules: overrides and validation per arm, assignment (stable,
balanced, independent between salts), stickiness, eligibility, exposure."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC
from typing import Any

import pytest

from economy.config import parse_game_config
from economy.errors import ConfigInvalid
from economy.experiment_edits import ExperimentClosed, put_experiment
from economy.experiments import (
    BUCKETS,
    bucket,
    choose,
    follow_experiments,
    merged_raw,
    status_at,
    window_end,
)
from mechanics.experiments import track, tracked_side
from mechanics.outcome import Outcome
from mechanics.state import PlayerState
from tests.unit.boxes_factory import game_raw
from tests.unit.test_groupbuy import offer_raw
from tests.unit.test_poll import poll_raw
from tests.unit.test_rains import rain_raw, round_raw

T0 = 1_767_225_600
WEIGHT = "$.boxes.series.s.items.z.weight"


def experiment(**over: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "name": "Rare weight", "hypothesis": "a rarer legend lowers spend",
        "salt": "s1", "status": "running", "starts_at": T0, "stops_at": T0 + 30 * 86400,
        "arms": {"control": {"percent": 50},
                 "rare": {"percent": 50, "overrides": {WEIGHT: 1}}},
        "metrics": {"primary": "d1_retention", "guardrails": ["spend_per_shopper"]},
        "sample_size": 500,
    }
    exp.update(copy.deepcopy(over))
    return exp


def raw_with(exp: dict[str, Any] | None = None, **more: dict[str, Any]) -> dict[str, Any]:
    raw = game_raw()
    raw["experiments"] = {"e1": exp or experiment(), **more}
    return raw


def problems(raw: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ConfigInvalid) as info:
        parse_game_config(raw)
    return info.value.problems


# ---------------------------------------------------------------- overrides and validation


def test_merged_raw_sets_the_path_and_drops_experiments() -> None:
    raw = raw_with()
    doc, bad = merged_raw(raw, {WEIGHT: 1, "$.boxes.series.s.price.amount": 12})
    assert bad == []
    assert "experiments" not in doc
    assert doc["boxes"]["series"]["s"]["items"]["z"]["weight"] == 1
    assert doc["boxes"]["series"]["s"]["price"]["amount"] == 12
    assert raw["boxes"]["series"]["s"]["items"]["z"]["weight"] == 5  # base untouched


def test_null_removes_a_key_so_it_takes_its_default() -> None:
    raw = game_raw()
    raw["boxes"]["series"]["s"]["pity"] = {"hard": {"tier": "l", "within": 50}}
    raw["experiments"] = {"e1": experiment(arms={"control": {"percent": 50}, "nopity": {
        "percent": 50, "overrides": {"$.boxes.series.s.pity.hard": None}}})}
    configs = parse_game_config(raw).experiments["e1"].configs
    assert configs["control"].boxes.series["s"].hard is not None
    assert configs["nopity"].boxes.series["s"].hard is None


def test_each_arm_gets_its_merged_config() -> None:
    config = parse_game_config(raw_with())
    exp = config.experiments["e1"]
    assert exp.configs["control"].boxes.series["s"].entries[2].weight == 5
    assert exp.configs["rare"].boxes.series["s"].entries[2].weight == 1
    assert config.boxes.series["s"].entries[2].weight == 5
    assert exp.configs["rare"].experiments == {}


def test_an_override_of_a_missing_parent_is_a_problem() -> None:
    exp = experiment(arms={"control": {"percent": 50},
                           "b": {"percent": 50, "overrides": {"$.boxes.series.nope.price": 1}}})
    assert problems(raw_with(exp)) == [{
        "path": "$.experiments.e1.arms.b.overrides.$.boxes.series.nope.price",
        "message": "$.boxes.series.nope does not exist in the live config"}]


def test_an_arm_that_breaks_validation_reports_the_merged_path() -> None:
    exp = experiment(arms={"control": {"percent": 50},
                           "b": {"percent": 50, "overrides": {WEIGHT: -3}}})
    assert problems(raw_with(exp)) == [{
        "path": "$.experiments.e1.arms.b.overrides",
        "message": "merged config: $.boxes.series.s.items.z.weight must be ≥ 0"}]


def test_compliance_holds_in_every_arm() -> None:
    """A complete-the-set reward on a series sold for a paid currency (kompu gacha) is
    refused in an arm exactly as in the live config."""
    exp = experiment(arms={"control": {"percent": 50}, "b": {"percent": 50, "overrides": {
        "$.boxes.series.s.price": {"currency": "gem", "amount": 1},
        "$.boxes.series.s.completion_reward": {"currencies": {"coin": 10}, "items": {}}}}})
    found = problems(raw_with(exp))
    assert found == [{"path": "$.experiments.e1.arms.b.overrides",
                      "message": "merged config: $.boxes.series.s.completion_reward a "
                                 "complete-the-set reward on a series bought with a paid "
                                 "currency or item is forbidden (kompu gacha)"}]


@pytest.mark.parametrize("path", ["$.timezone", "$.experiments.e1.salt", "$.schema"])
def test_forbidden_roots(path: str) -> None:
    exp = experiment(arms={"control": {"percent": 50},
                           "b": {"percent": 50, "overrides": {path: 1}}})
    root = path.split(".")[1]
    assert problems(raw_with(exp)) == [{"path": f"$.experiments.e1.arms.b.overrides.{path}",
                                        "message": f"an arm may not override $.{root}"}]


def test_an_arm_may_not_change_limited_stock() -> None:
    raw = game_raw()
    raw["boxes"]["series"]["s"]["prizes"] = {"cp": {
        "name": "¥5", "kind": "coupon", "tier": "l", "weight": 1, "stock": 10,
        "fallback": "a", "template": "T5", "face_value_fen": 500}}
    raw["experiments"] = {"e1": experiment(arms={"control": {"percent": 50}, "b": {
        "percent": 50, "overrides": {"$.boxes.series.s.prizes.cp.stock": 20}}})}
    assert problems(raw) == [{"path": "$.experiments.e1.arms.b.overrides",
                              "message": "an arm may not change limited stock (prizes, "
                                         "coupons and offers are shared)"}]


def test_shape_rules() -> None:
    exp = experiment(control="nope", stops_at=T0, arms={
        "control": {"percent": 70}, "b": {"percent": 40}})
    assert problems(raw_with(exp)) == [
        {"path": "$.experiments.e1.control", "message": "must name one of the arms"},
        {"path": "$.experiments.e1.arms", "message": "percents add up to 110 > 100"},
        {"path": "$.experiments.e1.stops_at", "message": "must be after starts_at"}]


def test_one_experiment_runs_at_a_time() -> None:
    raw = raw_with(e2=experiment(salt="s2"))
    assert problems(raw) == [{"path": "$.experiments",
                              "message": "one experiment may run at a time; running: "
                                         "['e1', 'e2'] (one whose stops_at passed counts "
                                         "until it is stopped or shipped: stop it first)"}]


def test_an_ended_experiment_makes_way_and_stays_ended() -> None:
    """Past stops_at a running experiment reads ``ended``; putting a new one running
    stops it (one runs at a time, in the config) instead of being refused, and it cannot
    be put again, nor its stops_at moved later by a draft, to run once more."""
    end = T0 + 30 * 86400
    e1 = parse_game_config(raw_with()).experiments["e1"]
    assert [e1.status_at(t) for t in (T0 - 1, end - 1, end)] == ["running", "running",
                                                                 "ended"]
    assert status_at("stopped", end, end + 1) == "stopped"
    body = experiment(salt="s2", starts_at=end, stops_at=end + 86400)
    put = put_experiment(raw_with(), "e2", body, end, "fresh")
    assert {k: e.status for k, e in parse_game_config(put).experiments.items()} == {
        "e1": "stopped", "e2": "running"}
    with pytest.raises(ExperimentClosed) as info:
        put_experiment(raw_with(), "e1", experiment(stops_at=end + 86400), end, "fresh")
    assert info.value.details["status"] == "ended"
    later = raw_with(experiment(stops_at=end + 86400))
    assert follow_experiments(raw_with(), later, end) == [{
        "path": "$.experiments.e1.stops_at", "message": "the experiment ended (its "
        "stops_at passed) and cannot run again: start a new experiment"}]
    assert follow_experiments(raw_with(), later, end - 1) == []  # still running: may move


def test_the_window_ends_at_the_stop_or_at_stops_at() -> None:
    """The window's end from published versions (time, status, starts_at, stops_at)."""
    run = ("running", 100, 1000)
    assert window_end([(50, *run)]) == 1000  # still live: stops_at
    assert window_end([(50, *run), (400, "stopped", 100, 1000)]) == 400  # stopped
    assert window_end([(50, *run), (400, None, None, None)]) == 400  # removed
    assert window_end([(50, *run), (1200, "stopped", 100, 1000)]) == 1000  # stopped late
    assert window_end([(50, *run), (300, *run), (500, "shipped", 100, 1000)]) == 500
    assert window_end([(50, "running", 100, 200), (300, *run)]) == 1000  # extended
    assert window_end([(50, "draft", 100, 1000), (90, "stopped", 100, 1000)]) is None
    assert window_end([(50, *run), (60, "stopped", 100, 1000)]) is None  # never started
    assert window_end([]) is None


def test_a_stopped_experiment_is_not_revalidated() -> None:
    """A stopped experiment's arms need not fit a config changed since."""
    exp = experiment(status="stopped", arms={
        "control": {"percent": 50}, "b": {"percent": 50, "overrides": {"$.gone.x": 1}}})
    config = parse_game_config(raw_with(exp))
    assert config.experiments["e1"].configs == {}


def game_with(**parts: Any) -> dict[str, Any]:
    """:func:`game_raw` with top-level parts added (``coin`` pays for everything)."""
    raw = game_raw()
    raw.update(copy.deepcopy(parts))
    return raw


OFFER = offer_raw(cost={"coin": 10})
RAIN_COIN = {"currency": "coin"}
COIN_OVER_MAX = {"coin": {"name": "Coins", "initial": 10, "max": 5},
                 "gem": {"name": "Gems", "paid": True}}


@pytest.mark.parametrize(("parts", "expected"), [
    ({"groupbuys": {f"o{i}": OFFER for i in range(51)}},
     [{"path": "$.groupbuys", "message": "must have 0..50 entries"}]),
    ({"rains": {"m": rain_raw(**RAIN_COIN, rounds={"a-b": round_raw()})}},
     [{"path": "$.rains.m.rounds.a-b", "message": "key must match ^[a-z0-9][a-z0-9_]{0,23}$"}]),
    ({"rains": {"m": rain_raw(**RAIN_COIN, rounds={})}},
     [{"path": "$.rains.m.rounds", "message": "must have 1..48 entries"}]),
    ({"polls": {"best": poll_raw(options={"Red": {"label": "Red"},
                                          "blue": {"label": "Blue"}})}},
     [{"path": "$.polls.best.options.Red",
       "message": "key must match ^[a-z0-9][a-z0-9_-]{0,63}$"}]),
    ({"currencies": COIN_OVER_MAX},
     [{"path": "$.currencies.coin.initial", "message": "exceeds max"}]),
], ids=["51_offers", "round_id", "no_rounds", "option_id", "cross_check"])
def test_an_invalid_base_reports_the_same_problems_with_an_experiment(
        parts: dict[str, Any], expected: list[dict[str, str]]) -> None:
    """The experiment adds nothing when the config without it is invalid: its arms
    cannot be judged, and the base's own problems keep their paths and messages (the
    arms' re-parse used to replace them with problems of the cleaned copy, e.g. 51
    group-buy offers read "$.groupbuys must be an object")."""
    raw = game_with(**parts)
    assert problems(raw) == expected
    raw["experiments"] = {"e1": experiment()}
    assert problems(raw) == expected


@pytest.mark.parametrize(("parts", "expected"), [
    ({"items": {**game_raw()["items"], "a": {"name": "a", "max": 0}}},
     [{"path": "$.items.a.max", "message": "must be ≥ 1"}]),
    ({"currencies": COIN_OVER_MAX},
     [{"path": "$.currencies.coin.initial", "message": "exceeds max"}]),
], ids=["schema", "cross_check"])
def test_an_invalid_base_keeps_the_experiments_own_problems(
        parts: dict[str, Any], expected: list[dict[str, str]]) -> None:
    """What is wrong with the experiment itself does not depend on the base, so it is
    listed beside the base's problems in the same round."""
    raw = game_with(**parts)
    raw["experiments"] = {"e1": experiment(control="nope")}
    assert problems(raw) == [
        *expected, {"path": "$.experiments.e1.control", "message": "must name one of the arms"}]


# ---------------------------------------------------------------- assignment


def test_bucket_is_stable_and_known() -> None:
    assert bucket("s1", "u1") == bucket("s1", "u1")
    assert 0 <= bucket("s1", "u1") < BUCKETS
    assert [bucket("s1", f"u{i}") for i in range(3)] == [
        int.from_bytes(__import__("hashlib").sha256(f"s1\nu{i}".encode()).digest()[:8],
                       "big") % BUCKETS for i in range(3)]


def test_assignment_is_balanced_over_100k_users() -> None:
    exp = parse_game_config(raw_with()).experiments["e1"]
    counts = Counter(exp.assign(f"user-{i}") for i in range(100_000))
    assert set(counts) == {"control", "rare"}
    # binomial sd at n = 100k, p = 0.5 is 158: 4 sd is 632
    assert abs(counts["control"] - 50_000) < 632


def test_partial_allocation_leaves_the_rest_unenrolled() -> None:
    exp = parse_game_config(raw_with(experiment(arms={
        "control": {"percent": 10}, "b": {"percent": 10}}))).experiments["e1"]
    counts = Counter(exp.assign(f"user-{i}") for i in range(100_000))
    assert abs(counts[None] - 80_000) < 4 * 127  # sd = sqrt(n p q) = 126.5
    assert abs(counts["control"] - 10_000) < 4 * 95


def test_salts_are_independent() -> None:
    """Arms under two salts cross like independent coins: each of the four cells holds a
    quarter (χ² of the 2×2 table well under the 0.001 critical value 10.83)."""
    a = parse_game_config(raw_with()).experiments["e1"]
    b = parse_game_config(raw_with(experiment(salt="other"))).experiments["e1"]
    n = 100_000
    cells = Counter((a.assign(f"u{i}"), b.assign(f"u{i}")) for i in range(n))
    chi2 = sum((c - n / 4) ** 2 / (n / 4) for c in cells.values())
    assert len(cells) == 4 and chi2 < 10.83


def test_choose_respects_window_marks_and_eligibility() -> None:
    config = parse_game_config(raw_with(experiment(eligibility="new")))
    exp = config.experiments["e1"]
    user = "u-7"
    arm = exp.assign(user)
    assert choose(config, user, {}, None, T0 - 1) is None  # not started
    assert choose(config, user, {}, None, T0 + 30 * 86400) is None  # stopped by time
    got = choose(config, user, {}, None, T0)
    assert got is not None and got[1] == arm
    assert choose(config, user, {}, T0 - 10, T0) is None  # played before the start: not new
    other = "rare" if arm == "control" else "control"
    marked = choose(config, user, {"e1": other}, T0 - 10, T0 + 5)
    assert marked is not None and marked[1] == other  # sticky, whatever the hash says


def test_stopping_puts_everyone_back_on_the_live_config() -> None:
    config = parse_game_config(raw_with(experiment(status="stopped")))
    assert choose(config, "u-7", {"e1": "rare"}, None, T0 + 5) is None


# ---------------------------------------------------------------- exposure


def test_exposure_is_recorded_once_and_active_days_once_a_day() -> None:
    config = parse_game_config(raw_with())
    state = PlayerState(created_at=T0)

    def act(before: PlayerState, now: int) -> Outcome:
        return track(Outcome(state=before.copy(), response={}), before, config, now, UTC,
                     ("e1", "rare"), 3)

    first = act(state, T0)
    day0 = T0 // 86400 + 719163  # the ordinal of 2026-01-01
    assert first.state.experiments == {"e1": "rare"} and state.experiments == {}
    assert [(r.table, dict(r.fields)) for r in first.records] == [
        ("experiment_exposures", {"experiment": "e1", "arm": "rare", "game_version": 3,
                                  "day": day0}),
        ("experiment_days", {"experiment": "e1", "day": day0})]
    assert act(first.state, T0 + 60).records == []  # same day: nothing more
    later = act(first.state, T0 + 86400)
    assert [(r.table, dict(r.fields)) for r in later.records] == [
        ("experiment_days", {"experiment": "e1", "day": day0 + 1})]


def test_a_stopped_experiment_still_measures_its_cohort() -> None:
    config = parse_game_config(raw_with(experiment(status="stopped")))
    state = PlayerState(created_at=T0, experiments={"e1": "rare"})
    out = track(Outcome(state=state.copy(), response={}), state, config, T0 + 40 * 86400,
                UTC, None, 4)
    assert [r.table for r in out.records] == ["experiment_days"]
    gone = track(Outcome(state=state.copy(), response={}), state, config, T0 + 62 * 86400,
                 UTC, None, 4)
    assert gone.records == []  # 31 days after the stop time: no longer measured


def test_a_shared_plays_side_records_the_day_its_gate_acted_and_exposes_nobody() -> None:
    """The acting shopper's side of a shared play (a vote's second commit) is their
    activity: an exposed shopper gets the day the gate was committed on, even when the
    side is applied on a later day (the owed reconciler); a shopper not exposed yet is
    not exposed by it (shared plays run on the live config, not an arm's)."""
    config = parse_game_config(raw_with())
    day0 = T0 // 86400 + 719163
    calls: list[int] = []

    def vote(state: PlayerState | None, now: int) -> Outcome:
        calls.append(now)
        assert state is not None
        return Outcome(state=state.copy(), response={"ok": True})

    exposed = PlayerState(created_at=T0, experiments={"e1": "rare"}, experiment_day=day0)
    late = tracked_side(vote, config, UTC, 3, acted_at=T0 + 86400 + 5)(
        exposed, T0 + 2 * 86400)  # gate on day 1, applied on day 2
    assert calls == [T0 + 2 * 86400] and late.response == {"ok": True}
    assert [(r.table, dict(r.fields)) for r in late.records] == [
        ("experiment_days", {"experiment": "e1", "day": day0 + 1})]
    assert late.state.experiment_day == day0 + 1
    again = tracked_side(vote, config, UTC, 3)(late.state, T0 + 86400 + 60)
    assert again.records == []  # that day is recorded: once a day, as for own actions
    ahead = PlayerState(created_at=T0, experiments={"e1": "rare"}, experiment_day=day0 + 2)
    behind = tracked_side(vote, config, UTC, 3, acted_at=T0 + 86400)(ahead, T0 + 2 * 86400)
    assert [dict(r.fields) for r in behind.records] == [{"experiment": "e1", "day": day0 + 1}]
    assert behind.state.experiment_day == day0 + 2  # a later day stays recorded

    fresh = PlayerState(created_at=T0)
    assert choose(config, "u-7", {}, None, T0) is not None  # the hash would assign an arm
    untouched = tracked_side(vote, config, UTC, 3)(fresh, T0)
    assert untouched.records == [] and untouched.state.experiments == {}
    plain = parse_game_config(game_raw())
    assert tracked_side(vote, plain, UTC, 3) is vote  # no experiments: the rule itself


def test_exposure_survives_the_wire() -> None:
    state = PlayerState(created_at=T0, experiments={"e1": "rare"})
    assert PlayerState.from_wire(state.to_wire()).experiments == {"e1": "rare"}
    assert "x" not in PlayerState(created_at=T0).to_wire()


def test_orders_are_recorded_for_gmv() -> None:
    """ingestOrder's rules add an ``order_events`` row: paid once, refunded with the paid
    amount once (results read orders and GMV from it)."""
    from random import Random

    from mechanics import tasks

    config = parse_game_config(game_raw())
    paid = tasks.apply_order(None, tasks.Order("o1", 9900), T0, Random(0), config, tz=UTC)
    assert [(r.table, dict(r.fields)) for r in paid.records] == [
        ("order_events", {"order_id": "o1", "kind": "paid", "amount_fen": 9900})]
    again = tasks.apply_order(paid.state, tasks.Order("o1", 9900), T0, Random(0), config, tz=UTC)
    assert again.records == []
    refunded = tasks.apply_refund(paid.state, tasks.Refund("o1"), T0 + 5, Random(0), config,
                                  tz=UTC)
    assert [dict(r.fields) for r in refunded.records] == [
        {"order_id": "o1", "kind": "refunded", "amount_fen": 9900}]
    twice = tasks.apply_refund(refunded.state, tasks.Refund("o1"), T0 + 6, Random(0), config,
                               tz=UTC)
    assert twice.records == []
