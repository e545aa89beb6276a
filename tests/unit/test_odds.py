"""Disclosure math on hand-computed tables (weights 80/15/5: p = 4/5, 3/20, 1/20)."""

from __future__ import annotations

import json
from fractions import Fraction as F
from pathlib import Path

import pytest

from economy.config import parse_game_config
from economy.odds import base, base_tiers, consolidated, disclose
from tests.unit.boxes_factory import series

EXAMPLE = Path(__file__).parents[2] / "gameserver" / "examples" / "squirrel-omg.json"


def test_base_probabilities_are_exact_weight_shares() -> None:
    s = series()
    assert base(s) == {"a": F(4, 5), "b": F(3, 20), "z": F(1, 20)}
    assert base_tiers(s) == {"c": F(4, 5), "r": F(3, 20), "l": F(1, 20)}


def test_without_pity_consolidated_equals_base() -> None:
    c = consolidated(series())
    assert c.items == {"a": F(4, 5), "b": F(3, 20), "z": F(1, 20)}
    assert c.forced_rate == 0 and c.exact


def test_hard_pity_three_draws() -> None:
    # Cycle: draws 1 and 2 are free (z with 1/20), draw 3 is forced to tier l.
    # E[T] = 1 + 19/20 + (19/20)² = 1141/400; a is drawn 4/5·(1 + 19/20) = 1.56 times.
    c = consolidated(series(pity={"hard": {"tier": "l", "within": 3}}))
    assert c.cycle_draws == F(1141, 400)
    assert c.items == {"a": F(624, 1141), "b": F(117, 1141), "z": F(400, 1141)}
    assert c.forced_rate == F(361, 1141)  # (19/20)² / E[T]


def test_soft_pity_from_draw_two_step_half() -> None:
    # Draw 1: P(z) = 1/20; draw 2: 1/20 + 1/2 = 11/20; draw 3: 1/20 + 1 ≥ 1, certain.
    # E[T] = 1 + 19/20 + 19/20 · 9/20 = 951/400.
    # a: 4/5 + 19/20 · 9/20 · 80/95 = 1.16 draws; b: 3/20 + 19/20 · 9/20 · 15/95 = 0.2175.
    c = consolidated(series(pity={"soft": {"tier": "l", "from": 2, "step": 0.5}}))
    assert c.cycle_draws == F(951, 400)
    assert c.items == {"a": F(464, 951), "b": F(87, 951), "z": F(400, 951)}
    assert c.boosted_rate == F(551, 951)  # (19/20 + 19/20·9/20) / E[T]


def test_hard_and_soft_pity_together() -> None:
    # hard: tier ≥ r within 2; soft: tier l from draw 2, step 1/2 (certain at draw 3).
    s = series(pity={"hard": {"tier": "r", "within": 2},
                     "soft": {"tier": "l", "from": 2, "step": 0.5}})
    q = F(11, 20)  # boosted P(l) on draw 2
    # draw 1 (free): a → state (1,1) mass 4/5; b → (0,1) mass 3/20; z ends the cycle.
    # draw 2 from (1,1): forced ≥ r and boosted: P(z) = q / (q + 9/20·15/95), P(b) = rest.
    pb_forced = (1 - q) * F(15, 95) / ((1 - q) * F(15, 95) + q)
    # draw 2 from (0,1): boosted only: a (1-q)·80/95, b (1-q)·15/95, z q.
    pa_free, pb_free = (1 - q) * F(80, 95), (1 - q) * F(15, 95)
    draw3 = F(4, 5) * pb_forced + F(3, 20) * (pa_free + pb_free)  # all certain z on draw 3
    cycle = 1 + F(19, 20) + draw3
    a = F(4, 5) + F(3, 20) * pa_free
    b = F(3, 20) + F(4, 5) * pb_forced + F(3, 20) * pb_free
    c = consolidated(s)
    assert c.cycle_draws == cycle
    assert c.items == {"a": a / cycle, "b": b / cycle, "z": 1 / cycle}
    assert sum(c.items.values()) == 1
    # forced: draw 2 from (1,1), and draw 3 from (1,2) (an a on draw 2 after a b on draw 1)
    assert c.forced_rate == (F(4, 5) + F(3, 20) * pa_free) / cycle


def test_float_mode_agrees_with_exact() -> None:
    s = series(pity={"hard": {"tier": "r", "within": 10},
                     "soft": {"tier": "l", "from": 30, "step": 0.06}})
    exact, approx = consolidated(s, exact=True), consolidated(s, exact=False)
    assert not approx.exact
    for k, v in exact.items.items():
        assert float(v) == pytest.approx(approx.items[k], rel=1e-12)


def test_disclosure_lists_everything_a_shopper_must_see() -> None:
    config = parse_game_config(json.loads(EXAMPLE.read_text()))
    s = config.boxes.series["forest_friends"]
    d = disclose(s, {"coupon_10off": 37})
    ids = [i["id"] for i in d["items"]]
    assert ids == ["fig_acorn_kid", "fig_pine_pal", "fig_maple_mage", "fig_golden_tail",
                   "coupon_10off"]
    coupon = d["items"][-1]
    assert coupon["base_probability_exact"] == "1/200"
    assert coupon["prize"]["stock_left"] == 37 and coupon["prize"]["face_value_fen"] == 1000
    assert d["stock_left"] == {"coupon_10off": 37}
    assert d["prize_value_fen"] == {"min": 1000, "max": 1000}
    assert d["pity"]["hard"] == {"tier": "rare", "within": 10}
    assert d["pity"]["soft"]["certain_by"] is not None
    assert d["caps"] == {"daily": 30, "total": 0}
    assert sum(i["base_probability"] for i in d["items"]) == pytest.approx(1)
    assert sum(i["consolidated_probability"] for i in d["items"]) == pytest.approx(1)
    tiers = {t["id"]: t for t in d["tiers"]}
    assert tiers["secret"]["consolidated_probability"] > tiers["secret"]["base_probability"]
    json.dumps(d)  # JSON-ready
