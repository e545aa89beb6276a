"""What a rule returns: the whole effect of one action, applied by one commit.

Besides the new state, its ledger and the response, an outcome carries typed effects
that the server acts on without knowing the mechanic that made them:

- :class:`StockHold`: units of a limited-stock counter (a prize, a coupon, an offer)
  the server must reserve before committing; if one cannot be, the outcome is dropped
  and the rule applied again with what is really left.
- :class:`ValueGrant`: value the merchant pays for (a prize, a coupon), written as
  grant rows that become final with the commit.
- :class:`Record`: a row the commit adds to a table of its mechanic (a draw, a revealed
  seed), carried by the ledger stream and written to SQL by the persister.

``events`` are notes for logs and tests only: no server code reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from economy.wallet import LedgerEntry
from mechanics.state import PlayerState


class StockHold(NamedTuple):
    """Units of one limited-stock counter (``prize:<id>``, ``coupon:<id>``,
    ``offer:<id>``) the server reserves before the commit."""

    ref: str
    units: int


@dataclass(frozen=True)
class ValueGrant:
    """Value granted against a counter the outcome holds: ``units`` grant rows, each
    pending until the commit happened, then confirmed (or void)."""

    ref: str
    """The counter it comes from (one of the outcome's :class:`StockHold` refs)."""
    kind: str
    """What it is, for the merchant's books (``coupon``, ``goods``, ...)."""
    reason: str
    """Why it was granted (``draw:<series>``, ``stage:<species>:<stage>``, ...)."""
    detail: Mapping[str, Any]
    """What the shopper got, stored with each row."""
    units: int = 1


@dataclass(frozen=True)
class Record:
    """A row for ``table``, written to SQL with the commit's ledger (a redelivered commit
    adds nothing: the table's unique key decides). The server adds the columns the
    table has among ``commit_id``, ``seq`` (the record's position in the outcome),
    ``merchant_id``, ``game_id``, ``user_id``, and the commit's time in ms in ``at``."""

    table: str
    fields: Mapping[str, Any]
    at: str = "ts_ms"
    """The column that takes the commit's time (ms)."""

    def to_wire(self) -> list[Any]:
        """Compact form for the ledger stream (see :meth:`from_wire`)."""
        return [self.table, self.at, dict(self.fields)]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> Record:
        table, at, fields = raw
        if not (isinstance(table, str) and isinstance(at, str) and isinstance(fields, dict)):
            raise ValueError(f"not a record: {raw!r}")
        return cls(table, fields, at)


LegacyRecord = Callable[[Mapping[str, Any]], Record]
"""Turns an event dict that servers before typed records wrote into the ledger stream
into its record (a mechanic's ``LEGACY_RECORDS`` maps event types to these)."""


@dataclass(frozen=True)
class Outcome:
    """New state, the ledger entries that explain it, the response body, and the typed
    effects the server applies with the commit."""

    state: PlayerState
    response: dict[str, Any]
    ledger: list[LedgerEntry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[StockHold] = field(default_factory=list)
    """Counters the server must reserve before committing, with the units; if one cannot
    be reserved the outcome is dropped."""
    grants: list[ValueGrant] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    def held_units(self) -> dict[str, int]:
        """Units per counter over all of :attr:`reservations` (a ref may come twice)."""
        units: dict[str, int] = {}
        for ref, count in self.reservations:  # a StockHold, or a plain (ref, units) pair
            units[ref] = units.get(ref, 0) + count
        return units
