"""The persister: writes Redis play state and ledgers behind to SQL (DESIGN.md, "Persister").

Each pass, for every shard, in this order:

1. **epoch** — the shard's epoch key must be in Redis. It is recorded in SQL
   (``meta`` row ``epoch:<shard>``) the first time it is seen; if Redis lacks it
   while SQL has one, Redis lost its data: the loss is counted, the
   ``on_data_loss`` callbacks run (the shard stays in :attr:`Persister.recovering`
   until they succeed), then a new epoch is written to both.
2. **ledger** — the shard's ledger stream is drained through the consumer group
   ``LEDGER_GROUP``: this consumer's own unacknowledged entries, entries stuck
   with a dead consumer (``XAUTOCLAIM``), then new ones. Rows go to SQL in one
   transaction per batch, idempotent by ``(commit_id, seq)``; only after the SQL
   commit are the entries acknowledged and deleted. A crash in between
   redelivers them and the second insert changes nothing.
3. **flush** — dirty players are read (oldest first), upserted where SQL holds an
   older version, then ``mark_flushed.lua`` records the flushed version (``f``)
   and clears the dirty mark of players that did not change meanwhile. The
   ledger goes first so SQL never holds a state whose ledger it lacks. Then the
   ``on_flushed`` callbacks get the batch's rows (the leaderboards are built so).
4. **evict** — players idle past ``idle_evict_after`` whose SQL copy is current
   (``f == v``) and that are not dirty are deleted by ``evict.lua``, which
   re-checks everything atomically. The store reads them back from SQL.

A failing stage (SQL down, Redis down) is logged and counted in
``petbox_persister_errors_total{stage}``; its work stays in Redis and the next
pass retries it. Several persisters may run at once (one per server process):
consumer groups split the ledger, the version guard and the Lua checks make
concurrent flushes and evictions safe.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from gameserver.clock import Clock, SystemClock
from gameserver.db import persist
from gameserver.db.database import Database
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
FlushedCallback = Callable[[list[persist.PlayerRow]], Awaitable[None]]
"""Called with the rows of a flush batch once it is in SQL and marked flushed (e.g. the
leaderboard updater); a failing callback is logged and counted, the flush stands."""

STAGES = ("epoch", "ledger", "flush", "evict", "gauges")


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
    """``(stage, shard, error)`` of every stage that failed (shard -1: not per shard)."""

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


def _members(raw: Any) -> list[str]:
    return [reply_text(m) for m in raw]


def split_member(member: str) -> tuple[str, str, str]:
    """``merchant:game:user`` → its parts (merchant and game ids never contain ``:``)."""
    merchant, game, user = member.split(":", 2)
    return merchant, game, user


def _state_times(raw: bytes) -> tuple[int, int]:
    """``(created_at, last_seen)`` of a msgpack player state, for the SQL columns."""
    wire = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return int(wire.get("c", 0)), int(wire.get("ls", 0))


def ledger_rows(entry_id: bytes | str, fields: dict[bytes, bytes]) -> list[persist.LedgerRow]:
    """The SQL rows of one ledger stream entry (see commit.lua for the fields)."""
    commit_id = reply_text(fields[b"c"])
    merchant, game, user = split_member(reply_text(fields[b"p"]))
    version = int(fields[b"v"])
    ts_ms = int(reply_text(entry_id).split("-", 1)[0])
    raw = fields.get(b"d") or b""
    entries = msgpack.unpackb(raw, raw=False) if raw else []
    return [persist.LedgerRow(commit_id, seq, merchant, game, user, version, str(kind),
                              str(name), int(delta), int(before), int(after), str(reason),
                              ts_ms)
            for seq, (kind, name, delta, before, after, reason) in enumerate(entries)]


def entry_events(entry_id: bytes | str, fields: dict[bytes, bytes]) -> persist.EventRows:
    """Draw records and revealed seeds carried by one ledger stream entry."""
    raw = fields.get(b"e") or b""
    if not raw:
        return persist.EventRows()
    merchant, game, user = split_member(reply_text(fields[b"p"]))
    ts_ms = int(reply_text(entry_id).split("-", 1)[0])
    events = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return persist.event_rows(reply_text(fields[b"c"]), merchant, game, user, ts_ms, events)


class Persister:
    """Writes one process's view of Redis behind to SQL; see the module docstring."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, metrics: Metrics, clock: Clock,
                 *, shards: int, batch: int = 2000, idle_evict_after: int = 3600,
                 consumer: str, claim_idle_ms: int = 30_000, max_rounds: int = 8,
                 only_shards: Iterable[int] | None = None) -> None:
        """``consumer`` names this persister in the ledger consumer group: keep it
        stable across restarts of one process slot (e.g. ``host:worker``) so its own
        unacknowledged entries are picked up again at once; entries of a consumer
        that never comes back are claimed after ``claim_idle_ms``. ``max_rounds``
        bounds the batches per stage per shard in one pass. ``only_shards``
        restricts this persister to some shards (default: all)."""
        if shards < 1 or batch < 1:
            raise ValueError("shards and batch must be positive")
        self.redis = redis
        self.keys = keys
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.shards = shards
        self.batch = batch
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
        self._mark_flushed: AsyncScript = redis.register_script(load_script("mark_flushed"))
        self._evict: AsyncScript = redis.register_script(load_script("evict"))

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
        """One pass over every shard: epoch, ledger, flush, evict; then the gauges."""
        report = PassReport()
        report.lost_shards = await self._check_epochs(report)
        for shard in self.shard_ids:
            report.add(await self._pass_shard(shard))
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

    async def _pass_shard(self, shard: int) -> PassReport:
        report = PassReport()
        drained = await self._stage(report, "ledger", shard, self.drain_ledger(shard, report))
        if drained:
            await self._stage(report, "flush", shard, self.flush_dirty(shard, report))
        await self._stage(report, "evict", shard, self.evict_idle(shard, report))
        return report

    async def _stage(self, report: PassReport, stage: str, shard: int,
                     work: Awaitable[Any]) -> bool:
        """Await one stage; a failure is logged, counted and reported, not raised."""
        try:
            await work
            return True
        except Exception as exc:
            log.warning("persister %s failed on shard %s: %r", stage, shard, exc)
            self.metrics.persister_errors.labels(stage).inc()
            report.errors.append((stage, shard, repr(exc)))
            return False

    # -- epoch -------------------------------------------------------------------------

    async def check_epochs(self) -> list[int]:
        """Check every shard's epoch key; returns the shards found to have lost data."""
        return await self._check_epochs(PassReport())

    async def _check_epochs(self, report: PassReport) -> list[int]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for shard in self.shard_ids:
                    pipe.get(self.keys.epoch(shard))
                current = await pipe.execute()
        except Exception as exc:
            self.metrics.persister_errors.labels("epoch").inc()
            report.errors.append(("epoch", -1, repr(exc)))
            return []
        lost: list[int] = []
        for shard, raw in zip(self.shard_ids, current, strict=True):
            value = None if raw is None else reply_text(raw)
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

    # -- ledger ------------------------------------------------------------------------

    async def drain_ledger(self, shard: int, report: PassReport) -> None:
        """Move the shard's ledger stream into SQL, a batch per round, until a short read."""
        for _ in range(self.max_rounds):
            entries = await self._read_ledger(shard)
            if not entries:
                return
            rows: list[persist.LedgerRow] = []
            events = persist.EventRows()
            for entry_id, fields in entries:
                entry_rows, entry_events_ = self._decode_entry(shard, entry_id, fields)
                rows += entry_rows
                events.extend(entry_events_)
            # One key order for every persister: concurrent batches cannot deadlock.
            rows.sort(key=lambda r: (r.commit_id, r.seq))
            events.draws.sort(key=lambda r: (r["commit_id"], r["seq"]))
            await self._write_ledger(rows, events)
            await self._ack(shard, [entry_id for entry_id, _ in entries])
            report.ledger_entries += len(entries)
            report.ledger_rows += len(rows)
            self.metrics.persister_rows.labels("ledger").inc(len(rows))
            if len(entries) < self.batch:
                return

    def _decode_entry(self, shard: int, entry_id: bytes, fields: dict[bytes, bytes]
                      ) -> tuple[list[persist.LedgerRow], persist.EventRows]:
        """Rows of one entry; an undecodable one (only a bug writes those) is logged in
        full and dropped with the batch's acknowledgement instead of blocking the stream."""
        try:
            return ledger_rows(entry_id, fields), entry_events(entry_id, fields)
        except Exception:
            log.exception("persister: dropping undecodable ledger entry %r on shard %s",
                          entry_id, shard)
            self.metrics.persister_errors.labels("ledger_decode").inc()
            return [], persist.EventRows()

    async def _write_ledger(self, rows: list[persist.LedgerRow],
                            events: persist.EventRows | None = None) -> None:
        """The SQL half of a drain (a seam: tests make it crash after the commit)."""
        await persist.insert_ledger(self.db, rows, events)

    async def _ack(self, shard: int, ids: list[bytes]) -> None:
        key = self.keys.ledger(shard)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(key, LEDGER_GROUP, *ids)
            pipe.xdel(key, *ids)
            await pipe.execute()

    async def _read_ledger(self, shard: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Up to ``batch`` entries: ours still pending, stuck ones claimed, then new ones."""
        if shard not in self._groups:
            await self._ensure_group(shard)
        try:
            return await self._read_ledger_once(shard)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._ensure_group(shard)  # Redis lost the group (e.g. FLUSHALL)
            return await self._read_ledger_once(shard)

    async def _read_ledger_once(self, shard: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        key = self.keys.ledger(shard)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xreadgroup(LEDGER_GROUP, self.consumer, {key: "0"}, count=self.batch)
            pipe.xautoclaim(key, LEDGER_GROUP, self.consumer, self.claim_idle_ms,
                            start_id="0-0", count=self.batch)
            pipe.xreadgroup(LEDGER_GROUP, self.consumer, {key: ">"}, count=self.batch)
            mine, claimed, new = await pipe.execute()
        found: dict[bytes, dict[bytes, bytes]] = {}
        for entry_id, fields in [*_stream_entries(mine), *claimed[1], *_stream_entries(new)]:
            if fields:  # an entry deleted while pending comes back without fields
                found.setdefault(entry_id, fields)
            else:
                await self._ack(shard, [entry_id])
        return sorted(found.items(), key=lambda item: _id_order(item[0]))

    async def _ensure_group(self, shard: int) -> None:
        try:
            await self.redis.xgroup_create(self.keys.ledger(shard), LEDGER_GROUP, id="0",
                                           mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(shard)

    # -- flush -------------------------------------------------------------------------

    async def flush_dirty(self, shard: int, report: PassReport) -> None:
        """Write dirty players to SQL, oldest first, a batch per round."""
        dirty_key = self.keys.dirty(shard)
        for _ in range(self.max_rounds):
            members = _members(await self.redis.zrange(dirty_key, 0, self.batch - 1))
            if not members:
                return
            player_keys = [self.keys.player_from_member(shard, m) for m in members]
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in player_keys:
                    pipe.hmget(key, ["v", "s"])
                states = await pipe.execute()
            rows, versions = self._player_rows(members, states)
            rows.sort(key=lambda r: (r.merchant_id, r.game_id, r.user_id))  # lock order
            await self._write_players(rows)
            marks = [x for m, v in zip(members, versions, strict=True) for x in (m, v)]
            cleared = await self._mark_flushed(keys=[dirty_key, *player_keys], args=marks)
            report.players_flushed += len(rows)
            report.players_clean += int(cleared)
            self.metrics.persister_rows.labels("players").inc(len(rows))
            await self._notify_flushed(rows)
            if len(members) < self.batch:
                return

    async def _notify_flushed(self, rows: list[persist.PlayerRow]) -> None:
        """Run the ``on_flushed`` callbacks; their failures never fail the flush."""
        for callback in self.on_flushed if rows else []:
            try:
                await callback(rows)
            except Exception:
                log.exception("persister: on_flushed callback %r failed", callback)
                self.metrics.persister_errors.labels("on_flushed").inc()

    async def _write_players(self, rows: list[persist.PlayerRow]) -> None:
        """The SQL half of a flush (a seam, like :meth:`_write_ledger`)."""
        await persist.upsert_players(self.db, rows)

    def _player_rows(self, members: list[str],
                     states: list[list[bytes | None]]) -> tuple[list[persist.PlayerRow],
                                                                list[str]]:
        """SQL rows of the players still in Redis, and each member's version ('' = gone)."""
        now = int(self.clock.now())
        rows: list[persist.PlayerRow] = []
        versions: list[str] = []
        for member, (version, state) in zip(members, states, strict=True):
            if version is None or state is None:
                versions.append("")
                continue
            created_at, last_seen = _state_times(state)
            rows.append(persist.PlayerRow(*split_member(member), int(version), bytes(state),
                                          created_at, last_seen, now))
            versions.append(reply_text(version))
        return rows, versions

    # -- evict -------------------------------------------------------------------------

    async def evict_idle(self, shard: int, report: PassReport) -> None:
        """Drop players idle past ``idle_evict_after`` whose SQL copy is current."""
        cutoff = int((self.clock.now() - self.idle_evict_after) * 1000)
        active_key = self.keys.active(shard)
        start = 0
        for _ in range(self.max_rounds):
            members = _members(await self.redis.zrangebyscore(
                active_key, "-inf", cutoff, start=start, num=self.batch))
            if not members:
                return
            evicted = int(await self._evict(
                keys=[self.keys.dirty(shard), active_key,
                      *(self.keys.player_from_member(shard, m) for m in members)],
                args=[cutoff, *members]))
            report.evicted += evicted
            self.metrics.evictions.inc(evicted)
            if len(members) < self.batch:
                return
            # Players kept (dirty or unflushed) stay in the set: skip past them.
            start += len(members) - evicted

    # -- backlog -----------------------------------------------------------------------

    async def backlog(self) -> Backlog:
        """Dirty players, undrained ledger entries and the persister lag, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.shard_ids:
                pipe.zcard(self.keys.dirty(shard))
                pipe.xlen(self.keys.ledger(shard))
                pipe.zrange(self.keys.dirty(shard), 0, 0, withscores=True)
            res = await pipe.execute()
        dirty = sum(res[0::3])
        ledger = sum(res[1::3])
        oldest = [first[0][1] for first in res[2::3] if first]
        lag = max(0.0, self.clock.now() - min(oldest) / 1000) if oldest else 0.0
        return Backlog(int(dirty), int(ledger), lag)

    async def update_gauges(self) -> Backlog:
        """Set ``persister_backlog{kind}`` and ``persister_lag_seconds`` from Redis."""
        backlog = await self.backlog()
        self.metrics.persister_backlog.labels("dirty").set(backlog.dirty)
        self.metrics.persister_backlog.labels("ledger").set(backlog.ledger)
        self.metrics.persister_lag.set(backlog.lag_seconds)
        return backlog


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
    db = Database(settings.effective_database_url)
    shadow_url = settings.effective_shadow_database_url
    shadow_db = Database(shadow_url) if shadow_url else None
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


def _stream_entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of a one-stream XREADGROUP reply, whatever shape redis-py gives:
    ``[[stream, entries]]`` (RESP2), ``{stream: [entries]}`` (RESP3 legacy) or
    ``{stream: entries}`` (unified)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [r[1] for r in reply]
    found: list[tuple[bytes, dict[bytes, bytes]]] = []
    for entries in streams:
        if entries and isinstance(entries[0], list):
            entries = entries[0]
        found += [e for e in entries or [] if e[0] is not None]
    return found


def _id_order(entry_id: bytes) -> tuple[int, int]:
    ms, seq = reply_text(entry_id).split("-", 1)
    return int(ms), int(seq)
