"""Blind-box config validation (compliance) and the draw rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.config import GameConfig, parse_game_config
from economy.errors import (
    AgeRestricted,
    ConfigInvalid,
    DrawLimit,
    GuardianConsentRequired,
    InsufficientFunds,
    InvalidInput,
    SeriesClosed,
    SeriesExhausted,
    UnknownItem,
)
from economy.fairness import seed_hash, verify_record
from mechanics.boxes import BoxContext, DrawBox, RotateSeed, box_view, draw, rotate_seed
from mechanics.pet import new_player
from mechanics.state import PlayerState
from tests.unit.boxes_factory import game, game_raw, series_raw

EXAMPLE = Path(__file__).parents[2] / "gameserver" / "examples" / "squirrel-omg.json"
SEED = "11" * 32
SEED2 = "22" * 32
NOW = 1_700_000_000
TZ = ZoneInfo("Asia/Shanghai")


def ctx(stock: dict[str, int] | None = None, **kw: Any) -> BoxContext:
    return BoxContext(fresh_seed=kw.pop("seed", SEED), stock_left=stock or {}, tz=TZ, **kw)


def player(config: GameConfig, coins: int = 100_000) -> PlayerState:
    p = new_player(config, NOW)
    p.wallet["coin"] = coins
    return p


def problems(raw: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ConfigInvalid) as err:
        parse_game_config(raw)
    return err.value.problems


def paths(raw: dict[str, Any]) -> set[str]:
    return {p["path"] for p in problems(raw)}


# ---------------------------------------------------------------- config and compliance


def test_example_parses_with_a_demo_series() -> None:
    config = parse_game_config(json.loads(EXAMPLE.read_text()))
    s = config.boxes.series["forest_friends"]
    assert [e.id for e in s.prizes] == ["coupon_10off"]
    assert s.hard is not None and s.soft is not None and s.ten_draw is not None


def test_kompu_gacha_completion_reward_on_paid_currency_is_rejected() -> None:
    raw = series_raw(price={"currency": "gem", "amount": 1},
                     completion_reward={"currencies": {"coin": 10}})
    assert "$.boxes.series.s.completion_reward" in paths(game_raw(raw))
    free = series_raw(completion_reward={"currencies": {"coin": 10}})
    game(free)  # the same reward on a free currency is fine


def test_kompu_applies_to_paid_ticket_items() -> None:
    raw = game_raw(series_raw(price={"item": "ticket", "amount": 1},
                              completion_reward={"items": {"a": 1}}))
    raw["items"]["ticket"]["paid"] = True
    assert "$.boxes.series.s.completion_reward" in paths(raw)


def test_tier_without_weight_is_rejected() -> None:
    raw = series_raw()
    raw["items"]["z"]["weight"] = 0
    assert "$.boxes.series.s.tiers.l" in paths(game_raw(raw))


def test_limited_prize_without_stock_is_rejected() -> None:
    raw = series_raw(prizes={"p": {"name": "P", "kind": "coupon", "tier": "l", "weight": 1,
                                   "stock": 0, "fallback": "a", "template": "T",
                                   "face_value_fen": 100}})
    assert "$.boxes.series.s.prizes.p.stock" in paths(game_raw(raw))


def test_prize_fallback_must_be_a_collectible_of_the_series() -> None:
    raw = series_raw(prizes={"p": {"name": "P", "kind": "goods", "tier": "l", "weight": 1,
                                   "stock": 5, "fallback": "nope", "face_value_fen": 100}})
    assert "$.boxes.series.s.prizes.p.fallback" in paths(game_raw(raw))


def test_price_above_cap_is_rejected() -> None:
    raw = series_raw(price={"currency": "coin", "amount": 600})
    assert "$.boxes.series.s.price.amount" in paths(game_raw(raw, max_price={"coin": 500}))
    game(raw)  # under the default cap
    big = series_raw(price={"currency": "coin", "amount": 200_000})
    assert "$.boxes.series.s.price.amount" in paths(game_raw(big))


def test_age_gate_cannot_be_laxer_than_the_law() -> None:
    raw = game_raw(age_gate={"under_8": "guardian", "8_17": "allow"})
    assert paths(raw) == {"$.boxes.age_gate.under_8", "$.boxes.age_gate.8_17"}
    game(None, age_gate={"8_17": "deny", "unknown": "deny"})  # stricter is fine


def test_pity_guarantee_must_not_depend_on_stock() -> None:
    raw = series_raw(prizes={"p": {"name": "P", "kind": "coupon", "tier": "l", "weight": 1,
                                   "stock": 5, "fallback": "a", "template": "T",
                                   "face_value_fen": 100}},
                     pity={"hard": {"tier": "l", "within": 10}})
    raw["items"]["z"]["tier"] = "r"
    assert "$.boxes.series.s.pity.hard.tier" in paths(game_raw(raw))


def test_structure_problems_carry_json_paths() -> None:
    raw = series_raw(price={"amount": 1}, tiers={"c": {"name": "C", "rank": 0},
                                                 "r": {"name": "R", "rank": 0}})
    raw["items"]["z"]["tier"] = "nope"
    got = paths(game_raw(raw))
    assert {"$.boxes.series.s.price", "$.boxes.series.s.tiers.r.rank",
            "$.boxes.series.s.items.z.tier"} <= got


# ---------------------------------------------------------------- the draw rule


def test_single_draw_pays_grants_and_records() -> None:
    config = game()
    state = player(config)
    out = draw(state, DrawBox("s", 1, "abc"), NOW, ctx(), config)
    assert state.boxes.seed == "" and state.wallet["coin"] == 100_000  # input untouched
    [rec] = out.response["draws"]
    assert rec["nonce"] == 0 and rec["seed_hash"] == seed_hash(SEED)
    assert rec["client_seed"] == "abc" and rec["table"] == config.boxes.series["s"].table_hash
    assert rec["pity_before"] == {"hard": 0, "soft": 0} and "version" in rec
    assert out.state.wallet["coin"] == 100_000 - 10
    assert out.state.inventory == {rec["item"]: 1}
    assert out.state.boxes.nonce == 1 and out.state.boxes.seed == SEED
    assert [e.reason for e in out.ledger] == ["box:s", "box:s"]
    assert out.records[0].table == "draws" and out.records[0].fields["record"] == rec
    assert out.reservations == [] and out.grants == []
    assert verify_record(config.boxes.series["s"], rec, SEED)


def test_ticket_price_takes_items() -> None:
    config = game(series_raw(price={"item": "ticket", "amount": 1}))
    state = player(config)
    with pytest.raises(Exception) as err:
        draw(state, DrawBox("s", 1), NOW, ctx(), config)
    assert err.value.__class__.__name__ == "InsufficientItems"
    state.inventory["ticket"] = 10
    out = draw(state, DrawBox("s", 10), NOW, ctx(), config)
    assert "ticket" not in out.state.inventory and len(out.response["draws"]) == 10


PRIZE = {"name": "¥5 coupon", "kind": "coupon", "tier": "l", "weight": 10_000, "stock": 100,
         "fallback": "a", "template": "T5", "face_value_fen": 500, "max_copies": 0}


def test_ten_draw_that_exhausts_stock_midway_falls_back() -> None:
    config = game(series_raw(prizes={"p": PRIZE}))
    s = config.boxes.series["s"]
    out = draw(player(config), DrawBox("s", 10), NOW, ctx({"p": 3}), config)
    items = [r["item"] for r in out.response["draws"]]
    assert items.count("p") == 3
    first_out = max(i for i, x in enumerate(items) if x == "p") + 1
    assert all(r["out"] == ["p"] for r in out.response["draws"][first_out:])
    assert all(r["out"] == [] for r in out.response["draws"][:first_out])
    assert out.reservations == [("prize:p", 3)]
    grants = [g.detail for g in out.grants]
    assert [g["position"] for g in grants] == [i for i, x in enumerate(items) if x == "p"]
    assert grants[0]["value"]["template"] == "T5"
    assert grants[0]["value"]["face_value_fen"] == 500
    assert {(g.ref, g.kind, g.reason, g.units) for g in out.grants} == {
        ("prize:p", "coupon", "draw:s", 1)}
    assert "p" not in out.state.inventory  # a coupon is a value grant, not an item
    assert all(verify_record(s, r, SEED) for r in out.response["draws"])


def test_rerun_with_less_stock_keeps_the_prefix() -> None:
    """The server re-runs the rule when a reservation fails: same draws up to the shortfall."""
    config = game(series_raw(prizes={"p": PRIZE}))
    state = player(config)
    full = draw(state, DrawBox("s", 10), NOW, ctx({"p": 100}), config).response["draws"]
    less = draw(state, DrawBox("s", 10), NOW, ctx({"p": 1}), config).response["draws"]
    second = [i for i, r in enumerate(full) if r["item"] == "p"][1]
    assert [r["item"] for r in less[:second]] == [r["item"] for r in full[:second]]
    assert less[second]["item"] != "p"
    assert [r["item"] for r in less].count("p") == 1


def test_no_stock_at_all_never_grants_the_prize() -> None:
    config = game(series_raw(prizes={"p": PRIZE}))
    out = draw(player(config), DrawBox("s", 10), NOW, ctx({}), config)
    assert all(r["item"] != "p" for r in out.response["draws"])
    assert out.reservations == []


def test_caps_and_window() -> None:
    config = game(series_raw(daily_cap=10, total_cap=15, opens_at=NOW - 10, closes_at=NOW + 10))
    state = draw(player(config), DrawBox("s", 10), NOW, ctx(), config).state
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 1), NOW, ctx(), config)
    assert err.value.details["scope"] == "daily"
    with pytest.raises(SeriesClosed):
        draw(state, DrawBox("s", 1), NOW + 10, ctx(), config)
    with pytest.raises(SeriesClosed):
        draw(state, DrawBox("s", 1), NOW - 11, ctx(), config)


def test_daily_cap_resets_on_the_game_day_and_total_cap_holds() -> None:
    config = game(series_raw(daily_cap=10, total_cap=15))
    state = draw(player(config), DrawBox("s", 10), NOW, ctx(), config).state
    state = draw(state, DrawBox("s", 1), NOW + 86_400, ctx(), config).state
    config = game(series_raw(daily_cap=20, total_cap=15))
    assert state.boxes.series["s"].today == 1 and state.boxes.series["s"].total == 11
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 10), NOW + 86_400, ctx(), config)
    assert err.value.details["scope"] == "total"


def test_daily_cap_says_when_it_resets_at_the_local_midnight() -> None:
    """The daily cap's refusal carries the next local midnight (Shanghai: 16:00 UTC) as
    ``resets_at`` and the seconds to it as ``retry_after`` (the Retry-After header),
    not the 1 s a 429 gets by default; the total cap never resets and says nothing."""
    config = game(series_raw(daily_cap=10, total_cap=15))
    state = draw(player(config), DrawBox("s", 10), NOW, ctx(), config).state
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 1), NOW, ctx(), config)
    assert err.value.details == {"series": "s", "scope": "daily", "cap": 10, "used": 10,
                                 "asked": 1, "resets_at": 1_700_064_000,
                                 "retry_after": 64_000}
    midnight = 1_700_064_000
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 1), midnight - 1, ctx(), config)
    assert err.value.details["retry_after"] == 1
    state = draw(state, DrawBox("s", 1), midnight, ctx(), config).state
    config = game(series_raw(daily_cap=20, total_cap=15))
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 10), midnight, ctx(), config)
    assert err.value.details == {"series": "s", "scope": "total", "cap": 15, "used": 11,
                                 "asked": 10}


@pytest.mark.parametrize(("band", "consent", "error"), [
    ("under_8", True, AgeRestricted),
    ("8_17", False, GuardianConsentRequired),
])
def test_age_gate(band: str, consent: bool, error: type[Exception]) -> None:
    config = game()
    with pytest.raises(error):
        draw(player(config), DrawBox("s", 1), NOW, ctx(age_band=band, guardian_consent=consent),
             config)


def test_age_gate_allows_minors_with_consent_and_adults() -> None:
    config = game()
    draw(player(config), DrawBox("s", 1), NOW, ctx(age_band="8_17", guardian_consent=True),
         config)
    draw(player(config), DrawBox("s", 1), NOW, ctx(age_band="18_plus"), config)
    strict = game(None, age_gate={"unknown": "deny"})
    with pytest.raises(AgeRestricted):
        draw(player(strict), DrawBox("s", 1), NOW, ctx(), strict)


@pytest.mark.parametrize(("action", "error"), [
    (DrawBox("nope", 1), UnknownItem),
    (DrawBox("s", 2), InvalidInput),
    (DrawBox("s", 1, "a:b"), InvalidInput),
    (DrawBox("s", 1, "x" * 65), InvalidInput),
])
def test_bad_requests(action: DrawBox, error: type[Exception]) -> None:
    config = game()
    with pytest.raises(error):
        draw(player(config), action, NOW, ctx(), config)


def test_insufficient_funds_changes_nothing() -> None:
    config = game()
    state = player(config, coins=50)
    with pytest.raises(InsufficientFunds):
        draw(state, DrawBox("s", 10), NOW, ctx(), config)
    assert state.boxes.nonce == 0 and state.wallet["coin"] == 50


def test_max_copies_then_series_exhausted() -> None:
    raw = series_raw()
    for k in raw["items"]:
        raw["items"][k]["max_copies"] = 1
    config = game(raw)
    out = draw(player(config), DrawBox("s", 1), NOW, ctx(), config)
    for _ in range(2):
        out = draw(out.state, DrawBox("s", 1), NOW, ctx(), config)
    assert sorted(out.state.inventory) == ["a", "b", "z"]
    with pytest.raises(SeriesExhausted):
        draw(out.state, DrawBox("s", 1), NOW, ctx(), config)


def test_no_repeat_until_complete_and_completion_reward_once() -> None:
    config = game(series_raw(no_repeat_until_complete=True,
                             completion_reward={"currencies": {"coin": 1000}}))
    out = draw(player(config), DrawBox("s", 10), NOW, ctx(), config)
    items = [r["item"] for r in out.response["draws"]]
    assert sorted(items[:3]) == ["a", "b", "z"]
    assert out.response["completed"] is True
    reward = [e for e in out.ledger if e.reason == "box-set:s"]
    assert [(e.name, e.delta) for e in reward] == [("coin", 1000)]
    again = draw(out.state, DrawBox("s", 10), NOW, ctx(), config)
    assert not [e for e in again.ledger if e.reason == "box-set:s"]


def test_a_completion_reward_past_a_limit_is_capped_never_a_refused_draw() -> None:
    """The set's last item used to raise BalanceLimit when the (free) completion reward
    did not fit, refusing the draw; the draw is deterministic, so every retry with that
    nonce was refused too and the shopper could not draw again until a rotation."""
    raw = game_raw(series_raw(no_repeat_until_complete=True,
                              completion_reward={"currencies": {"coin": 1000},
                                                 "items": {"d": 1}}))
    raw["currencies"]["coin"]["max"] = 100_000
    raw["items"]["d"]["max"] = 1
    config = parse_game_config(raw)
    p = player(config, coins=99_900)
    p.inventory["d"] = 1
    out = draw(p, DrawBox("s", 10), NOW, ctx(), config)
    assert out.response["completed"] is True
    assert out.state.wallet["coin"] == 100_000 and out.state.inventory["d"] == 1
    reward = [(e.name, e.delta) for e in out.ledger if e.reason == "box-set:s"]
    assert reward == [("coin", 200)]
    assert [e["lost"] for e in out.events if e["type"] == "grant_capped"] == [
        {"coin": 800, "d": 1}]


def test_rotate_seed_reveals_and_past_draws_verify() -> None:
    config = game()
    s = config.boxes.series["s"]
    out = draw(player(config), DrawBox("s", 10, "mine"), NOW, ctx(), config)
    rot = rotate_seed(out.state, RotateSeed(), NOW, ctx(seed=SEED2), config)
    assert rot.response["revealed"] == {"server_seed": SEED, "seed_hash": seed_hash(SEED),
                                        "nonces": 10}
    assert rot.response["seed_hash"] == seed_hash(SEED2) and rot.state.boxes.nonce == 0
    assert [(r.table, dict(r.fields), r.at) for r in rot.records] == [
        ("revealed_seeds", {"seed_hash": seed_hash(SEED), "seed": SEED}, "revealed_ms")]
    revealed = rot.response["revealed"]["server_seed"]
    assert all(verify_record(s, r, revealed) for r in out.response["draws"])
    assert not verify_record(s, out.response["draws"][0], SEED2)
    tampered = dict(out.response["draws"][0], roll=out.response["draws"][0]["roll"] + 1)
    assert not verify_record(s, tampered, revealed)
    after = draw(rot.state, DrawBox("s", 1), NOW, ctx(seed="33" * 32), config)
    assert after.response["draws"][0]["seed_hash"] == seed_hash(SEED2)


def test_rotate_without_seed_only_commits() -> None:
    config = game()
    rot = rotate_seed(None, RotateSeed(), NOW, ctx(), config)
    assert rot.response["revealed"] is None and rot.records == []
    assert box_view(rot.state.boxes)["seed_hash"] == seed_hash(SEED)


def test_box_state_wire_roundtrip() -> None:
    config = game()
    out = draw(player(config), DrawBox("s", 10), NOW, ctx(), config)
    wire = out.state.to_wire()
    assert set(wire["bx"]) == {"sd", "nc", "sr"}
    back = PlayerState.from_wire(wire)
    assert back.boxes == out.state.boxes
    old = {k: v for k, v in wire.items() if k != "bx"}
    assert PlayerState.from_wire(old).boxes.nonce == 0


# ---------------------------------------------------------------- guarantees on every path

PITY = series_raw(
    prizes={"p": dict(PRIZE, weight=3, tier="l", stock=5)},
    pity={"hard": {"tier": "r", "within": 4}, "soft": {"tier": "l", "from": 3, "step": 0.2},
          "ten_draw": {"tier": "l"}},
)
PITY_CONFIG = game(PITY)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.sampled_from([1, 10]), min_size=1, max_size=12),
       client=st.text(alphabet="abcxyz019", max_size=8),
       stock=st.integers(min_value=0, max_value=6),
       seed=st.binary(min_size=32, max_size=32))
def test_pity_and_ten_draw_guarantees_hold(counts: list[int], client: str, stock: int,
                                           seed: bytes) -> None:
    config, s = PITY_CONFIG, PITY_CONFIG.boxes.series["s"]
    rank = {t.id: t.rank for t in s.tiers.values()}
    state = player(config)
    since_rare = since_legend = 0
    left = {"p": stock}
    prev_after = {"hard": 0, "soft": 0}
    for n in counts:
        out = draw(state, DrawBox("s", n, client), NOW, ctx(left, seed=seed.hex()), config)
        draws = out.response["draws"]
        left["p"] -= sum(r["item"] == "p" for r in draws)
        assert left["p"] >= 0
        if n == 10:
            assert any(rank[r["rarity"]] >= rank["l"] for r in draws)
        for r in draws:
            assert r["pity_before"] == prev_after
            prev_after = r["pity_after"]
            since_rare = 0 if rank[r["rarity"]] >= rank["r"] else since_rare + 1
            since_legend = 0 if rank[r["rarity"]] >= rank["l"] else since_legend + 1
            assert since_rare < 4  # within 4 draws at least one ≥ r
            assert r["pity_after"] == {"hard": since_rare, "soft": since_legend}
        state = out.state


def test_a_guarantee_blocked_by_max_copies_is_dropped_not_a_dead_end() -> None:
    """Hard pity forces tier r on every draw; once the player holds the most copies of
    every entry of tier ≥ r, the guarantee cannot be met: the draw goes on without it
    (forced null, verifiable) instead of refusing every later draw of the series."""
    raw = series_raw(pity={"hard": {"tier": "r", "within": 1}})
    raw["items"]["b"]["max_copies"] = 1
    raw["items"]["z"]["max_copies"] = 1
    config = game(raw)
    out = draw(player(config), DrawBox("s", 1), NOW, ctx(), config)
    out = draw(out.state, DrawBox("s", 1), NOW, ctx(), config)
    assert sorted(out.state.inventory) == ["b", "z"]
    assert out.response["draws"][0]["forced"] == "r"
    out = draw(out.state, DrawBox("s", 10), NOW, ctx(), config)
    records = out.response["draws"]
    assert [(r["item"], r["forced"], r["excluded"]) for r in records] == [
        ("a", None, ["b", "z"])] * 10
    assert [r["pity_after"]["hard"] for r in records] == list(range(1, 11))
    series_ = config.boxes.series["s"]
    assert all(verify_record(series_, r, SEED) for r in records)


def test_a_blocked_ten_draw_guarantee_gives_way_to_the_lower_hard_pity() -> None:
    """The 10-draw guarantees tier l, whose only entry is at its max copies; hard pity
    still guarantees tier r on that draw, so the tenth draw is forced to r, not free."""
    raw = series_raw(pity={"hard": {"tier": "r", "within": 1}, "ten_draw": {"tier": "l"}})
    raw["items"]["z"]["max_copies"] = 1
    config = game(raw)
    state = player(config)
    while "z" not in state.inventory:
        state = draw(state, DrawBox("s", 1), NOW, ctx(), config).state
    out = draw(state, DrawBox("s", 10), NOW, ctx(), config)
    records = out.response["draws"]
    assert [(r["item"], r["forced"], r["excluded"]) for r in records] == [
        ("b", "r", ["z"])] * 10
    assert all(verify_record(config.boxes.series["s"], r, SEED) for r in records)


def test_a_daily_cap_says_when_it_lifts_and_a_total_cap_comes_first() -> None:
    """The daily cap's refusal carries the seconds to the game's next local midnight
    (the server's Retry-After), not the default second; when the total cap is reached
    too, that one is reported: waiting for tomorrow would not help."""
    config = game(series_raw(daily_cap=10))
    state = draw(player(config), DrawBox("s", 10), NOW, ctx(), config).state
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 1), NOW, ctx(), config)
    # NOW is 06:13:20 on 2023-11-15 in Shanghai; its next midnight is 1_700_064_000
    assert err.value.details == {"series": "s", "scope": "daily", "cap": 10, "used": 10,
                                 "asked": 1, "retry_after": 1_700_064_000 - NOW,
                                 "resets_at": 1_700_064_000}
    both = game(series_raw(daily_cap=10, total_cap=10))
    state = draw(player(both), DrawBox("s", 10), NOW, ctx(), both).state
    with pytest.raises(DrawLimit) as err:
        draw(state, DrawBox("s", 1), NOW, ctx(), both)
    assert err.value.details["scope"] == "total" and "retry_after" not in err.value.details
