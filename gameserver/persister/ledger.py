"""The ledger stage: drain every shard's ledger stream into SQL, then acknowledge.

A shard's stream is read through the consumer group ``LEDGER_GROUP``: this
consumer's own unacknowledged entries, entries stuck with a dead consumer
(``XAUTOCLAIM``), then new ones. The entries of all shards go to SQL in one
transaction (or several of about ``txn_rows`` rows; one shard's entries of one read
are never split), idempotent by ``(commit_id, seq)``; only after the SQL commit are
the entries acknowledged and deleted (one pipeline). A crash in between redelivers
them and the second insert changes nothing. Shards whose read was a full batch are
read again, up to ``max_rounds`` reads per pass. An entry that cannot be decoded is
parked in the shard's parked stream by the same round trip (:mod:`.parked`).

An entry carries its commit's new state (field ``n``): each player's newest entry of a
read goes to SQL in the transaction of its ledger rows and stored responses (over an
older version only), and the acknowledgement marks it flushed (``mark_flushed.lua``),
so SQL never holds a stored response without a state at least as new, and the flush
stage has nothing left to write for the player. A player whose newest entry has no
state (a server of an earlier release wrote it) is left to the flush stage, as
before."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from gameserver.db import persist
from gameserver.db.persist import LedgerRow, PlayerRow
from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport
from gameserver.persister.transactions import Part, Parts, commit
from gameserver.persister.wire import (
    Command,
    Entry,
    decode_entry,
    first_error,
    newest_states,
    player_row,
    read_entries,
    stream_entries,
)
from gameserver.state.keys import LEDGER_GROUP

log = logging.getLogger(__name__)

WriteLedger = Callable[[list[LedgerRow], persist.CommitRows], Awaitable[None]]
"""The SQL half of a drain: ledger rows and the rows their commits carry (records,
responses, states), one transaction."""
Notify = Callable[[list[PlayerRow]], Awaitable[None]]
"""Told the player rows written and marked flushed (the flush's ``on_flushed`` hooks)."""


class Ledger:
    """Reads, writes and acknowledges the ledger streams of a persister's shards."""

    def __init__(self, ctx: PassContext, write: WriteLedger,
                 notify: Notify | None = None) -> None:
        self.ctx = ctx
        self.write = write
        self.notify = notify
        self._groups: set[int] = set()
        """Shards whose consumer group is known to exist."""
        self._park = ctx.script("park_ledger")
        self._mark_flushed = ctx.script("mark_flushed")
        self.written: dict[int, set[str]] = {}
        """Per shard, the players whose state the last :meth:`drain` wrote and marked
        flushed: the flush stage of the pass need not read them (a commit after that
        is not drained yet, so the flush would hold it back anyway)."""

    def forget_group(self, shard: int) -> None:
        """The shard's group may be gone (Redis lost data): create it before reading."""
        self._groups.discard(shard)

    async def drain(self, report: PassReport, reads: dict[int, list[Entry]]) -> set[int]:
        """Write what was read to SQL, acknowledge it, and read again the shards that
        gave a full batch; returns the shards that had no error on the way."""
        drained = set(reads)
        limits = self.ctx.limits
        self.written = {}
        for round_ in range(limits.max_rounds):
            parts = {shard: self._part(shard, entries)
                     for shard, entries in reads.items() if entries}
            acked = await commit(self.ctx, "ledger", parts, self.write_parts, self._ack,
                                 report)
            drained -= set(parts) - acked
            full = [shard for shard in sorted(acked) if len(reads[shard]) >= limits.batch]
            if not full or round_ == limits.max_rounds - 1:
                break
            reads = await self.read(report, full)
            drained -= set(full) - set(reads)
        return drained

    def _part(self, shard: int, entries: list[Entry]) -> Part:
        """The rows of a shard's entries. An entry this release cannot decode (a newer
        release's while a deployment rolls, or a bug's) is logged and parked with the
        acknowledgement (:mod:`.parked` tries it again every pass) instead of blocking
        the stream; an entry deleted while pending (it comes back without fields) is
        only acknowledged. Each player's newest entry with a state adds its state."""
        part = Part()
        decoded: list[Entry] = []
        for entry_id, fields in entries:
            if not fields:
                part.done.append(entry_id)
                continue
            try:
                rows, extra = decode_entry(entry_id, fields)
            except Exception:
                log.exception("persister: parked undecodable ledger entry %r on shard %s",
                              entry_id, shard)
                self.ctx.metrics.persister_errors.labels("ledger_decode").inc()
                part.parked.append(entry_id)
                continue
            part.done.append(entry_id)
            decoded.append((entry_id, fields))
            part.rows += rows
            if extra:
                part.extra.extend(extra)
        now = int(self.ctx.clock.now())
        for member, (version, state) in newest_states(decoded).items():
            if state is None:
                continue
            try:
                part.extra.players.append(player_row(member.decode(), version, state, now))
            except Exception:  # its rows still go; the flush stage takes the state
                log.exception("persister: the state in %r's ledger entry v%s on shard %s "
                              "cannot be read", member, version, shard)
        return part

    async def write_parts(self, parts: Parts) -> None:
        """Write some shards' rows to SQL in one transaction (parked entries too)."""
        rows: list[LedgerRow] = []
        extra = persist.CommitRows()
        for part in parts.values():
            rows += part.rows
            extra.extend(part.extra)
        # One key order for every persister: concurrent batches cannot deadlock. Rows
        # are unique by (commit_id, seq), their first two fields: a plain sort does it.
        rows.sort()
        extra.sort()
        await self.write(rows, extra)

    async def _ack(self, parts: Parts, report: PassReport) -> set[int]:
        """Acknowledge and delete the entries now in SQL, park the undecodable ones and
        mark the states written flushed (one round trip for all shards); then tell the
        ``notify`` hook the states."""
        ctx = self.ctx
        commands: dict[int, list[Command]] = {}
        for shard, part in parts.items():
            key = ctx.keys.ledger(shard)
            mine = commands[shard] = []
            if part.done:
                mine += [("XACK", key, LEDGER_GROUP, *part.done), ("XDEL", key, *part.done)]
            if part.parked:
                mine.append(self._park.command(
                    [key, ctx.keys.ledger_parked(shard)], [LEDGER_GROUP, *part.parked]))
            if part.extra.players:
                mine.append(self._mark(shard, part.extra.players))
        replies = await ctx.per_shard(report, "ledger", commands)
        acked = set(replies)
        rows = 0
        states: list[PlayerRow] = []
        for shard in sorted(acked):
            part = parts[shard]
            report.ledger_entries += len(part.done)
            report.ledger_parked += len(part.parked)
            rows += len(part.rows)
            if part.extra.players:
                report.players_clean += int(replies[shard][-1])
                states += part.extra.players
                self.written.setdefault(shard, set()).update(
                    ":".join(row[:3]) for row in part.extra.players)
        report.ledger_rows += rows
        report.players_flushed += len(states)
        ctx.metrics.persister_rows.labels("ledger").inc(rows)
        ctx.metrics.persister_rows.labels("players").inc(len(states))
        if states and self.notify is not None:
            await self.notify(states)
        return acked

    def _mark(self, shard: int, states: list[PlayerRow]) -> Command:
        """``mark_flushed.lua`` for the states written: each player's flushed version
        (``f``, which eviction needs) and, unless it committed since, its dirty mark."""
        keys = self.ctx.keys
        members = [":".join(row[:3]) for row in states]
        args: list[Any] = []
        for member, row in zip(members, states, strict=True):
            args += (member, row.version)
        return self._mark_flushed.command(
            [keys.dirty(shard), *(keys.player_from_member(shard, m) for m in members)], args)

    async def read(self, report: PassReport, shards: list[int],
                   retry: bool = True) -> dict[int, list[Entry]]:
        """Up to ``batch`` entries of each shard: ours still pending, stuck ones claimed,
        then new ones (one round trip)."""
        found: dict[int, list[Entry]] = {}
        try:
            shards = await self.ensure_groups(report, shards)
            replies = await self.ctx.round_trip([command for shard in shards
                                                 for command in self.reads(shard)])
        except Exception as exc:
            self.ctx.fail(report, "ledger", shards, exc)
            return found
        lost_groups: list[int] = []
        for i, shard in enumerate(shards):
            self.take_read(report, found, lost_groups, shard, *replies[3 * i:3 * i + 3])
        if lost_groups and retry:
            self.regroup(lost_groups)
            found.update(await self.read(report, lost_groups, retry=False))
        elif lost_groups:
            self.ctx.fail(report, "ledger", lost_groups, ResponseError("NOGROUP"))
        return found

    def reads(self, shard: int) -> list[Command]:
        """The three commands of one shard's read (their replies go to :meth:`take_read`)."""
        ctx = self.ctx
        key, group, me = ctx.keys.ledger(shard), LEDGER_GROUP, ctx.limits.consumer
        count = ctx.limits.batch
        return [("XREADGROUP", "GROUP", group, me, "COUNT", count, "STREAMS", key, "0"),
                ("XAUTOCLAIM", key, group, me, ctx.limits.claim_idle_ms, "0-0", "COUNT", count),
                ("XREADGROUP", "GROUP", group, me, "COUNT", count, "STREAMS", key, ">")]

    def take_read(self, report: PassReport, into: dict[int, list[Entry]],
                  lost_groups: list[int], shard: int, mine: Any, claimed: Any,
                  new: Any) -> None:
        """File one shard's three ledger replies: its entries (each once), a lost group,
        or a failure."""
        error = first_error([mine, claimed, new])
        if error is not None:
            if "NOGROUP" in str(error):
                lost_groups.append(shard)
            else:
                self.ctx.fail(report, "ledger", [shard], error)
            return
        entries = read_entries(new)
        again = read_entries(mine) + stream_entries(claimed[1])
        if again:  # pending entries: ours after a failure, or claimed from a dead consumer
            entries = list(dict(again + entries).items())
        into[shard] = entries

    def regroup(self, lost_groups: list[int]) -> None:
        """Redis lost these shards' groups (e.g. FLUSHALL): create them on the next read."""
        self._groups.difference_update(lost_groups)

    async def ensure_groups(self, report: PassReport, shards: list[int]) -> list[int]:
        """Create the consumer group of the shards that may lack one (one round trip);
        returns the shards that have one."""
        missing = [shard for shard in shards if shard not in self._groups]
        if missing:
            replies = await self.ctx.round_trip([
                ("XGROUP", "CREATE", self.ctx.keys.ledger(shard), LEDGER_GROUP, "0",
                 "MKSTREAM") for shard in missing])
            for shard, reply in zip(missing, replies, strict=True):
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    self.ctx.fail(report, "ledger", [shard], reply)
                else:
                    self._groups.add(shard)
        return [shard for shard in shards if shard in self._groups]
