"""The action pipeline: load → apply → commit (DESIGN.md).

``Store.run`` reads the player and its idempotency record in one read-only Lua
call, applies a pure rule, and commits the outcome with one more Lua call that
checks the version and that the key is unused, then writes state, ledger, dirty
mark and the stored response together. A version conflict reloads and retries
with jittered backoff; a duplicate that loses the race reloads and replays the
winner's response; a rule's refusal changes nothing.

A player this process committed last skips the load: the cached copy
(:mod:`gameserver.state.statecache`) is checked by the commit, whose conflict reply carries
the current state.

Only an action whose outcome holds limited stock (the value tier) claims its key
before the hold (``claim.lua``), so that a concurrent duplicate waits for its reply
instead of holding stock of its own; a refusal then releases the claim. A two-commit
action (gameserver/state/aggregates_gate.py) claims its key with its load instead
(:meth:`Store.peek_claim`), before its gate.

What the pipeline takes and gives (``Rule``, ``Loaded``, ``Reply``, the state's wire
form) is in :mod:`gameserver.state.storetypes`, re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import msgpack
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError

from gameserver.clock import Clock
from gameserver.http.errors import (
    Busy,
    IdempotencyInProgress,
    IdempotencyMismatch,
    PlayerErased,
    ResponseUnavailable,
)
from gameserver.ops.metrics import Metrics
from gameserver.state.batching import ScriptBatcher
from gameserver.state.keys import PENDING_TTL_MS, Keys, PlayerRef, by_shopper
from gameserver.state.scripts import Script
from gameserver.state.statecache import Cached, StateCache
from gameserver.state.storetypes import Loaded as Loaded
from gameserver.state.storetypes import PlayerArchive as PlayerArchive
from gameserver.state.storetypes import Reply as Reply
from gameserver.state.storetypes import Rule as Rule
from gameserver.state.storetypes import Schedule as Schedule
from gameserver.state.storetypes import decode_state as decode_state
from gameserver.state.storetypes import encode_json as encode_json
from gameserver.state.storetypes import encode_state as encode_state
from gameserver.state.value import Hold, StockShort, ValueBinding
from mechanics.outcome import Outcome
from mechanics.state import PlayerState, first_played

if TYPE_CHECKING:
    from gameserver.db.database import StoredKey

def _unique_hex(bits: int) -> str:
    """A random id that only has to be unique (commit ids, claim tokens), not secret:
    the random module's generator, seeded from the OS and reseeded in a forked child,
    instead of one ``getrandom`` system call per id."""
    return f"{random.getrandbits(bits):0{bits // 4}x}"


STOCK_RETRIES = 12
"""How often an action is re-applied because limited stock ran out under it."""

log = logging.getLogger("petbox.store")


@dataclass
class _Attempt:
    """One request's inputs across its retries, and whether it claimed its key."""

    ref: PlayerRef
    idempotency_key: str
    idem_key: str
    request_hash: str
    token: str
    rule: Rule
    status: int
    value: ValueBinding | None
    schedule: Schedule | None
    claimed: bool = False
    adopted: bool = False
    """The claim was made before this run (a two-commit action's, :meth:`Store.claim`):
    its owner releases or binds it, never this run."""
    shared: bool = False
    """A two-commit action's peek or claim: another run of the same request holding the
    key is no reason to wait (it may have died; the gate and the commit act once)."""
    claim_ms: int = 0
    """With ``shared``: the load claims the key for this long (:meth:`Store.peek_claim`)."""


def _refuse(state: PlayerState | None, now: int) -> Outcome:
    raise RuntimeError("peek applies no rule")


class _Again(enum.Enum):
    """Why an attempt did not produce a reply."""

    CONFLICT = "conflict"
    """The player changed since the load: back off, reload, apply again."""
    RELOAD = "reload"
    """Another request used or claimed the key: reload (it replays, or waits for it)."""


class Store:
    """Player state in Redis with optimistic concurrency and idempotent commits."""

    def __init__(self, redis: Redis, keys: Keys, archive: PlayerArchive, metrics: Metrics,
                 clock: Clock, *, idempotency_ttl: int = 86400, idempotency_wait: float = 2.0,
                 retries: int = 8, batcher: ScriptBatcher | None = None,
                 cache_size: int = 0) -> None:
        self.redis = redis
        self.keys = keys
        self.archive = archive
        self.metrics = metrics
        self.clock = clock
        self.idempotency_ttl_ms = idempotency_ttl * 1000
        self.idempotency_wait = idempotency_wait
        self.retries = retries
        self.cache = StateCache(cache_size)
        """The states this process committed last: an action on one of them skips its
        load round trip (the commit's checks catch a stale copy)."""
        self.entry_time_from_clock = False
        """True: ledger entries (and so the SQL times of commits) are dated by ``clock``,
        not by Redis (``petbox demo --history`` plays past days; never in serving)."""
        # The two calls every action makes go through the batcher when there is one
        # (gameserver/state/batching.py): under load, one pipeline carries many requests' calls.
        self._load = Script.named("load", redis=redis, batcher=batcher)
        self._commit = Script.named("commit", redis=redis, batcher=batcher)
        self._read = Script.named("read_players", batcher=batcher) if batcher else None
        self._claim = Script.named("claim", redis=redis)
        self._release = Script.named("release", redis=redis)
        self._bind = Script.named("bind", redis=redis)

    async def read(self, ref: PlayerRef) -> Loaded:
        """Read a player for a GET: Redis, else SQL (read-only, nothing installed)."""
        key = self.keys.player(ref)
        version, raw = await (self._read(keys=[key]) if self._read is not None
                              else self.redis.hmget(key, ["v", "s"]))
        if isinstance(raw, bytes) and version is not None:
            return Loaded(decode_state(raw), int(version), True)
        return await self._from_archive(ref)

    async def _from_archive(self, ref: PlayerRef) -> Loaded:
        return self._archived(await self.archive.fetch_player(ref))

    def _archived(self, row: tuple[int, bytes] | None,
                  restore: tuple[StoredKey, ...] = ()) -> Loaded:
        """A player SQL gave (None: never flushed), with the keys to write back."""
        if row is None:
            return Loaded(None, 0, False, restore)
        self.metrics.read_through.inc()
        return Loaded(decode_state(row[1]), row[0], False, restore)

    async def run(self, ref: PlayerRef, idempotency_key: str, request_hash: str,
                  rule: Rule, status: int = 200, value: ValueBinding | None = None,
                  schedule: Schedule | None = None, first: Loaded | None = None,
                  claim: str | None = None) -> Reply:
        """Run ``rule`` for ``ref`` exactly once per idempotency key.

        ``value`` is given for actions that may grant limited prizes: their units are
        held (Redis gate, then SQL) before the commit and confirmed after it.
        ``schedule`` gives the reminders of the state being committed; the commit
        writes them into the shard's reminder queue.
        ``first`` is the player as :meth:`peek` loaded it, used by the first attempt
        (the commit's version check makes a stale one a conflict, which reloads).
        ``claim`` is the token of the key's claim made before (:meth:`claim`): the
        commit completes it.
        """
        token = claim or _unique_hex(64)
        idem_key = self.keys.idempotency(ref, idempotency_key)
        # An adopted claim is claimed again before a hold (claim.lua, exclusive): another
        # run of the same request may have taken it over, and only one may hold stock.
        a = _Attempt(ref, idempotency_key, idem_key, request_hash, token, rule, status, value,
                     schedule, adopted=claim is not None)
        loaded = first if first is not None else self._cached(ref)
        try:
            for attempt in range(self.retries):
                if loaded is None:
                    loaded_or_reply = await self._load_or_replay(a)
                    if isinstance(loaded_or_reply, Reply):
                        return loaded_or_reply
                    loaded = loaded_or_reply
                result = await self._apply_and_commit(a, loaded)
                if isinstance(result, Reply):
                    return result
                if isinstance(result, Loaded):  # a stale cached copy: the current one
                    loaded = result
                    continue
                loaded = None
                if result is _Again.CONFLICT:
                    self.metrics.commit_conflicts.inc()
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
        except BaseException:
            await self._release_claim(a)
            raise
        await self._release_claim(a)
        self.metrics.commit_exhausted.inc()
        raise Busy("too many concurrent changes to this player; retry", retry_after=1)

    def _cached(self, ref: PlayerRef) -> Loaded | None:
        """The player as this process last committed it, if it is in the cache."""
        hit = self.cache.get(ref.member)
        if hit is None:
            return None
        self.metrics.state_cache_hits.inc()
        return Loaded(decode_state(hit.state), hit.version, True, entry=hit.entry)

    async def peek(self, ref: PlayerRef, idempotency_key: str, request_hash: str
                   ) -> Loaded | Reply:
        """What :meth:`run` finds first, without applying anything: the stored reply of
        a used key (replay), or the player as loaded. The two-commit protocol asks
        before its gate, so a key the shopper already used elsewhere is refused (422)
        before the shared aggregate changes (gameserver/state/aggregates_gate.py)."""
        return await self._load_or_replay(self._key_attempt(ref, idempotency_key,
                                                            request_hash))

    async def peek_claim(self, ref: PlayerRef, idempotency_key: str, request_hash: str
                         ) -> tuple[Loaded, str] | Reply:
        """:meth:`peek` and :meth:`claim` in the load's one round trip: the player as
        loaded and the claim's token, or the reply of a used key (gameserver/
        aggregates_gate.py). The key of another request is 422 before anything changed;
        a claim of the same request that is not locked is taken over (see :meth:`claim`)."""
        a = self._key_attempt(ref, idempotency_key, request_hash, claim_ms=PENDING_TTL_MS)
        found = await self._load_or_replay(a)
        return found if isinstance(found, Reply) else (found, a.token)

    async def claim(self, ref: PlayerRef, idempotency_key: str, request_hash: str
                    ) -> str | Reply:
        """Claim the key for this request before a shared aggregate's gate commits
        (gameserver/state/aggregates_gate.py): its in-flight token, or the stored reply of a
        retry (replay). The same request may take the claim over (a retry after its first
        run died: gate and commit act once by key, and the first run's commit then
        replays the second's); the key of another request is 422 before anything
        changed. The owner
        completes the claim with its commit (``run(..., claim=token)``), or binds it
        (:meth:`bind_key`), or releases it (:meth:`release`); a crashed owner's claim
        expires by itself."""
        a = self._key_attempt(ref, idempotency_key, request_hash)
        for _ in range(self.retries):
            res = await self._claim(keys=[a.idem_key], args=[request_hash, a.token,
                                                             PENDING_TTL_MS, 1])
            if res[0] == b"ok":
                return a.token
            if res[0] == b"mismatch":
                raise IdempotencyMismatch()
            found = await self._load_or_replay(a)  # used: replays; pending: waits for it
            if isinstance(found, Reply):
                return found
        raise IdempotencyInProgress()

    async def bind_key(self, ref: PlayerRef, idempotency_key: str, claim: str) -> None:
        """Keep a claimed key bound to its request for the key's lifetime, when the gate
        holds the reply and the shopper's state did not change (bind.lua)."""
        await self._bind(keys=[self.keys.idempotency(ref, idempotency_key)],
                         args=[claim, self.idempotency_ttl_ms])

    async def release(self, ref: PlayerRef, idempotency_key: str, claim: str) -> None:
        """Give up a claim whose action was refused (nothing changed): a retry runs
        afresh (best effort: an unreachable Redis lets the claim expire by itself)."""
        await self._release_token(self.keys.idempotency(ref, idempotency_key), claim)

    async def _release_token(self, idem_key: str, token: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(self._release(keys=[idem_key], args=[token]))

    def _key_attempt(self, ref: PlayerRef, idempotency_key: str, request_hash: str,
                     claim_ms: int = 0) -> _Attempt:
        """An attempt that only asks about a two-commit action's key (peek, claim):
        no rule, and another run of the same request is no reason to wait."""
        return _Attempt(ref, idempotency_key, self.keys.idempotency(ref, idempotency_key),
                        request_hash, _unique_hex(64), _refuse, 200, None, None,
                        shared=True, claim_ms=claim_ms)

    async def _load_or_replay(self, a: _Attempt) -> Loaded | Reply:
        """Read the player, or the stored reply of a key already used (waiting a little
        while another request holds the key's claim)."""
        deadline = self.clock.monotonic() + self.idempotency_wait
        delay = 0.002
        while True:
            res = await self._load(keys=[self.keys.player(a.ref), a.idem_key,
                                         self.keys.ledger(a.ref.shard)],
                                   args=[a.request_hash, a.token, 1 if a.shared else 0,
                                         a.claim_ms, int(self.clock.now() * 1000)])
            kind = res[0]
            if kind == b"ok":
                break
            if kind == b"done":
                return self._replay(int(res[1]), bytes(res[2]))
            if kind == b"stored":
                return await self._replay_from_sql(a, res[1].decode())
            if kind == b"mismatch":
                raise IdempotencyMismatch()
            if kind == b"erased":  # erasePlayer holds or has just erased them
                raise PlayerErased()
            if self.clock.monotonic() >= deadline:  # pending: the claim's owner is running
                raise IdempotencyInProgress()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        if res[2]:
            return Loaded(decode_state(res[2]), int(res[1]), True)
        return await self._read_through(a)

    async def _read_through(self, a: _Attempt) -> Loaded | Reply:
        """The player from SQL, with its keys of the idempotency lifetime. Redis had
        neither the player nor this key: if SQL has the key's response (Redis was
        evicted or lost its data after the persister stored it), replay it: an
        acknowledged request is never applied twice, whatever Redis lost."""
        since_ms = int(self.clock.now() * 1000) - self.idempotency_ttl_ms
        row, stored = await self.archive.fetch_archived(a.ref, since_ms)
        for record in stored:
            if record.key == a.idempotency_key:
                if record.request_hash and record.request_hash != a.request_hash:
                    raise IdempotencyMismatch()
                self.metrics.keys_from_sql.inc()
                return await self._replay_from_sql(a, record.commit_id)
        return self._archived(row, tuple(stored))

    def _replay(self, status: int, body: bytes) -> Reply:
        self.metrics.idempotent_replays.inc()
        return Reply(status, body, replayed=True)

    async def _replay_from_sql(self, a: _Attempt, commit_id: str) -> Reply:
        """The stored response of a key whose ledger entry the persister has drained.
        SQL unreachable (refused, or hung past its timeout): ``response_unavailable``,
        the documented answer for a used key whose response cannot be read now."""
        try:
            row = await self.archive.fetch_response(commit_id)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("stored response of a used key unreadable, SQL unavailable: %r", exc)
            raise ResponseUnavailable() from exc
        if row is None:  # only lost data or a bug can get here: say so, change nothing
            log.error("stored response of %s key %s is in neither Redis nor SQL",
                      a.ref.member, a.idempotency_key)
            raise ResponseUnavailable()
        return self._replay(row[0], row[1])

    async def _apply_and_commit(self, a: _Attempt, loaded: Loaded
                                ) -> Reply | _Again | Loaded:
        """Apply the rule and commit; what to do next when no reply came of it (the
        player as the commit found it, when a cached copy proved stale)."""
        commit_id = _unique_hex(96)
        now_s = int(self.clock.now())
        applied = await self._apply(a, loaded, commit_id, now_s)
        if not isinstance(applied, tuple):
            return applied
        outcome, hold = applied
        body = encode_json(outcome.response)
        if loaded.state is None or outcome.state.played_at == 0:  # new, or not played yet
            outcome = replace(outcome, state=first_played(
                outcome.state, loaded.state, now_s, by_shopper(a.idempotency_key)))
        state = encode_state(outcome.state)
        # If the commit raises, it may or may not have happened: a held grant stays
        # pending and reconciliation decides from the idempotency record and the ledger.
        res = await self._commit_outcome(a, loaded, outcome, state, commit_id, body, now_s)
        if res[0] == 1:
            self.cache.put(a.ref.member, Cached(int(res[1]), bytes(res[2]), state))
            if hold is not None:
                await self._confirm(a.value, hold)
            return Reply(a.status, body)
        if hold is not None and a.value is not None:
            await a.value.tier.cancel(hold)
        if res[0] == -1:
            return _Again.RELOAD
        return self._stale(a, loaded, res) if loaded.entry else _Again.CONFLICT

    def _stale(self, a: _Attempt, loaded: Loaded, res: Any) -> Loaded | _Again:
        """A cached copy the commit refused: not contention but an older copy (another
        process or host changed the player, or Redis lost it), so no backoff. The
        commit's reply holds the current state; without one (Redis has no such player:
        evicted or lost) the next attempt loads, reading through from SQL."""
        self.cache.drop(a.ref.member)
        self.metrics.state_cache_stale.inc()
        if not res[2]:
            return _Again.RELOAD
        return Loaded(decode_state(res[2]), int(res[1]), True)

    async def _apply(self, a: _Attempt, loaded: Loaded, commit_id: str, now_s: int
                     ) -> tuple[Outcome, Hold | None] | Reply | _Again:
        """The rule's outcome, with its limited units held; re-applied when stock ran out
        meanwhile (the rule then falls back, as it does for a prize that is out). Before
        its first hold the request claims its key: a Reply (replay) or RELOAD (another
        request holds the claim) when it cannot."""
        for _ in range(STOCK_RETRIES):
            try:
                outcome = a.rule(loaded.state, now_s)
            except Exception:
                if not loaded.entry:
                    raise
                # A refusal on a cached copy is not final: the current state decides,
                # or the key's stored reply (a retry of an acknowledged action whose
                # second application would be refused must replay, not refuse).
                return _Again.RELOAD
            if not outcome.reservations:
                return outcome, None
            if a.value is None:
                raise RuntimeError("a rule reserved stock but the handler gave no value tier")
            if not a.claimed:
                refused = await self._claim_key(a)
                if refused is not None:
                    return refused
            try:
                hold = await a.value.tier.hold(a.ref, a.idempotency_key, commit_id, outcome,
                                               a.value.view, a.value.totals)
            except StockShort:
                continue  # the view now says what is left: apply again
            return outcome, hold
        raise Busy("limited stock is changing too fast; retry", retry_after=1)

    async def _claim_key(self, a: _Attempt) -> Reply | _Again | None:
        """Claim the key for this request (None), or why not: replay or reload."""
        res = await self._claim(keys=[a.idem_key], args=[a.request_hash, a.token,
                                                         PENDING_TTL_MS])
        if res[0] == b"ok":
            a.claimed = True
            return None
        if res[0] == b"mismatch":
            raise IdempotencyMismatch()
        return _Again.RELOAD  # used: the next load replays; pending: it waits

    async def _commit_outcome(self, a: _Attempt, loaded: Loaded, outcome: Outcome,
                              state: bytes, commit_id: str, body: bytes, now_s: int) -> Any:
        ledger = (msgpack.packb([e.to_wire() for e in outcome.ledger], use_bin_type=True)
                  if outcome.ledger else b"")
        events = (msgpack.packb([r.to_wire() for r in outcome.records], use_bin_type=True)
                  if outcome.records else b"")
        ref = a.ref
        keys = [self.keys.player(ref), a.idem_key, self.keys.dirty(ref.shard),
                self.keys.active(ref.shard), self.keys.ledger(ref.shard)]
        reminders: list[str | int] = []  # ZADD's score, member pairs
        if a.schedule is not None:
            for member, due_at in a.schedule(outcome.state, now_s):
                reminders += [due_at, member]
            if reminders:
                keys.append(self.keys.reminders(ref.shard))
        restored = self._restored(a, loaded, keys)
        # One msgpack argument (see commit.lua); Redis' cmsgpack reads the str family
        # only, hence use_bin_type=False (Lua strings are bytes either way).
        packed = msgpack.packb(
            [loaded.version, not loaded.in_redis, state, a.token,
             a.status, body, self.idempotency_ttl_ms, int(self.clock.now() * 1000),
             ref.member, commit_id, ledger, a.request_hash, events, reminders,
             a.idempotency_key, restored, loaded.entry, self.entry_time_from_clock],
            use_bin_type=False)
        return await self._commit(keys=keys, args=[packed])

    def _restored(self, a: _Attempt, loaded: Loaded, keys: list[str]) -> list[list[Any]]:
        """The keys a read-through brings back into Redis: their hashes go into ``keys``
        (from KEYS[7], after the reminder queue's slot), their records are returned
        (commit.lua's 16th field: request hash, status, commit id, TTL left in ms)."""
        if not loaded.restore:
            return []
        if len(keys) == 5:
            keys.append(self.keys.reminders(a.ref.shard))
        now_ms = int(self.clock.now() * 1000)
        records: list[list[Any]] = []
        for r in loaded.restore:
            ttl_left = r.ts_ms + self.idempotency_ttl_ms - now_ms
            # Rows stored before responses had a request hash cannot tell a retry
            # from a mismatch in Redis: those stay found by a read-through only.
            if ttl_left > 0 and r.request_hash and r.key != a.idempotency_key:
                keys.append(self.keys.idempotency(a.ref, r.key))
                records.append([r.request_hash, r.status, r.commit_id, ttl_left])
        return records

    async def _confirm(self, value: ValueBinding | None, hold: Hold) -> None:
        """Confirm held grants; if SQL fails now, reconciliation confirms them later."""
        assert value is not None
        try:
            await value.tier.confirm(hold)
        except Exception:
            log.warning("grant confirmation deferred to reconciliation", exc_info=True)

    async def _release_claim(self, a: _Attempt) -> None:
        """Give up a claim this request made but did not commit (best effort: if Redis
        is unreachable the marker expires by itself)."""
        if a.claimed and not a.adopted:
            await self._release_token(a.idem_key, a.token)

