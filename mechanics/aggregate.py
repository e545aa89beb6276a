"""What a rule on shared state returns: the aggregate's side of one action.

An action that touches a shopper and an aggregate (a vote, a join, a grab) is two
commits (docs/architecture.md, "Aggregates"): the aggregate's commit is the gate, and
``owed`` is what it records for the shopper's side, which a second commit applies
exactly once. ``owed`` is plain JSON data: the shopper's commit is driven from the
gate's record alone, after a crash too, so it must carry everything that commit needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OwedOther:
    """What the gate owes a shopper other than the one acting (a group's members when
    it fills, an assist's owner when the last help arrives). The commit records it with
    the acting shopper's own record, so it is applied exactly once by the same
    follow/settle steps and the owed reconciler, under ``key``: an Idempotency-Key
    of that shopper's, stable for the cause (e.g. ``assist-reward:<code>``) and never
    one a client can send (client keys have no ``:``)."""

    user: str
    key: str
    owed: dict[str, Any]


@dataclass(frozen=True)
class SharedOutcome:
    """New aggregate state, the gate's response, its ledger record and what it owes."""

    state: Any
    response: dict[str, Any]
    record: dict[str, Any] | None = None
    """The aggregate's ledger entry for this commit (goes to ``aggregate_ledger``)."""
    owed: dict[str, Any] | None = None
    """The shopper's side, applied by the second commit (None: nothing owed)."""
    others: tuple[OwedOther, ...] = ()
    """Other shoppers' sides, recorded by the same commit (see :class:`OwedOther`)."""
