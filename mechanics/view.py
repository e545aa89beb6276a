"""What ``getPlayer`` shows: the player as of ``now``, lazily brought forward.

Views never change state: decay, produce, streaks and task periods are computed
for ``now`` from what is stored. Parts that depend on the local day (check-in,
tasks, exchange limits) need the game's ``tz`` and are None without it.

:func:`player_view` shows the core (wallet, inventory, debts, created_at) and
every view part of :data:`mechanics.registry.MECHANICS`, in registry order; it
never names a mechanic. The view parts of the original mechanics are below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from mechanics.calendar import day_str, local_day, period_key
from mechanics.produce import full_at, pending_at, stats_at
from mechanics.state import PetState, PlayerState


def _stage_view(pet: PetState, config: GameConfig) -> dict[str, Any] | None:
    stages = config.species[pet.species].stages
    if not stages:
        return None
    reached = stages[pet.stage - 1] if pet.stage else None
    following = stages[pet.stage] if pet.stage < len(stages) else None
    return {"id": reached.id if reached else None, "name": reached.name if reached else None,
            "index": pet.stage, "next_xp": following.xp if following else None}


def _produce_view(pet: PetState, config: GameConfig, now: int) -> dict[str, Any] | None:
    species = config.species[pet.species]
    produce = species.produce
    if produce is None:
        return None
    pending = pending_at(pet, species, now)
    brought = replace(pet, stats=stats_at(pet, species, now), at=max(now, pet.at),
                      produce_milli=pending)
    return {"currency": produce.currency, "pending": pending // 1000, "pending_milli": pending,
            "cap": produce.cap_milli // 1000, "per_hour": produce.per_hour,
            "full_at": full_at(brought, species)}


def pet_view(pet: PetState, config: GameConfig, now: int) -> dict[str, Any]:
    """The pet as the shopper sees it at ``now``: stats, derived states, xp, stage, produce."""
    species = config.species[pet.species]
    current = stats_at(pet, species, now)
    states = sorted(
        st.low_state for sid, st in species.stats.items()
        if st.low_state and current[sid] < st.low * 1000
    )
    return {
        "species": pet.species,
        "name": pet.name,
        "stats": {sid: {"value": current[sid] / 1000, "max": st.max}
                  for sid, st in species.stats.items()},
        "states": states,
        "xp": pet.xp,
        "stage": _stage_view(pet, config),
        "produce": _produce_view(pet, config, now),
        "adopted_at": pet.adopted_at,
    }


def checkin_view(state: PlayerState, config: GameConfig, now: int,
                 tz: tzinfo | None) -> dict[str, Any] | None:
    """Streak, whether today is done, the next cycle day and the days that can be made up."""
    checkin = config.checkin
    if checkin is None or tz is None:
        return None
    ck, today = state.checkin, local_day(now, tz)
    streak = ck.streak(today)
    done = bool(ck.runs) and ck.runs[-1][1] == today
    missed: list[str] = []
    if checkin.makeup is not None and ck.first:
        low = max(ck.first, today - checkin.makeup.window_days)
        length, per_cycle = len(checkin.cycle), checkin.makeup.per_cycle
        missed = [day_str(d) for d in range(low, today) if ck.run_of(d) is None
                  and ck.made_up_in_cycle(d, length) < per_cycle]
    return {"streak": streak, "checked_in_today": done, "total": ck.total,
            "next_cycle_day": streak % len(checkin.cycle) + 1,
            "cycle_length": len(checkin.cycle), "makeup_days": missed}


def tasks_view(state: PlayerState, config: GameConfig, now: int,
               tz: tzinfo | None) -> dict[str, Any] | None:
    """Each task's progress in its current period."""
    if tz is None:
        return None
    out: dict[str, Any] = {}
    for tid, task in config.tasks.items():
        key = period_key(task.period, now, tz)
        prog = state.tasks.get(tid)
        current = prog is not None and prog.period == key
        out[tid] = {"kind": task.kind, "period": task.period, "limit": task.limit,
                    "done": prog.count if prog and current else 0,
                    "reward": task.reward.to_json()}
        if task.kind == "browse":
            out[tid]["browse_s"] = task.browse_s
        if task.kind == "purchase" and task.spend_fen:
            out[tid]["spend_fen"] = prog.spend if prog and current else 0
            out[tid]["target_fen"] = task.spend_fen
    return out


def exchange_view(state: PlayerState, config: GameConfig, now: int,
                  tz: tzinfo | None) -> dict[str, Any] | None:
    """Exchanges used per offer in its current period (offers with a per-player limit)."""
    if tz is None:
        return None
    out: dict[str, Any] = {}
    for oid, offer in config.offers.items():
        if not offer.per_player:
            continue
        key = period_key(offer.period, now, tz)
        used = state.exchanges.get(oid)
        out[oid] = {"used": used[1] if used and used[0] == key else 0,
                    "limit": offer.per_player}
    return out


def pet_part(state: PlayerState, config: GameConfig, now: int,
             tz: tzinfo | None) -> dict[str, Any] | None:
    """The ``pet`` of the player view (None without a pet of a species the game has)."""
    pet = state.pet
    return pet_view(pet, config, now) if pet and pet.species in config.species else None


def cooldowns_part(state: PlayerState, config: GameConfig, now: int,
                   tz: tzinfo | None) -> dict[str, int]:
    """Cooldowns still running at ``now``."""
    return {k: v for k, v in sorted(state.cooldowns.items()) if v > now}


ViewFn = Callable[[PlayerState, GameConfig, int, "tzinfo | None"], Any]
_parts: tuple[tuple[str, ViewFn, bool], ...] | None = None


def _view_parts() -> tuple[tuple[str, ViewFn, bool], ...]:
    """(key, view, omit when None) of every mechanic, read from the registry once.

    Imported late: the registry names the view parts defined in this module, and
    rules import :func:`player_view` from here.
    """
    global _parts
    if _parts is None:
        from mechanics.registry import MECHANICS
        _parts = tuple((v.key, v.show, v.omit_none) for m in MECHANICS for v in m.views)
    return _parts


def player_view(state: PlayerState, config: GameConfig, now: int,
                tz: tzinfo | None = None) -> dict[str, Any]:
    """``getPlayer``: everything the shopper has, as of ``now``."""
    out: dict[str, Any] = {"wallet": dict(state.wallet), "inventory": dict(state.inventory)}
    for key, show, omit_none in _parts or _view_parts():
        part = show(state, config, now, tz)
        if part is not None or not omit_none:
            out[key] = part
    out["debts"] = dict(state.debts)
    out["created_at"] = state.created_at
    return out
