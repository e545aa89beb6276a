"""Pipelines on a Redis Cluster: each command to the node owning its slot, each node's
share in one write, the nodes in parallel.

redis-py's :class:`~redis.asyncio.cluster.RedisCluster` routes one command at a
time (and its pipeline pays per-command bookkeeping); petbox's hot paths (the action
path's batcher, the persister's round trips) send many independent commands at once,
packed in C (:func:`round_trip`). :class:`NodeRouter` keeps that
and adds what a cluster needs, using redis-py's slot map (``nodes_manager``):

- a command is sent to the master of its slot (``key_slot`` of its first key);
- ``MOVED``: the slot moved for good (resharding, failover): the map learns the new
  owner and the command goes there;
- ``ASK``: the slot is being migrated: ``ASKING`` + the command on the named node,
  the map unchanged;
- ``TRYAGAIN`` (a multi-key command mid-migration) and ``CLUSTERDOWN`` (a failover
  under way): the command is sent again after a back-off, the map re-read for
  ``CLUSTERDOWN``;
- a lost connection fails that node's commands (as on one server, after one
  reconnect) and re-reads the map, so the next commands find a promoted replica.

Every redirection is bounded (``attempts``); past it the last error is the reply.
Re-sending is safe for what petbox sends this way: a redirected command did not run
(Redis answered with the redirection instead), and the scripts are idempotent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.cluster import PRIMARY
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from gameserver.state.redisretry import reconnect_once

log = logging.getLogger("petbox.routing")

Command = Sequence[Any]


def command_key(command: Command) -> Any:
    """The key that routes ``command``: the first key of a script call, the first
    stream of ``XREADGROUP``, the key of ``XGROUP <sub> key``, else the first argument
    (every command petbox routes this way has its key there)."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO"):
        return command[3]
    if name in ("XREADGROUP", "XREAD"):
        upper = [str(a).upper() if isinstance(a, str) else a for a in command]
        return command[upper.index("STREAMS") + 1]
    if name == "XGROUP":
        return command[2]
    return command[1]


def command_slot(command: Command) -> int:
    """The hash slot of ``command``'s routing key."""
    key = command_key(command)
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


class NodeRouter:
    """Sends batches of single-slot commands to a cluster; see the module docstring."""

    attempts = 5
    """Sends of one command at most (the first and its redirections or retries)."""
    backoff = 0.05
    """First wait before retrying ``TRYAGAIN``/``CLUSTERDOWN``, seconds; doubles."""
    refresh_every = 0.2
    """Re-read the slot map at most this often (seconds), however many errors ask."""

    def __init__(self, client: RedisCluster, timeout: float | None, *,
                 pooled: bool = False) -> None:
        self.client = client
        self.timeout = timeout
        """Deadline of one node's round trip, seconds."""
        self.pooled = pooled
        """Borrow the client's connections (closed with it) instead of keeping the
        router's own (the action path's: never waiting behind other commands)."""
        self._idle: dict[str, list[AbstractConnection]] = {}
        self._conns: list[AbstractConnection] = []
        self._refreshed = 0.0
        self._refresh_lock = asyncio.Lock()
        self.redirections = 0
        """MOVED and ASK replies followed so far."""

    async def execute(self, commands: Sequence[Command],
                      slots: Sequence[int] | None = None) -> list[Any]:
        """Every command's reply in order, an error reply as its exception (as
        :func:`round_trip`); ``slots`` default to each command's."""
        if slots is None:
            slots = [command_slot(c) for c in commands]
        replies: list[Any] = [None] * len(commands)
        pending = list(range(len(commands)))
        asking: dict[int, ClusterNode] = {}
        for attempt in range(self.attempts):
            retry, wait = await self._attempt(commands, slots, pending, asking, replies)
            if not retry or attempt == self.attempts - 1:
                break
            pending = retry
            if wait:
                await asyncio.sleep(self.backoff * 2 ** attempt)
        return replies

    async def _attempt(self, commands: Sequence[Command], slots: Sequence[int],
                       pending: list[int], asking: dict[int, ClusterNode],
                       replies: list[Any]) -> tuple[list[int], bool]:
        """Send ``pending`` once; returns the indexes to send again and whether to wait."""
        groups: dict[ClusterNode, list[int]] = {}
        for i in pending:
            try:
                node = asking.get(i) or self.client.nodes_manager.get_node_from_slot(slots[i])
            except Exception as exc:  # slot not covered (a master down, map stale)
                replies[i] = exc
                continue
            groups.setdefault(node, []).append(i)
        results = await asyncio.gather(
            *(self._send(node, [commands[i] for i in idx], any(i in asking for i in idx))
              for node, idx in groups.items()), return_exceptions=True)
        asking.clear()
        retry: list[int] = []
        wait = refresh = False
        for (_node, idx), result in zip(groups.items(), results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: so is the caller
            if isinstance(result, Exception):  # this node's connection failed
                for i in idx:
                    replies[i] = result
                refresh = True
                continue
            for i, reply in zip(idx, result, strict=True):
                replies[i] = reply
                if isinstance(reply, MovedError):
                    await self._moved(reply)
                    retry.append(i)
                elif isinstance(reply, AskError):
                    self.redirections += 1
                    asking[i] = self._node(reply.host, reply.port)
                    retry.append(i)
                elif isinstance(reply, TryAgainError | ClusterDownError):
                    retry.append(i)
                    wait = True
                    refresh = refresh or isinstance(reply, ClusterDownError)
        if refresh:
            await self.refresh()
        return retry, wait

    async def _send(self, node: ClusterNode, commands: list[Command],
                    asking: bool) -> list[Any]:
        """One round trip to ``node``; with ``asking``, each command follows ``ASKING``."""
        if asking:
            commands = [c for command in commands for c in (("ASKING",), command)]
        conn = node.acquire_connection() if self.pooled else self._connection(node)
        try:
            replies: list[Any] = await conn.retry.call_with_retry(
                lambda: round_trip(conn, commands, self.timeout),
                lambda _error: conn.disconnect())
        finally:
            if self.pooled:
                node.release(cast(Connection, conn))
            else:
                self._idle.setdefault(node.name, []).append(conn)
        return replies[1::2] if asking else replies

    def _connection(self, node: ClusterNode) -> AbstractConnection:
        """An idle connection of the router's own to ``node`` (made on first need)."""
        idle = self._idle.get(node.name)
        if idle:
            return idle.pop()
        kwargs = {**node.connection_kwargs, "retry": reconnect_once()}
        conn: AbstractConnection = node.connection_class(**kwargs)
        conn.socket_timeout = None  # round_trip sets one deadline for the whole trip
        self._conns.append(conn)
        return conn

    def _node(self, host: str, port: int | str) -> ClusterNode:
        nodes = self.client.nodes_manager
        found = nodes.get_node(host=host, port=int(port))
        if found is not None:
            return found
        return ClusterNode(host, port, PRIMARY, **nodes.connection_kwargs)

    async def _moved(self, error: MovedError) -> None:
        """The slot has a new owner: tell the slot map (redis-py's own bookkeeping)."""
        self.redirections += 1
        moved = self.client.nodes_manager.move_slot(error)
        if inspect.isawaitable(moved):
            await moved

    async def refresh(self) -> None:
        """Re-read the slot map from the cluster (at most every ``refresh_every``)."""
        asked = time.monotonic()
        async with self._refresh_lock:
            if self._refreshed >= asked - self.refresh_every:
                return  # another caller re-read it meanwhile (or just before)
            try:
                await self.client.nodes_manager.initialize()
            except Exception as exc:  # no node answers: the callers' errors say why
                log.warning("could not re-read the Redis Cluster slot map: %r", exc)
            finally:
                self._refreshed = time.monotonic()

    async def aclose(self) -> None:
        """Close the router's own connections."""
        for conn in self._conns:
            await conn.disconnect()
        self._conns.clear()
        self._idle.clear()


async def round_trip(conn: AbstractConnection, commands: Sequence[Sequence[Any]],
                     within: float | None = None) -> list[Any]:
    """Send ``commands`` in one write on ``conn`` and read their replies in order, an
    error reply as its exception (the connection stays in step): a non-transactional
    pipeline, packed by hiredis in C, replies in Redis' own shapes (bytes, undecoded).
    ``within`` (seconds) is one deadline for the whole trip; a trip that misses it or is
    cancelled leaves the connection, since replies may still come."""
    payload = b"".join([hiredis.pack_command(tuple(command)) for command in commands])
    try:
        async with asyncio.timeout(within):
            await conn.send_packed_command(payload, check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response(disable_decoding=True))
                except ResponseError as exc:  # this command's error; still in step
                    replies.append(exc)
            return replies
    except TimeoutError:
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError("Timeout talking to Redis") from None
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
