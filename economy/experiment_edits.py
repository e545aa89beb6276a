"""A merchant's edits of an experiment in the live config: put (create or edit), stop
and ship an arm, each giving the config to publish, and their refusals.

``economy.experiments`` defines the section; whatever publishes a config (these edits,
a draft, a rollback) is held to its lifecycle by the section's follow check, which
shares :func:`~economy.experiments.locked_changes` with :func:`put_experiment`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from economy.errors import ConfigInvalid, DomainError, Refusal
from economy.experiments import (
    ENDED,
    EXPERIMENT_SPEC,
    ended,
    locked_changes,
    merged_raw,
    started,
)


class ExperimentNotFound(DomainError):
    code = "experiment_not_found"
    kind = Refusal.NOT_FOUND

    def __init__(self, experiment: str) -> None:
        super().__init__("no such experiment in the live config", experiment=experiment)


class ExperimentLocked(DomainError):
    """Changing what assigns or measures shoppers after the experiment started."""

    code = "experiment_locked"
    kind = Refusal.CONFLICT

    def __init__(self, experiment: str, fields: list[str]) -> None:
        super().__init__("a running experiment's allocation, arms, eligibility, salt, "
                         "window start, metrics and horizon cannot change once it started; "
                         "stop it and start a new one", experiment=experiment, fields=fields)


class ExperimentClosed(DomainError):
    """Shipping or changing an experiment that was stopped or shipped already, or
    changing one that ended (past its ``stops_at``)."""

    code = "experiment_closed"
    kind = Refusal.CONFLICT

    def __init__(self, experiment: str, status: str) -> None:
        super().__init__(f"this experiment is {status}", experiment=experiment, status=status)


class UnknownArm(DomainError):
    code = "unknown_arm"
    kind = Refusal.INVALID

    def __init__(self, experiment: str, arm: str, known: list[str]) -> None:
        super().__init__("no such arm", experiment=experiment, arm=arm, known=known)


# ---------------------------------------------------------------- lifecycle (config edits)

def _cleaned(exp: Any) -> dict[str, Any]:
    from economy.schema import validate

    cleaned, _ = validate(EXPERIMENT_SPEC, exp)
    return cleaned if isinstance(cleaned, dict) else {}


def _experiments_of(raw: dict[str, Any]) -> dict[str, Any]:
    exps = raw.setdefault("experiments", {})
    assert isinstance(exps, dict)
    return exps


def put_experiment(raw: dict[str, Any], eid: str, body: Mapping[str, Any], now: int,
                   fresh_salt: str) -> dict[str, Any]:
    """``raw`` (the live config, a copy) with experiment ``eid`` created or edited.

    A new experiment without a salt gets ``fresh_salt``; an edit keeps its salt. Once a
    running experiment has started, :data:`LOCKED_FIELDS` cannot change, nor can it go
    back to draft (409: stop it instead); once it ended (past ``stops_at``) it is
    closed like a stopped one (409). Put running, it stops the experiments that ended
    (:func:`close_ended`), so an ended one never blocks the next."""
    exps = _experiments_of(raw)
    new = {k: copy.deepcopy(v) for k, v in body.items() if v != ""}
    old = exps.get(eid)
    if old is not None:
        status = old.get("status", "draft")
        if status in ("stopped", "shipped") or ended(old, now):
            raise ExperimentClosed(eid, ENDED if status == "running" else status)
        new.setdefault("salt", old["salt"])
        was = _cleaned(old)
        if started(was, now):
            changed = locked_changes(was, _cleaned(new))
            if changed:
                raise ExperimentLocked(eid, changed)
    new.setdefault("salt", fresh_salt)
    if new.get("status") == "running":
        close_ended(raw, now)
    exps[eid] = new
    return raw


def close_ended(raw: dict[str, Any], now: int) -> list[str]:
    """Mark every experiment of ``raw`` that ended (running, past its ``stops_at``)
    stopped, in place; returns their ids.

    An ended experiment assigns nobody, yet it is ``running`` in the config, where one
    experiment runs at a time (hosts of the previous release check the same rule). A new
    running experiment takes its place: stopping it now changes none of its figures,
    whose window closed at ``stops_at``."""
    closed = sorted(eid for eid, e in _experiments_of(raw).items() if ended(e, now))
    for eid in closed:
        raw["experiments"][eid]["status"] = "stopped"
    return closed


def existing_experiment(raw: dict[str, Any], eid: str) -> dict[str, Any]:
    """Experiment ``eid`` of the stored config ``raw`` (the object itself, not a copy);
    :class:`ExperimentNotFound` (404) if it has none."""
    exp = (raw.get("experiments") or {}).get(eid)
    if exp is None:
        raise ExperimentNotFound(eid)
    assert isinstance(exp, dict)
    return exp


def stop_experiment(raw: dict[str, Any], eid: str) -> dict[str, Any]:
    """``raw`` with ``eid`` stopped: everyone is back on the live config (a stopped one
    stays as it is)."""
    exp = existing_experiment(raw, eid)
    if exp.get("status") == "shipped":
        raise ExperimentClosed(eid, "shipped")
    exp["status"] = "stopped"
    return raw


def ship_arm(raw: dict[str, Any], eid: str, arm: str) -> dict[str, Any]:
    """The config that ships ``arm``: the live config with the arm's overrides, the
    experiment marked shipped (and so no longer assigning anyone)."""
    exp = existing_experiment(raw, eid)
    if exp.get("status") == "shipped":
        raise ExperimentClosed(eid, "shipped")
    if arm not in exp["arms"]:
        raise UnknownArm(eid, arm, sorted(exp["arms"]))
    merged, problems = merged_raw(raw, exp["arms"][arm].get("overrides", {}))
    if problems:
        raise ConfigInvalid(problems)
    experiments = copy.deepcopy(raw.get("experiments") or {})
    experiments[eid].update(status="shipped", shipped_arm=arm)
    merged["experiments"] = experiments
    return merged
