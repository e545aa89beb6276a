"""Produce: exact over the interval above the threshold, capped, banked at every touch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.config import GameConfig
from economy.errors import BalanceLimit, DomainError, NothingToCollect
from economy.pet import Produce
from mechanics import pet
from mechanics.produce import full_at, pending_at, produced_milli
from mechanics.state import PlayerState
from tests.unit.factory import T0, NoRng, config, species_with

CFG = config()
RNG = NoRng()
H = 3600
P = Produce(currency="acorn", per_hour=10, stat="satiety", above=30, cap_hours=12)


def adopted() -> PlayerState:
    return pet.adopt(None, pet.AdoptPet("squirrel", "Nutty"), T0, RNG, CFG).state


@pytest.mark.parametrize(("start", "decay", "elapsed", "expected"), [
    (60_000, 5_000, 0, 0),
    (60_000, 5_000, 1000, 2_777),            # 10/h · 1000 s = 2.777… units
    (60_000, 5_000, 5 * H, 50_000),
    (60_000, 5_000, 6 * H, 60_000),          # crosses 30 exactly at 6 h
    (60_000, 5_000, 6 * H + 1, 60_000),      # nothing after the crossing
    (60_000, 5_000, 10 * H, 60_000),
    (60_000, 7_000, 10 * H, 42_857),         # crossing at 15 428.57 s: 42.857… units
    (30_000, 5_000, 10 * H, 0),              # at the threshold: not above
    (30_001, 5_000, 10 * H, 2),              # above for 0.72 s
    (60_000, 0, 10 * H, 100_000),            # no decay: all the time
])
def test_produced_exactly_while_above(start: int, decay: int, elapsed: int,
                                      expected: int) -> None:
    assert produced_milli(P, start, decay, elapsed) == expected


@pytest.mark.parametrize(("elapsed", "collected", "left"), [
    (1000, 2, 777),
    (5400, 15, 0),
    (10 * H, 60, 0),
])
def test_collect_whole_units_keep_the_rest(elapsed: int, collected: int, left: int) -> None:
    out = pet.collect(adopted(), pet.CollectProduce(), T0 + elapsed, RNG, CFG)
    assert out.response["collected"] == {"acorn": collected}
    assert out.state.wallet["acorn"] == 100 + collected
    assert out.state.pet is not None and out.state.pet.produce_milli == left
    assert [(e.name, e.delta, e.reason) for e in out.ledger] == [
        ("acorn", collected, "produce:squirrel")]


def test_nothing_to_collect() -> None:
    with pytest.raises(NothingToCollect) as e:
        pet.collect(adopted(), pet.CollectProduce(), T0 + 359, RNG, CFG)
    assert e.value.details == {"pending_milli": 997}
    state = pet.collect(adopted(), pet.CollectProduce(), T0 + 10 * H, RNG, CFG).state
    with pytest.raises(NothingToCollect):
        pet.collect(state, pet.CollectProduce(), T0 + 11 * H, RNG, CFG)


def adopted_producing(per_hour: int, cap_hours: int) -> tuple[GameConfig, PlayerState]:
    """A config whose squirrel produces ``per_hour`` acorns while satiety is above 0, up to
    ``cap_hours`` hours' worth, and a squirrel adopted under it at ``T0``."""
    cfg = config(species=species_with(produce={"currency": "acorn", "per_hour": per_hour,
                                               "stat": "satiety", "above": 0,
                                               "cap_hours": cap_hours}))
    return cfg, pet.adopt(None, pet.AdoptPet("squirrel", "N"), T0, RNG, cfg).state


def test_cap_is_hours_worth() -> None:
    cfg, state = adopted_producing(per_hour=10, cap_hours=8)
    assert state.pet is not None
    species = cfg.species["squirrel"]
    # satiety 60 → 0 at 12 h; cap of 80 units reached at exactly 8 h
    assert pending_at(state.pet, species, T0 + 8 * H - 1) == 79_997
    assert pending_at(state.pet, species, T0 + 8 * H) == 80_000
    assert pending_at(state.pet, species, T0 + 30 * H) == 80_000
    assert full_at(state.pet, species) == T0 + 8 * H
    out = pet.collect(state, pet.CollectProduce(), T0 + 30 * H, RNG, cfg)
    assert out.response["collected"] == {"acorn": 80}


def test_feeding_mid_interval_banks_and_extends() -> None:
    fed = pet.feed(adopted(), pet.FeedPet("snack"), T0 + 5 * H, RNG, CFG).state
    assert fed.pet is not None and fed.pet.produce_milli == 50_000
    assert fed.pet.stats["satiety"] == 55_000
    out = pet.collect(fed, pet.CollectProduce(), T0 + 15 * H, RNG, CFG)
    assert out.response["collected"] == {"acorn": 100}  # 5 h + 5 h above 30
    unfed = pet.collect(adopted(), pet.CollectProduce(), T0 + 15 * H, RNG, CFG)
    assert unfed.response["collected"] == {"acorn": 60}


def test_feeding_a_starved_pet_restarts_produce() -> None:
    fed = pet.feed(adopted(), pet.FeedPet("cake"), T0 + 10 * H, RNG, CFG).state
    assert fed.pet is not None
    assert fed.pet.stats["satiety"] == 50_000 and fed.pet.produce_milli == 60_000
    assert full_at(fed.pet, CFG.species["squirrel"]) is None  # falls to 30 after 4 h: 100 < 120
    view = pet.player_view(fed, CFG, T0 + 12 * H)["pet"]["produce"]
    assert view == {"currency": "acorn", "pending": 80, "pending_milli": 80_000, "cap": 120,
                    "per_hour": 10, "full_at": None}


def test_full_at_is_exact() -> None:
    cfg, state = adopted_producing(per_hour=7, cap_hours=1)
    assert state.pet is not None
    species = cfg.species["squirrel"]
    at = full_at(state.pet, species)
    assert at == T0 + 3600  # 7000 milli need 3600 s at 7000/h
    assert pending_at(state.pet, species, at - 1) < 7000 <= pending_at(state.pet, species, at)


def test_collect_up_to_the_wallet_limit() -> None:
    state = adopted()
    state.wallet["acorn"] = 990
    out = pet.collect(state, pet.CollectProduce(), T0 + 10 * H, RNG, CFG)
    assert out.response["collected"] == {"acorn": 10}
    assert out.state.wallet["acorn"] == 1000
    assert out.state.pet is not None and out.state.pet.produce_milli == 50_000
    with pytest.raises(BalanceLimit):
        pet.collect(out.state, pet.CollectProduce(), T0 + 10 * H, RNG, CFG)


ACTIONS = st.lists(st.tuples(st.sampled_from(["snack", "cake", "play", "collect", "clean"]),
                             st.integers(min_value=0, max_value=20 * H)), max_size=25)


@settings(max_examples=200, deadline=None)
@given(ACTIONS)
def test_produce_never_above_cap_and_balances_never_negative(
        actions: list[tuple[str, int]]) -> None:
    state, now = adopted(), T0
    species = CFG.species["squirrel"]
    cap = 120_000
    for kind, wait in actions:
        now += wait
        rule, action = {
            "snack": (pet.feed, pet.FeedPet("snack")), "cake": (pet.feed, pet.FeedPet("cake")),
            "play": (pet.play, pet.PlayWithPet()), "clean": (pet.clean, pet.CleanPet()),
            "collect": (pet.collect, pet.CollectProduce()),
        }[kind]
        before = state.to_wire()
        try:
            state = rule(state, action, now, RNG, CFG).state  # type: ignore[operator]
        except DomainError:
            assert state.to_wire() == before
        assert state.pet is not None
        assert 0 <= state.pet.produce_milli <= cap
        assert 0 <= pending_at(state.pet, species, now + 100 * H) <= cap
        assert all(v >= 0 for v in state.wallet.values())
        assert all(v > 0 for v in state.inventory.values())
        assert all(0 <= v <= 100_000 for v in state.pet.stats.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1800, max_value=3 * H), min_size=1, max_size=20))
def test_touching_often_loses_under_a_milli_per_touch(waits: list[int]) -> None:
    """Play does not change satiety, so banked produce stays within a few milli-units
    per touch of the untouched amount: each touch floors produce (< 1 milli lost) and
    floors satiety decay (< 1 milli-point kept, i.e. < 0.72 s more above the
    threshold at 5/h, worth < 2 milli-units at 10/h)."""
    state, now = adopted(), T0
    species = CFG.species["squirrel"]
    for wait in waits:
        now += wait
        state = pet.play(state, pet.PlayWithPet(), now, RNG, CFG).state
    assert state.pet is not None
    lazy = min(120_000, produced_milli(P, 60_000, 5_000, now - T0))
    assert lazy - len(waits) <= pending_at(state.pet, species, now) <= lazy + 2 * len(waits)
