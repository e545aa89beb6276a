"""Balance changes as ``{name: delta}`` with a ledger entry for each (Nakama's wallet).

Every change to a currency balance or an inventory count goes through
:func:`apply_currency` or :func:`apply_items`, which refuse a negative result or a
balance over its limit *before* anything changes, and return ledger entries with
the before and after values. The store writes those entries in the same commit
as the state, so Σ deltas of a player's ledger always equals the balance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from economy.errors import BalanceLimit, InsufficientFunds, InsufficientItems

CURRENCY = "currency"
ITEM = "item"


@dataclass(frozen=True)
class LedgerEntry:
    """One balance change: ``after == before + delta``."""

    kind: str  # CURRENCY or ITEM
    name: str
    delta: int
    before: int
    after: int
    reason: str

    def to_wire(self) -> list[object]:
        """Compact form for the ledger stream."""
        return [self.kind, self.name, self.delta, self.before, self.after, self.reason]

    @classmethod
    def from_wire(cls, raw: list[object]) -> LedgerEntry:
        kind, name, delta, before, after, reason = raw
        assert isinstance(kind, str) and isinstance(name, str) and isinstance(reason, str)
        assert isinstance(delta, int) and isinstance(before, int) and isinstance(after, int)
        return cls(kind, name, delta, before, after, reason)


def apply_currency(
    wallet: Mapping[str, int],
    deltas: Mapping[str, int],
    reason: str,
    limits: Mapping[str, int],
) -> tuple[dict[str, int], list[LedgerEntry]]:
    """Apply currency deltas; raise before changing anything if one would go wrong."""
    return _apply(CURRENCY, wallet, deltas, reason, limits, keep_zero=True)


def apply_items(
    inventory: Mapping[str, int],
    deltas: Mapping[str, int],
    reason: str,
    limits: Mapping[str, int],
) -> tuple[dict[str, int], list[LedgerEntry]]:
    """Apply inventory deltas; counts never go below zero nor above the item's max."""
    return _apply(ITEM, inventory, deltas, reason, limits, keep_zero=False)


def _apply(kind: str, balances: Mapping[str, int], deltas: Mapping[str, int], reason: str,
           limits: Mapping[str, int], *, keep_zero: bool) -> tuple[dict[str, int],
                                                                   list[LedgerEntry]]:
    """The one balance rule: a result below zero is refused (the kind's own error), a
    credit past the limit is refused; an inventory drops counts that reach zero."""
    new = dict(balances)
    entries: list[LedgerEntry] = []
    for name, delta in sorted(deltas.items()):
        if delta == 0:
            continue
        before = new.get(name, 0)
        after = before + delta
        if after < 0:
            raise (InsufficientFunds if kind == CURRENCY else InsufficientItems)(
                name, before, -delta)
        limit = limits.get(name)
        if limit is not None and after > limit and delta > 0:
            raise BalanceLimit(name, before, delta, limit)
        if after == 0 and not keep_zero:
            new.pop(name, None)
        else:
            new[name] = after
        entries.append(LedgerEntry(kind, name, delta, before, after, reason))
    return new, entries
