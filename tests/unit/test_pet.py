"""Pet rules: adopt (stage 0 reward), feed (price, items, cooldown), play, clean, stages."""

from __future__ import annotations

import pytest

from economy.errors import (
    Cooldown,
    FeatureDisabled,
    InsufficientFunds,
    InsufficientItems,
    NoPet,
    PetAlreadyAdopted,
    SpeciesRetired,
    UnknownItem,
)
from economy.wallet import LedgerEntry
from mechanics import pet
from mechanics.state import PlayerState
from tests.unit.factory import T0, NoRng, config, species_with

CFG = config()
RNG = NoRng()


def adopted(**inventory: int) -> PlayerState:
    state = pet.adopt(None, pet.AdoptPet("squirrel", "Nutty"), T0, RNG, CFG).state
    state.inventory.update(inventory)
    return state


def test_adopt_grants_the_xp0_stage_reward_once() -> None:
    out = pet.adopt(None, pet.AdoptPet("squirrel", " Nutty "), T0, RNG, CFG)
    assert out.state.wallet == {"acorn": 100, "gem": 1}
    assert out.ledger == [LedgerEntry("currency", "gem", 1, 0, 1, "stage:squirrel:baby")]
    assert out.state.pet is not None and out.state.pet.stage == 1
    assert out.state.pet.name == "Nutty"
    view = out.response["player"]["pet"]
    assert view["stage"] == {"id": "baby", "name": "Baby", "index": 1, "next_xp": 30}
    assert out.events == [{"type": "stage_reached", "stage": "baby"}]


def test_feed_decays_then_adds_and_banks_produce() -> None:
    out = pet.feed(adopted(), pet.FeedPet("snack"), T0 + 3600, RNG, CFG)
    p = out.state.pet
    assert p is not None
    assert p.stats == {"satiety": 75_000, "mood": 68_000, "clean": 79_000}
    assert (p.at, p.xp, p.produce_milli) == (T0 + 3600, 5, 10_000)
    assert out.state.wallet == {"acorn": 90, "gem": 1}
    assert out.ledger == [LedgerEntry("currency", "acorn", -10, 100, 90, "feed:snack")]


def test_feed_clamps_at_max_and_floor() -> None:
    state = adopted()
    for _ in range(3):
        state = pet.feed(state, pet.FeedPet("snack"), T0, RNG, CFG).state
    assert state.pet is not None and state.pet.stats["satiety"] == 100_000


@pytest.mark.parametrize(("food", "inventory", "error"), [
    ("cone", {}, InsufficientItems),
    ("combo", {"pine_cone": 1}, InsufficientItems),
    ("nope", {"pine_cone": 5}, UnknownItem),
])
def test_feed_refusals_change_nothing(food: str, inventory: dict[str, int],
                                     error: type[Exception]) -> None:
    state = adopted(**inventory)
    before = state.to_wire()
    with pytest.raises(error):
        pet.feed(state, pet.FeedPet(food), T0 + 10, RNG, CFG)
    assert state.to_wire() == before


def test_feed_from_inventory_takes_items_and_price() -> None:
    out = pet.feed(adopted(pine_cone=3), pet.FeedPet("combo"), T0, RNG, CFG)
    assert out.state.inventory == {"pine_cone": 1}
    assert out.state.wallet["acorn"] == 95
    assert [(e.kind, e.name, e.delta) for e in out.ledger] == [
        ("currency", "acorn", -5), ("item", "pine_cone", -2)]
    out = pet.feed(adopted(pine_cone=1), pet.FeedPet("cone"), T0, RNG, CFG)
    assert out.state.inventory == {} and out.state.wallet["acorn"] == 100


def test_feed_without_money() -> None:
    state = adopted()
    state.wallet["acorn"] = 39
    with pytest.raises(InsufficientFunds) as e:
        pet.feed(state, pet.FeedPet("cake"), T0, RNG, CFG)
    assert e.value.details == {"currency": "acorn", "have": 39, "need": 40}


@pytest.mark.parametrize(("dt", "ok"), [(599, False), (600, True)])
def test_food_cooldown_boundary(dt: int, ok: bool) -> None:
    state = pet.feed(adopted(), pet.FeedPet("cake"), T0, RNG, CFG).state
    if ok:
        pet.feed(state, pet.FeedPet("cake"), T0 + dt, RNG, CFG)
    else:
        with pytest.raises(Cooldown) as e:
            pet.feed(state, pet.FeedPet("cake"), T0 + dt, RNG, CFG)
        assert e.value.details == {"action": "food:cake", "ready_at": T0 + 600,
                                   "retry_after": 1}


def test_stages_grant_items_then_a_coupon_reservation() -> None:
    state = adopted()
    state.wallet["acorn"] = 1000
    out = pet.feed(state, pet.FeedPet("cake"), T0, RNG, CFG)  # xp 25
    assert out.response["stages"] == []
    out = pet.feed(out.state, pet.FeedPet("snack"), T0 + 1, RNG, CFG)  # xp 30: teen
    assert out.response["stages"] == ["teen"]
    assert out.state.inventory == {"ticket": 1}
    out = pet.feed(out.state, pet.FeedPet("cake"), T0 + 601, RNG, CFG)  # xp 55
    out = pet.feed(out.state, pet.FeedPet("snack"), T0 + 602, RNG, CFG)  # xp 60: adult
    assert out.response["stages"] == ["adult"]
    assert out.reservations == [("coupon:c10", 1)]
    assert [(g.ref, g.kind, g.reason, g.units) for g in out.grants] == [
        ("coupon:c10", "coupon", "stage:squirrel:adult", 1)]
    assert {"type": "coupon_granted", "coupon": "c10", "count": 1,
            "reason": "stage:squirrel:adult"} in out.events
    out = pet.feed(out.state, pet.FeedPet("snack"), T0 + 603, RNG, CFG)  # xp 65: nothing
    assert out.response["stages"] == [] and out.reservations == []
    assert out.state.pet is not None and out.state.pet.stage == 3


def test_stage_jump_grants_every_skipped_stage() -> None:
    foods = {"feast": {"name": "Feast", "effects": {"satiety": 1}, "xp": 100}}
    cfg = config(foods=foods)
    state = pet.adopt(None, pet.AdoptPet("squirrel", "N"), T0, RNG, cfg).state
    out = pet.feed(state, pet.FeedPet("feast"), T0, RNG, cfg)
    assert out.response["stages"] == ["teen", "adult"]
    assert out.state.inventory == {"ticket": 1} and out.reservations == [("coupon:c10", 1)]


def test_stage_reward_is_clamped_at_the_item_max() -> None:
    state = adopted(ticket=5)
    state = pet.feed(state, pet.FeedPet("cake"), T0, RNG, CFG).state
    out = pet.feed(state, pet.FeedPet("snack"), T0, RNG, CFG)
    assert out.state.inventory["ticket"] == 5
    assert {"type": "grant_capped", "reason": "stage:squirrel:teen",
            "lost": {"ticket": 1}} in out.events


def test_play_effects_xp_and_cooldown_boundary() -> None:
    out = pet.play(adopted(), pet.PlayWithPet(), T0 + 3600, RNG, CFG)
    assert out.state.pet is not None
    assert out.state.pet.stats["mood"] == 78_000 and out.state.pet.xp == 5
    assert out.state.cooldowns == {"play": T0 + 5400}
    with pytest.raises(Cooldown) as e:
        pet.play(out.state, pet.PlayWithPet(), T0 + 5399, RNG, CFG)
    assert e.value.details["retry_after"] == 1
    again = pet.play(out.state, pet.PlayWithPet(), T0 + 5400, RNG, CFG)
    assert again.state.pet is not None and again.state.pet.xp == 10


def test_clean_costs_and_restores() -> None:
    out = pet.clean(adopted(), pet.CleanPet(), T0 + 36_000, RNG, CFG)
    assert out.state.pet is not None
    assert out.state.pet.stats["clean"] == 100_000  # 70 + 50 clamped
    assert out.state.pet.stats["mood"] == 55_000  # 70 - 20 + 5
    assert out.state.wallet["acorn"] == 95
    assert out.state.cooldowns == {"clean": T0 + 39_600}


def test_species_without_play_or_produce() -> None:
    cfg = config(species=species_with(play=None, produce=None))
    state = pet.adopt(None, pet.AdoptPet("squirrel", "N"), T0, RNG, cfg).state
    with pytest.raises(FeatureDisabled) as e:
        pet.play(state, pet.PlayWithPet(), T0, RNG, cfg)
    assert e.value.code == "feature_disabled" and e.value.details == {"feature": "play"}
    with pytest.raises(FeatureDisabled):
        pet.collect(state, pet.CollectProduce(), T0 + 3600, RNG, cfg)


def _without_squirrel() -> object:
    """The base config with its one species renamed: a pet adopted before is orphaned."""
    return config(species={"chipmunk": species_with()["squirrel"]})


@pytest.mark.parametrize("rule,action", [(pet.feed, pet.FeedPet("snack")),
                                         (pet.play, pet.PlayWithPet()),
                                         (pet.clean, pet.CleanPet()),
                                         (pet.collect, pet.CollectProduce())])
def test_a_pet_whose_species_left_the_config_is_refused_not_crashed(
        rule: object, action: object) -> None:
    state = adopted()
    with pytest.raises(SpeciesRetired) as e:
        rule(state, action, T0 + 36_000, RNG, _without_squirrel())  # type: ignore[operator]
    assert e.value.code == "species_retired" and e.value.details == {"species": "squirrel"}
    assert state == adopted()  # nothing changed


def test_the_owner_of_a_retired_species_may_adopt_again() -> None:
    cfg = _without_squirrel()
    state = adopted()
    out = pet.adopt(state, pet.AdoptPet("chipmunk", "Nutty"), T0 + 60, RNG, cfg)  # type: ignore[arg-type]
    assert out.state.pet is not None
    assert (out.state.pet.species, out.state.pet.name, out.state.pet.xp) == ("chipmunk", "Nutty", 0)
    assert out.state.pet.adopted_at == T0 + 60
    # what the old pet earned stays earned; the new one's first stage pays its own reward
    assert state.wallet == {"acorn": 100, "gem": 1}
    assert out.state.wallet == {"acorn": 100, "gem": 2}
    assert out.ledger == [LedgerEntry("currency", "gem", 1, 1, 2, "stage:chipmunk:baby")]
    with pytest.raises(PetAlreadyAdopted):  # a pet of a species the game has is kept
        pet.adopt(out.state, pet.AdoptPet("chipmunk", "Again"), T0 + 61, RNG, cfg)  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", [pet.feed, pet.play, pet.clean, pet.collect])
def test_no_pet(rule: object) -> None:
    action = {pet.feed: pet.FeedPet("snack"), pet.play: pet.PlayWithPet(),
              pet.clean: pet.CleanPet(), pet.collect: pet.CollectProduce()}[rule]  # type: ignore[index]
    with pytest.raises(NoPet):
        rule(None, action, T0, RNG, CFG)  # type: ignore[operator]
    with pytest.raises(NoPet):
        rule(PlayerState(created_at=T0), action, T0, RNG, CFG)  # type: ignore[operator]


@pytest.mark.parametrize(("value", "decay", "elapsed", "expected"), [
    (60_000, 5_000, 0, 60_000),
    (60_000, 5_000, 1, 59_999),        # floor(5000/3600) = 1
    (60_000, 5_000, 43_199, 2),        # floor(59_998.6)
    (60_000, 5_000, 43_200, 0),        # exactly zero at 12 h
    (60_000, 5_000, 50_000, 0),        # floored at 0
    (60_000, 0, 10**9, 60_000),
    (60_000, 5_000, -5, 60_000),       # clock skew never adds
])
def test_decay_table(value: int, decay: int, elapsed: int, expected: int) -> None:
    assert pet.decayed(value, decay, elapsed) == expected


def test_view_derived_states_at_the_low_boundary() -> None:
    state = adopted()
    # satiety 60 → 30 at exactly 6 h (not yet hungry), below at 6 h + 1 s
    at_6h = pet.player_view(state, CFG, T0 + 21_600)["pet"]
    assert at_6h["stats"]["satiety"]["value"] == 30.0 and at_6h["states"] == []
    after = pet.player_view(state, CFG, T0 + 21_601)["pet"]
    assert after["states"] == ["hungry"]


def test_rules_do_not_mutate_their_input() -> None:
    state = adopted(pine_cone=3)
    before = state.to_wire()
    pet.feed(state, pet.FeedPet("combo"), T0 + 7200, RNG, CFG)
    pet.play(state, pet.PlayWithPet(), T0 + 7200, RNG, CFG)
    pet.collect(state, pet.CollectProduce(), T0 + 7200, RNG, CFG)
    assert state.to_wire() == before


def test_wire_round_trip_and_old_states_load() -> None:
    state = pet.feed(adopted(), pet.FeedPet("snack"), T0 + 3600, RNG, CFG).state
    assert PlayerState.from_wire(state.to_wire()) == state
    old = state.to_wire()
    for key in ("ck", "tk", "od", "db", "ex", "rm"):
        del old[key]
    del old["p"]["sg"], old["p"]["pr"]
    loaded = PlayerState.from_wire(old)
    assert loaded.pet is not None and loaded.pet.stage == 0 and loaded.pet.produce_milli == 0
    assert loaded.tasks == {} and loaded.debts == {}
