"""The pet mechanic's config section: species (with stats, growth stages, play,
clean and produce) and foods. Rules: :mod:`mechanics.pet` and :mod:`mechanics.produce`.

Stats are configured in display points; rules keep them in milli-points
(integers) so lazy decay is exact and reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from economy.rewards import REWARD_SPEC, Reward, build_reward, reward_problems
from economy.schema import ID_PATTERN, Arr, Int, Map, Num, Obj, Problems, Str
from economy.section import Cleaned, ConfigPart, Section

MAX_AMOUNT = 10**12
"""Same bound as :data:`economy.config.MAX_AMOUNT` (not imported: config imports us)."""

# -- growth stages, play and clean, produce (fields of a species) ------------------
STAGE_SPEC = Obj(description="A growth stage, reached when the pet's xp reaches `xp`.", fields={
    "id": Str(pattern=ID_PATTERN, max_length=64),
    "name": Str(min_length=1, max_length=40),
    "xp": Int(minimum=0, maximum=10**9),
    "reward": REWARD_SPEC,
})

PET_ACTION_SPEC = Obj(description="play or clean: effects on stats, xp and a cooldown.",
                      default=None, fields={
    "effects": Map(values=Int(minimum=-1_000_000, maximum=1_000_000), default={},
                   description="stat → points added (clamped to the stat's range)"),
    "xp": Int(minimum=0, maximum=1_000_000, default=0),
    "cooldown_s": Int(minimum=0, maximum=7 * 86400, default=0),
    "price": Map(values=Int(minimum=0, maximum=10**9), default={},
                 description="currency → amount paid per action"),
})

PRODUCE_SPEC = Obj(description=(
    "Currency the pet produces while the shopper is away, only while `stat` is above "
    "`above` points, at most `cap_hours` hours' worth uncollected."), default=None, fields={
    "currency": Str(pattern=ID_PATTERN),
    "per_hour": Int(minimum=1, maximum=1_000_000),
    "stat": Str(pattern=ID_PATTERN, default="satiety"),
    "above": Int(minimum=0, maximum=1_000_000, default=0,
                 description="produces only while the stat is strictly above this"),
    "cap_hours": Int(minimum=1, maximum=168, default=8),
})

SPECIES_FIELDS: dict[str, Any] = {
    "stages": Arr(items=STAGE_SPEC, default=[], max_items=50,
                  description="growth stages in increasing xp"),
    "play": PET_ACTION_SPEC,
    "clean": PET_ACTION_SPEC,
    "produce": PRODUCE_SPEC,
}
"""Fields :mod:`economy.config` adds to a species."""


@dataclass(frozen=True)
class Stage:
    id: str
    name: str
    xp: int
    reward: Reward


@dataclass(frozen=True)
class PetAction:
    effects: dict[str, int]
    xp: int
    cooldown_s: int
    price: dict[str, int]


@dataclass(frozen=True)
class Produce:
    currency: str
    per_hour: int
    stat: str
    above: int
    cap_hours: int

    @property
    def cap_milli(self) -> int:
        return self.per_hour * self.cap_hours * 1000


def _action(d: dict[str, Any] | None) -> PetAction | None:
    return None if d is None else PetAction(**d)


def build_species_extras(v: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``Species`` for the fields of :data:`SPECIES_FIELDS`."""
    return {
        "stages": tuple(Stage(id=s["id"], name=s["name"], xp=s["xp"],
                              reward=build_reward(s["reward"])) for s in v["stages"]),
        "play": _action(v["play"]),
        "clean": _action(v["clean"]),
        "produce": None if v["produce"] is None else Produce(**v["produce"]),
    }


def _p(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def species_problems(sp_id: str, sp: dict[str, Any], d: dict[str, Any]) -> Problems:
    base = f"$.species.{sp_id}"
    problems: Problems = []
    last_xp = -1
    seen: set[str] = set()
    for i, stage in enumerate(sp["stages"]):
        if stage["xp"] <= last_xp:
            problems.append(_p(f"{base}.stages[{i}].xp", "must be above the previous stage's"))
        if stage["id"] in seen:
            problems.append(_p(f"{base}.stages[{i}].id", "is used twice"))
        seen.add(stage["id"])
        last_xp = stage["xp"]
        problems += reward_problems(stage["reward"], f"{base}.stages[{i}].reward", d)
    for name in ("play", "clean"):
        act = sp[name]
        if act is None:
            continue
        for st in act["effects"]:
            if st not in sp["stats"]:
                problems.append(_p(f"{base}.{name}.effects.{st}", "not a stat of this species"))
        for cur in act["price"]:
            if cur not in d["currencies"]:
                problems.append(_p(f"{base}.{name}.price.{cur}", "unknown currency"))
    prod = sp["produce"]
    if prod is not None:
        if prod["currency"] not in d["currencies"]:
            problems.append(_p(f"{base}.produce.currency", "unknown currency"))
        if prod["stat"] not in sp["stats"]:
            problems.append(_p(f"{base}.produce.stat", "not a stat of this species"))
        elif prod["above"] >= sp["stats"][prod["stat"]]["max"]:
            problems.append(_p(f"{base}.produce.above", "must be below the stat's max"))
    return problems


# -- species and foods ---------------------------------------------------------------

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


def _build(d: Cleaned) -> dict[str, Any]:
    return {
        "species": {
            k: Species(id=k, name=v["name"],
                       stats={sid: Stat(id=sid, **s) for sid, s in v["stats"].items()},
                       **build_species_extras(v))
            for k, v in d["species"].items()
        },
        "foods": {
            k: Food(id=k, name=v["name"], price=v["price"], effects=v["effects"], xp=v["xp"],
                    cooldown_s=v["cooldown_s"], species=tuple(v["species"]), items=v["items"])
            for k, v in d["foods"].items()
        },
    }


def _stat_problems(d: Cleaned) -> tuple[Problems, set[str]]:
    problems: Problems = []
    all_stats: set[str] = set()
    for sp_id, sp in d["species"].items():
        for st_id, st in sp["stats"].items():
            all_stats.add(st_id)
            base = f"$.species.{sp_id}.stats.{st_id}"
            if st["initial"] > st["max"]:
                problems.append({"path": f"{base}.initial", "message": "exceeds max"})
            if st["low"] > st["max"]:
                problems.append({"path": f"{base}.low", "message": "exceeds max"})
    return problems, all_stats


def _food_problems(food_id: str, food: dict[str, Any], d: Cleaned,
                   all_stats: set[str]) -> Problems:
    problems: Problems = []
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
    return problems


def _check(d: Cleaned) -> Problems:
    problems, all_stats = _stat_problems(d)
    for food_id, food in d["foods"].items():
        problems += _food_problems(food_id, food, d, all_stats)
    for sp_id, sp in d["species"].items():
        problems += species_problems(sp_id, sp, d)
    for food_id, food in d["foods"].items():
        for item in food["items"]:
            if item not in d["items"]:
                problems.append({"path": f"$.foods.{food_id}.items.{item}",
                                 "message": "unknown item"})
    return problems


def _follow(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """A species of the live config stays: shoppers' pets are of it (a pet's stats,
    stages and produce are read from its species)."""
    return [{"path": f"$.species.{sp_id}", "message": "is in the live version and pets "
             "may be of it: a species cannot be removed or renamed (change its name "
             "field instead)"}
            for sp_id in live["species"] if sp_id not in new["species"]]


PET = Section(
    name="pet",
    fields={"species": Map(values=SPECIES_SPEC, min_items=1, max_items=32),
            "foods": Map(values=FOOD_SPEC, default={}, max_items=200)},
    build=_build, check=_check, follow=_follow)


@dataclass(frozen=True, kw_only=True)
class PetPart(ConfigPart):
    """The pet section of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = PET
    species: dict[str, Species] = field(default_factory=dict)
    foods: dict[str, Food] = field(default_factory=dict)
