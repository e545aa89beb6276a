"""The check-in mechanic's config section (签到, with 补签 makeups): the cycle of daily
rewards and the makeup cost, window and per-cycle limit. Rules: :mod:`mechanics.checkin`.
Optional: a game without ``checkin`` has no check-in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

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
from economy.schema import Arr, Bool, Int, Obj, Problems
from economy.section import Cleaned, ConfigPart, Section

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


def _checkin(d: dict[str, Any] | None) -> Checkin | None:
    if d is None:
        return None
    m = d["makeup"]
    makeup = None if m is None else Makeup(cost=build_cost(m["cost"]), per_cycle=m["per_cycle"],
                                           window_days=m["window_days"], reward=m["reward"])
    return Checkin(cycle=tuple(build_reward(r) for r in d["cycle"]), makeup=makeup)


def _checkin_problems(c: dict[str, Any] | None, d: dict[str, Any]) -> Problems:
    if c is None:
        return []
    problems: Problems = []
    for i, reward in enumerate(c["cycle"]):
        problems += reward_problems(reward, f"$.checkin.cycle[{i}]", d)
    if c["makeup"] is not None:
        problems += cost_problems(c["makeup"]["cost"], "$.checkin.makeup.cost", d)
    return problems


def _checkin_section_problems(d: Cleaned) -> Problems:
    return _checkin_problems(d["checkin"], d)

CHECKIN = Section(name="checkin", fields={"checkin": CHECKIN_SPEC},
                  build=lambda d: {"checkin": _checkin(d["checkin"])},
                  check=_checkin_section_problems)


@dataclass(frozen=True, kw_only=True)
class CheckinPart(ConfigPart):
    SECTION: ClassVar[Section] = CHECKIN
    checkin: Checkin | None = None
