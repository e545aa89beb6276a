"""The tasks mechanic's config section: tasks with a per-period completion limit
(browse, follow, share, join a group, purchase). Rules: :mod:`mechanics.tasks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from economy.rewards import (
    REWARD_SPEC,
    Reward,
    build_reward,
    reward_problems,
)
from economy.schema import Arr, Enum, Int, Map, Obj, Problems, Str
from economy.section import Cleaned, ConfigPart, Section

if TYPE_CHECKING:
    pass

PERIODS = ("daily", "weekly", "once")

TASK_KINDS = ("browse", "follow", "share", "join_group", "purchase")

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


def _task(tid: str, d: dict[str, Any]) -> Task:
    return Task(id=tid, name=d["name"], kind=d["kind"], period=d["period"], limit=d["limit"],
                reward=build_reward(d["reward"]), browse_s=d["browse_s"],
                ticket_ttl_s=d["ticket_ttl_s"], min_order_fen=d["min_order_fen"],
                spend_fen=d["spend_fen"], skus=tuple(d["skus"]))


def _p(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _task_problems(tid: str, t: dict[str, Any], d: dict[str, Any]) -> Problems:
    base = f"$.tasks.{tid}"
    problems = reward_problems(t["reward"], f"{base}.reward", d)
    if t["kind"] != "purchase" and (t["spend_fen"] or t["min_order_fen"] or t["skus"]):
        problems.append(_p(base, "spend_fen, min_order_fen and skus are for purchase tasks"))
    return problems


def _tasks_section_problems(d: Cleaned) -> Problems:
    return [p for tid, t in d["tasks"].items() for p in _task_problems(tid, t, d)]

TASKS = Section(name="tasks", fields={"tasks": Map(values=TASK_SPEC, default={}, max_items=100)},
                build=lambda d: {"tasks": {k: _task(k, v) for k, v in d["tasks"].items()}},
                check=_tasks_section_problems)


@dataclass(frozen=True, kw_only=True)
class TasksPart(ConfigPart):
    SECTION: ClassVar[Section] = TASKS
    tasks: dict[str, Task] = field(default_factory=dict)
