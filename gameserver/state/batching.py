"""Automatic pipelining of the action path's Lua calls (one write for many requests).

Every shopper action is one ``load.lua`` and one ``commit.lua`` call. Sent one by
one, each call pays redis-py's per-command costs (a pooled connection taken and
given back, a health check, one ``send`` syscall, one reply read) and Redis pays a
read and a write syscall for it. Under load, many requests reach that point in the
same event-loop turn, so :class:`ScriptBatcher` queues the calls and sends them
together as one non-transactional redis-py pipeline: one write out, replies read
back in order, each caller resolved with its own reply (or its own error).

The batch size adapts to the load by itself (as Nagle's algorithm does): a call
goes out on the next loop turn when fewer than ``max_in_flight`` batches are
waiting for Redis; otherwise it waits for one of them to come back and leaves
with everything queued meanwhile. At low load every call is a batch of one.

What does not change: each call is still one atomic ``EVALSHA`` (pipelines are
not transactions, and no call depends on another in the same batch); a call whose
caller was cancelled before its batch left is dropped, never sent; a connection
error fails the calls of that batch exactly as it would have failed them one by
one; a Redis that forgot the scripts (``NOSCRIPT`` after a restart or failover)
gets them again and the affected calls are re-sent, which is safe because a
script that is not loaded did not run.

How a batch travels (each step measured, docs/benchmarks.md): the batcher keeps
its own ``max_in_flight`` connections (made by the client's pool, never shared
with other commands), packs the calls with hiredis' C ``pack_command``, and gives
the whole round trip one deadline (the client's ``socket_timeout``) instead of
redis-py's per-read timer and per-write ``wait_for`` task.

On a Redis Cluster (the client is redis-py's ``RedisCluster``) a batch is split by
the master owning each call's slot (``key_slot`` of its first key) and each master's
share goes in one write, all in parallel, with ``MOVED``/``ASK``/``TRYAGAIN``/
``CLUSTERDOWN`` handled by :class:`gameserver.state.routing.NodeRouter`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from gameserver.state.latency_budget import LatencyBudget
from gameserver.state.redisclient import as_cluster, is_cluster
from gameserver.state.routing import NodeRouter, round_trip
from gameserver.state.scripts import Script


class _Call:
    __slots__ = ("args", "future", "script")

    def __init__(self, script: Script, args: tuple[Any, ...],
                 future: asyncio.Future[Any]) -> None:
        self.script = script
        self.args = args
        self.future = future


class ScriptBatcher:
    """Queues ``EVALSHA`` calls and sends each loop turn's calls as one pipeline."""

    def __init__(self, redis: Redis, *, max_in_flight: int = 2, max_batch: int = 256,
                 linger: float = 0.0, target_batch: int = 16, busy: float = 0.5,
                 budget: LatencyBudget | None = None) -> None:
        self.redis = redis
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self.linger = linger
        """Longest a call may wait for others to join its batch when calls come often
        enough that others will (see :meth:`_linger_for`), seconds; 0: never wait."""
        self.target_batch = target_batch
        """Calls a lingering batch waits for at most: at a high rate it waits less."""
        self.busy = busy
        """Linger only while the process used at least this share of a core (its CPU
        time over wall time in the last measuring window): below it the CPU a bigger
        batch would save is not scarce, and the wait would only add latency."""
        self.budget = budget
        """When set, calls also wait for company while the requests' latency leaves room
        (gameserver/state/latency_budget.py), not only while the process is busy; the request
        path reports each request's duration to it."""
        self.router: NodeRouter | None = None
        """On a Redis Cluster: sends each call to its slot's node (gameserver/state/routing.py)."""
        if is_cluster(redis):
            cluster = as_cluster(redis)
            self.timeout = cluster.connection_kwargs.get("socket_timeout")
            self.router = NodeRouter(cluster, self.timeout)
        else:
            self.timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
        """Deadline of one round trip (send and every reply), seconds."""
        self._idle: list[AbstractConnection] = []
        self._conns: list[AbstractConnection] = []
        self._queue: list[_Call] = []
        self._in_flight = 0
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the batcher runs in, looked up once: on Python 3.11 every
        ``asyncio.get_running_loop()`` is a ``getpid`` system call."""
        self._window_start = 0.0
        self._window_cpu = 0.0
        self._window_calls = 0
        self._rate = 0.0
        """Calls per second over the last completed measuring window."""
        self._load = 0.0
        """Share of a core the process used over the last completed measuring window."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Pipelines sent so far (calls / batches = the mean batch size)."""
        self.calls = 0

    def script(self, source: str) -> Script:
        """``source`` as a callable script whose calls are batched."""
        return Script(source, batcher=self)

    def submit(self, script: Script, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = self._loop or self._bind_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Call(script, args, future))
        self._window_calls += 1
        if self._scheduled:
            if self._timer is not None and len(self._queue) >= self.max_batch:
                self._timer.cancel()  # full: no point waiting for more
                self._timer = None
                loop.call_soon(self._flush)
        elif self._in_flight < self.max_in_flight:
            # Not now: every request that reaches Redis in this loop turn (or, when calls
            # are frequent, within the linger) joins the same batch.
            self._scheduled = True
            linger = self._linger_for(loop.time())
            if linger:
                self._timer = loop.call_later(linger, self._flush)
            else:
                loop.call_soon(self._flush)
        return future

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    RATE_WINDOW = 0.1
    """Seconds over which the call rate is measured."""
    MIN_JOINERS = 8.0
    """Linger only when at least this many calls are expected to join within it: below
    that rate the process has CPU to spare and the wait would only add latency."""

    def _linger_for(self, now: float) -> float:
        """How long a new batch should wait for company: long enough for about
        ``target_batch`` calls at the recent rate, at most ``linger``, while the process
        is busy and at least ``MIN_JOINERS`` would come meanwhile (under load each call
        costs the client and Redis a fraction of a round trip: docs/benchmarks.md).
        Otherwise, with a latency ``budget``, as long as the budget allows when at least
        one call would join; without one, not at all (waiting only adds latency)."""
        if not self.linger:
            return 0.0
        elapsed = now - self._window_start
        if elapsed >= self.RATE_WINDOW:
            cpu = time.process_time()
            self._rate = self._window_calls / elapsed
            self._load = (cpu - self._window_cpu) / elapsed
            self._window_start, self._window_cpu, self._window_calls = now, cpu, 0
        room = self.budget.linger(now) if self.budget is not None else 0.0
        if self._rate <= 0:
            return 0.0
        linger = min(self.linger, self.target_batch / self._rate)
        if self._load >= self.busy and self._rate * linger >= self.MIN_JOINERS:
            return linger
        # Room in the latency budget: wait as long as it allows, when at least one other
        # call is expected meanwhile (alone, the wait would buy nothing).
        linger = min(linger, room)
        return linger if self._rate * linger >= 1.0 else 0.0

    def _flush(self) -> None:
        self._scheduled = False
        self._timer = None
        while self._queue and self._in_flight < self.max_in_flight:
            batch = [c for c in self._queue[:self.max_batch] if not c.future.done()]
            del self._queue[:self.max_batch]
            if not batch:
                continue
            self._in_flight += 1
            task = (self._loop or self._bind_loop()).create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            await self._execute(batch)
        finally:
            self._in_flight -= 1
            if self._queue and not self._scheduled:
                self._flush()

    async def _execute(self, batch: list[_Call]) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            replies = await self._pipeline(batch)
        except Exception as exc:  # connection lost, timeout: every call of the batch fails
            _settle((call, exc) for call in batch)
            return
        except BaseException:  # cancelled (shutdown): so are the callers still waiting
            for call in batch:
                call.future.cancel()
            raise
        pairs = list(zip(batch, replies, strict=True))
        _settle((c, r) for c, r in pairs if not isinstance(r, NoScriptError))
        missing = [c for c, r in pairs if isinstance(r, NoScriptError)]
        if missing:
            await self._resend_after_noscript(missing)

    async def _pipeline(self, batch: list[_Call], with_source: bool = False) -> list[Any]:
        """One write of every call, then their replies in order (error replies as values).

        This is what redis-py's non-transactional ``Pipeline.execute`` does, on one of
        the batcher's own connections: the pipeline's per-command bookkeeping, the
        pool's lock and a timer per reply were most of the batch's cost. A lost
        connection is retried as the client's ``retry`` says, as redis-py does for a
        pipeline (the scripts are safe to re-send: a commit that already happened
        answers "conflict" or "key used", and the store reloads). ``with_source``: as
        ``EVAL`` of each script's source, which its node runs and then caches."""
        commands = ([("EVAL", call.script.source, *call.args[1:]) for call in batch]
                    if with_source else [("EVALSHA", *call.args) for call in batch])
        if self.router is not None:  # a cluster: each node's calls in one write
            return await self.router.execute(commands, [_slot(call) for call in batch])
        conn = self._connection()
        try:
            replies: list[Any] = await conn.retry.call_with_retry(
                lambda: round_trip(conn, commands, self.timeout),
                lambda _error: conn.disconnect())
            return replies
        finally:
            self._idle.append(conn)

    def _connection(self) -> AbstractConnection:
        """An idle connection of the batcher's own (at most ``max_in_flight`` exist)."""
        if self._idle:
            return self._idle.pop()
        conn: AbstractConnection = (
            self.redis.connection_pool.make_connection())  # type: ignore[no-untyped-call]
        conn.socket_timeout = None  # round_trip sets one deadline for the whole trip
        self._conns.append(conn)
        return conn

    async def _resend_after_noscript(self, calls: list[_Call]) -> None:
        """Send the calls of scripts Redis forgot again (they did not run), as ``EVAL``:
        each runs on its own node and leaves the script cached there. ``SCRIPT LOAD``
        would go to every master of a cluster, and with one master silent it failed the
        calls of the others too."""
        try:
            replies = await self._pipeline(calls, with_source=True)
        except Exception as exc:
            replies = [exc] * len(calls)
        _settle(zip(calls, replies, strict=True))

    async def aclose(self) -> None:
        """Wait for batches in flight (their callers are waiting for them), then close
        the batcher's connections."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self._conns:
            await conn.disconnect()
        self._conns.clear()
        self._idle.clear()
        if self.router is not None:
            await self.router.aclose()


def _slot(call: _Call) -> int:
    """The hash slot of a call's first key (``args``: sha, key count, keys, arguments);
    a script without keys may run anywhere (slot 0)."""
    if not call.args[1]:
        return 0
    key = call.args[2]
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


def _settle(answers: Iterable[tuple[_Call, Any]]) -> None:
    """Give each waiting caller its reply (an exception reply is raised by its await)."""
    for call, reply in answers:
        if call.future.done():  # cancelled meanwhile: nobody is waiting
            continue
        if isinstance(reply, Exception):
            call.future.set_exception(reply)
        else:
            call.future.set_result(reply)
