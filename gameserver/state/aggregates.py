"""Aggregates: state several shoppers share, with the player's pipeline.

A poll bucket, a group, a pool or a team is an aggregate (``keys.AggregateRef``) in its
own shard slot (``{a<N>}``). :class:`AggregateStore` gives it what ``Store`` gives a
player: one read-only load (``agg_load.lua``: state and the shopper's key at the
aggregate), a pure rule, and one commit (``agg_commit.lua``) that checks the version
and that the key is unused, then writes the state, the ledger entry (with the response),
the shopper's owed record, and the dirty and active marks together. A miss in Redis
reads through from SQL (``aggregates``); the persister's aggregate stage writes behind
and evicts (``gameserver/persister/aggregates.py``).

Unlike a player, an aggregate is hot by nature (every voter of a poll bucket writes
it), so commits on one aggregate are queued per process instead of racing on the
version: a conflict is then only ever with another process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import msgpack
import orjson
from redis.asyncio import Redis

from gameserver.clock import Clock
from gameserver.db.aggregates import AggregateArchive
from gameserver.http.errors import Busy, IdempotencyMismatch
from gameserver.state.batching import ScriptBatcher
from gameserver.state.keys import AggregateRef, Keys, PlayerRef, shard_of
from gameserver.state.scripts import Script
from gameserver.state.store import Reply, encode_json
from mechanics.aggregate import OwedOther, SharedOutcome

log = logging.getLogger("petbox.aggregates")

SharedRule = Callable[[Any, int], SharedOutcome]
"""A rule bound to its action and config: ``(aggregate state or None, now) -> outcome``."""


class Codec(Protocol):
    """How one kind of aggregate state becomes bytes in Redis and SQL, and back."""

    def encode(self, state: Any) -> bytes: ...

    def decode(self, raw: bytes) -> Any: ...


@dataclass(frozen=True)
class WireCodec:
    """msgpack of ``to_wire()``; ``from_wire`` builds the state back."""

    from_wire: Callable[[Any], Any]

    def encode(self, state: Any) -> bytes:
        return msgpack.packb(state.to_wire(), use_bin_type=True)

    def decode(self, raw: bytes) -> Any:
        return self.from_wire(msgpack.unpackb(raw, raw=False, strict_map_key=False))


def owed_field(ref: AggregateRef, user: str, key: str) -> str:
    """The owed record's name in its shard's owed set (ids cannot contain ``|``)."""
    return f"{ref.member}|{user}|{key}"


def other_hash(ref: AggregateRef, key: str) -> str:
    """The request hash another shopper's owed commit runs under (stable: the live
    follow and every reconciler use the one the record holds)."""
    return hashlib.sha256(f"{ref.member}|{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Owed:
    """A shopper's side the gate recorded: who, under which key, and the gate's body."""

    player: PlayerRef
    key: str
    request_hash: str
    gate: dict[str, Any]
    """``{"response": …, "owed": …}``: exactly what the gate stored for the key."""
    recorded_ms: int | None = None
    """When the gate recorded it (unix ms, its score in the owed set), as read from the
    set by :meth:`AggregateStore.owed_older_than`; not part of the record's bytes."""

    def to_bytes(self) -> bytes:
        p = self.player
        return orjson.dumps({"p": [p.merchant, p.game, p.user, p.shard], "k": self.key,
                             "h": self.request_hash, "g": self.gate})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Owed:
        d = orjson.loads(raw)
        return cls(PlayerRef(*d["p"]), d["k"], d["h"], d["g"])


@dataclass(frozen=True)
class _Loaded:
    state: Any
    version: int
    in_redis: bool
    newest_key_ms: int | None = None
    """Read back from SQL after Redis lost it: unix ms of the newest commit SQL holds
    (the commit keeps it in the hash as ``o``); None otherwise."""


class AggregateStore:
    """Aggregates in Redis: optimistic concurrency, idempotent commits, read-through."""

    def __init__(self, redis: Redis, keys: Keys, archive: AggregateArchive, clock: Clock, *,
                 idempotency_ttl: int = 86400, retries: int = 20,
                 batcher: ScriptBatcher | None = None, shards: int = 0) -> None:
        self.redis = redis
        self.shards = shards
        """Player shards (``PETBOX_SHARDS``): where other shoppers' owed commits go
        (0: this store takes no rule that owes anyone but the acting shopper)."""
        self.keys = keys
        self.archive = archive
        self.clock = clock
        self.idempotency_ttl_ms = idempotency_ttl * 1000
        self.retries = retries
        self._load = Script.named("agg_load", redis=redis, batcher=batcher)
        self._commit = Script.named("agg_commit", redis=redis, batcher=batcher)
        self._settle = Script.named("owed_settle", redis=redis)
        self._queues: dict[str, tuple[asyncio.Lock, int]] = {}

    async def read(self, ref: AggregateRef, codec: Codec) -> tuple[Any, int]:
        """(state or None, version) for a GET: Redis, else SQL (nothing installed)."""
        version, raw = await self.redis.hmget(self.keys.aggregate(ref), ["v", "s"])
        if isinstance(raw, bytes) and version is not None:
            return codec.decode(raw), int(version)
        row = await self.archive.fetch(ref)
        return (codec.decode(row[1]), row[0]) if row else (None, 0)

    async def read_many(self, refs: list[AggregateRef], codec: Codec) -> list[Any]:
        """States (None: none yet) of several aggregates of one game and kind, e.g. a
        poll's buckets: one pipelined Redis round trip, then one SQL query for those
        Redis does not hold."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.hget(self.keys.aggregate(ref), "s")
            raws = await pipe.execute()
        missing = [ref for ref, raw in zip(refs, raws, strict=True) if not isinstance(raw, bytes)]
        rows = await self.archive.fetch_many(missing)
        states = []
        for ref, raw in zip(refs, raws, strict=True):
            if isinstance(raw, bytes):
                states.append(codec.decode(raw))
            else:
                row = rows.get(ref.id)
                states.append(codec.decode(row[1]) if row else None)
        return states

    async def run(self, ref: AggregateRef, codec: Codec, user: str, key: str,
                  request_hash: str, rule: SharedRule, owed_to: PlayerRef | None = None
                  ) -> Reply:
        """Apply ``rule`` to ``ref`` at most once per (``user``, ``key``).

        The reply's body is ``{"response": …, "owed": …}``; a retry gets the same
        body (replayed). When the outcome owes the shopper something, ``owed_to``
        names the shopper and the commit records it in the shard's owed set.
        A rule's refusal (``DomainError``) propagates and changes nothing."""
        with self._queued(ref):
            lock = self._queues[ref.member][0]
            async with lock:
                return await self._run(ref, codec, user, key, request_hash, rule, owed_to)

    async def run_then_read(self, ref: AggregateRef, codec: Codec, user: str, key: str,
                            rule: SharedRule) -> Any:
        """Apply a rule the server makes itself (a seed, a draw) at most once per
        (``user``, ``key``), then read ``ref`` back: its state after this commit, or
        after the one a racing process made first with the same key. No request is
        behind such a rule, so ``key`` is its request hash too."""
        await self.run(ref, codec, user, key, key, rule)
        state, _ = await self.read(ref, codec)
        return state

    @contextmanager
    def _queued(self, ref: AggregateRef) -> Iterator[None]:
        """Count this request on the aggregate's queue; drop the lock when unused."""
        lock, users = self._queues.get(ref.member, (asyncio.Lock(), 0))
        self._queues[ref.member] = (lock, users + 1)
        try:
            yield
        finally:
            lock, users = self._queues[ref.member]
            if users == 1:
                del self._queues[ref.member]
            else:
                self._queues[ref.member] = (lock, users - 1)

    async def _run(self, ref: AggregateRef, codec: Codec, user: str, key: str,
                   request_hash: str, rule: SharedRule, owed_to: PlayerRef | None) -> Reply:
        idem = self.keys.aggregate_idempotency(ref, user, key)
        for attempt in range(self.retries):
            loaded = await self._load_or_replay(ref, codec, user, key, idem, request_hash)
            if isinstance(loaded, Reply):
                return loaded
            now_ms = int(self.clock.now() * 1000)
            outcome = rule(loaded.state, now_ms // 1000)
            others = self._others(ref, outcome.others, owed_to)
            gate: dict[str, Any] = {"response": outcome.response, "owed": outcome.owed}
            if others:  # only then: every other gate's body stays as it was
                gate["others"] = [o.to_bytes().decode() for o in others]
            body = encode_json(gate)
            res = await self._commit_outcome(ref, codec, user, key, idem, request_hash,
                                             loaded, outcome, body, owed_to, now_ms, others)
            if res[0] == 1:
                return Reply(200, body)
            if res[0] == 0:  # another process committed: back off, reload, apply again
                await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
            # -1: the key was used meanwhile: the next load replays it
        raise Busy("too many concurrent changes to this aggregate; retry", retry_after=1)

    async def _load_or_replay(self, ref: AggregateRef, codec: Codec, user: str, key: str,
                              idem: str, request_hash: str) -> _Loaded | Reply:
        res = await self._load(keys=[self.keys.aggregate(ref), idem], args=[request_hash])
        kind = res[0]
        if kind == b"done":
            return Reply(int(res[1]), bytes(res[2]), replayed=True)
        if kind == b"mismatch":
            raise IdempotencyMismatch()
        newest = int(res[3]) if res[3] else 0
        if res[2]:
            loaded = _Loaded(codec.decode(res[2]), int(res[1]), True)
            if newest and self._within_ttl(newest):
                # Read back from SQL after Redis lost it: keys of commits SQL holds are
                # not in Redis; SQL decides whether this one was used, until every key
                # SQL held then has outlived its lifetime.
                return await self._stored_or(loaded, ref, user, key, request_hash)
            return loaded
        if res[4] == 1:  # evicted: the keys at it are still in Redis (evict.lua)
            row = await self.archive.fetch(ref)
            return (_Loaded(codec.decode(row[1]), row[0], False) if row
                    else _Loaded(None, 0, False))
        row, newest_ms = await self.archive.fetch_with_newest_key(ref)
        loaded = _Loaded(codec.decode(row[1]) if row else None, row[0] if row else 0, False,
                         newest_ms if newest_ms is not None and self._within_ttl(newest_ms)
                         else None)
        return await self._stored_or(loaded, ref, user, key, request_hash)

    def _others(self, ref: AggregateRef, others: tuple[OwedOther, ...],
                owed_to: PlayerRef | None) -> list[Owed]:
        """The owed records of other shoppers an outcome names."""
        if not others:
            return []
        if not self.shards:
            raise RuntimeError("a rule owes other shoppers but the store cannot place them")
        m, g = ref.merchant, ref.game  # the aggregate's game is theirs
        return [Owed(PlayerRef(m, g, o.user, shard_of(m, o.user, self.shards)), o.key,
                     other_hash(ref, o.key), {"response": {}, "owed": o.owed})
                for o in others]

    def _within_ttl(self, ms: int) -> bool:
        return int(self.clock.now() * 1000) - ms < self.idempotency_ttl_ms

    async def _stored_or(self, loaded: _Loaded, ref: AggregateRef, user: str, key: str,
                         request_hash: str) -> _Loaded | Reply:
        stored = await self.archive.gate_key(ref, user, key)
        if stored is None:
            return loaded
        if stored.request_hash != request_hash:
            raise IdempotencyMismatch()
        return Reply(stored.status, stored.body, replayed=True)

    async def _commit_outcome(self, ref: AggregateRef, codec: Codec, user: str, key: str,
                              idem: str, request_hash: str, loaded: _Loaded,
                              outcome: SharedOutcome, body: bytes, owed_to: PlayerRef | None,
                              now_ms: int, others: list[Owed]) -> Any:
        field, record = "", b""
        if outcome.owed is not None:
            if owed_to is None:
                raise RuntimeError("a rule owes a shopper but the caller named none")
            field = owed_field(ref, user, key)
            gate = {"response": outcome.response, "owed": outcome.owed}
            record = Owed(owed_to, key, request_hash, gate).to_bytes()
        entry = msgpack.packb(outcome.record, use_bin_type=True) if outcome.record else b""
        shard = ref.shard
        keys = [self.keys.aggregate(ref), idem, self.keys.aggregate_dirty(shard),
                self.keys.aggregate_active(shard), self.keys.aggregate_ledger(shard),
                self.keys.owed(shard), self.keys.owed_records(shard)]
        packed = msgpack.packb(
            [loaded.version, not loaded.in_redis, codec.encode(outcome.state), 200, body,
             self.idempotency_ttl_ms, now_ms, ref.member, f"{random.getrandbits(96):024x}",
             entry, request_hash, field, record, user, key, loaded.newest_key_ms or False,
             [x for o in others for x in (owed_field(ref, o.player.user, o.key), o.to_bytes())]],
            use_bin_type=False)
        return await self._commit(keys=keys, args=[packed])

    async def settle(self, shard: int, fields: list[str]) -> None:
        """Forget owed records whose shopper commit is applied (idempotent)."""
        if fields:
            await self._settle(keys=[self.keys.owed(shard), self.keys.owed_records(shard)],
                               args=fields)

    async def owed_older_than(self, shard: int, cutoff_ms: int, limit: int
                              ) -> list[tuple[str, Owed | None]]:
        """Owed records of ``shard`` recorded at or before ``cutoff_ms``, oldest first,
        each with when it was recorded (None: the record's body is gone, only its index
        entry is left)."""
        scored: list[Any] = await self.redis.zrangebyscore(
            self.keys.owed(shard), "-inf", cutoff_ms, start=0, num=limit, withscores=True)
        if not scored:
            return []
        raws: list[Any] = await self.redis.hmget(self.keys.owed_records(shard),
                                                 [f for f, _ in scored])
        return [(f.decode(), replace(Owed.from_bytes(r), recorded_ms=int(ms)) if r else None)
                for (f, ms), r in zip(scored, raws, strict=True)]
