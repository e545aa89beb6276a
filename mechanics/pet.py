"""Pet rules: adopt, feed, play, clean, collect produce; growth stages.

Stats are never swept periodically: a pet stores its stats and uncollected
produce as of a timestamp and every action first brings them forward to ``now``
(:func:`mechanics.produce.bring_forward`), banking produce exactly before any
stat changes. Stats and produce are integer milli-units so the same inputs
always give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from economy.config import Food, GameConfig, Species
from economy.errors import (
    BalanceLimit,
    Cooldown,
    FeatureDisabled,
    InvalidInput,
    NoPet,
    NothingToCollect,
    PetAlreadyAdopted,
    SpeciesRetired,
    UnknownItem,
    known_item,
)
from economy.pet import PetAction
from economy.rewards import Cost, Reward
from mechanics.grants import Effects, grant, pay
from mechanics.outcome import Outcome
from mechanics.produce import bring_forward, decayed, stats_at
from mechanics.state import PetState, PlayerState, Rng, new_player
from mechanics.view import pet_view, player_view

__all__ = [
    "PET_NAME_MAX", "AdoptPet", "CleanPet", "CollectProduce", "FeedPet", "PlayWithPet", "adopt",
    "clean", "collect", "decayed", "feed", "new_player", "pet_view", "play", "player_view",
    "stats_at",
]

PET_NAME_MAX = 24


@dataclass(frozen=True)
class AdoptPet:
    species: str
    name: str


@dataclass(frozen=True)
class FeedPet:
    food: str


@dataclass(frozen=True)
class PlayWithPet:
    pass


@dataclass(frozen=True)
class CleanPet:
    pass


@dataclass(frozen=True)
class CollectProduce:
    pass


def _outcome(new: PlayerState, config: GameConfig, now: int, fx: Effects,
             tz: tzinfo | None, **extra: Any) -> Outcome:
    new.last_seen = now
    new.cooldowns = {k: v for k, v in new.cooldowns.items() if v > now}
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants,
                   response={**extra, "player": player_view(new, config, now, tz)})


def _advance_stages(pet: PetState, species: Species, new: PlayerState, config: GameConfig,
                    fx: Effects, coupons_out: frozenset[str] = frozenset()) -> list[str]:
    """Grant the one-time reward of every stage the pet's xp has reached since last time."""
    reached: list[str] = []
    while pet.stage < len(species.stages) and species.stages[pet.stage].xp <= pet.xp:
        stage = species.stages[pet.stage]
        grant(new, stage.reward, f"stage:{species.id}:{stage.id}", config, fx,
              coupons_out=coupons_out)
        fx.events.append({"type": "stage_reached", "stage": stage.id})
        reached.append(stage.id)
        pet.stage += 1
    return reached


def adopt(state: PlayerState | None, action: AdoptPet, now: int, rng: Rng,
          config: GameConfig, *, tz: tzinfo | None = None,
          coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """Adopt a pet of ``action.species``; a player keeps one pet per game. A pet whose
    species the config no longer has (``species_retired``) can do nothing, so its
    owner may adopt again: the new pet takes its place (what it earned stays earned)."""
    species = known_item(config.species, action.species, "species")
    name = action.name.strip()
    if not 1 <= len(name) <= PET_NAME_MAX or not name.isprintable():
        raise InvalidInput(f"pet name must be 1..{PET_NAME_MAX} printable characters",
                           field="name")
    new = state.copy() if state else new_player(config, now)
    if new.pet is not None and new.pet.species in config.species:
        raise PetAlreadyAdopted(new.pet.species)
    new.pet = PetState(species=species.id, name=name,
                       stats={sid: st.initial * 1000 for sid, st in species.stats.items()},
                       at=now, xp=0, adopted_at=now)
    fx = Effects()
    _advance_stages(new.pet, species, new, config, fx, coupons_out)
    return _outcome(new, config, now, fx, tz)


def _check_food(food_id: str, pet: PetState, config: GameConfig) -> Food:
    food = known_item(config.foods, food_id, "food")
    if food.species and pet.species not in food.species:
        raise UnknownItem(f"a {pet.species} does not eat {food_id!r}", kind="food",
                          id=food_id, species=pet.species)
    return food


def _check_cooldown(state: PlayerState, key: str, now: int) -> None:
    ready_at = state.cooldowns.get(key, 0)
    if ready_at > now:
        raise Cooldown(key, ready_at, now)


def _species(pet: PetState, config: GameConfig) -> Species:
    """The pet's species in ``config``; SpeciesRetired (409) if the config lost it."""
    species = config.species.get(pet.species)
    if species is None:
        raise SpeciesRetired(pet.species)
    return species


def _touch(new: PlayerState, now: int, config: GameConfig, effects: dict[str, int],
           xp: int, fx: Effects, coupons_out: frozenset[str] = frozenset()) -> list[str]:
    """Bring the pet forward, apply stat effects (clamped) and xp, grant new stages."""
    pet = new.pet
    assert pet is not None
    species = _species(pet, config)
    bring_forward(pet, species, now)
    for sid, delta in effects.items():
        if sid in pet.stats:
            top = species.stats[sid].max_milli
            pet.stats[sid] = min(top, max(0, pet.stats[sid] + delta * 1000))
    pet.xp += xp
    return _advance_stages(pet, species, new, config, fx, coupons_out)


def _pet_of(state: PlayerState | None) -> PlayerState:
    if state is None or state.pet is None:
        raise NoPet()
    return state


def feed(state: PlayerState | None, action: FeedPet, now: int, rng: Rng,
         config: GameConfig, *, tz: tzinfo | None = None,
         coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """Feed the pet: pay the food's price and items, add its effects (clamped) and xp."""
    state = _pet_of(state)
    assert state.pet is not None
    _species(state.pet, config)
    food = _check_food(action.food, state.pet, config)
    cooldown_key = f"food:{food.id}"
    _check_cooldown(state, cooldown_key, now)
    new, fx = state.copy(), Effects()
    pay(new, Cost(currency=food.price, items=food.items), f"feed:{food.id}", config, fx)
    stages = _touch(new, now, config, food.effects, food.xp, fx, coupons_out)
    if food.cooldown_s:
        new.cooldowns[cooldown_key] = now + food.cooldown_s
    return _outcome(new, config, now, fx, tz, stages=stages)


def _pet_action(kind: str, state: PlayerState | None, now: int, config: GameConfig,
                tz: tzinfo | None, coupons_out: frozenset[str]) -> Outcome:
    state = _pet_of(state)
    assert state.pet is not None
    species = _species(state.pet, config)
    act: PetAction | None = getattr(species, kind)
    if act is None:
        raise FeatureDisabled(kind)
    _check_cooldown(state, kind, now)
    new, fx = state.copy(), Effects()
    pay(new, Cost(currency=act.price), f"{kind}:{species.id}", config, fx)
    stages = _touch(new, now, config, act.effects, act.xp, fx, coupons_out)
    if act.cooldown_s:
        new.cooldowns[kind] = now + act.cooldown_s
    return _outcome(new, config, now, fx, tz, stages=stages)


def play(state: PlayerState | None, action: PlayWithPet, now: int, rng: Rng,
         config: GameConfig, *, tz: tzinfo | None = None,
         coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """``playWithPet``: the species' ``play`` effects and xp, then its cooldown."""
    return _pet_action("play", state, now, config, tz, coupons_out)


def clean(state: PlayerState | None, action: CleanPet, now: int, rng: Rng,
          config: GameConfig, *, tz: tzinfo | None = None,
          coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """Clean the pet: the species' ``clean`` effects and xp, then its cooldown."""
    return _pet_action("clean", state, now, config, tz, coupons_out)


def collect(state: PlayerState | None, action: CollectProduce, now: int, rng: Rng,
            config: GameConfig, *, tz: tzinfo | None = None,
            coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """``collectProduce``: move whole produced units into the wallet.

    Sub-unit remainders stay pending. A wallet near its limit takes what fits and
    the rest stays pending (still under the cap); nothing fitting is a BalanceLimit.
    """
    state = _pet_of(state)
    assert state.pet is not None
    species = _species(state.pet, config)
    produce = species.produce
    if produce is None:
        raise FeatureDisabled("produce")
    new, fx = state.copy(), Effects()
    assert new.pet is not None
    bring_forward(new.pet, species, now)
    whole = new.pet.produce_milli // 1000
    if whole == 0:
        raise NothingToCollect(new.pet.produce_milli)
    cur = produce.currency
    limit = config.currencies[cur].max
    have = new.wallet.get(cur, 0)
    amount = min(whole, limit - have)
    if amount <= 0:
        raise BalanceLimit(cur, have, whole, limit)
    # a free reward: it repays what the shopper owes of the currency first
    grant(new, Reward(currency={cur: amount}), f"produce:{species.id}", config, fx)
    new.pet.produce_milli -= amount * 1000
    return _outcome(new, config, now, fx, tz, collected={cur: amount})


