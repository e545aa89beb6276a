"""Wallet deltas: before/after ledger entries, refusals before any change."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from economy.errors import BalanceLimit, InsufficientFunds, InsufficientItems
from economy.wallet import CURRENCY, ITEM, LedgerEntry, apply_currency, apply_items


def test_apply_currency_entries() -> None:
    wallet, entries = apply_currency({"acorn": 10, "gem": 1}, {"acorn": -4, "gem": 2, "x": 0},
                                     "feed", {"acorn": 100, "gem": 5})
    assert wallet == {"acorn": 6, "gem": 3}
    assert entries == [LedgerEntry(CURRENCY, "acorn", -4, 10, 6, "feed"),
                       LedgerEntry(CURRENCY, "gem", 2, 1, 3, "feed")]


def test_insufficient_funds_changes_nothing() -> None:
    wallet = {"acorn": 3}
    with pytest.raises(InsufficientFunds) as info:
        apply_currency(wallet, {"acorn": -4}, "feed", {})
    assert info.value.details == {"currency": "acorn", "have": 3, "need": 4}
    assert wallet == {"acorn": 3}


def test_limit() -> None:
    with pytest.raises(BalanceLimit) as info:
        apply_currency({"acorn": 99}, {"acorn": 2}, "grant", {"acorn": 100})
    assert info.value.details == {"currency": "acorn", "have": 99, "add": 2, "limit": 100}


def test_items_drop_at_zero() -> None:
    inventory, entries = apply_items({"cone": 2}, {"cone": -2, "nut": 1}, "x", {"nut": 9})
    assert inventory == {"nut": 1}
    assert entries == [LedgerEntry(ITEM, "cone", -2, 2, 0, "x"),
                       LedgerEntry(ITEM, "nut", 1, 0, 1, "x")]
    with pytest.raises(InsufficientItems):
        apply_items({}, {"cone": -1}, "x", {})


def test_wire_round_trip() -> None:
    entry = LedgerEntry(CURRENCY, "acorn", -4, 10, 6, "feed")
    assert LedgerEntry.from_wire(entry.to_wire()) == entry


@given(st.lists(st.integers(min_value=-50, max_value=50), max_size=40))
def test_balance_equals_sum_of_ledger(deltas: list[int]) -> None:
    wallet: dict[str, int] = {"acorn": 0}
    total = 0
    for delta in deltas:
        try:
            wallet, entries = apply_currency(wallet, {"acorn": delta}, "r", {"acorn": 500})
        except (InsufficientFunds, BalanceLimit):
            continue
        total += sum(e.delta for e in entries)
        assert wallet["acorn"] >= 0
        assert all(e.after == e.before + e.delta for e in entries)
    assert wallet["acorn"] == total
