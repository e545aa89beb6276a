"""CPU per action of the store path alone: load → apply → commit, without HTTP.

    python bench/store_bench.py [--actions 40000] [--players 2000] [--concurrency 64]
                                [--cluster 3]

Starts a redis-server of its own (petbox's embedded settings: AOF, ``everysec``) on a
free loopback port (``--cluster N``: a Redis Cluster of N such masters, reached through
redis-py's ``RedisCluster`` as ``PETBOX_REDIS_CLUSTER`` does; redis CPU is then the sum
over the masters), then runs ``feedPet`` actions of ``bench/bench_game.json`` through
:class:`gameserver.state.store.Store` exactly as the HTTP handler does (the real rule, the
real scripts, the batcher), ``--concurrency`` at a time, players round-robin. Prints
CPU µs per action of this process (the client side: store, batcher, redis-py, rule)
and of the redis-server (scripts, AOF), and the mean pipeline batch size. Use it to
compare changes to the store, the scripts or the batcher: unlike the HTTP bench it has
no generator or HTTP stack sharing the CPU, so a run-to-run spread of a few per cent
is enough to see a change of ten.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gameserver.clock import SystemClock  # noqa: E402
from gameserver.games import LiveGame, parse_config  # noqa: E402
from gameserver.ops.embedded import RedisProcess  # noqa: E402
from gameserver.ops.metrics import Metrics  # noqa: E402
from gameserver.ops.settings import Settings  # noqa: E402
from gameserver.state.batching import ScriptBatcher  # noqa: E402
from gameserver.state.keys import Keys, PlayerRef, shard_of  # noqa: E402
from gameserver.state.redisclient import open_redis  # noqa: E402
from gameserver.state.store import Store  # noqa: E402
from mechanics import pet  # noqa: E402


class NoArchive:
    """Nobody was ever evicted here: a miss means a new player."""

    async def fetch_player(self, ref: PlayerRef) -> None:
        return None

    async def fetch_archived(self, ref: PlayerRef, since_ms: int) -> tuple[None, list[Any]]:
        return None, []

    async def fetch_response(self, commit_id: str) -> None:
        return None


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def aof_size(client: aioredis.Redis) -> int:
    """Bytes appended to the AOF so far (Redis 7: the current base + incr files)."""
    info = await client.info("persistence")
    return int(info.get("aof_current_size", 0))


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(a: argparse.Namespace, redis_url: str, node_urls: list[str],
              redis_pids: list[int]) -> dict[str, float]:
    from zoneinfo import ZoneInfo

    raw = json.loads((ROOT / "bench" / "bench_game.json").read_text())
    config = parse_config(raw)
    game = LiveGame("m1", "bench", 1, config, ZoneInfo(config.timezone))
    client = await open_redis(redis_url, Settings(redis_url=redis_url, redis_timeout=5.0))
    batcher = ScriptBatcher(client) if a.pipelining else None
    store = Store(client, Keys(), NoArchive(), Metrics(), SystemClock(), batcher=batcher)
    refs = [PlayerRef("m1", "bench", f"u{i}", shard_of("m1", f"u{i}", a.shards))
            for i in range(a.players)]
    rng = __import__("random").Random(1)

    def rule_of(action: object, fn: object) -> object:
        return lambda state, now: fn(state, action, now, rng, config, tz=game.tz)  # type: ignore[operator]

    adopt = rule_of(pet.AdoptPet("cat", "Tom"), pet.adopt)
    await asyncio.gather(*(store.run(r, f"adopt-{i}", "h-adopt", adopt)  # type: ignore[arg-type]
                           for i, r in enumerate(refs)))  # replays after the first run
    run_id = os.urandom(4).hex()
    feed = rule_of(pet.FeedPet("kibble"), pet.feed)
    counter = iter(range(a.actions))

    async def worker() -> None:
        for i in counter:
            await store.run(refs[i % len(refs)], f"feed-{run_id}-{i}", "h-feed", feed)  # type: ignore[arg-type]

    nodes = [aioredis.Redis.from_url(url) for url in node_urls]
    for node in nodes:
        await node.config_resetstat()
    aof0 = sum([await aof_size(node) for node in nodes])
    calls0 = batcher.calls if batcher else 0
    batches0 = batcher.batches if batcher else 0
    c0, r0, t0 = self_cpu(), sum(map(proc_cpu, redis_pids)), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    c1, r1, t1 = self_cpu(), sum(map(proc_cpu, redis_pids)), time.perf_counter()
    n = a.actions
    evalsha = [(await node.info("commandstats")).get("cmdstat_evalsha", {}) for node in nodes]
    calls = sum(int(e.get("calls", 0)) for e in evalsha)
    out = {"client_us": (c1 - c0) / n * 1e6, "redis_us": (r1 - r0) / n * 1e6,
           "wall_s": t1 - t0, "actions_per_s": n / (t1 - t0),
           "evalsha_us": sum(float(e.get("usec", 0)) for e in evalsha) / max(1, calls),
           "aof_bytes": (sum([await aof_size(node) for node in nodes]) - aof0) / n}
    for node in nodes:
        await node.aclose()
    if batcher:
        await batcher.aclose()
    await client.aclose()
    if batcher:
        out["batch"] = (batcher.calls - calls0) / max(1, batcher.batches - batches0)
    return out


@contextlib.contextmanager
def _servers(tmp: Path, masters: int) -> Iterator[tuple[str, list[RedisProcess]]]:
    """One redis-server, or a cluster of ``masters`` (both with AOF ``everysec``)."""
    if not masters:
        with RedisProcess(tmp / "redis") as server:
            yield server.url, [server]
        return
    from tests.redis_cluster import running_cluster

    with running_cluster(tmp / "cluster", masters=masters, appendonly=True) as cluster:
        yield cluster.url, cluster.masters


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--actions", type=int, default=40_000)
    p.add_argument("--players", type=int, default=2_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-pipelining", dest="pipelining", action="store_false")
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--cluster", type=int, default=0, metavar="MASTERS",
                   help="a Redis Cluster of this many masters instead of one server")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="petbox-store-bench-") as tmp, \
            _servers(Path(tmp), a.cluster) as (url, servers):
        for i in range(a.repeat):
            res = asyncio.run(run(a, url, [s.url for s in servers],
                                  [s.proc.pid for s in servers if s.proc is not None]))
            batch = f"  batch {res['batch']:.1f}" if "batch" in res else ""
            print(f"run {i + 1}: client {res['client_us']:6.1f} us/action  "
                  f"redis {res['redis_us']:5.1f} us/action  "
                  f"{res['actions_per_s']:8,.0f} actions/s{batch}  "
                  f"EVALSHA {res['evalsha_us']:.1f} us/call  "
                  f"AOF {res['aof_bytes']:,.0f} B/action", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
