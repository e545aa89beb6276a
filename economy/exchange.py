"""The exchange mechanic's config section (换购 offers): a cost in currency, items or
duplicates, what it gives, per-player and global limits, an open window; offers with
a global limit are limited stock (``offer:<id>``). Rules: :mod:`mechanics.exchange`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from economy.rewards import (
    COST_SPEC,
    REWARD_SPEC,
    Cost,
    Reward,
    build_cost,
    build_reward,
    cost_problems,
    reward_problems,
)
from economy.schema import ID_PATTERN, MAX_TIME, Arr, Enum, Int, Map, Obj, Problems, Str
from economy.section import Cleaned, ConfigPart, Section
from economy.tasks import PERIODS

if TYPE_CHECKING:
    from economy.config import GameConfig

DUPLICATES_SPEC = Obj(description="Spare copies (beyond the first) of any of `items`.",
                      default=None, fields={
    "items": Arr(items=Str(pattern=ID_PATTERN), min_items=1, max_items=500),
    "count": Int(minimum=1, maximum=1000),
})

OFFER_SPEC = Obj(description="换购: an exchange offer.", fields={
    "name": Str(min_length=1, max_length=60),
    "cost": COST_SPEC,
    "duplicates": DUPLICATES_SPEC,
    "gives": REWARD_SPEC,
    "per_player": Int(minimum=0, maximum=10**6, default=0,
                      description="exchanges per player per `period`; 0 = unlimited"),
    "period": Enum(values=PERIODS, default="once"),
    "global_limit": Int(minimum=0, maximum=10**9, default=0,
                        description="exchanges over all players; 0 = unlimited"),
    "starts_at": Int(minimum=0, maximum=MAX_TIME, default=0, description="unix s; 0 = always"),
    "ends_at": Int(minimum=0, maximum=MAX_TIME, default=0,
                   description="unix s (exclusive); 0 = never"),
})


@dataclass(frozen=True)
class Duplicates:
    items: tuple[str, ...]
    count: int


@dataclass(frozen=True)
class Offer:
    id: str
    name: str
    cost: Cost
    duplicates: Duplicates | None
    gives: Reward
    per_player: int
    period: str
    global_limit: int
    starts_at: int
    ends_at: int


def _offer(oid: str, d: dict[str, Any]) -> Offer:
    dup = d["duplicates"]
    return Offer(id=oid, name=d["name"], cost=build_cost(d["cost"]),
                 duplicates=None if dup is None else Duplicates(tuple(dup["items"]), dup["count"]),
                 gives=build_reward(d["gives"]), per_player=d["per_player"], period=d["period"],
                 global_limit=d["global_limit"], starts_at=d["starts_at"], ends_at=d["ends_at"])


def _p(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _offer_problems(oid: str, o: dict[str, Any], d: dict[str, Any]) -> Problems:
    base = f"$.offers.{oid}"
    problems = cost_problems(o["cost"], f"{base}.cost", d)
    problems += reward_problems(o["gives"], f"{base}.gives", d)
    if o["duplicates"] is not None:
        for i, item in enumerate(o["duplicates"]["items"]):
            if item not in d["items"]:
                problems.append(_p(f"{base}.duplicates.items[{i}]", "unknown item"))
    if o["ends_at"] and o["ends_at"] <= o["starts_at"]:
        problems.append(_p(f"{base}.ends_at", "must be after starts_at"))
    return problems


def _offers_section_problems(d: Cleaned) -> Problems:
    return [p for oid, o in d["offers"].items() for p in _offer_problems(oid, o, d)]


def _offers_stock(config: GameConfig) -> dict[str, int]:
    return {f"offer:{oid}": o.global_limit for oid, o in config.offers.items()
            if o.global_limit > 0}

EXCHANGE = Section(name="exchange",
                   fields={"offers": Map(values=OFFER_SPEC, default={}, max_items=200)},
                   build=lambda d: {"offers": {k: _offer(k, v) for k, v in d["offers"].items()}},
                   check=_offers_section_problems, stock=_offers_stock)


@dataclass(frozen=True, kw_only=True)
class ExchangePart(ConfigPart):
    SECTION: ClassVar[Section] = EXCHANGE
    offers: dict[str, Offer] = field(default_factory=dict)
