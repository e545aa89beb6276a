"""Config of the daily loop: growth stages, play/clean, produce, check-in, tasks,
exchange offers and reminders.

Each section is a spec (validated and published as JSON Schema by
:mod:`economy.config`), a frozen dataclass the rules read, a builder, and a
cross-check for references the spec alone cannot see. Optional sections default
to ``None``: a game without ``checkin`` simply has no check-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from economy.schema import ID_PATTERN, Arr, Bool, Enum, Int, Map, Obj, Problems, Str

PERIODS = ("daily", "weekly", "once")
TASK_KINDS = ("browse", "follow", "share", "join_group", "purchase")
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

# -- specs -------------------------------------------------------------------

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

MAKEUP_SPEC = Obj(description="补签: check in a missed day later, for a cost.", default=None,
                  fields={
    "cost": COST_SPEC,
    "per_cycle": Int(minimum=1, maximum=31, default=1,
                     description="made-up days allowed in one cycle of a streak"),
    "window_days": Int(minimum=1, maximum=31, default=7,
                       description="how many days back a missed day can be made up"),
    "reward": Bool(default=True, description="a made-up day earns its cycle reward"),
})

CHECKIN_SPEC = Obj(description="Daily check-in in the game's timezone.", default=None, fields={
    "cycle": Arr(items=REWARD_SPEC, min_items=1, max_items=31,
                 description="reward of streak day 1, 2, ...; repeats after the last"),
    "makeup": MAKEUP_SPEC,
})

TASK_SPEC = Obj(description="A task with a per-period completion limit.", fields={
    "name": Str(min_length=1, max_length=60),
    "kind": Enum(values=TASK_KINDS),
    "period": Enum(values=PERIODS, default="daily"),
    "limit": Int(minimum=1, maximum=100, default=1, description="completions per period"),
    "reward": REWARD_SPEC,
    "browse_s": Int(minimum=1, maximum=3600, default=15,
                    description="browse: seconds of server time between start and complete"),
    "ticket_ttl_s": Int(minimum=60, maximum=86400, default=3600,
                        description="browse: a ticket older than this is refused"),
    "min_order_fen": Int(minimum=0, maximum=10**10, default=0,
                         description="purchase: an order counts if it is at least this"),
    "spend_fen": Int(minimum=0, maximum=10**10, default=0,
                     description="purchase: >0 means one completion per this much spent "
                                 "in the period; 0 means one per qualifying order"),
    "skus": Arr(items=Str(min_length=1, max_length=64), default=[], max_items=200,
                description="purchase: only orders with one of these SKUs count; empty = any"),
})

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
    "starts_at": Int(minimum=0, default=0, description="unix s; 0 = always"),
    "ends_at": Int(minimum=0, default=0, description="unix s (exclusive); 0 = never"),
})

REMINDERS_SPEC = Obj(description="When to remind a shopper to come back.", default=None, fields={
    "hungry": Bool(default=True, description="remind when `hungry_stat` falls below its low"),
    "hungry_stat": Str(pattern=ID_PATTERN, default="satiety"),
    "produce_full": Bool(default=True, description="remind when produce reaches its cap"),
    "quiet_start": Str(pattern=HHMM_PATTERN, default="22:00"),
    "quiet_end": Str(pattern=HHMM_PATTERN, default="08:00"),
    "max_per_day": Int(minimum=1, maximum=24, default=2,
                       description="reminders per player in any 24 hours"),
    "min_gap_s": Int(minimum=0, maximum=86400, default=3600,
                     description="seconds between two reminders to one player"),
    "webhook_url": Str(pattern=r"^$|^https?://[^\s]{1,490}$", max_length=500, default="",
                       description="where due reminders are POSTed, signed with the "
                                   "merchant's signing secret; empty = none are sent"),
})

SPECIES_FIELDS: dict[str, Any] = {
    "stages": Arr(items=STAGE_SPEC, default=[], max_items=50,
                  description="growth stages in increasing xp"),
    "play": PET_ACTION_SPEC,
    "clean": PET_ACTION_SPEC,
    "produce": PRODUCE_SPEC,
}
"""Fields :mod:`economy.config` adds to a species."""

# -- dataclasses ---------------------------------------------------------------


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


@dataclass(frozen=True)
class Makeup:
    cost: Cost
    per_cycle: int
    window_days: int
    reward: bool


@dataclass(frozen=True)
class Checkin:
    cycle: tuple[Reward, ...]
    makeup: Makeup | None


@dataclass(frozen=True)
class Task:
    id: str
    name: str
    kind: str
    period: str
    limit: int
    reward: Reward
    browse_s: int
    ticket_ttl_s: int
    min_order_fen: int
    spend_fen: int
    skus: tuple[str, ...]


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


@dataclass(frozen=True)
class Reminders:
    hungry: bool
    hungry_stat: str
    produce_full: bool
    quiet_start: int
    """minutes after local midnight"""
    quiet_end: int
    max_per_day: int
    min_gap_s: int
    webhook_url: str = ""


# -- builders ----------------------------------------------------------------


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


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _checkin(d: dict[str, Any] | None) -> Checkin | None:
    if d is None:
        return None
    m = d["makeup"]
    makeup = None if m is None else Makeup(cost=build_cost(m["cost"]), per_cycle=m["per_cycle"],
                                           window_days=m["window_days"], reward=m["reward"])
    return Checkin(cycle=tuple(build_reward(r) for r in d["cycle"]), makeup=makeup)


def _task(tid: str, d: dict[str, Any]) -> Task:
    return Task(id=tid, name=d["name"], kind=d["kind"], period=d["period"], limit=d["limit"],
                reward=build_reward(d["reward"]), browse_s=d["browse_s"],
                ticket_ttl_s=d["ticket_ttl_s"], min_order_fen=d["min_order_fen"],
                spend_fen=d["spend_fen"], skus=tuple(d["skus"]))


def _offer(oid: str, d: dict[str, Any]) -> Offer:
    dup = d["duplicates"]
    return Offer(id=oid, name=d["name"], cost=build_cost(d["cost"]),
                 duplicates=None if dup is None else Duplicates(tuple(dup["items"]), dup["count"]),
                 gives=build_reward(d["gives"]), per_player=d["per_player"], period=d["period"],
                 global_limit=d["global_limit"], starts_at=d["starts_at"], ends_at=d["ends_at"])


def _reminders(d: dict[str, Any] | None) -> Reminders | None:
    if d is None:
        return None
    return Reminders(hungry=d["hungry"], hungry_stat=d["hungry_stat"],
                     produce_full=d["produce_full"], quiet_start=_minutes(d["quiet_start"]),
                     quiet_end=_minutes(d["quiet_end"]), max_per_day=d["max_per_day"],
                     min_gap_s=d["min_gap_s"], webhook_url=d["webhook_url"])


def build_loop(d: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``GameConfig`` for the top-level loop sections."""
    return {
        "checkin": _checkin(d["checkin"]),
        "tasks": {k: _task(k, v) for k, v in d["tasks"].items()},
        "offers": {k: _offer(k, v) for k, v in d["offers"].items()},
        "reminders": _reminders(d["reminders"]),
    }


# -- cross-checks ----------------------------------------------------------------


def _p(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _species_problems(sp_id: str, sp: dict[str, Any], d: dict[str, Any]) -> Problems:
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


def _checkin_problems(c: dict[str, Any] | None, d: dict[str, Any]) -> Problems:
    if c is None:
        return []
    problems: Problems = []
    for i, reward in enumerate(c["cycle"]):
        problems += reward_problems(reward, f"$.checkin.cycle[{i}]", d)
    if c["makeup"] is not None:
        problems += cost_problems(c["makeup"]["cost"], "$.checkin.makeup.cost", d)
    return problems


def _task_problems(tid: str, t: dict[str, Any], d: dict[str, Any]) -> Problems:
    base = f"$.tasks.{tid}"
    problems = reward_problems(t["reward"], f"{base}.reward", d)
    if t["kind"] != "purchase" and (t["spend_fen"] or t["min_order_fen"] or t["skus"]):
        problems.append(_p(base, "spend_fen, min_order_fen and skus are for purchase tasks"))
    return problems


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


def _reminder_problems(r: dict[str, Any] | None, d: dict[str, Any]) -> Problems:
    if r is None or not r["hungry"]:
        return []
    if not any(r["hungry_stat"] in sp["stats"] for sp in d["species"].values()):
        return [_p("$.reminders.hungry_stat", "no species has it")]
    return []


def loop_problems(d: dict[str, Any]) -> Problems:
    """Cross-reference problems of every loop section of the cleaned config ``d``."""
    problems: Problems = []
    for sp_id, sp in d["species"].items():
        problems += _species_problems(sp_id, sp, d)
    for food_id, food in d["foods"].items():
        for item in food["items"]:
            if item not in d["items"]:
                problems.append(_p(f"$.foods.{food_id}.items.{item}", "unknown item"))
    problems += _checkin_problems(d["checkin"], d)
    for tid, t in d["tasks"].items():
        problems += _task_problems(tid, t, d)
    for oid, o in d["offers"].items():
        problems += _offer_problems(oid, o, d)
    problems += _reminder_problems(d["reminders"], d)
    return problems
