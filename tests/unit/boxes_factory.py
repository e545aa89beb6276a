"""Small blind-box configs for the box tests (built through the real parse)."""

from __future__ import annotations

import copy
from typing import Any

from economy.boxes import Series
from economy.config import GameConfig, parse_game_config

TIERS = {"c": {"name": "Common", "rank": 0}, "r": {"name": "Rare", "rank": 1},
         "l": {"name": "Legend", "rank": 2}}
ITEMS = {"a": {"tier": "c", "weight": 80}, "b": {"tier": "r", "weight": 15},
         "z": {"tier": "l", "weight": 5}}


def series_raw(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": "Test", "price": {"currency": "coin", "amount": 10},
                           "tiers": copy.deepcopy(TIERS), "items": copy.deepcopy(ITEMS),
                           "pity": {}}
    raw.update(copy.deepcopy(over))
    return raw


def game_raw(series: dict[str, Any] | None = None, **boxes: Any) -> dict[str, Any]:
    items = {k: {"name": k, "max": 9999} for k in ("a", "b", "z", "d", "e", "ticket")}
    return {
        "name": "Box test",
        "currencies": {"coin": {"name": "Coins", "initial": 1000},
                       "gem": {"name": "Gems", "paid": True}},
        "items": items,
        "species": {"sq": {"name": "Squirrel", "stats": {"mood": {"initial": 50}}}},
        "boxes": {"series": {"s": series if series is not None else series_raw()}, **boxes},
    }


def game(series: dict[str, Any] | None = None, **boxes: Any) -> GameConfig:
    return parse_game_config(game_raw(series, **boxes))


def series(**over: Any) -> Series:
    return game(series_raw(**over)).boxes.series["s"]
