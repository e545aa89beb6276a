"""Energy rules: lazy refill over time up to a cap, and spending.

Nothing ticks in the background. A player's energy is stored as ``value`` units
as of ``at``; every read or spend first brings it forward to ``now``
(:func:`energy_at`): each whole ``refill_seconds`` since ``at`` adds
``refill_amount``, up to ``max``. Partial progress towards the next refill is
kept by advancing ``at`` by whole refills only; a full energy has no timer, so
its ``at`` is ``now`` and the first spend starts the clock. A player who never
spent (no slice stored) is full.

Worked example of a mechanic added through the registry (docs/adding-a-mechanic.md):
config in :mod:`economy.energy`, slice in :mod:`mechanics.energystate`, these
rules, and one entry in :mod:`mechanics.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from economy.energy import Energy, NotEnoughEnergy
from economy.errors import FeatureDisabled, InvalidInput
from mechanics.energystate import EnergyState
from mechanics.outcome import Outcome
from mechanics.state import PlayerState, Rng, new_player
from mechanics.view import player_view

__all__ = ["SpendEnergy", "energy_at", "energy_view", "ready_at", "spend", "spend_energy"]


@dataclass(frozen=True)
class SpendEnergy:
    amount: int


def energy_at(stored: EnergyState | None, energy: Energy, now: int) -> EnergyState:
    """The energy as of ``now``: whole refills since ``at`` added, capped at ``max``."""
    if stored is None:
        return EnergyState(energy.max, now)
    refills = max(0, now - stored.at) // energy.refill_seconds
    value = stored.value + refills * energy.refill_amount
    if value >= energy.max:  # full (or above a lowered cap): no timer runs
        return EnergyState(energy.max, max(now, stored.at))
    return EnergyState(value, stored.at + refills * energy.refill_seconds)


def ready_at(current: EnergyState, energy: Energy, need: int) -> int:
    """The first instant ``current`` (already brought forward) holds ``need`` units."""
    if current.value >= need:
        return current.at
    refills = -(-(need - current.value) // energy.refill_amount)
    return current.at + refills * energy.refill_seconds


def spend(stored: EnergyState | None, energy: Energy, now: int, amount: int) -> EnergyState:
    """The energy after spending ``amount`` at ``now``; refuses without changing anything."""
    if not 1 <= amount <= energy.max:
        raise InvalidInput(f"amount must be 1..{energy.max}", field="amount")
    current = energy_at(stored, energy, now)
    if current.value < amount:
        raise NotEnoughEnergy(current.value, amount, ready_at(current, energy, amount), now)
    return EnergyState(current.value - amount, current.at)


def energy_view(state: PlayerState, config: GameConfig, now: int,
                tz: tzinfo | None) -> dict[str, Any] | None:
    """The energy as of ``now``, with when it next refills and when it is full."""
    energy = config.energy
    if energy is None:
        return None
    current = energy_at(state.energy, energy, now)
    full = current.value >= energy.max
    return {"name": energy.name, "value": current.value, "max": energy.max,
            "next_refill_at": None if full else current.at + energy.refill_seconds,
            "full_at": None if full else ready_at(current, energy, energy.max)}


def spend_energy(state: PlayerState | None, action: SpendEnergy, now: int, rng: Rng,
                 config: GameConfig, *, tz: tzinfo | None = None) -> Outcome:
    """``spendEnergy``: take ``amount`` units (a new player starts full)."""
    if config.energy is None:
        raise FeatureDisabled("energy")
    new = state.copy() if state else new_player(config, now)
    new.energy = spend(new.energy, config.energy, now, action.amount)
    new.last_seen = now
    return Outcome(state=new, response={"spent": action.amount,
                                        "player": player_view(new, config, now, tz)})
