"""Leases in Redis: one host at a time runs a background job, and another takes over
within one lease lifetime when the holder dies.

A lease is a key set with ``SET key token NX PX ttl``; only the token's holder renews
or releases it (compare-and-act in Lua, so a holder that stalled past its lifetime
cannot extend or delete the lease a successor took). A holder counts the lease as its
own only until ``ttl`` minus a safety margin has passed on its own monotonic clock
since the last successful grab, so a holder cut off from Redis stops before the key
expires there.

A lease makes a job run on one host, not *exactly* one: a holder paused longer than
its lifetime (GC, swap, a hung SQL call) may finish a pass while its successor starts
one. Every job run under a lease is therefore also safe when two passes overlap (the
reconciler settles by conditional updates, housekeeping deletes by id, the persister
writes idempotently by version); the lease removes the duplicate work, not the need for
that safety.

:class:`ShardLeases` spreads numbered units of work (the persister's logical shards)
over the live hosts: each holds about ``ceil(shards / hosts)`` of them, and the shards
of a host that died are taken over once their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from gameserver.state.scripts import Script

log = logging.getLogger("petbox.lease")

LEASE_PREFIX = "petbox:lease"

JOB_LEASE_MS = 15_000
"""Lifetime of a background job's lease: a dead holder's job resumes on another host
within this (plus one interval); renewed every third of it."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""
"""Extend the lease only if ``ARGV[1]`` (our token) still holds it."""

_MEMBERS = """
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return redis.call('ZCARD', KEYS[1])
"""
"""Heartbeat of one host in a group (score: its expiry, ms) and the live count."""


def process_name(role: str) -> str:
    """A name unique to this process (and this call): host, role, pid and a random
    suffix. Two processes on one host, or a restarted process reusing a pid, never
    share it (e.g. as a Redis stream consumer name or a lease token)."""
    return f"{socket.gethostname()}-{role}-{os.getpid()}-{secrets.token_hex(3)}"


def job_lease(redis: Redis, keys_prefix: str, job: str, interval: float | None = None) -> Lease:
    """The lease of one background job of a keyspace (``<prefix>:lease:<job>``).

    With the job's ``interval``, the lease lives five intervals (1 s to ``JOB_LEASE_MS``):
    after its holder dies, a job that runs often is taken over as soon as it would next
    have run, so a crash adds about one lease lifetime to what the job bounds (the
    reconciler's gate convergence, for one)."""
    ttl_ms = JOB_LEASE_MS if interval is None else \
        int(min(JOB_LEASE_MS, max(1000.0, interval * 5000)))
    return Lease(redis, job, ttl_ms, prefix=f"{keys_prefix}:lease")


def persister_assignment(redis: Redis, keys_prefix: str, shards: int, consumer: str,
                         flush_interval: float) -> ShardLeases:
    """The shard leases of a keyspace's persisters: each host flushes its share of the
    shards. A lease lives five flush intervals (at least 1 s): a killed host's shards
    (or a restarted host's own, under its old name) are taken over that soon, and a
    pass renews them well before. A pass longer than that only lets another host work
    the shard too, which the persister's idempotent writes make safe."""
    ttl_ms = max(1000, int(flush_interval * 5000))
    return ShardLeases(redis, "persister", shards, ttl_ms, token=consumer,
                       prefix=f"{keys_prefix}:lease")


class Lease:
    """One named lease; :meth:`hold` takes or renews it, :meth:`release` gives it up."""

    def __init__(self, redis: Redis, name: str, ttl_ms: int = 30_000, *,
                 token: str | None = None, prefix: str = LEASE_PREFIX,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if ttl_ms < 100:
            raise ValueError("a lease lives at least 100 ms")
        self.redis, self.name, self.ttl_ms = redis, name, ttl_ms
        self.key = f"{prefix}:{name}"
        self.token = token or process_name("lease")
        self._monotonic = monotonic
        self._valid_until = 0.0
        # Scripts that a node lacking them runs by EVAL on that node alone (a cluster's
        # SCRIPT LOAD goes to every master, and fails while one is down).
        self._renew = Script(_RENEW, redis=redis)
        self._release = Script.named("unlock", redis=redis)

    @property
    def held(self) -> bool:
        """True while our last grab is younger than the lifetime minus the margin."""
        return self._monotonic() < self._valid_until

    async def hold(self) -> bool:
        """Renew the lease if we hold it, else try to take it; True if ours now."""
        started = self._monotonic()
        ok = False
        if self._valid_until:  # ours at the last call: renew (one round trip)
            ok = bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if not ok:
            ok = bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
            if ok:
                log.info("lease %s taken by %s", self.name, self.token)
        # Counted from before the call: the key's lifetime began no earlier than that.
        self._valid_until = started + self.ttl_ms / 1000 * 0.8 if ok else 0.0
        return ok

    async def release(self) -> bool:
        """Give the lease up (if still ours) so another host takes it at once."""
        self._valid_until = 0.0
        return bool(await self._release(keys=[self.key], args=[self.token]))

    async def holder(self) -> str | None:
        """The token holding the lease now, if any (for tests and status)."""
        raw = await self.redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw


class ShardLeases:
    """This host's share of ``shards`` numbered units, one lease each.

    Every host calls :meth:`assign` once per pass: it heartbeats in the group's member
    set and counts the live hosts ``n``; renews the leases it holds, up to
    ``ceil(shards / n)``, releasing any above that (a host joined); and takes free
    ones up to that share. A dead host's leases and heartbeat expire after ``ttl_ms``,
    so the others' shares grow and they take its shards over. At most three round
    trips a pass (heartbeat; renew and look; take), each one pipeline.
    """

    def __init__(self, redis: Redis, group: str, shards: int, ttl_ms: int = 10_000, *,
                 token: str | None = None, prefix: str = LEASE_PREFIX,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if shards < 1 or ttl_ms < 100:
            raise ValueError("at least one shard, and a lease of at least 100 ms")
        self.redis, self.group, self.shards, self.ttl_ms = redis, group, shards, ttl_ms
        self.token = token or process_name(group)
        self.prefix = prefix
        self._monotonic = monotonic
        self._valid: dict[int, float] = {}
        """Shards we hold → monotonic time until which we count them ours."""
        self._renew = Script(_RENEW, redis=redis)
        self._release = Script.named("unlock", redis=redis)
        self._members = Script(_MEMBERS, redis=redis)
        self._hosts = 1
        """The live hosts counted at the last heartbeat that Redis answered."""
        self._one_by_one_until = 0.0
        """Until then (monotonic), lease commands go one per shard: a node was down."""
        # Start the search at a spot of our own, so hosts do not all race for shard 0.
        self._offset = int.from_bytes(self.token.encode()[-6:], "big") % shards

    def key(self, shard: int) -> str:
        """The shard's lease key; with the shard's hash tag, so it lives in its slot."""
        return f"{self.prefix}:{self.group}:{{s{shard}}}"

    @property
    def members_key(self) -> str:
        return f"{self.prefix}:{self.group}:members"

    def held(self) -> list[int]:
        """The shards whose leases we count as ours now."""
        now = self._monotonic()
        return sorted(s for s, until in self._valid.items() if now < until)

    async def live_hosts(self) -> int:
        """Heartbeat; the number of hosts in the group that are alive (≥ 1)."""
        now_ms = int(time.time() * 1000)
        try:
            self._hosts = max(1, int(await self._members(
                keys=[self.members_key],
                args=[self.token, now_ms + self.ttl_ms, now_ms, self.ttl_ms * 3])))
        except RedisError as exc:  # the member set's node is down: the last count holds
            log.warning("host heartbeat failed, counting %d hosts: %r", self._hosts, exc)
        return self._hosts

    async def assign(self) -> list[int]:
        """The shards this host works on this pass (sorted)."""
        share = math.ceil(self.shards / await self.live_hosts())
        held = sorted(self._valid)  # renewed even if our own margin ran out
        keep, drop = held[:share], held[share:]
        others = [(self._offset + i) % self.shards for i in range(self.shards)]
        others = [s for s in others if s not in self._valid]
        # Counted from when the renewals that answered were sent (their keys' lifetimes
        # began no earlier): after a pipeline a dead node failed, that is later.
        replies, started = await self._renew_release_look(keep, drop, others)
        kept = [s for s, ok in zip(keep, replies, strict=False) if ok]
        self._valid = {s: started + self.ttl_ms / 1000 * 0.8 for s in kept}
        free = [s for s, taken in zip(others, replies[len(held):], strict=True) if not taken]
        # A lease we held whose renewal failed (it expired, or Redis lost it while it was
        # down) is tried again now, before the free ones: otherwise this pass would hold
        # none of them, and a final flush would take "nothing dirty in my shards" for
        # drained while their players were still dirty.
        lost = [s for s in keep if s not in kept]
        await self._take((lost + free)[:share - len(kept)], started)
        return self.held()

    async def _renew_release_look(self, keep: list[int], drop: list[int],
                                  others: list[int]) -> tuple[list[Any], float]:
        """One pipeline: renew ``keep``, release ``drop``, whether each of ``others`` is
        taken. The scripts go by ``EVALSHA``, which a node without them (a new cluster,
        a restarted node, a promoted replica: Redis does not replicate its script
        cache) refuses with ``NOSCRIPT``. A cluster pipeline does not load them first as
        a single server's does, so they are loaded (on every master) and the pipeline
        is sent once more, which is safe: each of its commands is idempotent. A cluster
        pipeline fails whole when one node does not answer: then each shard's command
        goes on its own (:meth:`_one_by_one`), so the other nodes' shards go on, and
        so do the passes of the next lease lifetime (without first waiting on the dead
        node in a pipeline again). Returns the replies and when they were sent."""
        started = self._monotonic()
        if started < self._one_by_one_until:
            return await self._one_by_one(keep, drop, others, None), started
        try:
            try:
                return await self._pipeline(keep, drop, others), started
            except NoScriptError:
                for script in (self._renew, self._release):
                    await self.redis.script_load(script.source)
                return await self._pipeline(keep, drop, others), started
        except RedisError as exc:
            log.warning("shard leases one by one (a node does not answer): %r", exc)
            started = self._monotonic()
            self._one_by_one_until = started + self.ttl_ms / 1000
            return await self._one_by_one(keep, drop, others, exc), started

    async def _one_by_one(self, keep: list[int], drop: list[int], others: list[int],
                          failed: RedisError | None) -> list[Any]:
        """The pipeline's replies, each shard's command sent on its own and all at once,
        each given a fifth of a lease lifetime: a shard whose node does not answer counts
        as not renewed (``keep``) or as taken (``others``), so this host leaves it until
        its node is back. When no node answered (Redis is down), the pipeline's error
        ``failed`` is raised (a ``RedisError`` when there was none)."""
        replies = await self._each([
            *(self._renew(keys=[self.key(s)], args=[self.token, self.ttl_ms]) for s in keep),
            *(self._release(keys=[self.key(s)], args=[self.token]) for s in drop),
            *(self.redis.exists(self.key(s)) for s in others)])
        if all(isinstance(r, BaseException) for r in replies):
            raise failed or RedisError("no Redis node answered the shard leases")
        mine = len(keep) + len(drop)
        return ([0 if isinstance(r, BaseException) else r for r in replies[:mine]]
                + [1 if isinstance(r, BaseException) else r for r in replies[mine:]])

    async def _pipeline(self, keep: list[int], drop: list[int],
                        others: list[int]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for shard in keep:
            pipe.evalsha(self._renew.sha, 1, self.key(shard), self.token, self.ttl_ms)
        for shard in drop:
            pipe.evalsha(self._release.sha, 1, self.key(shard), self.token)
        for shard in others:
            pipe.exists(self.key(shard))
        replies: list[Any] = await pipe.execute()
        return replies

    async def _each(self, calls: list[Awaitable[Any]]) -> list[Any]:
        """Every call at once, each bounded by a fifth of a lease lifetime; a call that
        fails or runs out gives its exception as its reply."""
        bound = self.ttl_ms / 5000
        return await asyncio.gather(*(asyncio.wait_for(c, bound) for c in calls),
                                    return_exceptions=True)

    async def _take(self, shards: list[int], started: float) -> None:
        if not shards:
            return
        taken: list[Any]
        if self._monotonic() < self._one_by_one_until:  # a node was down: each on its own
            taken = await self._each([self.redis.set(self.key(s), self.token, nx=True,
                                                     px=self.ttl_ms) for s in shards])
        else:
            pipe = self.redis.pipeline(transaction=False)
            for shard in shards:
                pipe.set(self.key(shard), self.token, nx=True, px=self.ttl_ms)
            taken = await pipe.execute()
        for shard, ok in zip(shards, taken, strict=True):
            if ok and not isinstance(ok, BaseException):
                self._valid[shard] = started + self.ttl_ms / 1000 * 0.8
                log.info("shard lease %s taken by %s", self.key(shard), self.token)

    async def release_all(self) -> None:
        """Give every lease up (a clean shutdown: others take over at once)."""
        held, self._valid = list(self._valid), {}
        for shard in held:  # one whose node is down expires on its own
            with contextlib.suppress(RedisError):
                await self._release(keys=[self.key(shard)], args=[self.token])
        with contextlib.suppress(RedisError):
            await self.redis.zrem(self.members_key, self.token)
