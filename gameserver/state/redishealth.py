"""Redis readiness by node: which masters answer, and which logical shards they hold.

On one server that is one node holding every shard. On a Redis Cluster each logical
shard's hash tag lives in one slot, so one master down (or a slot no master serves)
fails exactly the shards whose slots it held: ``/readyz`` is never ``ok`` while any
shard fails, and says which shards, slots and node; ``/metrics`` has
``petbox_redis_node_up{node}`` and ``petbox_redis_shards_down``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from gameserver.state.keys import Keys
from gameserver.state.redisclient import as_cluster, is_cluster

UNCOVERED = "-"
"""The node name of shards whose slot no known master serves."""


@dataclass
class NodeHealth:
    """One master (or the one server): the logical shards and slot ranges it serves."""

    node: str
    shards: list[int] = field(default_factory=list)
    slots: str = ""
    """Its slot ranges, ``first-last`` joined by commas (empty on one server)."""
    error: str = ""
    """Why it failed the probe; empty when it answered."""

    @property
    def ok(self) -> bool:
        return not self.error

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "slots": self.slots, "shards": self.shards,
                "status": "ok" if self.ok else f"unavailable: {self.error}"}


async def probe(client: aioredis.Redis, keys: Keys, shards: int,
                bound: float = 1.0) -> list[NodeHealth]:
    """Ping every node that serves one of ``shards`` (each within ``bound`` seconds)."""
    if not is_cluster(client):
        one = NodeHealth(_single_name(client), list(range(shards)))
        one.error = await _ping(client.ping(), bound)
        return [one]
    cluster = as_cluster(client)
    nodes = _by_node(cluster, keys, shards)
    errors = await asyncio.gather(*(
        _ping(cluster.execute_command("PING", target_nodes=n), bound) if n else
        _uncovered() for n in nodes))
    found = []
    for (node, shard_ids), error in zip(nodes.items(), errors, strict=True):
        name = node.name if node else UNCOVERED
        slots = _ranges(cluster, node) if node else ""
        found.append(NodeHealth(name, shard_ids, slots, error))
    return found


def _by_node(cluster: RedisCluster, keys: Keys,
             shards: int) -> dict[ClusterNode | None, list[int]]:
    """Shards grouped by the master serving their slot (None: no master does)."""
    nodes: dict[ClusterNode | None, list[int]] = {}
    for shard in range(shards):
        try:
            node: ClusterNode | None = cluster.nodes_manager.get_node_from_slot(
                key_slot(keys.tag(shard).encode()))
        except Exception:  # slot not covered
            node = None
        nodes.setdefault(node, []).append(shard)
    return nodes


async def _ping(call: Any, bound: float) -> str:
    try:
        await asyncio.wait_for(call, bound)
        return ""
    except Exception as exc:  # any failure means "not ready"; say which
        return type(exc).__name__


async def _uncovered() -> str:
    return "SlotNotCovered"


def _single_name(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"


def _ranges(cluster: RedisCluster, node: ClusterNode) -> str:
    """``node``'s slot ranges in the client's slot map, e.g. ``0-5460``."""
    ranges: list[str] = []
    start = -1
    cache = cluster.nodes_manager.slots_cache
    for slot in range(16385):
        mine = slot < 16384 and bool(cache.get(slot)) and cache[slot][0] is node
        if mine and start < 0:
            start = slot
        elif not mine and start >= 0:
            ranges.append(f"{start}-{slot - 1}" if slot - 1 > start else str(start))
            start = -1
    return ",".join(ranges)


async def refresh_if_failing(client: aioredis.Redis, nodes: list[NodeHealth]) -> bool:
    """After a failed probe on a cluster, re-read the slot map (a replica may have
    taken over); True when it was re-read, so the caller probes again."""
    if not is_cluster(client) or all(n.ok for n in nodes):
        return False
    try:
        await asyncio.wait_for(as_cluster(client).nodes_manager.initialize(), 1.0)
    except Exception:  # no node answers: the probe's errors already say so
        return False
    return True
