"""Debts: what a refund could not take back (spent already) is owed, and a later free
reward of the same currency or item repays it before the shopper's balance grows."""

from __future__ import annotations

from economy.rewards import Reward
from economy.wallet import LedgerEntry
from mechanics.grants import Effects, clawback, given_amounts, grant
from mechanics.state import PlayerState
from tests.unit.factory import T0, config

CFG = config()


def owing() -> PlayerState:
    """A shopper who spent 30 of a 40-acorn, 2-ticket reward, then had it refunded."""
    state = PlayerState(created_at=T0, wallet={"acorn": 10}, inventory={"ticket": 0})
    debt = clawback(state, Reward(currency={"acorn": 40}, items={"ticket": 2}), 1, "refund:o1",
                    Effects())
    assert debt == {"currency:acorn": 30, "item:ticket": 2}
    assert (state.wallet, state.inventory) == ({"acorn": 0}, {"ticket": 0})
    return state


def test_a_free_reward_repays_the_debt_first_and_the_rest_is_credited() -> None:
    state, fx = owing(), Effects()
    out = grant(state, Reward(currency={"acorn": 50}, items={"ticket": 1}), "checkin:d1",
                CFG, fx)
    assert state.debts == {"item:ticket": 1}
    assert (state.wallet, state.inventory) == ({"acorn": 20}, {"ticket": 0})
    assert out == {"currency": {"acorn": 50}, "items": {"ticket": 1},
                   "repaid": {"currency:acorn": 30, "item:ticket": 1}}
    assert fx.ledger == [LedgerEntry("currency", "acorn", 20, 0, 20, "checkin:d1")]
    assert fx.events == [{"type": "debt_repaid", "reason": "checkin:d1",
                          "repaid": {"currency:acorn": 30, "item:ticket": 1}}]
    # what repaid a debt was given: a later refund of this reward may take it all back
    assert given_amounts(out) == {"currency:acorn": 50, "item:ticket": 1}


def test_a_debt_smaller_than_the_reward_is_cleared() -> None:
    state, fx = owing(), Effects()
    grant(state, Reward(currency={"acorn": 30}, items={"ticket": 5}), "task:t", CFG, fx)
    assert state.debts == {}
    assert (state.wallet, state.inventory) == ({"acorn": 0}, {"ticket": 3})


def test_a_purchase_repays_nothing() -> None:
    state, fx = owing(), Effects()
    out = grant(state, Reward(currency={"acorn": 5}), "exchange:x", CFG, fx, strict=True)
    assert out == {"currency": {"acorn": 5}, "items": {}}
    assert state.debts == {"currency:acorn": 30, "item:ticket": 2}
    assert state.wallet == {"acorn": 5} and fx.events == []


def test_collected_produce_repays_a_debt_of_its_currency_first() -> None:
    from mechanics import pet
    from tests.unit.factory import NoRng

    state = pet.adopt(None, pet.AdoptPet("squirrel", "Nutty"), T0, NoRng(), CFG).state
    state.debts["currency:acorn"] = 4
    before = state.wallet["acorn"]
    out = pet.collect(state, pet.CollectProduce(), T0 + 3600, NoRng(), CFG)
    assert out.response["collected"] == {"acorn": 10}
    assert out.state.debts == {}
    assert out.state.wallet["acorn"] == before + 6
    assert {"type": "debt_repaid", "reason": "produce:squirrel",
            "repaid": {"currency:acorn": 4}} in out.events
