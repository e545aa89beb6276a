"""A real Redis Cluster on loopback for tests: N masters (and optional replicas),
each a redis-server child (:class:`gameserver.ops.embedded.RedisProcess`).

The cluster is built the way an operator would by hand, without ``redis-cli
--cluster create`` (which sleeps between its steps): every master gets an even
range of the 16384 slots (``CLUSTER ADDSLOTSRANGE``), the nodes meet
(``CLUSTER MEET``), replicas follow their master (``CLUSTER REPLICATE``), and the
cluster is ready when every node says ``cluster_state:ok`` and knows every node.

A node's cluster bus listens on its port + 10000, so ports are picked below 55535
with both ports free.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from gameserver.ops.embedded import RedisProcess

SLOTS = 16384
BUS_OFFSET = 10000
NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: how long a master may be silent before its replica takes
over (short, so that a failover test is quick)."""


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A port below 55535 that is free, with its bus port (+10000) free too."""
    for _ in range(1000):
        port = random.randint(20000, 45000)
        if port not in taken and port + BUS_OFFSET not in taken \
                and _free(port) and _free(port + BUS_OFFSET):
            taken.update((port, port + BUS_OFFSET))
            return port
    raise RuntimeError("no free port pair for a cluster node")


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Even, contiguous slot ranges (inclusive) for ``masters`` masters."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class RedisCluster:
    """``masters`` masters, each with ``replicas_per_master`` replicas, on 127.0.0.1."""

    def __init__(self, base_dir: Path, *, masters: int = 3, replicas_per_master: int = 0,
                 appendonly: bool = False) -> None:
        taken: set[int] = set()
        total = masters * (1 + replicas_per_master)
        self.nodes = [self._node(base_dir / f"node{i}", cluster_port(taken), appendonly)
                      for i in range(total)]
        self.masters = self.nodes[:masters]
        self.replicas = self.nodes[masters:]
        self.replicas_per_master = replicas_per_master

    @staticmethod
    def _node(data_dir: Path, port: int, appendonly: bool) -> RedisProcess:
        return RedisProcess(data_dir, port=port, appendonly=appendonly, extra_args=[
            "--cluster-enabled", "yes",
            "--cluster-config-file", str((data_dir / "nodes.conf").resolve()),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica may take over even right after it started (the test cluster is
            # young: the default factor would keep a fresh replica from failing over).
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
            # As docs/deployment.md recommends: a failed master stops only its own
            # slots (its logical shards), not the whole cluster (CLUSTERDOWN everywhere).
            "--cluster-require-full-coverage", "no",
        ])

    @property
    def url(self) -> str:
        """The URL of one node: what petbox is given (it discovers the rest)."""
        return self.masters[0].url

    def client(self, node: RedisProcess) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=5)

    def start(self, timeout: float = 20.0) -> None:
        """Start every node, assign slots, join them, wait for ``cluster_state:ok``."""
        for node in self.nodes:
            node.start()
        for node, (first, last) in zip(self.masters, slot_ranges(len(self.masters)),
                                       strict=True):
            self.client(node).execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        first_node = self.client(self.nodes[0])
        for node in self.nodes[1:]:
            first_node.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        self._wait(lambda: all(self._known(n) == len(self.nodes) for n in self.nodes),
                   timeout, "nodes to meet")
        self._attach_replicas(timeout)
        self.wait_ok(timeout)

    def _attach_replicas(self, timeout: float) -> None:
        for i, replica in enumerate(self.replicas):
            master = self.masters[i % len(self.masters)]
            master_id = self.client(master).execute_command("CLUSTER", "MYID")
            self.client(replica).execute_command("CLUSTER", "REPLICATE", master_id)
        self._wait(lambda: all(self._replica_synced(r) for r in self.replicas), timeout,
                   "replicas to sync")

    def _known(self, node: RedisProcess) -> int:
        info = self.client(node).execute_command("CLUSTER", "INFO").decode()
        return int(_field(info, "cluster_known_nodes"))

    def _replica_synced(self, node: RedisProcess) -> bool:
        info = self.client(node).info("replication")
        return info.get("master_link_status") == "up"

    def wait_ok(self, timeout: float = 20.0, nodes: list[RedisProcess] | None = None) -> None:
        """Wait until every (living) node reports ``cluster_state:ok``."""
        def ok() -> bool:
            for node in nodes or self.nodes:
                info = self.client(node).execute_command("CLUSTER", "INFO").decode()
                if _field(info, "cluster_state") != "ok":
                    return False
            return True
        self._wait(ok, timeout, "cluster_state:ok")

    @staticmethod
    def _wait(check: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Redis Cluster: timed out waiting for {what}")

    def current_masters(self) -> list[RedisProcess]:
        """The nodes that are masters with slots now (a replica that took over is one)."""
        living = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        found = []
        for node in living:
            role = self.client(node).info("replication").get("role")
            if role == "master" and self._owns_slots(node):
                found.append(node)
        return found

    def _owns_slots(self, node: RedisProcess) -> bool:
        myself = self.client(node).execute_command("CLUSTER", "MYID").decode()
        for entry in self.client(node).execute_command("CLUSTER", "SLOTS"):
            if entry[2][2].decode() == myself:
                return True
        return False

    def node_id(self, node: RedisProcess) -> str:
        return str(self.client(node).execute_command("CLUSTER", "MYID").decode())

    def owner(self, slot: int) -> RedisProcess:
        """The master serving ``slot`` now."""
        for node in self.current_masters():
            for first, last, master, *_ in self.client(node).execute_command("CLUSTER", "SLOTS"):
                if first <= slot <= last:
                    return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(slot)

    def begin_migration(self, slot: int, target: RedisProcess) -> RedisProcess:
        """Mark ``slot`` migrating from its owner to ``target`` (keys not moved yet:
        the owner answers ASK for keys it lacks, TRYAGAIN for a mix); returns the owner."""
        source = self.owner(slot)
        self.client(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                                            self.node_id(source))
        self.client(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                                            self.node_id(target))
        return source

    def finish_migration(self, slot: int, source: RedisProcess, target: RedisProcess) -> None:
        """Move ``slot``'s keys from ``source`` to ``target`` and give every master the
        new owner (the old owner then answers MOVED)."""
        src = self.client(source)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                "KEYS", *keys)
        target_id = self.node_id(target)
        for node in (target, source, *self.current_masters()):
            self.client(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def move_slot(self, slot: int, target: RedisProcess) -> RedisProcess:
        """Reshard one slot to ``target`` (as ``redis-cli --cluster reshard`` does)."""
        source = self.begin_migration(slot, target)
        self.finish_migration(slot, source, target)
        return source

    def flushall(self) -> None:
        """Every master loses its data (replicas follow)."""
        for node in self.current_masters():
            self.client(node).flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _field(info: str, name: str) -> str:
    for line in info.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


@contextmanager
def running_cluster(base_dir: Path, *, masters: int = 3, replicas_per_master: int = 0,
                    appendonly: bool = False) -> Iterator[RedisCluster]:
    """A started cluster, killed at the end (``appendonly``: AOF on every node, as
    petbox's embedded Redis has, for benchmarks)."""
    cluster = RedisCluster(base_dir, masters=masters, replicas_per_master=replicas_per_master,
                           appendonly=appendonly)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
