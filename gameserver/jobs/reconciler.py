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

from gameserver.db.admin_requests import AdminRequests, Stored
from gameserver.db.keyset import KeysetPages
from gameserver.http.errors import REDIS_UNAVAILABLE
from gameserver.jobs.periodic import PeriodicTask
from gameserver.state.value import PENDING_SETTLE_AFTER_S, RECONCILE_PAGES, ValueTier

log = logging.getLogger("petbox.reconciler")

OLDER_THAN_S = PENDING_SETTLE_AFTER_S
"""Twice the in-flight idempotency marker's lifetime (``keys.PENDING_TTL_MS``)."""


class Reconciler(PeriodicTask):
    """Runs ``reconcile`` on some value tiers every ``interval`` seconds."""

    name = "petbox-reconciler"

    def __init__(self, tiers: Sequence[ValueTier], interval: float, *,
                 older_than_s: float = OLDER_THAN_S, batch: int = 1000,
                 pages: int = RECONCILE_PAGES, admin: AdminRequests | None = None) -> None:
        super().__init__(interval)
        self.tiers = list(tiers)
        self.admin = admin
        """Merchant writes' keys; their owed follow-ups go to ``tiers[0]`` (the real
        keyspace: merchant routes never write shadow data)."""
        self.older_than_s = older_than_s
        self.batch = batch
        """Rows a read (pending grants: one page; expired holds: one bucket's)."""
        self.pages = pages
        """Pages a pass reads at most of pending grants on a tier, and of owed follow-ups:
        a pass stays bounded, and the next one goes on where a capped one stopped."""
        self._owed: KeysetPages[int] = KeysetPages(0)  # follow-ups, by admin_requests id
        self.confirmed = 0
        self.voided = 0

    async def run_once(self) -> tuple[int, int]:
        """Settle what is old enough on every tier; returns (confirmed, voided).

        On a Redis Cluster with a master down, the work on the other masters is done and
        what lives on the silent one is skipped (``unreached``), not the whole pass."""
        confirmed = voided = 0
        unreached: list[str] = []
        for tier in self.tiers:
            await tier.reconcile_holds(self.batch, unreached)
            # Paged by commit id: rows skipped (a silent master's) never hide the rest.
            c, v = await tier.reconcile(self.older_than_s, self.batch, unreached, self.pages)
            confirmed, voided = confirmed + c, voided + v
        self.confirmed += confirmed
        self.voided += voided
        if confirmed or voided:
            log.info("reconciled pending grants: %d confirmed, %d voided", confirmed, voided)
        await self.settle_followups(unreached)
        self.record_unreached(unreached)  # gate buckets, shards, follow-ups
        return confirmed, voided

    async def settle_followups(self, unreached: list[str] | None = None) -> int:
        """Do the owed follow-ups of merchant writes older than ``older_than_s``; one
        whose Redis node does not answer stays owed (its key appended to ``unreached``).

        Read by row id, ``batch`` a page after a cursor (at most ``pages`` pages), as
        pending grants are: a full page of follow-ups a silent master holds never hides
        the ones behind it."""
        if self.admin is None or not self.tiers:
            return 0
        admin, older_than_s = self.admin, self.older_than_s
        settled = 0
        async for owed in self._owed.walk(
                lambda after, n: admin.owed_followups(older_than_s, n, after),
                lambda row: row[0], self.batch, self.pages):
            settled += await self._settle_owed([stored for _, stored in owed], unreached)
        if settled:
            log.info("settled %d owed merchant-write follow-ups", settled)
        return settled

    async def _settle_owed(self, owed: list[Stored], unreached: list[str] | None) -> int:
        """One page of :meth:`settle_followups`: the follow-ups done."""
        assert self.admin is not None
        settled = 0
        for stored in owed:
            if not stored.followup:
                continue  # none owed after all (JSON null)
            try:
                await self.tiers[0].settle_stock_change(stored.merchant, stored.key,
                                                        stored.followup)
            except REDIS_UNAVAILABLE as exc:
                log.warning("follow-up of merchant write %s left for the next pass: %r",
                            stored.key, exc)
                if unreached is not None:
                    unreached.append(f"follow-up {stored.key}")
                continue
            await self.admin.clear_followup(stored.merchant, stored.key)
            settled += 1
        return settled
