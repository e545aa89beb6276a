"""The game config: what a merchant publishes, validated once and then read-only.

A config is JSON; :data:`GAME_SPEC` describes its shape (and is published as JSON
Schema), :func:`parse_game_config` checks shape and cross-references, collects
*every* problem with its JSON path and returns a frozen :class:`GameConfig`.
Published versions are immutable, so a parsed config is shared by every request
that runs on that version.

Units: pet stats are configured in display points; rules keep them in
milli-points (integers) so lazy decay is exact and reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from economy.boxes import BOXES_SPEC, EMPTY_BOXES, BoxesConfig, build_boxes, check_boxes
from economy.errors import ConfigInvalid
from economy.leaderboards import (
    LEADERBOARDS_SPEC,
    Leaderboard,
    build_leaderboards,
    check_leaderboards,
)
from economy.loop import (
    CHECKIN_SPEC,
    OFFER_SPEC,
    REMINDERS_SPEC,
    SPECIES_FIELDS,
    TASK_SPEC,
    Checkin,
    Offer,
    PetAction,
    Produce,
    Reminders,
    Stage,
    Task,
    build_loop,
    build_species_extras,
    loop_problems,
)
from economy.rewards import COUPON_SPEC, Coupon
from economy.schema import (
    ID_PATTERN,
    Arr,
    Bool,
    Int,
    Map,
    Num,
    Obj,
    Problems,
    Str,
    json_schema,
    validate,
)

SCHEMA_VERSION = 1
MAX_AMOUNT = 10**12
"""Upper bound of any balance or price: well inside both int64 and Lua's exact doubles."""

CURRENCY_SPEC = Obj(description="A soft currency of the game (acorns, coins, energy).", fields={
    "name": Str(min_length=1, max_length=40),
    "initial": Int(minimum=0, maximum=MAX_AMOUNT, default=0,
                   description="balance a new player starts with"),
    "max": Int(minimum=1, maximum=MAX_AMOUNT, default=MAX_AMOUNT,
               description="a balance never exceeds this"),
    "paid": Bool(default=False, description="bought with real money (blind-box compliance)"),
})

ITEM_SPEC = Obj(description="An inventory item.", fields={
    "name": Str(min_length=1, max_length=60),
    "max": Int(minimum=1, maximum=1_000_000, default=9999, description="most a player may hold"),
    "paid": Bool(default=False, description="sold for real money, e.g. a box ticket"),
})

STAT_SPEC = Obj(description="A pet stat, decayed lazily from timestamps.", fields={
    "name": Str(max_length=40, default=""),
    "max": Int(minimum=1, maximum=1_000_000, default=100),
    "initial": Int(minimum=0, maximum=1_000_000),
    "decay_per_hour": Num(minimum=0, maximum=1_000_000, default=0.0,
                          description="points lost per hour, floored at 0"),
    "low": Int(minimum=0, maximum=1_000_000, default=0,
               description="below this the pet shows `low_state`"),
    "low_state": Str(pattern=ID_PATTERN, max_length=40, default="",
                     description="derived state name when the stat is below `low`"),
})

SPECIES_SPEC = Obj(description="A kind of pet shoppers can adopt.", fields={
    "name": Str(min_length=1, max_length=40),
    "stats": Map(values=STAT_SPEC, min_items=1, max_items=16),
    **SPECIES_FIELDS,
})

FOOD_SPEC = Obj(description="Food a shopper can give a pet.", fields={
    "name": Str(min_length=1, max_length=60),
    "price": Map(values=Int(minimum=0, maximum=MAX_AMOUNT), default={},
                 description="currency → amount paid per feeding"),
    "items": Map(values=Int(minimum=1, maximum=1_000_000), default={},
                 description="item → count taken from the inventory per feeding"),
    "effects": Map(values=Int(minimum=-1_000_000, maximum=1_000_000), min_items=1,
                   description="stat → points added (clamped to the stat's range)"),
    "xp": Int(minimum=0, maximum=1_000_000, default=0),
    "cooldown_s": Int(minimum=0, maximum=7 * 86400, default=0,
                      description="seconds before this food can be given again"),
    "species": Arr(items=Str(pattern=ID_PATTERN), default=[],
                   description="species that eat it; empty means all"),
})

GAME_SPEC = Obj(description="A petbox game config.", fields={
    "schema": Int(minimum=SCHEMA_VERSION, maximum=SCHEMA_VERSION, default=SCHEMA_VERSION),
    "name": Str(min_length=1, max_length=80),
    "timezone": Str(max_length=64, default="Asia/Shanghai",
                    description="IANA zone for daily resets"),
    "currencies": Map(values=CURRENCY_SPEC, min_items=1, max_items=16),
    "items": Map(values=ITEM_SPEC, default={}, max_items=1000),
    "species": Map(values=SPECIES_SPEC, min_items=1, max_items=32),
    "foods": Map(values=FOOD_SPEC, default={}, max_items=200),
    "coupons": Map(values=COUPON_SPEC, default={}, max_items=200),
    "checkin": CHECKIN_SPEC,
    "tasks": Map(values=TASK_SPEC, default={}, max_items=100),
    "offers": Map(values=OFFER_SPEC, default={}, max_items=200),
    "reminders": REMINDERS_SPEC,
    "boxes": BOXES_SPEC,
    "leaderboards": LEADERBOARDS_SPEC,
})


@dataclass(frozen=True)
class Currency:
    id: str
    name: str
    initial: int
    max: int
    paid: bool = False


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    max: int
    paid: bool = False


@dataclass(frozen=True)
class Stat:
    id: str
    name: str
    max: int
    initial: int
    decay_per_hour: float
    low: int
    low_state: str

    @property
    def max_milli(self) -> int:
        return self.max * 1000

    @property
    def decay_milli_per_hour(self) -> int:
        return round(self.decay_per_hour * 1000)


@dataclass(frozen=True)
class Species:
    id: str
    name: str
    stats: dict[str, Stat]
    stages: tuple[Stage, ...] = ()
    play: PetAction | None = None
    clean: PetAction | None = None
    produce: Produce | None = None


@dataclass(frozen=True)
class Food:
    id: str
    name: str
    price: dict[str, int]
    effects: dict[str, int]
    xp: int
    cooldown_s: int
    species: tuple[str, ...]
    items: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GameConfig:
    """A validated, immutable game config."""

    name: str
    timezone: str
    currencies: dict[str, Currency]
    items: dict[str, Item]
    species: dict[str, Species]
    foods: dict[str, Food]
    raw: dict[str, Any]
    coupons: dict[str, Coupon] = field(default_factory=dict)
    checkin: Checkin | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    reminders: Reminders | None = None
    boxes: BoxesConfig = EMPTY_BOXES
    leaderboards: dict[str, Leaderboard] = field(default_factory=dict)

    def initial_wallet(self) -> dict[str, int]:
        return {cid: c.initial for cid, c in self.currencies.items()}


def _build(d: dict[str, Any]) -> GameConfig:
    return GameConfig(
        name=d["name"],
        timezone=d["timezone"],
        currencies={k: Currency(id=k, **v) for k, v in d["currencies"].items()},
        items={k: Item(id=k, **v) for k, v in d["items"].items()},
        species={
            k: Species(id=k, name=v["name"],
                       stats={sid: Stat(id=sid, **s) for sid, s in v["stats"].items()},
                       **build_species_extras(v))
            for k, v in d["species"].items()
        },
        foods={
            k: Food(id=k, name=v["name"], price=v["price"], effects=v["effects"], xp=v["xp"],
                    cooldown_s=v["cooldown_s"], species=tuple(v["species"]), items=v["items"])
            for k, v in d["foods"].items()
        },
        raw=d,
        coupons={k: Coupon(id=k, **v) for k, v in d["coupons"].items()},
        **build_loop(d),
        boxes=build_boxes(d),
        leaderboards=build_leaderboards(d),
    )


def _cross_check(d: dict[str, Any], known_timezones: frozenset[str] | None) -> Problems:
    """Problems that need more than one field to see: dangling references, bad ranges."""
    problems: Problems = []
    if known_timezones is not None and d["timezone"] not in known_timezones:
        problems.append({"path": "$.timezone", "message": "is not a known IANA time zone"})
    for cid, cur in d["currencies"].items():
        if cur["initial"] > cur["max"]:
            problems.append({"path": f"$.currencies.{cid}.initial", "message": "exceeds max"})
    all_stats: set[str] = set()
    for sp_id, sp in d["species"].items():
        for st_id, st in sp["stats"].items():
            all_stats.add(st_id)
            base = f"$.species.{sp_id}.stats.{st_id}"
            if st["initial"] > st["max"]:
                problems.append({"path": f"{base}.initial", "message": "exceeds max"})
            if st["low"] > st["max"]:
                problems.append({"path": f"{base}.low", "message": "exceeds max"})
    for food_id, food in d["foods"].items():
        base = f"$.foods.{food_id}"
        for cur in food["price"]:
            if cur not in d["currencies"]:
                problems.append({"path": f"{base}.price.{cur}", "message": "unknown currency"})
        for st in food["effects"]:
            if st not in all_stats:
                problems.append({"path": f"{base}.effects.{st}", "message": "no species has it"})
        for i, sp in enumerate(food["species"]):
            if sp not in d["species"]:
                problems.append({"path": f"{base}.species[{i}]", "message": "unknown species"})
    problems += loop_problems(d)
    problems += check_boxes(d)
    problems += check_leaderboards(d)
    return problems


def parse_game_config(raw: Any, known_timezones: frozenset[str] | None = None) -> GameConfig:
    """Validate ``raw`` (decoded JSON) and build a :class:`GameConfig`.

    Raises :class:`ConfigInvalid` listing every problem with its JSON path.
    ``known_timezones`` is passed by the caller (reading the zone database is I/O).
    """
    cleaned, problems = validate(GAME_SPEC, raw)
    if problems:
        raise ConfigInvalid(problems)
    problems = _cross_check(cleaned, known_timezones)
    if problems:
        raise ConfigInvalid(problems)
    return _build(cleaned)


def game_config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the game config (structural part of the validation)."""
    return json_schema(GAME_SPEC, "petbox game config")
