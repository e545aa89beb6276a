"""``erasePlayer``: a shopper's personal data of one game, erased at the merchant's request
(docs/privacy.md).

In order, so that nothing the erasure removed comes back:

1. **refuse what cannot be settled yet**: a pending value grant (the reconciler decides
   it), a record a shared play owes the shopper (the two-commit protocol), or what a
   mechanic says the shopper holds (an open group, a held flash-sale unit, an open
   assist of theirs): 409 ``erase_unsettled``, nothing changed.
2. **block** (``erase.lua``): the shopper's new actions are refused (``player_erased``)
   while the persister writes what it owes SQL of them (dirty state, ledger entries).
   Once it has, the same script replaces the player by a tombstone that every commit
   loaded before it conflicts with; then the records of shared plays they made before
   the block must be in SQL too. Not within ``PETBOX_ERASE_WAIT``: 409
   ``erase_pending`` (a retry goes on).
3. **shared state**: every aggregate the shopper's shared plays committed on whose
   mechanic says how its state names shoppers (``mechanics.registry.SharedKind``) is
   renamed to the pseudonym, one commit of the aggregate's own each.
4. **SQL**, one transaction (:mod:`gameserver.db.erasure`): rows deleted or re-keyed to a
   pseudonym.
5. **Redis**: the shopper's idempotency records, gate records, reminders, board places
   and rate-limit keys are deleted; the tombstone stays ``PETBOX_ERASE_TOMBSTONE``, then
   the shopper, if they come back, is a new player.

Every step is idempotent, so a retry after a crash anywhere completes the erasure.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from redis.asyncio import Redis

from economy.errors import DomainError, Refusal
from gameserver.clock import Clock
from gameserver.db import erasure as sql
from gameserver.db.aggregates import AggregateArchive
from gameserver.db.database import Database
from gameserver.games import LiveGame
from gameserver.ops.settings import Settings
from gameserver.state.aggregates import AggregateStore, SharedRule, WireCodec
from gameserver.state.keys import AggregateRef, Keys, PlayerRef
from gameserver.state.scripts import Script
from gameserver.state.store import Store
from mechanics.aggregate import SharedOutcome
from mechanics.registry import SHARED_KINDS, UNSETTLED, SharedKind
from mechanics.state import PlayerState


class EraseUnsettled(DomainError):
    """The shopper holds something whose end still owes them (or the merchant) a
    settlement: erase once it is settled."""

    code = "erase_unsettled"
    kind = Refusal.CONFLICT

    def __init__(self, holding: list[str]) -> None:
        super().__init__("this player holds something not settled yet (a pending prize, "
                         "an open group, a held sale unit, a shared play's follow-up); "
                         "nothing was erased: retry once it is settled",
                         holding=holding[:20], retry_after=60)


class ErasePending(DomainError):
    """The persister has not written the shopper's last changes yet (SQL slow or down)."""

    code = "erase_pending"
    kind = Refusal.CONFLICT

    def __init__(self, waited: float) -> None:
        super().__init__("the player's last changes are not in SQL yet; nothing was erased, "
                         "retry with the same Idempotency-Key", waited_s=waited,
                         retry_after=5)


class Eraser:
    """Erases shoppers of one keyspace (real or shadow: its own keys and SQL only)."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, store: Store, clock: Clock,
                 *, shards: int, secret: str, idempotency_ttl_s: int, wait_s: float,
                 tombstone_s: float) -> None:
        self.redis, self.keys, self.db, self.store, self.clock = redis, keys, db, store, clock
        self.shards, self.secret = shards, secret
        self.idempotency_ttl_ms = idempotency_ttl_s * 1000
        self.wait_s, self.tombstone_ms = wait_s, int(tombstone_s * 1000)
        self._erase = Script.named("erase", redis=redis)
        # Renames commit like any shared play (version check, ledger, write-behind).
        self.aggregates = AggregateStore(redis, keys, AggregateArchive(db), clock,
                                         idempotency_ttl=idempotency_ttl_s)

    @classmethod
    def of(cls, settings: Settings, redis: Redis, keys: Keys, db: Database, store: Store,
           clock: Clock) -> Eraser:
        """The eraser of one keyspace as ``settings`` configure it (the servers' and the
        ``petbox erase-player`` command's: the same secret, so the same pseudonym)."""
        return cls(redis, keys, db, store, clock, shards=settings.shards,
                   secret=settings.token_secret, idempotency_ttl_s=settings.idempotency_ttl,
                   wait_s=settings.erase_wait, tombstone_s=settings.erase_tombstone)

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def erase(self, ref: PlayerRef, live: LiveGame) -> dict[str, Any]:
        """Erase ``ref`` (steps 1-5 of the module docstring); what was done, by table."""
        alias = sql.pseudonym(self.secret, ref.merchant, ref.user)
        deadline = self.clock.monotonic() + self.wait_s
        # Long-lived holdings refuse at once; a grant in flight settles in a moment.
        holding = await self._holding(ref, (await self.store.read(ref)).state, grants=False)
        if holding:
            raise EraseUnsettled(holding)
        await self._block(ref, deadline)
        # The shared plays the shopper made before the block are at or before these
        # (a peek that meets the block refuses every new one).
        marks = await self._shared_marks(ref)
        await self._settled(ref, deadline, marks)
        renamed = await self._rename_shared(ref, alias)
        async with self.db.begin() as conn:
            done = await sql.erase_rows(conn, ref, alias,
                                        self._now_ms() - self.idempotency_ttl_ms)
        done.pseudonymised["aggregates"] = renamed
        removed = await self._redis_leftovers(ref, live, done)
        self.store.cache.drop(ref.member)
        return {"pseudonym": alias, "deleted": done.deleted,
                "pseudonymised": done.pseudonymised, "redis_keys_deleted": removed,
                "refused_until": (self._now_ms() + self.tombstone_ms) // 1000}

    async def _holding(self, ref: PlayerRef, state: PlayerState | None, *,
                       grants: bool = True) -> list[str]:
        """What the shopper holds unsettled: the mechanics' (from ``state``), records
        shared plays owe them, and (``grants``) value grants still pending."""
        now = int(self.clock.now())
        holding = [h for unsettled in UNSETTLED if state is not None
                   for h in unsettled(state, now)]
        if grants:
            async with self.db.connect() as conn:
                pending = await sql.pending_grants(conn, ref)
            if pending:
                holding.append(f"pending_grants:{pending}")
        return holding + await self._owed(ref)

    async def _settled(self, ref: PlayerRef, deadline: float,
                       marks: list[tuple[int, int] | None]) -> None:
        """Once blocked: wait for grants in flight to settle (confirmed, or void when their
        commit met the tombstone) and for the shared plays' records up to ``marks`` to be
        in SQL (the persister writes the shared plays' ledger in a stage of its own,
        perhaps on another host: a record written after the SQL step would name the
        shopper). Not settled by the deadline: the block is undone and the erasure
        refused (``erase_unsettled``, or ``erase_pending`` when SQL is only behind)."""
        delay = 0.01
        while True:
            holding = await self._holding(ref, (await self.store.read(ref)).state)
            written = await self._shared_written(marks)
            if not holding and written:
                return
            if self.clock.monotonic() >= deadline or not all(
                    h.startswith("pending_grants:") for h in holding):
                await self._unblock(ref)
                if holding:
                    raise EraseUnsettled(holding)
                raise ErasePending(self.wait_s)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _rename_shared(self, ref: PlayerRef, alias: str) -> int:
        """Rename the shopper to ``alias`` in the state of every aggregate their shared
        plays touched whose mechanic says how (``mechanics.registry.SHARED_KINDS``), each
        one commit of the aggregate's own (a concurrent play conflicts and retries, the
        persister writes it behind like any other); how many named them. Idempotent: a
        state that no longer names them is left as it is."""
        async with self.db.connect() as conn:
            touched = await sql.touched_aggregates(conn, ref, alias)
        renamed = 0
        for kind, aggregate in touched:
            shared = SHARED_KINDS.get(kind)
            if shared is None:  # a kind whose state names nobody (seeds, match lists)
                continue
            agg = AggregateRef.of(ref.merchant, ref.game, kind, aggregate, self.shards)
            key = f"erase:{secrets.token_hex(12)}"  # ':': never a shopper's key
            try:
                await self.aggregates.run(agg, WireCodec(shared.from_wire), ERASER, key,
                                          key, _renaming(shared, ref.user, alias))
            except _NotNamed:
                continue
            renamed += 1
        return renamed

    async def _shared_marks(self, ref: PlayerRef) -> list[tuple[int, int] | None]:
        """Per aggregate shard, the id of the newest record of the shopper's shared plays
        in this game still in its ledger stream (None: none; the streams are drained
        every pass, so they are short). A stream longer than :data:`SCAN_LIMIT` (SQL
        behind): its newest entry, unread ones may be the shopper's."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.xrevrange(self.keys.aggregate_ledger(shard), count=SCAN_LIMIT)
        prefix = f"{ref.merchant}:{ref.game}:"
        marks: list[tuple[int, int] | None] = []
        for entries in await pipe.execute():
            if len(entries) >= SCAN_LIMIT:
                marks.append(_entry_id(entries[0][0]))
                continue
            marks.append(next((_entry_id(eid) for eid, fields in entries  # newest first
                               if _text(fields, "u") == ref.user
                               and _text(fields, "g").startswith(prefix)), None))
        return marks

    async def _shared_written(self, marks: list[tuple[int, int] | None]) -> bool:
        """Whether the persister has written (and deleted) every aggregate ledger entry up
        to ``marks``: each stream is empty or starts past its mark."""
        pending = [(shard, mark) for shard, mark in enumerate(marks) if mark is not None]
        if not pending:
            return True
        pipe = self.redis.pipeline(transaction=False)
        for shard, _ in pending:
            pipe.xrange(self.keys.aggregate_ledger(shard), count=1)
        firsts = await pipe.execute()
        return all(not got or _entry_id(got[0][0]) > mark
                   for (_, mark), got in zip(pending, firsts, strict=True))

    async def _owed(self, ref: PlayerRef) -> list[str]:
        """Records shared plays of this game owe the shopper (every aggregate shard's owed
        set: small, as records live seconds)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zrange(self.keys.owed(shard), 0, -1)
        prefix, mid = f"{ref.merchant}:{ref.game}:", f"|{ref.user}|"
        found: list[str] = []
        for members in await pipe.execute():
            for raw in members:
                member = raw.decode() if isinstance(raw, bytes) else str(raw)
                if member.startswith(prefix) and mid in member:
                    found.append("owed:" + member.split("|", 1)[0][len(prefix):])
        return found

    async def _block(self, ref: PlayerRef, deadline: float) -> None:
        """Block the shopper and wait until the persister owes SQL nothing of them."""
        k = self.keys
        hold_ms = int((self.wait_s + 2) * 1000)
        delay = 0.01
        while True:
            got = await self._erase(
                keys=[k.player(ref), k.dirty(ref.shard), k.active(ref.shard),
                      k.ledger(ref.shard)],
                args=[ref.member, self._now_ms(), hold_ms, self.tombstone_ms])
            if got in (b"blocked", "blocked"):
                return
            if self.clock.monotonic() >= deadline:
                raise ErasePending(self.wait_s)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _unblock(self, ref: PlayerRef) -> None:
        """Undo a block whose erasure was refused after it: the tombstone goes (the
        player is read back from SQL, which holds them whole, as after an eviction)."""
        key = self.keys.player(ref)
        with contextlib.suppress(Exception):
            if await self.redis.hget(key, "v") in (b"-1", "-1"):
                await self.redis.delete(key)

    async def _redis_leftovers(self, ref: PlayerRef, live: LiveGame,
                               done: sql.Erased) -> int:
        """Delete the shopper's keys besides the tombstone; how many existed."""
        k, r = self.keys, self.redis
        removed = 0
        for key in done.player_keys:
            removed += int(await r.delete(k.idempotency(ref, key)))
        for kind, aggregate, key in done.shared_keys:
            agg = AggregateRef.of(ref.merchant, ref.game, kind, aggregate, self.shards)
            removed += int(await r.delete(k.aggregate_idempotency(agg, ref.user, key)))
        queued = f"*:{ref.member}"  # <kind>:<member> (gameserver/jobs/reminders.py)
        removed += await _scan_out(r, k.reminders(ref.shard), queued, zset=True)
        removed += await _scan_out(r, k.reminder_retries(ref.shard), queued, zset=False)
        for board in live.config.leaderboards:
            removed += int(await r.zrem(k.leaderboard(ref.merchant, ref.game, board),
                                        ref.user))
            removed += int(await r.hdel(k.leaderboard_names(ref.merchant, ref.game, board),
                                        ref.user))
        rate = f"{k.tag(ref.shard)}:rl:{ref.merchant}:{ref.user}"  # http/ratelimit.py
        removed += int(await r.delete(rate, f"{rate}:draw"))
        return removed


ERASER = "~erasure"
"""The user of the renaming commits (``~``: no shopper's, so analytics counts no play)."""


class _NotNamed(Exception):
    """The aggregate's state does not name the shopper: nothing to commit."""


def _renaming(shared: SharedKind, user: str, alias: str) -> SharedRule:
    """The shared rule renaming ``user`` to ``alias`` (refuses a state naming neither)."""
    def rule(state: Any, now: int) -> SharedOutcome:
        new = None if state is None else shared.rename(state, user, alias)
        if new is None:
            raise _NotNamed()
        return SharedOutcome(new, {})
    return rule


SCAN_LIMIT = 10_000
"""Entries of an aggregate ledger stream the eraser reads for the shopper's records."""


def _text(fields: dict[Any, Any], name: str) -> str:
    """A stream entry's field as text ('' if absent), whatever the client decodes."""
    raw = fields.get(name.encode(), fields.get(name, b""))
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _entry_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a pair that compares in stream order."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


async def _scan_out(redis: Redis, key: str, pattern: str, *, zset: bool) -> int:
    """Remove the members (or hash fields) of ``key`` matching ``pattern``."""
    scan = redis.zscan_iter if zset else redis.hscan_iter
    found = [item[0] if isinstance(item, tuple) else item
             async for item in scan(key, match=pattern, count=500)]
    if not found:
        return 0
    return int(await (redis.zrem(key, *found) if zset else redis.hdel(key, *found)))
