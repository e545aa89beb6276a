"""Experiment exposure and activity: what the server adds to a shopper's outcome under an arm.

The server picks the arm (:func:`economy.experiments.choose`) and runs the rule on that
arm's merged config; :func:`track` then marks the arm in the state and adds one
``experiment_exposures`` record, the first time only, in the same commit as the action
(so an exposure exists exactly when an outcome the arm decided was committed), and one
``experiment_days`` record per local day the exposed shopper acts.
:func:`tracked_side` does the latter for the acting shopper's side of a shared play
(the second commit of a vote, a join, a grab), which is not bound like their own actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from mechanics.calendar import local_day
from mechanics.outcome import Outcome, Record
from mechanics.state import PlayerState, Rng, new_player

MEASURE_DAYS = 31
"""An exposed shopper's active days are recorded until this long after the experiment's
stop time, so D30 retention of the last exposed cohort is measurable."""


def _measured(config: GameConfig, eid: str, now: int) -> bool:
    exp = config.experiments.get(eid)
    return exp is not None and exp.status != "draft" and \
        now < exp.stops_at + MEASURE_DAYS * 86_400


def track(outcome: Outcome, before: PlayerState | None, config: GameConfig, now: int,
          tz: tzinfo, arm: tuple[str, str] | None, version: int) -> Outcome:
    """``outcome`` of a shopper's own action, with what experiments must know of it.

    ``arm`` (experiment, arm) decided the outcome: the first time, the arm is marked in
    the state and an ``experiment_exposures`` record added. Once per local day, each
    experiment the shopper was exposed to gets an ``experiment_days`` record (their
    activity, from which retention is computed, on the rule's clock and the game's day).
    """
    state = outcome.state
    day = local_day(now, tz)
    exposing = arm is not None and state.experiments.get(arm[0]) != arm[1]
    marks = set(state.experiments) | ({arm[0]} if arm is not None else set())
    measured = sorted(eid for eid in marks if _measured(config, eid, now))
    active = bool(measured) and state.experiment_day != day
    if not exposing and not active:
        return outcome
    if state is before:  # a rule that changed nothing returned the loaded state itself
        state = state.copy()
    records = list(outcome.records)
    if exposing and arm is not None:
        state.experiments[arm[0]] = arm[1]
        records.append(Record("experiment_exposures", {
            "experiment": arm[0], "arm": arm[1], "game_version": version, "day": day}))
    if active:
        # never back: a shared play's side applied late records the day its gate was
        # committed, which may be before a later action's day already recorded
        state.experiment_day = max(state.experiment_day, day)
        records += [Record("experiment_days", {"experiment": eid, "day": day})
                    for eid in measured]
    return replace(outcome, state=state, records=records)


SideRule = Callable[[PlayerState | None, int], Outcome]
"""A shopper's commit as the store applies it: ``(state or None, now) -> Outcome``."""


def tracked_side(rule: SideRule, config: GameConfig, tz: tzinfo, version: int,
                 acted_at: int | None = None) -> SideRule:
    """``rule``, the acting shopper's side of a shared play (the second commit of a vote,
    a join, a grab, a help: gameserver/state/aggregates_gate.py), with their active day
    recorded as their own single-commit actions' is (:func:`track`).

    It exposes nobody: both commits of a shared play run on the live config, not an
    arm's, so only experiments the shopper is already exposed to get the day.
    ``acted_at`` is when the shopper acted (their gate's commit): a side the owed
    reconciler applies after a crash records that day, not its own clock's. None: the
    rule's clock (the side follows its gate within the same request)."""
    if not config.experiments:
        return rule

    def side(state: PlayerState | None, now: int) -> Outcome:
        return track(rule(state, now), state, config, now if acted_at is None else acted_at,
                     tz, None, version)
    return side


@dataclass(frozen=True)
class ShowArm:
    """A shopper shown what their arm decides (a series' odds, with their token) before
    any action of theirs was decided by it."""


def show_arm(state: PlayerState | None, action: ShowArm, now: int, rng: Rng,
             config: GameConfig) -> Outcome:
    """:class:`ShowArm`'s rule: changes nothing itself. Bound like a shopper's action
    (``gameserver.services.bind``), its commit gets the exposure from :func:`track`, so
    a shopper shown an arm's odds is exposed to that arm even when the view is not their
    first commit (a shopper whose seed was committed before the experiment started)."""
    return Outcome(state=state if state is not None else new_player(config, now),
                   response={})


def experiments_view(state: PlayerState, config: GameConfig, now: int,
                     tz: tzinfo | None) -> dict[str, Any] | None:
    """``getPlayer``'s arms: only of experiments whose merchant allows showing them."""
    shown = {eid: arm for eid, arm in sorted(state.experiments.items())
             if eid in config.experiments and config.experiments[eid].show_arm}
    return shown or None
