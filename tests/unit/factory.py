"""A small, fully specified game config for the rule tests (exact numbers everywhere)."""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

from economy.config import GameConfig, parse_game_config

T0 = 1_767_196_800
"""2026-01-01 00:00:00 in Asia/Shanghai (2025-12-31T16:00:00Z)."""
SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
"""The zones of the calendar tests: no DST, and DST."""


class NoRng:
    """Rules that must not draw get this: any draw fails the test."""

    def random(self) -> float:
        raise AssertionError("rule drew a random number")

    def randrange(self, start: int, stop: int) -> int:
        raise AssertionError("rule drew a random number")


RNG = NoRng()
"""The random source to pass to rules that must not draw."""


class FixedRng:
    """Returns the values it was given, in order."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def random(self) -> float:
        return 0.5

    def randrange(self, start: int, stop: int) -> int:
        value = self.values.pop(0)
        assert start <= value < stop
        return value


BASE: dict[str, Any] = {
    "name": "Test game",
    "currencies": {"acorn": {"name": "Acorns", "initial": 100, "max": 1000},
                   "gem": {"name": "Gems", "initial": 0, "max": 50}},
    "items": {"pine_cone": {"name": "Pine cone", "max": 10},
              "ticket": {"name": "Box ticket", "max": 5},
              "fig_a": {"name": "Figure A"}, "fig_b": {"name": "Figure B"},
              "hat": {"name": "Hat", "max": 1}},
    "coupons": {"c10": {"name": "¥10 off", "value_fen": 1000, "stock": 100}},
    "species": {"squirrel": {
        "name": "Squirrel",
        "stats": {
            "satiety": {"max": 100, "initial": 60, "decay_per_hour": 5, "low": 30,
                        "low_state": "hungry"},
            "mood": {"max": 100, "initial": 70, "decay_per_hour": 2, "low": 25,
                     "low_state": "sad"},
            "clean": {"max": 100, "initial": 80, "decay_per_hour": 1, "low": 40,
                      "low_state": "dirty"},
        },
        "stages": [
            {"id": "baby", "name": "Baby", "xp": 0, "reward": {"currency": {"gem": 1}}},
            {"id": "teen", "name": "Teen", "xp": 30, "reward": {"items": {"ticket": 1}}},
            {"id": "adult", "name": "Adult", "xp": 60, "reward": {"coupon": "c10"}},
        ],
        "play": {"effects": {"mood": 10}, "xp": 5, "cooldown_s": 1800},
        "clean": {"effects": {"clean": 50, "mood": 5}, "xp": 2, "cooldown_s": 3600,
                  "price": {"acorn": 5}},
        "produce": {"currency": "acorn", "per_hour": 10, "stat": "satiety", "above": 30,
                    "cap_hours": 12},
    }},
    "foods": {
        "snack": {"name": "Snack", "price": {"acorn": 10}, "effects": {"satiety": 20},
                  "xp": 5},
        "cake": {"name": "Cake", "price": {"acorn": 40}, "effects": {"satiety": 40, "mood": 10},
                 "xp": 25, "cooldown_s": 600},
        "cone": {"name": "Pine cone", "items": {"pine_cone": 1}, "effects": {"satiety": 10},
                 "xp": 1},
        "combo": {"name": "Combo", "price": {"acorn": 5}, "items": {"pine_cone": 2},
                  "effects": {"satiety": 30}, "xp": 3},
    },
}


def raw_config(**overrides: Any) -> dict[str, Any]:
    """A copy of :data:`BASE` with top-level keys replaced."""
    raw = copy.deepcopy(BASE)
    raw.update(copy.deepcopy(overrides))
    return raw


def species_with(**fields: Any) -> dict[str, Any]:
    """``species`` with fields of the squirrel replaced (a value None deletes it)."""
    species = copy.deepcopy(BASE["species"])
    for k, v in fields.items():
        if v is None:
            species["squirrel"].pop(k, None)
        else:
            species["squirrel"][k] = v
    return species


def config(**overrides: Any) -> GameConfig:
    return parse_game_config(raw_config(**overrides))
