"""What every stage of a pass shares: the connections and limits, Redis round trips
(plain commands and Lua calls), and how a failure is logged, counted and reported."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gameserver.clock import Clock
from gameserver.db.database import Database
from gameserver.ops.metrics import Metrics
from gameserver.persister.report import PassReport
from gameserver.persister.wire import Command, first_error
from gameserver.state.keys import Keys
from gameserver.state.redisclient import as_cluster, is_cluster, redis_timeout
from gameserver.state.routing import NodeRouter, round_trip
from gameserver.state.scripts import Script

log = logging.getLogger("gameserver.persister")


@dataclass(frozen=True)
class Limits:
    """How much one pass takes on (see :class:`gameserver.persister.Persister`)."""

    batch: int
    txn_rows: int
    idle_evict_after: int
    consumer: str
    claim_idle_ms: int
    max_rounds: int


class PassContext:
    """The Redis and SQL a persister writes between, its shards and limits; the stages'
    round trips and failure reports go through it."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, metrics: Metrics, clock: Clock,
                 shard_ids: list[int], limits: Limits) -> None:
        self.redis = redis
        self.keys = keys
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.shard_ids = shard_ids
        self.limits = limits
        self._scripts: dict[str, Script] = {}
        self.router = NodeRouter(as_cluster(redis), redis_timeout(redis), pooled=True) \
            if is_cluster(redis) else None
        """On a Redis Cluster: each round trip becomes one write per master (in parallel),
        every command to the master of its shard's slot (gameserver/state/routing.py)."""

    def script(self, name: str) -> Script:
        """``gameserver/state/lua/<name>.lua`` for :meth:`eval_all` (which reloads it)."""
        script = Script.named(name)
        self._scripts[script.sha] = script
        return script

    def shards(self, shards: Iterable[int] | None) -> list[int]:
        """``shards`` sorted, or all of this persister's when ``None``."""
        return self.shard_ids if shards is None else sorted(shards)

    def cutoff(self) -> int:
        """Players last active before this (ms) are idle enough to evict."""
        return int((self.clock.now() - self.limits.idle_evict_after) * 1000)

    # -- failures ----------------------------------------------------------------------

    def fail(self, report: PassReport, stage: str, shards: Iterable[int],
             exc: BaseException) -> None:
        """One failure of ``stage`` that left the work of ``shards`` in Redis."""
        failed = sorted(shards)
        log.warning("persister %s failed on shard(s) %s: %r", stage, failed, exc)
        self.metrics.persister_errors.labels(stage).inc()
        report.errors += [(stage, shard, repr(exc)) for shard in failed]

    async def stage(self, report: PassReport, stage: str, shard: int,
                    work: Awaitable[Any]) -> bool:
        """Await one stage; a failure is logged, counted and reported, not raised."""
        try:
            await work
            return True
        except Exception as exc:
            self.fail(report, stage, [shard], exc)
            return False

    async def sql_answers(self) -> bool:
        try:
            await self.db.ping()
            return True
        except Exception:
            return False

    # -- Redis round trips -------------------------------------------------------------

    async def round_trip(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one write on a pooled connection (on a cluster: one per
        master) and read their replies in order, an error reply as its exception
        (:func:`gameserver.state.routing.round_trip`,
        as the action path's batcher sends its calls): redis-py's pipeline packed every
        argument in Python and ran a reply callback per command, the persister's main
        cost after SQL. A lost connection fails the whole trip (the next pass retries)."""
        if not commands:
            return []
        if self.router is not None:
            return await self.router.execute(commands)
        pool = self.redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            return await round_trip(conn, commands)
        finally:
            await pool.release(conn)

    async def per_shard(self, report: PassReport, stage: str,
                        commands: dict[int, list[Command]]) -> dict[int, list[Any]]:
        """Send every shard's commands in one round trip (scripts as :meth:`eval_all`
        sends them) and return the replies of each shard whose commands all succeeded.
        A failed trip or shard is reported (:meth:`fail`) and left out: its work stays
        in Redis for the next pass."""
        shards = sorted(commands)
        try:
            replies = await self.eval_all([c for s in shards for c in commands[s]])
        except Exception as exc:
            self.fail(report, stage, shards, exc)
            return {}
        done: dict[int, list[Any]] = {}
        start = 0
        for shard in shards:
            mine, start = replies[start:start + len(commands[shard])], start + len(commands[shard])
            if (error := first_error(mine)) is not None:
                self.fail(report, stage, [shard], error)
                continue
            done[shard] = mine
        return done

    async def eval_all(self, calls: list[Command]) -> list[Any]:
        """Run ``EVALSHA`` calls in one round trip; calls of a script Redis does not know
        (restarted, failed over) run again once it is loaded (they did not run)."""
        replies = await self.round_trip(calls)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            # Sent again as EVAL of the source: each runs on its own node and leaves the
            # script cached there (SCRIPT LOAD goes to every master of a cluster, and
            # with one master silent it failed the other shards' passes too).
            again = [self._with_source(calls[i]) for i in lost]
            for i, reply in zip(lost, await self.round_trip(again), strict=True):
                replies[i] = reply
        return replies

    def _with_source(self, call: Command) -> Command:
        """``EVALSHA`` of a script of this context as ``EVAL`` of its source."""
        script = self._scripts.get(call[1])
        return call if script is None else ("EVAL", script.source, *call[2:])

    async def read_members(self, report: PassReport, stage: str,
                           reads: dict[int, Command]) -> dict[int, list[str]]:
        """Each shard's members as its read command gives them (one round trip); a
        failure is the ``stage``'s, for the shards it hit."""
        found: dict[int, list[str]] = {}
        try:
            replies = await self.round_trip(list(reads.values()))
        except Exception as exc:
            self.fail(report, stage, list(reads), exc)
            return found
        for shard, reply in zip(reads, replies, strict=True):
            self.take_members(report, stage, found, shard, reply)
        return found

    def take_members(self, report: PassReport, stage: str, into: dict[int, list[str]],
                     shard: int, reply: Any) -> None:
        """File one shard's member-list reply, or its failure."""
        if isinstance(reply, Exception):
            self.fail(report, stage, [shard], reply)
        else:
            into[shard] = [member.decode() for member in reply]
