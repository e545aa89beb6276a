"""Write-behind of aggregates: the persister's aggregate stage (after evict).

The persister's scan (one round trip for every shard, players and aggregates) also
reads each aggregate shard's dirty and idle members (:meth:`AggregateStage.reads`), so
a pass with no aggregate work costs no round trip more. For a shard with dirty
members: one snapshot (``agg_flush_read.lua``) of the shard's ledger stream and those
members' states; write
the ledger rows and the states to SQL in one transaction (``AggregateArchive.write``):
the snapshot's states when it holds the whole stream, and in any case the state each
aggregate's newest entry carries (field ``n``), so a key SQL holds always comes with a
state at least that new;
then delete the written entries (``XDEL``) and mark the states flushed
(``mark_flushed.lua``, shared with players); finally evict aggregates idle for
``idle_evict_after`` whose state SQL holds (``evict.lua``: a tombstone stays,
telling the next read-through that the keys are intact).

Safe on many hosts at once without a lease: rows are inserted once by commit id,
states only over an older version, ``XDEL`` and the marks are idempotent; two hosts
draining one shard only do the same work twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from gameserver.clock import Clock
from gameserver.db.aggregates import AggregateArchive
from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport
from gameserver.persister.wire import Command
from gameserver.state.keys import Keys
from gameserver.state.scripts import Script

log = logging.getLogger("petbox.aggregates.persist")

ROUNDS = 8
"""Snapshots per shard and pass (each at most a batch of entries)."""


@dataclass
class AggregatePass:
    """What one pass did, for tests and metrics."""

    entries: int = 0
    states: int = 0
    evicted: int = 0
    failed: list[int] = field(default_factory=list)
    """Shards whose pass failed (SQL or Redis unavailable): retried next pass."""


def _member_parts(member: str) -> tuple[str, str, str, str]:
    merchant, game, kind, aggregate = member.split(":", 3)
    return merchant, game, kind, aggregate


def _fields(raw: list[Any]) -> dict[str, bytes]:
    return {raw[i].decode(): raw[i + 1] for i in range(0, len(raw), 2)}


def ledger_row(fields: dict[str, bytes]) -> dict[str, Any]:
    """An ``aggregate_ledger`` row from a stream entry written by ``agg_commit.lua``."""
    merchant, game, kind, aggregate = _member_parts(fields["g"].decode())
    return {"commit_id": fields["c"].decode(), "merchant_id": merchant, "game_id": game,
            "kind": kind, "aggregate_id": aggregate, "version": int(fields["v"]),
            "user_id": fields["u"].decode(), "idem_key": fields["k"].decode(),
            "request_hash": fields["h"].decode(), "status": int(fields["s"]),
            "body": bytes(fields["r"]), "entry": bytes(fields["d"]), "ts_ms": int(fields["t"])}


def _state_row(member: str, version: int, state: bytes, now_ms: int) -> dict[str, Any]:
    """An ``aggregates`` row: ``member``'s state at ``version``, flushed at ``now_ms``."""
    merchant, game, kind, aggregate = _member_parts(member)
    return {"merchant_id": merchant, "game_id": game, "kind": kind, "aggregate_id": aggregate,
            "version": version, "state": bytes(state), "flushed_ms": now_ms}


class AggregateStage:
    """Flushes dirty aggregates and their ledger to SQL, and evicts idle ones (aggregate
    shards have the same numbers as the persister's player shards)."""

    def __init__(self, redis: Redis, keys: Keys, archive: AggregateArchive, clock: Clock, *,
                 batch: int = 1000, tombstone_ms: int = 86_400_000) -> None:
        self.redis = redis
        self.keys = keys
        self.archive = archive
        self.clock = clock
        self.batch = batch
        self.tombstone_ms = tombstone_ms
        """How long an evicted aggregate's tombstone stays: the idempotency lifetime."""
        self._read = Script.named("agg_flush_read", redis=redis)
        self._mark = Script.named("mark_flushed", redis=redis)
        self._evict = Script.named("evict", redis=redis)

    def reads(self, shard: int, cutoff: int) -> list[Command]:
        """The scan's commands for ``shard``: its dirty aggregates, its idle ones."""
        return [("ZRANGE", self.keys.aggregate_dirty(shard), 0, self.batch - 1),
                ("ZRANGEBYSCORE", self.keys.aggregate_active(shard), "-inf", cutoff,
                 "LIMIT", 0, self.batch)]

    async def run(self, ctx: PassContext, report: PassReport,
                  found: dict[int, tuple[list[str], list[str]]], cutoff: int) -> AggregatePass:
        """The stage of a persister pass over the shards the scan found work in
        (shard → dirty members, idle members). A failing shard is logged, counted and
        named in ``report`` (stage ``aggregates``) and retried next pass."""
        done = AggregatePass()
        for shard, (dirty, idle) in sorted(found.items()):
            if (dirty or idle) and not await ctx.stage(
                    report, "aggregates", shard, self._shard(shard, dirty, idle, cutoff, done)):
                done.failed.append(shard)
        return done

    async def _shard(self, shard: int, dirty: list[str], idle: list[str], cutoff: int,
                     done: AggregatePass) -> None:
        if dirty:
            await self._flush_shard(shard, dirty, done)
        if idle:
            done.evicted += await self._evict_shard(shard, idle, cutoff)

    async def _flush_shard(self, shard: int, members: list[str], report: AggregatePass
                           ) -> None:
        """Snapshots until one holds the whole stream (then the states go too), at most
        ``ROUNDS``: under a burst the entries drain a batch at a time meanwhile."""
        for _ in range(ROUNDS):
            if await self._flush_round(shard, members, report):
                return

    async def _flush_round(self, shard: int, members: list[str], report: AggregatePass
                           ) -> bool:
        """One snapshot to SQL; whether it held the whole stream (all states flushed).
        The states the entries carry (each aggregate's newest entry's) go with them
        whether it did or not."""
        hashes = [self.keys.aggregate_from_member(shard, m) for m in members]
        entries, more, states = await self._read(
            keys=[self.keys.aggregate_ledger(shard), *hashes], args=[self.batch])
        fields = [_fields(raw) for _, raw in entries]
        rows = [ledger_row(f) for f in fields]
        now_ms = int(self.clock.now() * 1000)
        flushed = dict(self._entry_states(fields, now_ms))
        if not more:  # the snapshot's states: as new as any entry's (or gone)
            for member, row in self._state_rows(members, states, now_ms):
                if row is not None or member not in flushed:
                    flushed[member] = row
        # One order for every host (several may flush a shard at once): no deadlock.
        flushed = dict(sorted(flushed.items()))
        await self.archive.write(rows, [row for row in flushed.values() if row is not None])
        if entries:
            await self.redis.xdel(self.keys.aggregate_ledger(shard),
                                  *[entry_id for entry_id, _ in entries])
        if flushed:
            args: list[str] = []
            for member, row in flushed.items():
                args += [member, "" if row is None else str(row["version"])]
            await self._mark(keys=[self.keys.aggregate_dirty(shard),
                                   *(self.keys.aggregate_from_member(shard, m)
                                     for m in flushed)], args=args)
        report.entries += len(rows)
        report.states += sum(1 for row in flushed.values() if row is not None)
        return not more

    @staticmethod
    def _entry_states(entries: list[dict[str, bytes]], now_ms: int
                      ) -> list[tuple[str, dict[str, Any] | None]]:
        """The state of each aggregate's newest entry, if that entry carries one
        (field ``n``; entries of servers before it have none)."""
        newest: dict[str, tuple[int, bytes | None]] = {}
        for f in entries:
            member, version = f["g"].decode(), int(f["v"])
            if member not in newest or version > newest[member][0]:
                newest[member] = (version, f.get("n"))
        return [(member, _state_row(member, version, state, now_ms))
                for member, (version, state) in newest.items() if state is not None]

    @staticmethod
    def _state_rows(members: list[str], states: list[Any], now_ms: int
                    ) -> list[tuple[str, dict[str, Any] | None]]:
        out: list[tuple[str, dict[str, Any] | None]] = []
        for i, member in enumerate(members):
            version, state = states[2 * i], states[2 * i + 1]
            if version is None or state is None:
                out.append((member, None))  # gone: mark_flushed drops it from dirty
                continue
            out.append((member, _state_row(member, int(version), bytes(state), now_ms)))
        return out

    async def _evict_shard(self, shard: int, idle: list[str], cutoff: int) -> int:
        keys = [self.keys.aggregate_dirty(shard), self.keys.aggregate_active(shard),
                *[self.keys.aggregate_from_member(shard, m) for m in idle]]
        return int(await self._evict(keys=keys, args=[cutoff, self.tombstone_ms, *idle]))
