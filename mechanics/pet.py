"""Pet rules: adopt, feed, and stats decayed lazily to ``now``.

Stats are never swept periodically: a pet stores its stats as of a timestamp and
every read or action brings them forward with :func:`stats_at`. Decay is integer
milli-points so the same inputs always give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from economy.config import Food, GameConfig, Species
from economy.errors import Cooldown, InvalidInput, NoPet, PetAlreadyAdopted, UnknownItem
from economy.wallet import apply_currency
from mechanics.outcome import Outcome
from mechanics.state import PetState, PlayerState, Rng

PET_NAME_MAX = 24


@dataclass(frozen=True)
class AdoptPet:
    species: str
    name: str


@dataclass(frozen=True)
class FeedPet:
    food: str


def new_player(config: GameConfig, now: int) -> PlayerState:
    """The state of a player who has never played this game."""
    return PlayerState(created_at=now, wallet=config.initial_wallet(), last_seen=now)


def decayed(value_milli: int, decay_milli_per_hour: int, elapsed_s: int) -> int:
    """``value`` after ``elapsed_s`` seconds of linear decay, floored at 0."""
    if elapsed_s <= 0 or decay_milli_per_hour == 0:
        return value_milli
    return max(0, value_milli - decay_milli_per_hour * elapsed_s // 3600)


def stats_at(pet: PetState, species: Species, now: int) -> dict[str, int]:
    """The pet's stats in milli-points at ``now``."""
    elapsed = now - pet.at
    return {
        sid: decayed(pet.stats.get(sid, stat.initial * 1000), stat.decay_milli_per_hour, elapsed)
        for sid, stat in species.stats.items()
    }


def pet_view(pet: PetState, config: GameConfig, now: int) -> dict[str, Any]:
    """The pet as the shopper sees it at ``now``: stats, derived states, xp."""
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
        "adopted_at": pet.adopted_at,
    }


def player_view(state: PlayerState, config: GameConfig, now: int) -> dict[str, Any]:
    """``getPlayer``: everything the shopper has, as of ``now``."""
    return {
        "wallet": dict(state.wallet),
        "inventory": dict(state.inventory),
        "pet": pet_view(state.pet, config, now) if state.pet else None,
        "cooldowns": {k: v for k, v in sorted(state.cooldowns.items()) if v > now},
        "created_at": state.created_at,
    }


def adopt(state: PlayerState | None, action: AdoptPet, now: int, rng: Rng,
          config: GameConfig) -> Outcome:
    """Adopt a pet of ``action.species``; a player keeps one pet per game."""
    species = config.species.get(action.species)
    if species is None:
        raise UnknownItem(f"unknown species {action.species!r}", kind="species",
                          id=action.species, known=sorted(config.species))
    name = action.name.strip()
    if not 1 <= len(name) <= PET_NAME_MAX or not name.isprintable():
        raise InvalidInput(f"pet name must be 1..{PET_NAME_MAX} printable characters",
                           field="name")
    new = state.copy() if state else new_player(config, now)
    if new.pet is not None:
        raise PetAlreadyAdopted(new.pet.species)
    new.pet = PetState(species=species.id, name=name,
                       stats={sid: st.initial * 1000 for sid, st in species.stats.items()},
                       at=now, xp=0, adopted_at=now)
    new.last_seen = now
    return Outcome(state=new, response={"player": player_view(new, config, now)})


def _check_food(food_id: str, pet: PetState, config: GameConfig) -> Food:
    food = config.foods.get(food_id)
    if food is None:
        raise UnknownItem(f"unknown food {food_id!r}", kind="food", id=food_id,
                          known=sorted(config.foods))
    if food.species and pet.species not in food.species:
        raise UnknownItem(f"a {pet.species} does not eat {food_id!r}", kind="food",
                          id=food_id, species=pet.species)
    return food


def feed(state: PlayerState | None, action: FeedPet, now: int, rng: Rng,
         config: GameConfig) -> Outcome:
    """Feed the pet: pay the food's price, add its effects (clamped) and xp."""
    if state is None or state.pet is None:
        raise NoPet()
    food = _check_food(action.food, state.pet, config)
    cooldown_key = f"food:{food.id}"
    ready_at = state.cooldowns.get(cooldown_key, 0)
    if ready_at > now:
        raise Cooldown(cooldown_key, ready_at, now)
    limits = {cid: c.max for cid, c in config.currencies.items()}
    wallet, ledger = apply_currency(state.wallet, {c: -a for c, a in food.price.items()},
                                    f"feed:{food.id}", limits)
    new = state.copy()
    assert new.pet is not None
    species = config.species[new.pet.species]
    stats = stats_at(new.pet, species, now)
    for sid, delta in food.effects.items():
        if sid in stats:
            stats[sid] = min(species.stats[sid].max_milli, max(0, stats[sid] + delta * 1000))
    new.pet.stats, new.pet.at = stats, now
    new.pet.xp += food.xp
    new.wallet = wallet
    if food.cooldown_s:
        new.cooldowns[cooldown_key] = now + food.cooldown_s
    new.cooldowns = {k: v for k, v in new.cooldowns.items() if v > now}
    new.last_seen = now
    return Outcome(state=new, ledger=ledger, response={"player": player_view(new, config, now)})
