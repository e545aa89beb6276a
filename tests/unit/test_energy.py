"""Energy, the worked example of a mechanic added through the registry: lazy refill
up to a cap, spending, the view, the config section and the player-state slice.

The energy below: max 5, one refill of 2 units every 600 s (so 4 + 2 caps at 5).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import msgpack
import pytest

from economy.energy import Energy, NotEnoughEnergy
from economy.errors import ConfigInvalid, FeatureDisabled, InvalidInput
from gameserver.state.store import decode_state, encode_state
from mechanics.energy import SpendEnergy, energy_at, energy_view, ready_at, spend, spend_energy
from mechanics.energystate import EnergyState
from mechanics.state import PlayerState, new_player
from tests.unit.factory import T0, NoRng, config

E = Energy(name="Stamina", max=5, refill_seconds=600, refill_amount=2)
CFG = config(energy={"name": "Stamina", "max": 5, "refill_seconds": 600, "refill_amount": 2})
SH = ZoneInfo("Asia/Shanghai")


# -- refill ----------------------------------------------------------------------


def test_a_player_who_never_spent_is_full_with_no_timer() -> None:
    assert energy_at(None, E, T0) == EnergyState(5, T0)


@pytest.mark.parametrize(("elapsed", "expected"), [
    (0, EnergyState(0, T0)),
    (599, EnergyState(0, T0)),             # one second before the first refill
    (600, EnergyState(2, T0 + 600)),       # the refill instant itself
    (1199, EnergyState(2, T0 + 600)),      # partial progress kept: timer stays at 600
    (1200, EnergyState(4, T0 + 1200)),
    (1799, EnergyState(4, T0 + 1200)),
    (1800, EnergyState(5, T0 + 1800)),     # 4 + 2 capped at 5; full: timer is now
    (10_000, EnergyState(5, T0 + 10_000)),  # stays capped however long
])
def test_refill_steps_at_whole_periods_and_stops_at_the_cap(
        elapsed: int, expected: EnergyState) -> None:
    assert energy_at(EnergyState(0, T0), E, T0 + elapsed) == expected


def test_a_clock_before_the_stored_instant_never_takes_energy_back() -> None:
    assert energy_at(EnergyState(3, T0), E, T0 - 500) == EnergyState(3, T0)


def test_a_value_above_a_lowered_cap_is_brought_down_to_it() -> None:
    assert energy_at(EnergyState(9, T0), E, T0 + 1) == EnergyState(5, T0 + 1)


@pytest.mark.parametrize(("stored", "need", "expected"), [
    (EnergyState(3, T0), 3, T0),           # already there: the stored instant
    (EnergyState(3, T0), 4, T0 + 600),
    (EnergyState(3, T0), 5, T0 + 600),     # one refill of 2 covers both
    (EnergyState(0, T0), 5, T0 + 1800),    # 0 → 2 → 4 → 5
])
def test_ready_at_is_the_first_refill_that_covers_the_need(
        stored: EnergyState, need: int, expected: int) -> None:
    assert ready_at(stored, E, need) == expected


# -- spend -----------------------------------------------------------------------


def test_the_first_spend_of_a_full_player_starts_the_timer_then() -> None:
    assert spend(None, E, T0 + 50, 2) == EnergyState(3, T0 + 50)
    assert energy_at(EnergyState(3, T0 + 50), E, T0 + 649) == EnergyState(3, T0 + 50)
    assert energy_at(EnergyState(3, T0 + 50), E, T0 + 650) == EnergyState(5, T0 + 650)


def test_spending_keeps_the_partial_progress_of_the_next_refill() -> None:
    # 1 unit at T0, 300 s later still 1, spend it: the refill still comes at T0 + 600
    assert spend(EnergyState(1, T0), E, T0 + 300, 1) == EnergyState(0, T0)


def test_spending_everything_leaves_zero() -> None:
    assert spend(None, E, T0, 5) == EnergyState(0, T0)


def test_spending_more_than_there_is_says_when_there_will_be_enough() -> None:
    with pytest.raises(NotEnoughEnergy) as err:
        spend(EnergyState(1, T0), E, T0 + 100, 4)
    assert err.value.details == {"have": 1, "need": 4, "ready_at": T0 + 1200,
                                 "retry_after": 1100}


def test_spending_at_zero_refuses_until_the_refill() -> None:
    with pytest.raises(NotEnoughEnergy) as err:
        spend(EnergyState(0, T0), E, T0 + 599, 1)
    assert err.value.details["ready_at"] == T0 + 600
    assert err.value.details["retry_after"] == 1
    assert spend(EnergyState(0, T0), E, T0 + 600, 1) == EnergyState(1, T0 + 600)


@pytest.mark.parametrize("amount", [0, -1, 6])
def test_an_amount_outside_one_to_max_is_invalid(amount: int) -> None:
    with pytest.raises(InvalidInput) as err:
        spend(None, E, T0, amount)
    assert err.value.details == {"field": "amount", "problems": [
        {"path": "$.amount", "message": err.value.message}]}


# -- the action rule and the view --------------------------------------------------


def test_spend_energy_changes_only_the_energy_and_last_seen() -> None:
    before = new_player(CFG, T0)
    out = spend_energy(before, SpendEnergy(2), T0 + 10, NoRng(), CFG, tz=SH)
    assert before.energy is None  # the loaded state is untouched
    expected = before.copy()
    expected.energy, expected.last_seen = EnergyState(3, T0 + 10), T0 + 10
    assert out.state == expected
    assert out.ledger == [] and out.events == []
    assert out.response["spent"] == 2
    assert out.response["player"]["energy"] == {
        "name": "Stamina", "value": 3, "max": 5, "next_refill_at": T0 + 610,
        "full_at": T0 + 610}


def test_a_new_player_can_spend() -> None:
    out = spend_energy(None, SpendEnergy(5), T0, NoRng(), CFG)
    assert out.state.energy == EnergyState(0, T0)
    assert out.state.created_at == T0 and out.state.wallet == {"acorn": 100, "gem": 0}


def test_a_game_without_energy_refuses_and_shows_none() -> None:
    plain = config()
    with pytest.raises(FeatureDisabled):
        spend_energy(None, SpendEnergy(1), T0, NoRng(), plain)
    assert energy_view(new_player(plain, T0), plain, T0, SH) is None


def test_the_view_of_a_full_player_has_no_refill_times() -> None:
    assert energy_view(new_player(CFG, T0), CFG, T0, None) == {
        "name": "Stamina", "value": 5, "max": 5, "next_refill_at": None, "full_at": None}


def test_the_view_brings_the_energy_forward_to_now() -> None:
    state = new_player(CFG, T0)
    state.energy = EnergyState(0, T0)
    assert energy_view(state, CFG, T0 + 1250, SH) == {
        "name": "Stamina", "value": 4, "max": 5, "next_refill_at": T0 + 1800,
        "full_at": T0 + 1800}


# -- config section ----------------------------------------------------------------


def test_the_section_builds_with_its_defaults() -> None:
    cfg = config(energy={"max": 3, "refill_seconds": 60})
    assert cfg.energy == Energy(name="Energy", max=3, refill_seconds=60, refill_amount=1)
    assert config().energy is None


def test_the_section_reports_every_problem_with_its_path() -> None:
    with pytest.raises(ConfigInvalid) as err:
        config(energy={"max": 0, "refill_seconds": 60, "colour": "red"})
    assert err.value.problems == [
        {"path": "$.energy.max", "message": "must be ≥ 1"},
        {"path": "$.energy.colour", "message": "is not a known field"},
    ]


def test_the_cross_check_refuses_a_refill_above_the_cap() -> None:
    with pytest.raises(ConfigInvalid) as err:
        config(energy={"max": 3, "refill_seconds": 60, "refill_amount": 4})
    assert err.value.problems == [{"path": "$.energy.refill_amount", "message": "exceeds max"}]


# -- the slice on the wire ----------------------------------------------------------


def test_the_energy_slice_round_trips_under_its_own_key() -> None:
    state = PlayerState(created_at=T0, energy=EnergyState(2, T0 + 5))
    blob = encode_state(state)
    assert msgpack.unpackb(blob)["en"] == [2, T0 + 5]
    assert decode_state(blob) == state


def test_a_player_who_never_spent_has_no_energy_key() -> None:
    assert "en" not in msgpack.unpackb(encode_state(new_player(CFG, T0)))
