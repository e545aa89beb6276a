"""Experiments (A/B tests): config section, JSON-path overrides, validation per arm, assignment.

An experiment lives in the versioned game config (``$.experiments.<id>``), so every
change to it (put, stop, ship: ``economy.experiment_edits``) is a published version.
Each arm is a set of overrides of the live config by JSON path
(``$.boxes.series.forest.items.fig_a.weight`` → ``5``); an arm's *merged* config is
the game config without ``experiments`` with the overrides applied, and it goes
through the full game validation and the compliance checks (the blind-box ones among
them) like any config a merchant publishes.

Assignment is a pure function of the experiment's salt and the user id (no write on
the action path): ``bucket = sha256(salt \\n user) mod 10000`` and the arms take
``percent × 100`` buckets each, in config order; buckets past the arms' total are not
enrolled (they stay on the live config). The first time an arm decides an outcome for a
shopper, the server records the exposure (``mechanics.experiments``) and keeps the
arm in the shopper's state, so an arm persists across config versions.

Limits, stated so a merchant cannot fall into them: one experiment runs at a time per
game; an arm may not change the game's limited stock (prizes, coupons, offers are one
stock shared by every arm) nor the time zone, schema or experiments themselves.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from economy.errors import ConfigInvalid
from economy.schema import (
    ID_PATTERN,
    MAX_TIME,
    MISSING,
    Arr,
    Bool,
    Enum,
    Int,
    Map,
    Obj,
    Problems,
    Spec,
    Str,
)
from economy.section import Cleaned, ConfigPart, Section

if TYPE_CHECKING:
    from economy.config import GameConfig

BUCKETS = 10_000
"""Assignment granularity: a percent is 100 buckets."""
PATH_PATTERN = r"^\$(\.[A-Za-z0-9_-]{1,64}){1,10}$"
FORBIDDEN_ROOTS = frozenset({"experiments", "schema", "timezone"})
"""Top-level keys an arm may not override (see the module docstring)."""
STATUSES = ("draft", "running", "stopped", "shipped")
ENDED = "ended"
"""Not a status of the config: how the merchant's views show a ``running`` experiment
whose ``stops_at`` has passed (it assigns nobody, its figures are frozen, and it does
not hold the one-at-a-time place: :func:`status_at`)."""
METRICS = ("d1_retention", "d7_retention", "d30_retention", "w1_retention",
           "draws_per_shopper", "spend_per_shopper", "prize_cost_per_shopper",
           "orders_per_shopper", "gmv_per_shopper")
"""What results report per arm; the primary metric and guardrails name these."""
LOWER_IS_BETTER = frozenset({"prize_cost_per_shopper"})
"""Metrics that are costs: an arm above the control on one of them is worse."""


class AnyJson(Spec):
    """Any JSON value (an override replaces whatever the path holds; the merged config's
    validation judges it)."""

    def check(self, value: Any, path: str, problems: Problems) -> Any:
        return copy.deepcopy(value)

    def schema(self) -> dict[str, Any]:
        return {"description": self.description} if self.description else {}


ARM_SPEC = Obj(description="One arm: its share of shoppers and its overrides.", fields={
    "percent": Int(minimum=0, maximum=100, description="share of shoppers, in percent"),
    "description": Str(default="", max_length=200),
    "overrides": Map(values=AnyJson(description="the value at that path in this arm"),
                     key_pattern=PATH_PATTERN, default={}, max_items=100,
                     description="JSON path of the live config → value in this arm"),
})

METRICS_SPEC = Obj(description="What decides the experiment, and what must not get worse.",
                   fields={
    "primary": Enum(values=METRICS),
    "guardrails": Arr(items=Enum(values=METRICS), default=[], max_items=8),
})

EXPERIMENT_SPEC = Obj(description="An A/B test of the game config.", fields={
    "name": Str(min_length=1, max_length=80),
    "hypothesis": Str(min_length=1, max_length=500),
    "salt": Str(pattern=r"^[A-Za-z0-9_-]{1,64}$", min_length=1, max_length=64,
                description="mixed into the assignment hash; never change it while running"),
    "status": Enum(values=STATUSES, default="draft",
                   description="draft (validated, nobody assigned), running, stopped, shipped"),
    "control": Str(pattern=ID_PATTERN, default="control", max_length=64,
                   description="the arm the others are compared with"),
    "arms": Map(values=ARM_SPEC, min_items=2, max_items=8, description="arm id → arm"),
    "eligibility": Enum(values=("everyone", "new"), default="everyone",
                        description="new: only shoppers who first played at or after starts_at"),
    "starts_at": Int(minimum=0, maximum=MAX_TIME),
    "stops_at": Int(minimum=1, maximum=MAX_TIME),
    "metrics": METRICS_SPEC,
    "sample_size": Int(minimum=10, maximum=100_000_000,
                       description="fixed horizon: exposed shoppers per arm before the test "
                                   "is read (see docs/experiments.md)"),
    "show_arm": Bool(default=False, description="getPlayer shows the shopper's arm"),
    "shipped_arm": Str(default="", max_length=64),
})

EXPERIMENTS_SPEC = Map(values=EXPERIMENT_SPEC, default={}, max_items=20,
                       description="experiment id → experiment (A/B tests of this config)")


# ---------------------------------------------------------------- overrides


def set_path(doc: dict[str, Any], path: str, value: Any) -> str | None:
    """Set ``path`` (``$.a.b.c``) in ``doc`` in place (``None``: remove it, so the field
    takes its default); the parent must exist and be an object. Returns why not, or
    None."""
    parts = path.split(".")[1:]
    node: Any = doc
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            return f"{'.'.join(['$', *parts[:depth + 1]])} does not exist in the live config"
        node = node[part]
    if not isinstance(node, dict):
        return "its parent is not an object"
    if value is None:  # as in JSON merge patch (RFC 7386): null removes the key
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = copy.deepcopy(value)
    return None


def merged_raw(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[
        dict[str, Any], Problems]:
    """``base`` without ``experiments``, with ``overrides`` applied, and the problems of
    overrides that cannot apply (paths relative to the override)."""
    doc = {k: copy.deepcopy(v) for k, v in base.items() if k != "experiments"}
    problems: Problems = []
    for path, value in overrides.items():
        root = path.split(".")[1]
        why = (f"an arm may not override $.{root}" if root in FORBIDDEN_ROOTS
               else set_path(doc, path, value))
        if why is not None:
            problems.append({"path": path, "message": why})
    return doc, problems


def uncleaned(spec: Spec, value: Any) -> Any:
    """A cleaned value made valid input again: every object field equal to its default
    is left out (validation fills it back), recursively. Cleaned configs carry defaults
    such as ``None`` that a field's own spec would refuse as input."""
    if isinstance(spec, Obj) and isinstance(value, dict):
        return {k: uncleaned(spec.fields[k], v) for k, v in value.items()
                if k not in spec.fields or spec.fields[k].default is MISSING
                or v != spec.fields[k].default}
    if isinstance(spec, Map) and isinstance(value, dict):
        return {k: uncleaned(spec.values, v) for k, v in value.items()}
    if isinstance(spec, Arr) and isinstance(value, list):
        return [uncleaned(spec.items, v) for v in value]
    return value


def _input_of(d: Mapping[str, Any]) -> dict[str, Any]:
    from economy.config import GAME_SPEC

    doc: dict[str, Any] = uncleaned(GAME_SPEC, dict(d))
    return doc


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class Arm:
    id: str
    percent: int
    description: str
    overrides: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Experiment:
    """A validated experiment; ``configs`` holds each arm's merged config when the
    experiment is draft or running (empty otherwise: it no longer has to validate)."""

    id: str
    name: str
    hypothesis: str
    salt: str
    status: str
    control: str
    arms: dict[str, Arm]
    eligibility: str
    starts_at: int
    stops_at: int
    primary: str
    guardrails: tuple[str, ...]
    sample_size: int
    show_arm: bool
    shipped_arm: str
    configs: dict[str, GameConfig] = field(default_factory=dict, repr=False)

    def running(self, now: int) -> bool:
        """Assigning shoppers at ``now``: running and inside its window."""
        return self.status == "running" and self.starts_at <= now < self.stops_at

    def status_at(self, now: int) -> str:
        """The status the merchant reads at ``now`` (:func:`status_at`)."""
        return status_at(self.status, self.stops_at, now)

    def assign(self, user: str) -> str | None:
        """The arm of ``user`` by hash (None: the user's bucket is not enrolled)."""
        b = bucket(self.salt, user)
        edge = 0
        for arm in self.arms.values():
            edge += arm.percent * (BUCKETS // 100)
            if b < edge:
                return arm.id
        return None

    def shares(self) -> dict[str, float]:
        """Each arm's expected share of enrolled shoppers (for the ratio-mismatch check)."""
        total = sum(a.percent for a in self.arms.values())
        return {a.id: a.percent / total if total else 0.0 for a in self.arms.values()}


def status_at(status: str, stops_at: int, now: int) -> str:
    """The status shown at ``now``: the config's, but :data:`ENDED` for a running one
    whose ``stops_at`` passed. The stored status stays ``running`` (hosts of the previous
    release read the same config), so the view derives it."""
    return ENDED if status == "running" and now >= stops_at else status


def window_end(history: Sequence[tuple[int, str | None, int | None, int | None]]
               ) -> int | None:
    """When an experiment last assigned shoppers, from published versions.

    ``history``: oldest first, each version's ``published_at`` and the experiment's
    ``status``, ``starts_at`` and ``stops_at`` in it (None where it is absent). A version
    in which it runs assigns from its publication (or ``starts_at``) until the next
    version replaces it (a stop, a ship, a removal) or ``stops_at``, whichever comes
    first; the end is the latest such moment. None: no version in ``history`` assigned
    anyone (a draft, or a window that never met a version's life)."""
    end: int | None = None
    for i, (published, status, starts, stops) in enumerate(history):
        if status != "running" or starts is None or stops is None:
            continue
        until = stops if i + 1 == len(history) else min(stops, history[i + 1][0])
        if max(published, starts) < until:
            end = until if end is None else max(end, until)
    return end


def bucket(salt: str, user: str) -> int:
    """``sha256(salt \\n user)`` mod :data:`BUCKETS`: uniform, stable, and independent
    between experiments with different salts."""
    digest = hashlib.sha256(f"{salt}\n{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def choose(config: GameConfig, user: str, marks: Mapping[str, str], created_at: int | None,
           now: int) -> tuple[Experiment, str] | None:
    """The running experiment and arm that decide ``user``'s config at ``now``, or None.

    ``marks``: the arms the shopper was exposed to (kept in their state): an exposed
    shopper stays in their arm whatever the allocation says now. ``created_at``: when the
    shopper first played (None: never), for ``eligibility: new``.
    """
    for exp in config.experiments.values():
        if not exp.running(now):
            continue
        marked = marks.get(exp.id)
        if marked is not None:
            return (exp, marked) if marked in exp.configs else None
        if exp.eligibility == "new" and created_at is not None and created_at < exp.starts_at:
            return None
        arm = exp.assign(user)
        return (exp, arm) if arm is not None else None
    return None


# ---------------------------------------------------------------- section


def _arm_configs(d: Mapping[str, Any], exp: Mapping[str, Any], eid: str,
                 problems: Problems) -> dict[str, GameConfig]:
    """Each arm's merged config, validated in full; problems under the arm's path.

    Nothing (no configs, no problems) when the config itself, without ``experiments``,
    is invalid: the game validation reports its problems under their own paths, and an
    arm merged onto a broken base cannot be judged (each would restate the base's
    problems as "merged config: ..."; re-parsing ``d`` rebuilt from a cleaned value
    that failed its schema would even report problems the merchant never made)."""
    from economy.config import follow_problems, parse_game_config, value_totals

    raw = _input_of(d)
    base_raw, _ = merged_raw(raw, {})
    try:
        base = parse_game_config(base_raw)
    except ConfigInvalid:
        return {}
    out: dict[str, GameConfig] = {}
    for aid, arm in exp["arms"].items():
        path = f"$.experiments.{eid}.arms.{aid}.overrides"
        doc, bad = merged_raw(raw, arm["overrides"])
        problems += [{"path": f"{path}.{p['path']}", "message": p["message"]} for p in bad]
        if bad:
            continue
        try:
            cfg = parse_game_config(doc)
        except ConfigInvalid as exc:
            problems += [{"path": path, "message": f"merged config: {p['path']} {p['message']}"}
                         for p in exc.problems]
            continue
        if value_totals(cfg) != value_totals(base):
            problems.append({"path": path, "message": "an arm may not change limited stock "
                                                      "(prizes, coupons and offers are shared)"})
            continue
        # Shoppers enter the arm from the base and go back when it stops: both ways.
        both = (follow_problems(base_raw, doc, None, stock=False)
                + follow_problems(doc, base_raw, None, stock=False))
        if both:
            problems += [{"path": path, "message": f"players move between the arm and the "
                          f"base: {p['path']} {p['message']}"} for p in both]
            continue
        out[aid] = cfg
    return out


def _check_one(eid: str, e: Mapping[str, Any], problems: Problems) -> None:
    path = f"$.experiments.{eid}"
    if e["control"] not in e["arms"]:
        problems.append({"path": f"{path}.control", "message": "must name one of the arms"})
    total = sum(a["percent"] for a in e["arms"].values())
    if total > 100:
        problems.append({"path": f"{path}.arms", "message": f"percents add up to {total} > 100"})
    if e["status"] in ("draft", "running") and any(a["percent"] == 0
                                                   for a in e["arms"].values()):
        problems.append({"path": f"{path}.arms", "message": "every arm needs percent ≥ 1"})
    if e["stops_at"] <= e["starts_at"]:
        problems.append({"path": f"{path}.stops_at", "message": "must be after starts_at"})
    if e["status"] == "shipped" and e["shipped_arm"] not in e["arms"]:
        problems.append({"path": f"{path}.shipped_arm", "message": "must name one of the arms"})


def check_experiments(d: Mapping[str, Any]) -> Problems:
    """Shape rules, one running experiment at a time, and every live arm's merged config
    valid (the full game validation and compliance checks)."""
    problems: Problems = []
    exps = d.get("experiments") or {}
    running = sorted(eid for eid, e in exps.items() if e["status"] == "running")
    if len(running) > 1:
        problems.append({"path": "$.experiments",
                         "message": f"one experiment may run at a time; running: {running} "
                                    "(one whose stops_at passed counts until it is stopped "
                                    "or shipped: stop it first)"})
    for eid, e in exps.items():
        _check_one(eid, e, problems)
        if e["status"] in ("draft", "running"):
            _arm_configs(d, e, eid, problems)
    return problems


def build_experiments(d: Mapping[str, Any]) -> dict[str, Experiment]:
    """The experiments of an already validated config, with each live arm's config."""
    out: dict[str, Experiment] = {}
    for eid, e in (d.get("experiments") or {}).items():
        configs = _arm_configs(d, e, eid, []) if e["status"] in ("draft", "running") else {}
        out[eid] = Experiment(
            id=eid, name=e["name"], hypothesis=e["hypothesis"], salt=e["salt"],
            status=e["status"], control=e["control"],
            arms={aid: Arm(aid, a["percent"], a["description"], dict(a["overrides"]))
                  for aid, a in e["arms"].items()},
            eligibility=e["eligibility"], starts_at=e["starts_at"], stops_at=e["stops_at"],
            primary=e["metrics"]["primary"], guardrails=tuple(e["metrics"]["guardrails"]),
            sample_size=e["sample_size"], show_arm=e["show_arm"], shipped_arm=e["shipped_arm"],
            configs=configs)
    return out


def _build(d: Mapping[str, Any]) -> dict[str, Any]:
    return {"experiments": build_experiments(d)}


def follow_experiments(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """Whatever publishes the config (a draft, a rollback, the experiment routes) keeps
    an experiment's lifecycle: a running experiment that started keeps what assigns and
    measures its shoppers (:data:`LOCKED_FIELDS`) and does not go back to draft, and a
    stopped or shipped one does not run again (a stopped one may still be shipped). A
    started running experiment is not removed either: removed and added again, it would
    start afresh, a way around its lock (stop it first)."""
    problems: Problems = []
    olds = live.get("experiments") or {}
    news = new.get("experiments") or {}
    for eid, old in olds.items():
        if eid not in news and started(old, now):
            problems.append({"path": f"$.experiments.{eid}", "message": (
                "a running experiment that started cannot be removed (added again it would "
                "start afresh): stop it first")})
    for eid, e in news.items():
        old = olds.get(eid)
        if old is None:
            continue
        path = f"$.experiments.{eid}"
        was, status = old["status"], e["status"]
        if was in ("stopped", "shipped") and status != was and (
                was, status) != ("stopped", "shipped"):
            problems.append({"path": f"{path}.status", "message": (
                f"is {was} in the live version: a closed experiment cannot be {status} "
                "again; start a new experiment instead")})
        if started(old, now) and status in ("draft", "running"):
            problems += [{"path": f"{path}.{f}", "message": (
                "cannot change once the running experiment started (it decides who is "
                "compared with whom): stop it and start a new experiment")}
                for f in locked_changes(old, e)]
        if ended(old, now) and status == "running" and e.get("stops_at") != old["stops_at"]:
            # a later stops_at would run it again after shoppers went back to the live
            # config: its window is over and its figures frozen
            problems.append({"path": f"{path}.stops_at", "message": (
                "the experiment ended (its stops_at passed) and cannot run again: "
                "start a new experiment")})
    return problems


LOCKED_FIELDS = ("salt", "control", "arms", "eligibility", "starts_at", "metrics",
                 "sample_size")
"""What a started experiment may not change (allocation mid-flight breaks the test)."""


def locked_changes(old: Cleaned, new: Cleaned) -> list[str]:
    """The fields of a started running experiment that ``new`` changes and may not: its
    status (back to draft) and :data:`LOCKED_FIELDS`. Both experiments cleaned."""
    return [f for f in ("status", *LOCKED_FIELDS) if old.get(f) != new.get(f)]


def ended(exp: Mapping[str, Any], now: int | None) -> bool:
    """Running in the config but past its ``stops_at`` at ``now`` (None: never known)."""
    return now is not None and status_at(str(exp.get("status", "draft")),
                                         int(exp.get("stops_at", MAX_TIME)), now) == ENDED


def started(exp: Cleaned, now: int | None) -> bool:
    """Running and past its start (``now`` None: whenever it is)."""
    return bool(exp.get("status") == "running"
                and (now is None or now >= exp.get("starts_at", 0)))


EXPERIMENTS = Section(name="experiments", fields={"experiments": EXPERIMENTS_SPEC},
                      build=_build, check=check_experiments, follow=follow_experiments)


@dataclass(frozen=True, kw_only=True)
class ExperimentsPart(ConfigPart):
    """The experiments of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = EXPERIMENTS
    experiments: dict[str, Experiment] = field(default_factory=dict)


def arm_config(config: GameConfig, experiment: str, arm: str) -> GameConfig | None:
    """The merged config of one arm (None: no such live arm)."""
    exp = config.experiments.get(experiment)
    return exp.configs.get(arm) if exp is not None else None
