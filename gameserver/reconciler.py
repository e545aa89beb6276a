"""Periodic settlement of pending value grants left behind by crashes.

A server killed between holding a grant (SQL row *pending*) and confirming or
cancelling it leaves the row pending and its unit counted as taken. Every
``interval`` seconds :meth:`ValueTier.reconcile` decides such rows: confirmed if
the player's commit happened (idempotency record or SQL ledger), voided otherwise
(the unit goes back to the stock). Rows younger than ``older_than_s`` are left
alone: their action may still be running. Several processes may reconcile at
once; settling is a conditional update on ``status = 'pending'``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gameserver.periodic import PeriodicTask
from gameserver.value import ValueTier

log = logging.getLogger("petbox.reconciler")

OLDER_THAN_S = 60.0
"""Twice the in-flight idempotency marker's lifetime (``keys.PENDING_TTL_MS``)."""


class Reconciler(PeriodicTask):
    """Runs ``reconcile`` on some value tiers every ``interval`` seconds."""

    name = "petbox-reconciler"

    def __init__(self, tiers: Sequence[ValueTier], interval: float, *,
                 older_than_s: float = OLDER_THAN_S, batch: int = 1000) -> None:
        super().__init__(interval)
        self.tiers = list(tiers)
        self.older_than_s = older_than_s
        self.batch = batch
        self.confirmed = 0
        self.voided = 0

    async def run_once(self) -> tuple[int, int]:
        """Settle what is old enough on every tier; returns (confirmed, voided)."""
        confirmed = voided = 0
        for tier in self.tiers:
            while True:
                c, v = await tier.reconcile(self.older_than_s, self.batch)
                confirmed, voided = confirmed + c, voided + v
                if c + v < self.batch:
                    break
        self.confirmed += confirmed
        self.voided += voided
        if confirmed or voided:
            log.info("reconciled pending grants: %d confirmed, %d voided", confirmed, voided)
        return confirmed, voided
