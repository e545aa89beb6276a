"""Periodic settlement of pending value grants left behind by crashes.

A server killed between holding a grant (SQL row *pending*) and confirming or
cancelling it leaves the row pending and its unit counted as taken. Every
``interval`` seconds :meth:`ValueTier.reconcile` decides such rows: confirmed if
the player's commit happened (idempotency record or SQL ledger), voided otherwise
(the unit goes back to the stock). Rows younger than ``older_than_s`` are left
alone: their action may still be running. Several processes may reconcile at
once; settling is a conditional update on ``status = 'pending'``.

It also does the Redis step a merchant write still owes after its SQL commit
(``setStock``'s gate adjust, an ``admin_requests`` follow-up) when the process died
in between and no retry came; that step is idempotent per key.

And it ends gate holds past their deadline (:meth:`ValueTier.reconcile_holds`): a
server killed between reserving units in the Redis gate and writing them to SQL
leaves a hold SQL has no row for; its units go back to the gate, so the gate and SQL
converge within the hold's lifetime (``value.HOLD_TTL_MS``) plus one interval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gameserver.db.admin_requests import AdminRequests
from gameserver.jobs.periodic import PeriodicTask
from gameserver.state.value import PENDING_SETTLE_AFTER_S, ValueTier

log = logging.getLogger("petbox.reconciler")

OLDER_THAN_S = PENDING_SETTLE_AFTER_S
"""Twice the in-flight idempotency marker's lifetime (``keys.PENDING_TTL_MS``)."""


class Reconciler(PeriodicTask):
    """Runs ``reconcile`` on some value tiers every ``interval`` seconds."""

    name = "petbox-reconciler"

    def __init__(self, tiers: Sequence[ValueTier], interval: float, *,
                 older_than_s: float = OLDER_THAN_S, batch: int = 1000,
                 admin: AdminRequests | None = None) -> None:
        super().__init__(interval)
        self.tiers = list(tiers)
        self.admin = admin
        """Merchant writes' keys; their owed follow-ups go to ``tiers[0]`` (the real
        keyspace: merchant routes never write shadow data)."""
        self.older_than_s = older_than_s
        self.batch = batch
        self.confirmed = 0
        self.voided = 0

    async def run_once(self) -> tuple[int, int]:
        """Settle what is old enough on every tier; returns (confirmed, voided)."""
        confirmed = voided = 0
        for tier in self.tiers:
            await tier.reconcile_holds(self.batch)
            while True:
                c, v = await tier.reconcile(self.older_than_s, self.batch)
                confirmed, voided = confirmed + c, voided + v
                if c + v < self.batch:
                    break
        self.confirmed += confirmed
        self.voided += voided
        if confirmed or voided:
            log.info("reconciled pending grants: %d confirmed, %d voided", confirmed, voided)
        await self.settle_followups()
        return confirmed, voided

    async def settle_followups(self) -> int:
        """Do the owed follow-ups of merchant writes older than ``older_than_s``."""
        if self.admin is None or not self.tiers:
            return 0
        owed = await self.admin.owed_followups(self.older_than_s, self.batch)
        for stored in owed:
            await self.tiers[0].settle_stock_change(stored.merchant, stored.key,
                                                    stored.followup or {})
            await self.admin.clear_followup(stored.merchant, stored.key)
        if owed:
            log.info("settled %d owed merchant-write follow-ups", len(owed))
        return len(owed)
