"""The persister: writes Redis play state and ledgers behind to SQL (DESIGN.md, "Persister").

A pass covers all of its shards at once, in this order:

1. **epoch** — every shard's epoch key must be in Redis. It is recorded in SQL
   (``meta`` row ``epoch:<shard>``) the first time it is seen; if Redis lacks it
   while SQL has one, Redis lost the shard's data: the loss is counted, the
   ``on_data_loss`` callbacks run (the shard stays in :attr:`Persister.recovering`
   until they succeed), then a new epoch is written to both.
2. **scan** — one pipeline (one Redis round trip) reads, for every shard: its ledger
   stream through the consumer group ``LEDGER_GROUP`` (this consumer's own
   unacknowledged entries, entries stuck with a dead consumer (``XAUTOCLAIM``),
   then new ones), its oldest dirty players and its players idle past
   ``idle_evict_after``. Every command touches one shard's keys (one hash slot).
3. **ledger** — the entries of all shards go to SQL in one transaction (or several
   of about ``txn_rows`` rows when there are more; one shard's entries of one read
   are never split), idempotent by ``(commit_id, seq)``; only after the SQL commit
   are the entries acknowledged and deleted (one pipeline). A crash in between
   redelivers them and the second insert changes nothing. Shards whose read was a
   full batch are read again, up to ``max_rounds`` reads per pass.
4. **flush** — the dirty players of each shard whose ledger stage succeeded are
   read (``read_players.lua``, one call per shard), upserted in one transaction
   where SQL holds an older version, then ``mark_flushed.lua`` (one call per shard,
   one pipeline) records the flushed version (``f``) and clears the dirty mark of
   players that did not change meanwhile. The ledger goes first so SQL never holds
   a state whose ledger it lacks: a shard whose ledger failed is not flushed. Then
   the ``on_flushed`` callbacks get the rows (the leaderboards are built so).
5. **evict** — players idle past ``idle_evict_after`` whose SQL copy is current
   (``f == v``) and that are not dirty are deleted by ``evict.lua``, which
   re-checks everything atomically. The store reads them back from SQL.

A failing stage (SQL down, Redis down) is logged and counted once in
``petbox_persister_errors_total{stage}``; :attr:`PassReport.errors` names every
shard whose work it left in Redis, and the next pass retries it. When a transaction
holding several shards fails while SQL still answers, its shards are written again
one transaction each, so a row SQL rejects holds up only its own shard. Several
persisters may run at once (one per server process): consumer groups split the
ledger, rows go to SQL sorted (one lock order), and the version guard and the Lua
checks make concurrent flushes and evictions safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from gameserver.batching import round_trip
from gameserver.clock import Clock, SystemClock
from gameserver.db import persist
from gameserver.db.database import Database
from gameserver.db.persist import LedgerRow, PlayerRow
from gameserver.games import GameRegistry
from gameserver.keys import LEDGER_GROUP, Keys
from gameserver.leaderboards import LeaderboardUpdater
from gameserver.metrics import Metrics
from gameserver.scripts import load_script, reply_text
from gameserver.services import SHADOW_PREFIX
from gameserver.settings import Settings

log = logging.getLogger(__name__)

DataLossCallback = Callable[[int], Awaitable[None]]
"""Called with a shard whose Redis data was lost, before the shard gets a new epoch."""
FlushedCallback = Callable[[list[PlayerRow]], Awaitable[None]]
"""Called with the rows of a flush round once they are in SQL and marked flushed (e.g.
the leaderboard updater); a failing callback is logged and counted, the flush stands."""

STAGES = ("epoch", "ledger", "flush", "evict", "gauges")

Entry = tuple[bytes, dict[bytes, bytes]]
"""A ledger stream entry: id and fields."""
Command = tuple[Any, ...]
"""One Redis command, name first (every one touches the keys of one shard)."""


@dataclass
class _Script:
    """A Lua script run by SHA (``EVALSHA``), loaded again when Redis lost it."""

    source: str
    sha: str = ""

    def __post_init__(self) -> None:
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def call(self, keys: list[str], args: list[Any]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


@dataclass
class PassReport:
    """What one pass did, summed over shards."""

    ledger_entries: int = 0
    """Stream entries written to SQL and acknowledged."""
    ledger_rows: int = 0
    """Ledger rows in those entries (sent to SQL; duplicates are skipped there)."""
    players_flushed: int = 0
    """Player states sent to SQL."""
    players_clean: int = 0
    """Players whose dirty mark was cleared (unchanged since they were read)."""
    evicted: int = 0
    lost_shards: list[int] = field(default_factory=list)
    """Shards found to have lost their Redis data in this pass."""
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    """``(stage, shard, error)``: one per shard whose stage failed in this pass (its
    work stays in Redis); shard -1 for what is not per shard (the gauges, the read of
    every epoch key)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, other: PassReport) -> None:
        self.ledger_entries += other.ledger_entries
        self.ledger_rows += other.ledger_rows
        self.players_flushed += other.players_flushed
        self.players_clean += other.players_clean
        self.evicted += other.evicted
        self.lost_shards += other.lost_shards
        self.errors += other.errors


@dataclass(frozen=True)
class Backlog:
    """Work waiting in Redis, over all shards."""

    dirty: int
    ledger: int
    lag_seconds: float
    """Age of the oldest dirty mark (0 when nothing is dirty)."""

    @property
    def empty(self) -> bool:
        return self.dirty == 0 and self.ledger == 0


@dataclass
class _Part:
    """One shard's share of a SQL transaction, and what Redis is told once it committed."""

    rows: list[Any] = field(default_factory=list)
    events: persist.EventRows = field(default_factory=persist.EventRows)
    done: list[Any] = field(default_factory=list)
    """Ledger: the entry ids to acknowledge. Flush: ``mark_flushed.lua``'s arguments."""
    keys: list[str] = field(default_factory=list)
    """Flush: the player hashes, in ``done``'s order."""


@dataclass
class _Scan:
    """The first read of a pass, per shard (a shard whose read failed is absent)."""

    ledger: dict[int, list[Entry]]
    dirty: dict[int, list[str]]
    idle: dict[int, list[str]]
    cutoff: int


def split_member(member: str) -> tuple[str, str, str]:
    """``merchant:game:user`` → its parts (merchant and game ids never contain ``:``)."""
    merchant, game, user = member.split(":", 2)
    return merchant, game, user


def state_times(raw: bytes) -> tuple[int, int]:
    """``(created_at, last_seen)`` of a msgpack player state, for the SQL columns. Reads
    the map only up to both keys (``c`` is the first, ``ls`` the sixth): the values
    before them are skipped, the rest of the state is not decoded at all."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(raw)
    created = seen = 0
    wanted = 2
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key == "c":
            created = unpacker.unpack()
        elif key == "ls":
            seen = unpacker.unpack()
        else:
            unpacker.skip()
            continue
        wanted -= 1
        if not wanted:
            break
    return int(created), int(seen)


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.partition(b"-")[0])


_new_tuple = tuple.__new__
"""``_new_tuple(LedgerRow, values)`` builds a named row without the generated
``__new__``'s argument handling (a third of a row's cost; the persister builds one per
ledger row and per player)."""


def ledger_rows(entry_id: bytes, fields: dict[bytes, bytes]) -> list[LedgerRow]:
    """The SQL rows of one ledger stream entry (see commit.lua for the fields); the
    values are checked (``str``/``int``) so that a malformed entry fails here, where it
    is dropped, instead of in SQL."""
    raw = fields.get(b"d")
    if not raw:
        return []
    commit_id = fields[b"c"].decode()
    merchant, game, user = fields[b"p"].decode().split(":", 2)
    version = int(fields[b"v"])
    ts_ms = _entry_ms(entry_id)
    return [_new_tuple(LedgerRow, (commit_id, seq, merchant, game, user, version, str(kind),
                                   str(name), int(delta), int(before), int(after),
                                   str(reason), ts_ms))
            for seq, (kind, name, delta, before, after, reason)
            in enumerate(msgpack.unpackb(raw, raw=False))]


def entry_events(entry_id: bytes, fields: dict[bytes, bytes]) -> persist.EventRows:
    """Draw records, revealed seeds and the stored response carried by one ledger
    stream entry (entries written before responses moved to SQL carry none)."""
    raw = fields.get(b"e") or b""
    key = fields.get(b"k")
    if not raw and not key:
        return persist.EventRows()
    merchant, game, user = split_member(fields[b"p"].decode())
    commit_id, ts_ms = fields[b"c"].decode(), _entry_ms(entry_id)
    out = (persist.event_rows(commit_id, merchant, game, user, ts_ms,
                              msgpack.unpackb(raw, raw=False, strict_map_key=False))
           if raw else persist.EventRows())
    if key:
        out.responses.append(_new_tuple(persist.ResponseRow, (
            commit_id, merchant, game, user, key.decode(), int(fields[b"s"]),
            bytes(fields[b"r"]), ts_ms, (fields.get(b"h") or b"").decode())))
    return out


class Persister:
    """Writes one process's view of Redis behind to SQL; see the module docstring."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, metrics: Metrics, clock: Clock,
                 *, shards: int, batch: int = 2000, txn_rows: int = 5000,
                 idle_evict_after: int = 3600, consumer: str, claim_idle_ms: int = 30_000,
                 max_rounds: int = 8, only_shards: Iterable[int] | None = None) -> None:
        """``consumer`` names this persister in the ledger consumer group: keep it
        stable across restarts of one process slot (e.g. ``host:worker``) so its own
        unacknowledged entries are picked up again at once; entries of a consumer
        that never comes back are claimed after ``claim_idle_ms``. ``batch`` bounds
        what one read takes from each shard (ledger entries per command, dirty or idle
        players); ``txn_rows`` the rows of one SQL transaction (a shard's share of a
        read is never split, so one may hold more); ``max_rounds`` the reads per stage
        and shard in one pass. ``only_shards`` restricts this persister to some shards
        (default: all)."""
        if shards < 1 or batch < 1 or txn_rows < 1:
            raise ValueError("shards, batch and txn_rows must be positive")
        self.redis = redis
        self.keys = keys
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.shards = shards
        self.batch = batch
        self.txn_rows = txn_rows
        self.idle_evict_after = idle_evict_after
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.max_rounds = max_rounds
        self.shard_ids = sorted(set(only_shards)) if only_shards is not None else list(
            range(shards))
        self.on_data_loss: list[DataLossCallback] = []
        self.on_flushed: list[FlushedCallback] = []
        self.recovering: set[int] = set()
        """Shards whose Redis lost data and whose ``on_data_loss`` callbacks have not
        all succeeded yet (value grants must fail closed for them)."""
        self._epochs: dict[int, str] = {}
        self._groups: set[int] = set()
        self._read_flush = _Script(load_script("read_flush"))
        self._mark_flushed = _Script(load_script("mark_flushed"))
        self._evict = _Script(load_script("evict"))

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
        report.lost_shards = await self._check_epochs(report)
        scan = await self._scan(report)
        drained = await self._drain_ledger(report, scan.ledger)
        await self._flush_dirty(report, {s: m for s, m in scan.dirty.items() if s in drained})
        await self._evict_idle(report, scan.idle, scan.cutoff)
        await self._stage(report, "gauges", -1, self.update_gauges())
        return report

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
        log.warning("persister: final flush left work in Redis")
        return False

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

    async def _stage(self, report: PassReport, stage: str, shard: int,
                     work: Awaitable[Any]) -> bool:
        """Await one stage; a failure is logged, counted and reported, not raised."""
        try:
            await work
            return True
        except Exception as exc:
            self._fail(report, stage, [shard], exc)
            return False

    def _fail(self, report: PassReport, stage: str, shards: Iterable[int],
              exc: BaseException) -> None:
        """One failure of ``stage`` that left the work of ``shards`` in Redis."""
        failed = sorted(shards)
        log.warning("persister %s failed on shard(s) %s: %r", stage, failed, exc)
        self.metrics.persister_errors.labels(stage).inc()
        report.errors += [(stage, shard, repr(exc)) for shard in failed]

    def _shards(self, shards: Iterable[int] | None) -> list[int]:
        return self.shard_ids if shards is None else sorted(shards)

    # -- epoch -------------------------------------------------------------------------

    async def check_epochs(self) -> list[int]:
        """Check every shard's epoch key; returns the shards found to have lost data."""
        return await self._check_epochs(PassReport())

    async def _check_epochs(self, report: PassReport) -> list[int]:
        try:
            current = await self._round_trip([("GET", self.keys.epoch(shard))
                                              for shard in self.shard_ids])
            if error := _first_error(current):
                raise error
        except Exception as exc:
            self._fail(report, "epoch", [-1], exc)
            return []
        lost: list[int] = []
        for shard, raw in zip(self.shard_ids, current, strict=True):
            value = None if raw is None else raw.decode()
            ok = await self._stage(report, "epoch", shard,
                                   self._check_epoch(shard, value, lost))
            if not ok and shard in self.recovering and shard not in lost:
                lost.append(shard)
        return lost

    async def _check_epoch(self, shard: int, value: str | None, lost: list[int]) -> None:
        meta_key = f"epoch:{shard}"
        if value is not None:
            if self._epochs.get(shard) != value:
                if await self.db.get_meta(meta_key) != value:
                    await self.db.set_meta(meta_key, value)
                self._epochs[shard] = value
            return
        known = self._epochs.get(shard) or await self.db.get_meta(meta_key)
        if known is not None:
            await self._recover(shard, lost)
        await self._new_epoch(shard, meta_key)
        self.recovering.discard(shard)

    async def _recover(self, shard: int, lost: list[int]) -> None:
        """Redis lost this shard's data: count it once, then run every callback."""
        lost.append(shard)
        if shard not in self.recovering:
            log.error("persister: Redis lost the data of shard %s; recovering from SQL", shard)
            self.metrics.data_loss_detected.inc()
            self.recovering.add(shard)
        self._groups.discard(shard)
        for callback in self.on_data_loss:
            await callback(shard)

    async def _new_epoch(self, shard: int, meta_key: str) -> None:
        """Write a new epoch (another persister may win the race: then use theirs)."""
        candidate = f"{int(self.clock.now() * 1000)}-{secrets.token_hex(6)}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.epoch(shard), candidate, nx=True)
            pipe.get(self.keys.epoch(shard))
            _, raw = await pipe.execute()
        value = reply_text(raw)
        await self.db.set_meta(meta_key, value)
        self._epochs[shard] = value

    # -- scan: the first read of every stage, one round trip ---------------------------

    async def _scan(self, report: PassReport) -> _Scan:
        cutoff = int((self.clock.now() - self.idle_evict_after) * 1000)
        scan = _Scan({}, {}, {}, cutoff)
        try:
            grouped = set(await self._ensure_groups(report, self.shard_ids))
            commands: list[Command] = []
            for shard in self.shard_ids:
                if shard in grouped:
                    commands += self._ledger_reads(shard)
                commands += [self._dirty_read(shard), self._idle_read(shard, cutoff, 0)]
            replies = iter(await self._round_trip(commands))
        except Exception as exc:
            self._fail(report, "ledger", self.shard_ids, exc)
            self._fail(report, "evict", self.shard_ids, exc)
            return scan
        lost_groups: list[int] = []
        for shard in self.shard_ids:
            if shard in grouped:
                self._take_ledger_read(report, scan.ledger, lost_groups, shard,
                                       next(replies), next(replies), next(replies))
            self._take_members(report, "flush", scan.dirty, shard, next(replies))
            self._take_members(report, "evict", scan.idle, shard, next(replies))
        if lost_groups:  # Redis lost the group (e.g. FLUSHALL): create it, read again
            self._groups.difference_update(lost_groups)
            scan.ledger.update(await self._read_ledgers(report, lost_groups))
        return scan

    def _take_members(self, report: PassReport, stage: str, into: dict[int, list[str]],
                      shard: int, reply: Any) -> None:
        if isinstance(reply, Exception):
            self._fail(report, stage, [shard], reply)
        else:
            into[shard] = [member.decode() for member in reply]

    # -- ledger ------------------------------------------------------------------------

    async def drain_ledger(self, report: PassReport,
                           shards: Iterable[int] | None = None) -> set[int]:
        """Move the ledger streams of ``shards`` (default: all) into SQL; returns the
        shards whose ledger stage succeeded."""
        return await self._drain_ledger(report,
                                        await self._read_ledgers(report, self._shards(shards)))

    async def _drain_ledger(self, report: PassReport, reads: dict[int, list[Entry]]) -> set[int]:
        """Write what was read to SQL, acknowledge it, and read again the shards that
        gave a full batch; returns the shards that had no error on the way."""
        drained = set(reads)
        for round_ in range(self.max_rounds):
            parts = {shard: self._ledger_part(shard, entries)
                     for shard, entries in reads.items() if entries}
            acked = await self._commit("ledger", parts, self._write_ledger_parts, self._ack,
                                       report)
            drained -= set(parts) - acked
            full = [shard for shard in sorted(acked) if len(reads[shard]) >= self.batch]
            if not full or round_ == self.max_rounds - 1:
                break
            reads = await self._read_ledgers(report, full)
            drained -= set(full) - set(reads)
        return drained

    def _ledger_part(self, shard: int, entries: list[Entry]) -> _Part:
        """The rows of a shard's entries; an undecodable entry (only a bug writes those)
        is logged in full and dropped with the acknowledgement instead of blocking the
        stream, and so is an entry deleted while pending (it comes back without fields)."""
        part = _Part()
        for entry_id, fields in entries:
            part.done.append(entry_id)
            if not fields:
                continue
            try:
                rows = ledger_rows(entry_id, fields)
                events = (entry_events(entry_id, fields)
                          if fields.get(b"e") or fields.get(b"k") else None)
            except Exception:
                log.exception("persister: dropping undecodable ledger entry %r on shard %s",
                              entry_id, shard)
                self.metrics.persister_errors.labels("ledger_decode").inc()
                continue
            part.rows += rows
            if events:
                part.events.extend(events)
        return part

    async def _write_ledger_parts(self, parts: dict[int, _Part]) -> None:
        rows: list[LedgerRow] = []
        events = persist.EventRows()
        for part in parts.values():
            rows += part.rows
            events.extend(part.events)
        # One key order for every persister: concurrent batches cannot deadlock. Rows
        # are unique by (commit_id, seq), their first two fields: a plain sort does it.
        rows.sort()
        events.draws.sort(key=lambda r: (r["commit_id"], r["seq"]))
        events.responses.sort()  # by commit id, the unique index's order
        await self._write_ledger(rows, events)

    async def _write_ledger(self, rows: list[LedgerRow],
                            events: persist.EventRows | None = None) -> None:
        """The SQL half of a drain, one transaction (a seam: tests make it crash after
        the commit)."""
        await persist.insert_ledger(self.db, rows, events)

    async def _ack(self, parts: dict[int, _Part], report: PassReport) -> set[int]:
        """Acknowledge and delete the entries now in SQL (one round trip for all shards)."""
        shards = sorted(parts)
        commands: list[Command] = []
        for shard in shards:
            key, ids = self.keys.ledger(shard), parts[shard].done
            commands += [("XACK", key, LEDGER_GROUP, *ids), ("XDEL", key, *ids)]
        try:
            replies = await self._round_trip(commands)
        except Exception as exc:
            self._fail(report, "ledger", shards, exc)
            return set()
        acked: set[int] = set()
        rows = 0
        for i, shard in enumerate(shards):
            error = _first_error(replies[2 * i:2 * i + 2])
            if error is not None:
                self._fail(report, "ledger", [shard], error)
                continue
            acked.add(shard)
            report.ledger_entries += len(parts[shard].done)
            rows += len(parts[shard].rows)
        report.ledger_rows += rows
        self.metrics.persister_rows.labels("ledger").inc(rows)
        return acked

    async def _read_ledgers(self, report: PassReport, shards: list[int],
                            retry: bool = True) -> dict[int, list[Entry]]:
        """Up to ``batch`` entries of each shard: ours still pending, stuck ones claimed,
        then new ones (one round trip)."""
        found: dict[int, list[Entry]] = {}
        try:
            shards = await self._ensure_groups(report, shards)
            replies = await self._round_trip([command for shard in shards
                                              for command in self._ledger_reads(shard)])
        except Exception as exc:
            self._fail(report, "ledger", shards, exc)
            return found
        lost_groups: list[int] = []
        for i, shard in enumerate(shards):
            self._take_ledger_read(report, found, lost_groups, shard, *replies[3 * i:3 * i + 3])
        if lost_groups and retry:
            self._groups.difference_update(lost_groups)
            found.update(await self._read_ledgers(report, lost_groups, retry=False))
        elif lost_groups:
            self._fail(report, "ledger", lost_groups, ResponseError("NOGROUP"))
        return found

    def _ledger_reads(self, shard: int) -> list[Command]:
        key, group, me, count = self.keys.ledger(shard), LEDGER_GROUP, self.consumer, self.batch
        return [("XREADGROUP", "GROUP", group, me, "COUNT", count, "STREAMS", key, "0"),
                ("XAUTOCLAIM", key, group, me, self.claim_idle_ms, "0-0", "COUNT", count),
                ("XREADGROUP", "GROUP", group, me, "COUNT", count, "STREAMS", key, ">")]

    def _take_ledger_read(self, report: PassReport, into: dict[int, list[Entry]],
                          lost_groups: list[int], shard: int, mine: Any, claimed: Any,
                          new: Any) -> None:
        """File one shard's three ledger replies: its entries (each once), a lost group,
        or a failure."""
        error = _first_error([mine, claimed, new])
        if error is not None:
            if "NOGROUP" in str(error):
                lost_groups.append(shard)
            else:
                self._fail(report, "ledger", [shard], error)
            return
        entries = _read_entries(new)
        again = _read_entries(mine) + _stream_entries(claimed[1])
        if again:  # pending entries: ours after a failure, or claimed from a dead consumer
            entries = list(dict(again + entries).items())
        into[shard] = entries

    async def _ensure_groups(self, report: PassReport, shards: list[int]) -> list[int]:
        """Create the consumer group of the shards that may lack one (one round trip);
        returns the shards that have one."""
        missing = [shard for shard in shards if shard not in self._groups]
        if missing:
            replies = await self._round_trip([
                ("XGROUP", "CREATE", self.keys.ledger(shard), LEDGER_GROUP, "0", "MKSTREAM")
                for shard in missing])
            for shard, reply in zip(missing, replies, strict=True):
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    self._fail(report, "ledger", [shard], reply)
                else:
                    self._groups.add(shard)
        return [shard for shard in shards if shard in self._groups]

    # -- flush -------------------------------------------------------------------------

    async def flush_dirty(self, report: PassReport, shards: Iterable[int] | None = None) -> None:
        """Write the dirty players of ``shards`` (default: all) to SQL, oldest first."""
        await self._flush_dirty(report, await self._dirty_members(report, self._shards(shards)))

    async def _flush_dirty(self, report: PassReport, members: dict[int, list[str]]) -> None:
        """Flush the given dirty members; shards that gave a full batch are read again."""
        for round_ in range(self.max_rounds):
            members = {shard: found for shard, found in members.items() if found}
            if not members:
                return
            parts = await self._read_players_of(report, members)
            marked = await self._commit("flush", parts, self._write_player_parts, self._mark,
                                        report)
            await self._notify_flushed([row for shard in sorted(marked)
                                        for row in parts[shard].rows])
            full = [shard for shard in sorted(marked) if len(members[shard]) >= self.batch]
            if not full or round_ == self.max_rounds - 1:
                return
            members = await self._dirty_members(report, full)

    async def _dirty_members(self, report: PassReport,
                             shards: list[int]) -> dict[int, list[str]]:
        return await self._read_members(report, "flush",
                                        {shard: self._dirty_read(shard) for shard in shards})

    async def _read_members(self, report: PassReport, stage: str,
                            reads: dict[int, Command]) -> dict[int, list[str]]:
        """Each shard's members as its read command gives them (one round trip); a
        failure is the ``stage``'s, for the shards it hit."""
        found: dict[int, list[str]] = {}
        try:
            replies = await self._round_trip(list(reads.values()))
        except Exception as exc:
            self._fail(report, stage, list(reads), exc)
            return found
        for shard, reply in zip(reads, replies, strict=True):
            self._take_members(report, stage, found, shard, reply)
        return found

    def _dirty_read(self, shard: int) -> Command:
        return ("ZRANGE", self.keys.dirty(shard), 0, self.batch - 1)

    async def _read_players_of(self, report: PassReport,
                               members: dict[int, list[str]]) -> dict[int, _Part]:
        """Version and state of the members whose ledger is drained (``read_flush.lua``:
        one script call per shard, one round trip)."""
        shards = sorted(members)
        keys = {shard: [self.keys.player_from_member(shard, m) for m in members[shard]]
                for shard in shards}
        parts: dict[int, _Part] = {}
        try:
            replies = await self._eval_all([
                self._read_flush.call([self.keys.ledger(shard), *keys[shard]], [])
                for shard in shards])
        except Exception as exc:
            self._fail(report, "flush", shards, exc)
            return parts
        now = int(self.clock.now())
        for shard, reply in zip(shards, replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                parts[shard] = part = _player_part(members[shard], keys[shard], reply, now)
                self.metrics.flush_held_back.inc(len(members[shard]) - len(part.keys))
            except Exception as exc:
                self._fail(report, "flush", [shard], exc)
        return parts

    async def _write_player_parts(self, parts: dict[int, _Part]) -> None:
        rows = [row for part in parts.values() for row in part.rows]
        rows.sort()  # lock order: unique by (merchant_id, game_id, user_id), the first fields
        await self._write_players(rows)

    async def _write_players(self, rows: list[PlayerRow]) -> None:
        """The SQL half of a flush, one transaction (a seam, like :meth:`_write_ledger`)."""
        await persist.upsert_players(self.db, rows)

    async def _mark(self, parts: dict[int, _Part], report: PassReport) -> set[int]:
        """Record the flushed versions and clear the dirty marks (one round trip)."""
        shards = sorted(parts)
        try:
            replies = await self._eval_all([
                self._mark_flushed.call([self.keys.dirty(shard), *parts[shard].keys],
                                        parts[shard].done) for shard in shards])
        except Exception as exc:
            self._fail(report, "flush", shards, exc)
            return set()
        marked: set[int] = set()
        rows = 0
        for shard, reply in zip(shards, replies, strict=True):
            if isinstance(reply, Exception):
                self._fail(report, "flush", [shard], reply)
                continue
            marked.add(shard)
            rows += len(parts[shard].rows)
            report.players_clean += int(reply)
        report.players_flushed += rows
        self.metrics.persister_rows.labels("players").inc(rows)
        return marked

    async def _notify_flushed(self, rows: list[PlayerRow]) -> None:
        """Run the ``on_flushed`` callbacks; their failures never fail the flush."""
        for callback in self.on_flushed if rows else []:
            try:
                await callback(rows)
            except Exception:
                log.exception("persister: on_flushed callback %r failed", callback)
                self.metrics.persister_errors.labels("on_flushed").inc()

    # -- SQL transactions over several shards ------------------------------------------

    async def _commit(self, stage: str, parts: dict[int, _Part],
                      write: Callable[[dict[int, _Part]], Awaitable[None]],
                      finish: Callable[[dict[int, _Part], PassReport], Awaitable[set[int]]],
                      report: PassReport) -> set[int]:
        """Write ``parts`` to SQL in as few transactions as :meth:`_transactions` makes,
        then ``finish`` the shards written in Redis (one round trip); returns the shards
        finished. When SQL stops answering, the transactions left wait for the next pass."""
        written: set[int] = set()
        groups = self._transactions(parts)
        for i, group in enumerate(groups):
            done, down = await self._write_isolated(stage, group, write, report)
            written |= done
            if down is not None:
                if rest := [shard for later in groups[i + 1:] for shard in later]:
                    self._fail(report, stage, rest, down)
                break
        if not written:
            return written
        return await finish({shard: parts[shard] for shard in sorted(written)}, report)

    def _transactions(self, parts: dict[int, _Part]) -> list[dict[int, _Part]]:
        """Shards' parts grouped into transactions: all in one when they hold at most
        ``txn_rows`` rows, else about equal ones of at most ``txn_rows`` (a part is never
        split, so a part bigger than that is a transaction of its own)."""
        total = sum(len(part.rows) for part in parts.values())
        count = max(1, -(-total // self.txn_rows))
        target = -(-total // count)
        groups: list[dict[int, _Part]] = []
        rows = 0
        for shard in sorted(parts):
            size = len(parts[shard].rows)
            if not groups or (size and rows and (rows >= target
                                                 or rows + size > self.txn_rows)):
                groups.append({})
                rows = 0
            groups[-1][shard] = parts[shard]
            rows += size
        return groups

    async def _write_isolated(self, stage: str, group: dict[int, _Part],
                              write: Callable[[dict[int, _Part]], Awaitable[None]],
                              report: PassReport) -> tuple[set[int], Exception | None]:
        """One transaction for ``group``. If it fails while SQL answers, one per shard,
        so that a row SQL rejects holds up its own shard only. Returns the shards
        written, and the error when SQL does not answer."""
        try:
            await write(group)
            return set(group), None
        except Exception as exc:
            if not await self._sql_answers():
                self._fail(report, stage, group, exc)
                return set(), exc
            if len(group) == 1:
                self._fail(report, stage, group, exc)
                return set(), None
            log.warning("persister: a %s transaction of shards %s failed (%r); writing "
                        "them one by one", stage, sorted(group), exc)
            self.metrics.persister_errors.labels(stage).inc()
        written: set[int] = set()
        for shard, part in group.items():
            try:
                await write({shard: part})
                written.add(shard)
            except Exception as exc:
                self._fail(report, stage, [shard], exc)
        return written, None

    async def _sql_answers(self) -> bool:
        try:
            await self.db.ping()
            return True
        except Exception:
            return False

    # -- evict -------------------------------------------------------------------------

    async def evict_idle(self, report: PassReport, shards: Iterable[int] | None = None) -> None:
        """Drop players of ``shards`` (default: all) idle past ``idle_evict_after`` whose
        SQL copy is current."""
        cutoff = int((self.clock.now() - self.idle_evict_after) * 1000)
        idle = await self._idle_members(report, self._shards(shards), cutoff, {})
        await self._evict_idle(report, idle, cutoff)

    async def _evict_idle(self, report: PassReport, idle: dict[int, list[str]],
                          cutoff: int) -> None:
        """Evict the given candidates; shards that gave a full batch are read further."""
        start: dict[int, int] = {}
        for round_ in range(self.max_rounds):
            idle = {shard: found for shard, found in idle.items() if found}
            if not idle:
                return
            shards = sorted(idle)
            try:
                replies = await self._eval_all([self._evict.call(
                    [self.keys.dirty(shard), self.keys.active(shard),
                     *(self.keys.player_from_member(shard, m) for m in idle[shard])],
                    [cutoff, *idle[shard]]) for shard in shards])
            except Exception as exc:
                self._fail(report, "evict", shards, exc)
                return
            full: list[int] = []
            for shard, reply in zip(shards, replies, strict=True):
                if isinstance(reply, Exception):
                    self._fail(report, "evict", [shard], reply)
                    continue
                evicted = int(reply)
                report.evicted += evicted
                self.metrics.evictions.inc(evicted)
                if len(idle[shard]) >= self.batch:
                    # Players kept (dirty or unflushed) stay in the set: skip past them.
                    start[shard] = start.get(shard, 0) + len(idle[shard]) - evicted
                    full.append(shard)
            if not full or round_ == self.max_rounds - 1:
                return
            idle = await self._idle_members(report, full, cutoff, start)

    async def _idle_members(self, report: PassReport, shards: list[int], cutoff: int,
                            start: dict[int, int]) -> dict[int, list[str]]:
        return await self._read_members(report, "evict", {
            shard: self._idle_read(shard, cutoff, start.get(shard, 0)) for shard in shards})

    def _idle_read(self, shard: int, cutoff: int, start: int) -> Command:
        return ("ZRANGEBYSCORE", self.keys.active(shard), "-inf", cutoff,
                "LIMIT", start, self.batch)

    # -- Redis round trips -------------------------------------------------------------

    async def _round_trip(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one write on a pooled connection and read their replies
        in order, an error reply as its exception (:func:`gameserver.batching.round_trip`,
        as the action path's batcher sends its calls): redis-py's pipeline packed every
        argument in Python and ran a reply callback per command, the persister's main
        cost after SQL. A lost connection fails the whole trip (the next pass retries)."""
        if not commands:
            return []
        pool = self.redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            return await round_trip(conn, commands)
        finally:
            await pool.release(conn)

    async def _eval_all(self, calls: list[Command]) -> list[Any]:
        """Run ``EVALSHA`` calls in one round trip; calls of a script Redis does not know
        (restarted, failed over) run again once it is loaded (they did not run)."""
        replies = await self._round_trip(calls)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            for script in (self._read_flush, self._mark_flushed, self._evict):
                if any(calls[i][1] == script.sha for i in lost):
                    await self._round_trip([("SCRIPT", "LOAD", script.source)])
            for i, reply in zip(lost, await self._round_trip([calls[i] for i in lost]),
                                strict=True):
                replies[i] = reply
        return replies

    # -- backlog -----------------------------------------------------------------------

    async def backlog(self) -> Backlog:
        """Dirty players, undrained ledger entries and the persister lag, in one round trip."""
        res = await self._round_trip([
            command for shard in self.shard_ids
            for command in (("ZCARD", self.keys.dirty(shard)), ("XLEN", self.keys.ledger(shard)),
                            ("ZRANGE", self.keys.dirty(shard), 0, 0, "WITHSCORES"))])
        if error := _first_error(res):
            raise error
        dirty = sum(res[0::3])
        ledger = sum(res[1::3])
        oldest = [_only_score(first) for first in res[2::3] if first]
        lag = max(0.0, self.clock.now() - min(oldest) / 1000) if oldest else 0.0
        return Backlog(int(dirty), int(ledger), lag)

    async def update_gauges(self) -> Backlog:
        """Set ``persister_backlog{kind}`` and ``persister_lag_seconds`` from Redis."""
        backlog = await self.backlog()
        self.metrics.persister_backlog.labels("dirty").set(backlog.dirty)
        self.metrics.persister_backlog.labels("ledger").set(backlog.ledger)
        self.metrics.persister_lag.set(backlog.lag_seconds)
        return backlog


def _player_part(members: list[str], keys: list[str], reply: list[Any], now: int) -> _Part:
    """SQL rows of the members still in Redis, and ``mark_flushed.lua``'s arguments:
    each member with the version read ('' = its hash is gone)."""
    part = _Part()
    rows, done = part.rows, part.done
    for i, member in enumerate(members):
        version, state = reply[2 * i], reply[2 * i + 1]
        if version == -1:  # its ledger entry is not in SQL yet: flush it in a later pass
            continue
        part.keys.append(keys[i])
        if version is None or state is None:
            done += (member, "")
            continue
        merchant, game, user = member.split(":", 2)
        rows.append(_new_tuple(PlayerRow, (merchant, game, user, int(version), state,
                                           *state_times(state), now)))
        done += (member, version)
    return part


def _only_score(reply: list[Any]) -> float:
    """The score of a one-member ``ZRANGE … WITHSCORES`` reply: ``[member, score]``
    (RESP2) or ``[[member, score]]`` (RESP3)."""
    last = reply[-1]
    return float(last[-1] if isinstance(last, list) else last)


def _first_error(replies: Iterable[Any]) -> Exception | None:
    return next((r for r in replies if isinstance(r, Exception)), None)


async def run_standalone(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``petbox persister`` (and the persister process of ``petbox serve --workers N``):
    run passes for the real keyspace, and the shadow one when a shadow database is
    configured, until SIGINT or SIGTERM (or ``stop``); then flush what is left."""
    if settings.redis_url is None:
        raise ValueError("the standalone persister needs PETBOX_REDIS_URL")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=False,
                                    socket_timeout=settings.redis_timeout,
                                    socket_connect_timeout=settings.redis_timeout)
    bound = settings.sql_background_timeout  # background work only: the longer bound
    db = Database(settings.effective_database_url, timeout=bound, background_timeout=bound)
    shadow_url = settings.effective_shadow_database_url
    shadow_db = (Database(shadow_url, timeout=bound, background_timeout=bound)
                 if shadow_url else None)
    games = GameRegistry(db)
    games.start()
    try:
        keyspaces = [(Keys(), db)] + ([(Keys(SHADOW_PREFIX), shadow_db)] if shadow_db else [])
        persisters = [_standalone(settings, redis, keys, space_db, games)
                      for keys, space_db in keyspaces]
        log.info("persister running on %d shards every %.2fs (%d keyspace(s))",
                 settings.shards, settings.flush_interval, len(persisters))
        await asyncio.gather(*(p.run(settings.flush_interval, stop) for p in persisters))
        for persister in persisters:
            await persister.final_flush()
    finally:
        await games.stop()
        await redis.aclose()
        await db.close()
        if shadow_db is not None:
            await shadow_db.close()


def _standalone(settings: Settings, redis: Redis, keys: Keys, db: Database,
                games: GameRegistry) -> Persister:
    persister = Persister(redis, keys, db, Metrics(), SystemClock(), shards=settings.shards,
                          batch=settings.persister_batch,
                          idle_evict_after=settings.idle_evict_after,
                          consumer=f"{socket.gethostname()}-persister")
    persister.on_flushed.append(LeaderboardUpdater(redis, keys, games))
    return persister


def _read_entries(reply: Any) -> list[Entry]:
    """The entries of a one-stream ``XREADGROUP`` reply: ``[[stream, entries]]`` (RESP2),
    ``{stream: entries}`` (RESP3), or nil when there are none."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [stream[1] for stream in reply]
    return [entry for entries in streams for entry in _stream_entries(entries)]


def _stream_entries(entries: Any) -> list[Entry]:
    """``[[id, [field, value, ...]], ...]`` as (id, fields); an entry deleted while
    pending has no fields (nil, or a nil entry before Redis 7's XAUTOCLAIM)."""
    found: list[Entry] = []
    for entry in entries or ():
        if entry is None:
            continue
        entry_id, flat = entry
        found.append((entry_id, dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}))
    return found
