"""The pass driver: :class:`Persister` composes the stages and runs them in order.

A pass covers all of its shards at once: epoch (:mod:`.epochs`), one scan that reads
every shard's ledger, parked ledger entries, dirty and idle players in one Redis round
trip, ledger (:mod:`.ledger`), the parked entries tried again (:mod:`.parked`), flush
(:mod:`.flush`) of the shards whose ledger drained (but for the players whose state the
ledger stage wrote with their entries), evict (:mod:`.evict`), aggregates
(:mod:`.aggregates`: shared state, same shard numbers), then the backlog gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from gameserver.clock import Clock
from gameserver.db import persist
from gameserver.db.aggregates import AggregateArchive
from gameserver.db.database import Database
from gameserver.db.persist import LedgerRow, PlayerRow
from gameserver.jobs.lease import ShardLeases
from gameserver.ops.metrics import Metrics
from gameserver.persister.aggregates import AggregatePass, AggregateStage
from gameserver.persister.context import Limits, PassContext
from gameserver.persister.epochs import DataLossCallback, Epochs
from gameserver.persister.evict import Evict
from gameserver.persister.flush import Flush, FlushedCallback
from gameserver.persister.ledger import Ledger
from gameserver.persister.parked import Parked
from gameserver.persister.report import Backlog, PassReport
from gameserver.persister.wire import Command, Entry, first_error, only_score
from gameserver.state.keys import LEDGER_GROUP, Keys

log = logging.getLogger(__name__)


@dataclass
class _Scan:
    """The first read of a pass, per shard (a shard whose read failed is absent)."""

    ledger: dict[int, list[Entry]]
    dirty: dict[int, list[str]]
    idle: dict[int, list[str]]
    cutoff: int
    aggregates: dict[int, tuple[list[str], list[str]]] = field(default_factory=dict)
    """Aggregate shard → (dirty, idle) aggregates, read by the same round trip."""
    parked: dict[int, list[Entry]] = field(default_factory=dict)
    """Parked ledger entries to try again (only shards that have some)."""


class Persister:
    """Writes one process's view of Redis behind to SQL; see the package docstring."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, metrics: Metrics, clock: Clock,
                 *, shards: int, batch: int = 2000, txn_rows: int = 5000,
                 idle_evict_after: int = 3600, consumer: str, claim_idle_ms: int = 30_000,
                 max_rounds: int = 8, only_shards: Iterable[int] | None = None,
                 assignment: ShardLeases | None = None) -> None:
        """``consumer`` names this persister in the ledger consumer group: keep it
        stable across restarts of one process slot (e.g. ``host:worker``) so its own
        unacknowledged entries are picked up again at once; entries of a consumer
        that never comes back are claimed after ``claim_idle_ms``. ``batch`` bounds
        what one read takes from each shard (ledger entries per command, dirty or idle
        players); ``txn_rows`` the rows of one SQL transaction (a shard's share of a
        read is never split, so one may hold more); ``max_rounds`` the reads per stage
        and shard in one pass. ``only_shards`` restricts this persister to some shards
        (default: all); with an ``assignment`` each pass works on the shards whose
        leases this host holds (several hosts split the shards, and take a dead one's
        over: :class:`gameserver.jobs.lease.ShardLeases`)."""
        if shards < 1 or batch < 1 or txn_rows < 1:
            raise ValueError("shards, batch and txn_rows must be positive")
        self.redis = redis
        self.keys = keys
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.shards = shards
        self.shard_ids = sorted(set(only_shards)) if only_shards is not None else list(
            range(shards))
        if assignment is not None:
            self.shard_ids = []  # none until the first pass takes their leases
        self.ctx = PassContext(redis, keys, db, metrics, clock, self.shard_ids, Limits(
            batch=batch, txn_rows=txn_rows, idle_evict_after=idle_evict_after,
            consumer=consumer, claim_idle_ms=claim_idle_ms, max_rounds=max_rounds))
        # The SQL halves go through this object's methods: they are the seams tests
        # override to crash or pause between the SQL commit and the Redis acknowledgement.
        self.flush = Flush(self.ctx, self._write_players)
        self.ledger = Ledger(self.ctx, self._write_ledger, self.flush.notify)
        self.parked = Parked(self.ctx, self.ledger.write_parts)
        self.epochs = Epochs(self.ctx, self.ledger.forget_group)
        self.evict = Evict(self.ctx)
        self.aggregates = AggregateStage(redis, keys, AggregateArchive(db), clock, batch=batch)
        self.last_aggregates = AggregatePass()
        """What the last pass's aggregate stage did (tests, tools)."""
        self.on_data_loss: list[DataLossCallback] = self.epochs.on_data_loss
        self.on_flushed: list[FlushedCallback] = self.flush.on_flushed
        self.assignment = assignment
        self.recovering: set[int] = self.epochs.recovering
        """Shards whose Redis lost data and whose ``on_data_loss`` callbacks have not
        all succeeded yet (value grants must fail closed for them)."""

    # -- the loop ----------------------------------------------------------------------

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Run passes every ``interval`` seconds until ``stop`` is set. Never raises
        for a failing Redis or SQL: the errors are logged, counted and retried."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # run_once contains stage errors; this is a safety net
                log.exception("persister pass failed")
                self.metrics.persister_errors.labels("pass").inc()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def run_once(self) -> PassReport:
        """One pass over every shard: epoch, scan, ledger, flush, evict; then the gauges."""
        report = PassReport()
        if self.assignment is not None:
            await self._reassign(report)
        report.lost_shards = await self.epochs.check(report)
        scan = await self._scan(report)
        drained = await self.ledger.drain(report, scan.ledger)
        await self.parked.run(report, scan.parked)
        await self.flush.run(report, self._left_to_flush(scan.dirty, drained),
                             hooks_told=bool(self.ledger.written))
        await self.evict.run(report, scan.idle, scan.cutoff)
        self.last_aggregates = await self.aggregates.run(self.ctx, report, scan.aggregates,
                                                         scan.cutoff)
        await self.ctx.stage(report, "gauges", -1, self.update_gauges())
        return report

    def _left_to_flush(self, dirty: dict[int, list[str]],
                       drained: set[int]) -> dict[int, list[str]]:
        """The scan's dirty players of the shards whose ledger drained, but for those
        whose state the ledger stage just wrote with its entries."""
        written = self.ledger.written
        return {shard: [m for m in members if m not in written.get(shard, ())]
                for shard, members in dirty.items() if shard in drained}

    async def final_flush(self, max_passes: int = 20, budget: float = 30.0) -> bool:
        """Pass until nothing is dirty and the ledger is drained, at most ``max_passes``
        times and ``budget`` seconds (for a graceful shutdown, after the server stopped
        taking actions). Returns whether everything was drained; what is not stays in
        Redis for the next persister."""
        try:
            async with asyncio.timeout(budget):
                for _ in range(max_passes):
                    if await self._drained_after_pass():
                        return True
        except TimeoutError:
            pass
        finally:
            await self.release_shards()
        log.warning("persister: final flush left work in Redis")
        return False

    # -- shards across hosts -----------------------------------------------------------

    async def _reassign(self, report: PassReport) -> None:
        """Work on the shards whose leases we hold; claim at once every pending ledger
        entry of a shard just taken (its previous holder is gone: its lease expired or
        was released), rather than after ``claim_idle_ms``."""
        assert self.assignment is not None
        try:
            mine = await self.assignment.assign()
        except Exception as exc:  # Redis down: no lease is ours; the stages fail anyway
            self.ctx.fail(report, "lease", [-1], exc)
            mine = []
        taken = [shard for shard in mine if shard not in self.shard_ids]
        self.shard_ids[:] = mine  # the list the context shares
        if taken:
            with contextlib.suppress(Exception):  # the idle claim is the fallback
                await self.ctx.round_trip([
                    ("XAUTOCLAIM", self.keys.ledger(shard), LEDGER_GROUP,
                     self.ctx.limits.consumer, 0, "0-0", "COUNT", self.ctx.limits.batch,
                     "JUSTID") for shard in taken])

    async def release_shards(self) -> None:
        """Give our shard leases up (after a final flush): others take them at once."""
        if self.assignment is not None:
            with contextlib.suppress(Exception):  # they expire anyway
                await self.assignment.release_all()

    async def _drained_after_pass(self) -> bool:
        report = await self.run_once()
        try:
            backlog = await self.backlog()
        except Exception:
            log.exception("persister: cannot read the backlog")
            backlog = None
        if report.ok and backlog is not None and backlog.empty:
            return True
        if not report.ok:
            await asyncio.sleep(0.1)
        return False

    # -- one stage at a time (tests and tools) -----------------------------------------

    async def check_epochs(self) -> list[int]:
        """Check every shard's epoch key; returns the shards found to have lost data."""
        return await self.epochs.check(PassReport())

    async def drain_ledger(self, report: PassReport,
                           shards: Iterable[int] | None = None) -> set[int]:
        """Move the ledger streams of ``shards`` (default: all) into SQL; returns the
        shards whose ledger stage succeeded."""
        reads = await self.ledger.read(report, self.ctx.shards(shards))
        return await self.ledger.drain(report, reads)

    async def flush_dirty(self, report: PassReport, shards: Iterable[int] | None = None) -> None:
        """Write the dirty players of ``shards`` (default: all) to SQL, oldest first."""
        members = await self.flush.dirty_members(report, self.ctx.shards(shards))
        await self.flush.run(report, members)

    async def evict_idle(self, report: PassReport, shards: Iterable[int] | None = None) -> None:
        """Drop players of ``shards`` (default: all) idle past ``idle_evict_after`` whose
        SQL copy is current."""
        cutoff = self.ctx.cutoff()
        idle = await self.evict.idle_members(report, self.ctx.shards(shards), cutoff, {})
        await self.evict.run(report, idle, cutoff)

    # -- the SQL halves (seams) --------------------------------------------------------

    async def _write_ledger(self, rows: list[LedgerRow],
                            extra: persist.CommitRows | None = None) -> None:
        """The SQL half of a drain, one transaction (a seam: tests make it crash after
        the commit)."""
        await persist.insert_ledger(self.db, rows, extra)

    async def _write_players(self, rows: list[PlayerRow]) -> None:
        """The SQL half of a flush, one transaction (a seam, like :meth:`_write_ledger`)."""
        await persist.upsert_players(self.db, rows)

    # -- scan: the first read of every stage, one round trip ---------------------------

    async def _scan(self, report: PassReport) -> _Scan:
        ctx = self.ctx
        cutoff = ctx.cutoff()
        scan = _Scan({}, {}, {}, cutoff)
        try:
            grouped = set(await self.ledger.ensure_groups(report, ctx.shard_ids))
            commands: list[Command] = []
            for shard in ctx.shard_ids:
                if shard in grouped:
                    commands += self.ledger.reads(shard)
                commands += [self.parked.read(shard), self.flush.dirty_read(shard),
                             self.evict.idle_read(shard, cutoff, 0),
                             *self.aggregates.reads(shard, cutoff)]
            replies = iter(await ctx.round_trip(commands))
        except Exception as exc:
            ctx.fail(report, "ledger", ctx.shard_ids, exc)
            ctx.fail(report, "evict", ctx.shard_ids, exc)
            return scan
        lost_groups: list[int] = []
        for shard in ctx.shard_ids:
            if shard in grouped:
                self.ledger.take_read(report, scan.ledger, lost_groups, shard,
                                      next(replies), next(replies), next(replies))
            self.parked.take_read(report, scan.parked, shard, next(replies))
            ctx.take_members(report, "flush", scan.dirty, shard, next(replies))
            ctx.take_members(report, "evict", scan.idle, shard, next(replies))
            self._take_aggregates(report, scan, shard, next(replies), next(replies))
        if lost_groups:  # Redis lost the group (e.g. FLUSHALL): create it, read again
            self.ledger.regroup(lost_groups)
            scan.ledger.update(await self.ledger.read(report, lost_groups))
        return scan

    def _take_aggregates(self, report: PassReport, scan: _Scan, shard: int, dirty: Any,
                         idle: Any) -> None:
        dirty_of: dict[int, list[str]] = {}
        idle_of: dict[int, list[str]] = {}
        self.ctx.take_members(report, "aggregates", dirty_of, shard, dirty)
        self.ctx.take_members(report, "aggregates", idle_of, shard, idle)
        if shard in dirty_of and shard in idle_of:
            scan.aggregates[shard] = (dirty_of[shard], idle_of[shard])

    # -- backlog -----------------------------------------------------------------------

    async def backlog(self) -> Backlog:
        """Dirty players, undrained and parked ledger entries and the persister lag, in
        one round trip."""
        keys = self.keys
        res = await self.ctx.round_trip([
            command for shard in self.shard_ids
            for command in (("ZCARD", keys.dirty(shard)), ("XLEN", keys.ledger(shard)),
                            ("ZRANGE", keys.dirty(shard), 0, 0, "WITHSCORES"),
                            ("XLEN", keys.ledger_parked(shard)))])
        if error := first_error(res):
            raise error
        dirty = sum(res[0::4])
        ledger = sum(res[1::4])
        oldest = [only_score(first) for first in res[2::4] if first]
        lag = max(0.0, self.clock.now() - min(oldest) / 1000) if oldest else 0.0
        return Backlog(int(dirty), int(ledger), lag, int(sum(res[3::4])))

    async def update_gauges(self) -> Backlog:
        """Set ``persister_backlog{kind}`` (``dirty``, ``ledger``, ``parked``) and
        ``persister_lag_seconds`` from Redis."""
        backlog = await self.backlog()
        self.metrics.persister_backlog.labels("dirty").set(backlog.dirty)
        self.metrics.persister_backlog.labels("ledger").set(backlog.ledger)
        self.metrics.persister_backlog.labels("parked").set(backlog.parked)
        self.metrics.persister_lag.set(backlog.lag_seconds)
        return backlog
