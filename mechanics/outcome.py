"""What a rule returns: the whole effect of one action, applied by one commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from economy.wallet import LedgerEntry
from mechanics.state import PlayerState


@dataclass(frozen=True)
class Outcome:
    """New state, the ledger entries that explain it, and the response body."""

    state: PlayerState
    response: dict[str, Any]
    ledger: list[LedgerEntry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[tuple[str, int]] = field(default_factory=list)
    """Global counters the server must reserve before committing (``coupon:<id>``,
    ``offer:<id>``) with the amount; if one cannot be reserved the outcome is dropped."""
