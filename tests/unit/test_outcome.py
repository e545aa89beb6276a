"""Typed effects of an outcome: stock holds, value grants, records."""

from __future__ import annotations

import pytest

from mechanics.outcome import Outcome, Record, StockHold, ValueGrant
from mechanics.state import PlayerState


def test_held_units_add_up_a_counter_held_twice() -> None:
    out = Outcome(PlayerState(created_at=0), {}, reservations=[
        StockHold("coupon:c10", 1), StockHold("offer:o", 1), StockHold("coupon:c10", 2)])
    assert out.held_units() == {"coupon:c10": 3, "offer:o": 1}
    assert out.reservations[0] == ("coupon:c10", 1)  # still a (ref, units) pair


def test_record_wire_round_trip_and_bad_input() -> None:
    record = Record("draws", {"item": "a", "nonce": 3})
    assert Record.from_wire(record.to_wire()) == record
    assert Record.from_wire(["revealed_seeds", "revealed_ms", {}]).at == "revealed_ms"
    with pytest.raises(ValueError, match="not a record"):
        Record.from_wire(["draws", 1, {}])


def test_value_grant_defaults_to_one_unit() -> None:
    grant = ValueGrant("prize:p", "coupon", "draw:s", {"position": 0})
    assert (grant.units, grant.reason) == (1, "draw:s")


def test_the_persister_finds_the_state_times_by_their_wire_keys() -> None:
    from gameserver.persister.wire import state_times, time_keys
    from gameserver.state.store import encode_state

    state = PlayerState(created_at=1_700_000_000, last_seen=1_700_000_500)
    state.wallet = {"coin": 3}
    assert time_keys() == ("c", "ls", "pa")
    # played since creation (no played_at: every state before it, a shopper's own first)
    assert state_times(encode_state(state)) == (1_700_000_000, 1_700_000_500, 1_700_000_000)
    state.played_at = 0  # created by a commit made for them: not played yet
    assert state_times(encode_state(state)) == (1_700_000_000, 1_700_000_500, 0)
    state.played_at = 1_700_000_400
    assert state_times(encode_state(state)) == (1_700_000_000, 1_700_000_500, 1_700_000_400)
