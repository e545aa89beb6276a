"""The simulator: published odds vs simulated draws, stock, set completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from economy.config import parse_game_config
from economy.fairness import verify_draw
from economy.odds import base, consolidated
from economy.simulate import percentile, player_seed, simulate
from tests.unit.boxes_factory import series

EXAMPLE = Path(__file__).parents[2] / "gameserver" / "examples" / "squirrel-omg.json"
# Chi-square critical values at α = 0.001 (scipy.stats.chi2.ppf(0.999, df)), from the
# standard table; the runs are seeded, so these tests are deterministic either way.
CHI2_999 = {2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515}


def chi_square(counts: dict[str, int], probs: dict[str, float], n: int) -> float:
    return sum((counts[k] - n * p) ** 2 / (n * p) for k, p in probs.items() if p > 0)


def five() -> dict[str, dict[str, object]]:
    return {"a": {"tier": "c", "weight": 500}, "b": {"tier": "c", "weight": 250},
            "d": {"tier": "r", "weight": 150}, "e": {"tier": "r", "weight": 70},
            "z": {"tier": "l", "weight": 30}}


def test_100k_draws_match_base_odds() -> None:
    s = series(items=five())
    r = simulate(s, players=100, draws=1000, seed="chi")
    assert r.draws == 100_000
    probs = {k: float(v) for k, v in base(s).items()}
    assert chi_square(r.items, probs, r.draws) < CHI2_999[4]


def test_100k_draws_match_consolidated_odds_with_pity() -> None:
    s = series(items=five(), pity={"hard": {"tier": "r", "within": 5},
                                   "soft": {"tier": "l", "from": 20, "step": 0.1}})
    r = simulate(s, players=10, draws=10_000, seed="chi-pity")
    probs = {k: float(v) for k, v in consolidated(s).items.items()}
    assert chi_square(r.items, probs, r.draws) < CHI2_999[4]
    # and the base odds are clearly not what pity produces
    flat = {k: float(v) for k, v in base(s).items()}
    assert chi_square(r.items, flat, r.draws) > 10 * CHI2_999[4]


def test_simulator_uses_the_published_mapping() -> None:
    s = series()
    r = simulate(s, players=1, draws=1, seed="v")
    got = verify_draw(player_seed("v", 0).hex(), "sim", 0, [("a", 80), ("b", 15), ("z", 5)])
    assert r.items[got.item] == 1


def test_limited_prize_sells_out_and_costs_exactly_its_stock() -> None:
    prize = {"name": "P", "kind": "coupon", "tier": "l", "weight": 50, "stock": 25,
             "fallback": "a", "template": "T", "face_value_fen": 300, "max_copies": 0}
    s = series(prizes={"p": prize})
    r = simulate(s, players=50, draws=100, seed="stock", batch=10)
    assert r.items["p"] == 25 and r.prize_cost_fen == 25 * 300
    assert r.sold_out_at["p"] is not None and r.sold_out_at["p"] <= r.draws
    report = r.to_json()
    assert report["prize_cost_fen_per_draw"] == 25 * 300 / 5000
    json.dumps(report)


def test_set_completion_percentiles() -> None:
    s = series()
    r = simulate(s, players=200, draws=200, seed="set")
    d = r.complete_draws
    assert d["p50"] is not None and d["p90"] is not None and d["p99"] is not None
    assert 3 <= d["p50"] <= d["p90"] <= d["p99"] <= 200


def test_example_series_with_ten_draws() -> None:
    config = parse_game_config(json.loads(EXAMPLE.read_text()))
    s = config.boxes.series["forest_friends"]
    r = simulate(s, players=20, draws=100, seed="demo", batch=10)
    assert r.draws == 2000 and r.forced > 0
    assert r.items["coupon_10off"] <= 100


def test_percentile_counts_unfinished_players_as_infinite() -> None:
    assert percentile([3, 5], 0.5, 4) == 5
    assert percentile([3, 5], 0.9, 4) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        simulate(series(), players=1, draws=15, batch=10)
