"""Parked ledger entries: a shard's ledger entries a persister could not decode, tried
again every pass.

An entry this release cannot decode is legitimate while a deployment rolls: a persister
of the older release reads an entry a newer server wrote (say, a record of a column it
does not know). Dropping it would lose an acknowledged commit's ledger rows, records
and stored response, so the ledger stage parks it instead: ``park_ledger.lua`` copies
it to the shard's parked stream (:meth:`gameserver.state.keys.Keys.ledger_parked`,
with its original id in field ``parked_id``) and acknowledges and deletes it, in the
round trip that acknowledges the shard's other entries.

Every pass's scan reads up to :data:`PARKED_BATCH` parked entries of each shard (one
``XRANGE`` per shard in the scan's round trip: nothing more when none are parked).
Those that decode now go to SQL through the ledger's transactions (idempotent by
``(commit_id, seq)``, so an entry parked twice or also still in the ledger stream after
a crash is written once) and are then deleted from the parked stream; those that still
fail stay. Each pass reads on after the last entry the previous one tried, so entries
that still fail do not hide those behind them."""

from __future__ import annotations

import logging

from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport
from gameserver.persister.transactions import Part, Parts, Write, commit
from gameserver.persister.wire import Command, Entry, decode_entry, stream_entries

log = logging.getLogger(__name__)

PARKED_BATCH = 100
"""Parked entries one pass tries again per shard (they wait for a release that decodes
them, whose first pass writes them: a small batch keeps the other passes cheap)."""
PARKED_ID = b"parked_id"
"""The field of a parked copy that keeps the entry's original id (its rows' time)."""


class Parked:
    """Retries the parked ledger entries of a persister's shards."""

    def __init__(self, ctx: PassContext, write: Write) -> None:
        self.ctx = ctx
        self.write = write
        self._after: dict[int, bytes] = {}
        """Per shard: the last parked entry the previous pass tried (absent: from the
        start)."""

    def read(self, shard: int) -> Command:
        """The scan's command for the shard's next parked entries (see :meth:`take_read`)."""
        after = self._after.get(shard)
        start: bytes | str = b"(" + after if after else "-"
        return ("XRANGE", self.ctx.keys.ledger_parked(shard), start, "+",
                "COUNT", PARKED_BATCH)

    def take_read(self, report: PassReport, into: dict[int, list[Entry]], shard: int,
                  reply: object) -> None:
        """File one shard's ``XRANGE`` reply, or its failure."""
        if isinstance(reply, Exception):
            self.ctx.fail(report, "parked", [shard], reply)
            return
        entries = stream_entries(reply)
        if len(entries) < PARKED_BATCH:
            self._after.pop(shard, None)  # the end: the next pass starts over
        else:
            self._after[shard] = entries[-1][0]
        if entries:
            into[shard] = entries

    async def run(self, report: PassReport, reads: dict[int, list[Entry]]) -> None:
        """Write the parked entries that decode now to SQL, then delete them."""
        parts = {shard: part for shard, entries in sorted(reads.items())
                 if (part := self._part(shard, entries)).done}
        if parts:
            await commit(self.ctx, "parked", parts, self.write, self._delete, report)

    def _part(self, shard: int, entries: list[Entry]) -> Part:
        part = Part()
        failing = 0
        for parked_id, fields in entries:
            fields = dict(fields)
            entry_id = fields.pop(PARKED_ID, parked_id)
            try:
                rows, extra = decode_entry(entry_id, fields)
            except Exception:
                failing += 1
                continue
            part.done.append(parked_id)
            part.rows += rows
            if extra:
                part.extra.extend(extra)
        if failing:  # counted when parked; the backlog gauge shows they wait
            log.debug("persister: %s parked ledger entries of shard %s still cannot be "
                      "decoded", failing, shard)
        return part

    async def _delete(self, parts: Parts, report: PassReport) -> set[int]:
        """Delete the parked entries now in SQL (one round trip for all shards)."""
        ctx = self.ctx
        deleted = set(await ctx.per_shard(report, "parked", {
            shard: [("XDEL", ctx.keys.ledger_parked(shard), *part.done)]
            for shard, part in parts.items()}))
        rows = 0
        for shard in sorted(deleted):
            report.parked_written += len(parts[shard].done)
            rows += len(parts[shard].rows)
            log.info("persister: wrote %s parked ledger entries of shard %s",
                     len(parts[shard].done), shard)
        report.ledger_rows += rows
        ctx.metrics.persister_rows.labels("ledger").inc(rows)
        return deleted
