"""Scale curve: cost per action of ``feedPet`` with 10k, 100k and 1M players in Redis.

    .venv/bin/python bench/scale_bench.py [--populations 10000,100000,1000000]
                                          [--rate 400] [--windows 2] [--duration 20]

One ``petbox serve --workers 2`` (embedded Redis with AOF ``everysec``, SQLite, the
persister on, access log off: the settings of ``feed_bench.py``) serves every step, so
the steps differ in the number of players Redis holds and nothing else.

Seeding (fast, but what the server itself would hold): players are not made through
HTTP. Each one's state is the output of the real rule (``mechanics.pet.adopt`` on a
``new_player``, the bench game ``bench/bench_game.json``), encoded by the store's own
``encode_state`` and written under the store's own keys (``gameserver.state.keys.Keys``) with
pipelined ``HSET`` / ``ZADD``: the player hash as a flushed player's looks (``v``, ``s``,
``e``, ``f``) and its member in the shard's active set, as a commit leaves them. Session
tokens are minted locally with the server's ``TokenSigner`` and token secret (what
``createSession`` does; it writes nothing). No SQL rows: an action reads SQL only for a
player Redis does not hold (a read-through), and every player drawn here is in Redis,
so the steps measure the hot path. Checked after each step: the shards' active sets still
hold every player (none was evicted), and every feed was answered 200 (a player Redis
did not hold is unknown to SQL too: it has no pet, and its feed is refused). After
seeding, the AOF is rewritten (``BGREWRITEAOF``, waited for) so that no rewrite of the
seed runs during a measurement.

Each step then drives ``feedPet`` at a fixed ``--rate`` (open loop, one generator
process, ``bench/loadgen.py``) over players drawn uniformly from the whole population,
each request with a fresh Idempotency-Key, for ``--windows`` windows of ``--warmup`` +
``--duration`` seconds, and prints per window: achieved/s, p50 / p99, and CPU µs per
action of the workers, the persister and Redis (process CPU time over the measured
seconds / actions served, as ``feed_bench.py``'s ``srv us``), Redis' time per ``EVALSHA``
(``INFO commandstats``: wall time, preemption included) and calls per action, and the
cores used by the rest of the machine (other work: a high figure makes a window suspect).

Memory: Redis ``used_memory`` (``INFO memory``, less client and AOF buffers) before and
after seeding each step gives the bytes per player Redis holds at rest (the main
dictionary grows by powers of two, so this moves a little with the population). At the
largest population, before anything is deleted, 5,000 players seeded for it alone (never
fed before) give three figures: their bytes at rest, their first feed's extra bytes
besides its key (the player hash's new entry id, the shard sets, ...), and then, after
``--key-actions`` more feeds over the same players, the bytes per Idempotency-Key record
kept for its 24 h lifetime (``used_memory`` growth / new keys, ``DBSIZE``). Every
reading waits until the persister drained the ledger streams and dirty sets, no AOF
rewrite runs and no lazy free is pending. The populations run ``--cycles`` times (2 by
default; the players beyond the first population are deleted between cycles), and with
``--recheck`` (default on) the first population once more at the end, so that drift in
the machine's load falls on every population; the spread of one population's windows is
the run's noise. A first, uncounted window warms the server up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from feed_bench import (  # noqa: E402
    FEED_BODY,
    FEED_PATH,
    GAME,
    HdrHistogram,
    free_port,
    note_logged_errors,
    provision,
    redis_port,
    sample,
    serving,
    write_results,
)

from economy.config import GameConfig  # noqa: E402
from gameserver.games import parse_config  # noqa: E402
from gameserver.http.auth import TokenSigner  # noqa: E402
from gameserver.state.keys import Keys, PlayerRef, shard_of  # noqa: E402
from gameserver.state.store import encode_state  # noqa: E402
from mechanics import pet  # noqa: E402

PY = sys.executable
SHARDS = 16
TOKEN_TTL = 7200
KEY_PLAYERS = 5000


def user_of(i: int) -> str:
    """Player ``i``'s user id: fixed width, so every population has the same key sizes."""
    return f"u{i:07d}"


def seed_players(client: redis.Redis, config: GameConfig, tz: ZoneInfo, merchant: str,
                 game: str, start: int, stop: int, *, shards: int = SHARDS,
                 keys: Keys | None = None, now: float | None = None,
                 batch: int = 2000) -> None:
    """Write players ``start`` .. ``stop - 1`` into Redis as the server holds a player
    whose adoption the persister has flushed: the real rule's state (``pet.adopt`` on a
    new player) encoded by the store's ``encode_state`` in the player hash (``v``
    version 1, ``s`` state, ``e`` the ledger entry of that commit, ``f`` the version SQL
    holds), and the player in its shard's active set (last commit = ``now``)."""
    keys = keys or Keys()
    now = time.time() if now is None else now
    now_s, now_ms = int(now), int(now * 1000)
    rng = random.Random(start)
    entry = f"{now_ms}-0"
    pipe = client.pipeline(transaction=False)
    for i in range(start, stop):
        user = user_of(i)
        ref = PlayerRef(merchant, game, user, shard_of(merchant, user, shards))
        outcome = pet.adopt(None, pet.AdoptPet("cat", f"cat {i}"), now_s, rng, config, tz=tz)
        pipe.hset(keys.player(ref), mapping={"v": 1, "s": encode_state(outcome.state),
                                             "e": entry, "f": 1})
        pipe.zadd(keys.active(ref.shard), {ref.member: now_ms})
        if (i - start + 1) % batch == 0:
            pipe.execute()
    pipe.execute()


def mint_tokens(secret: str, merchant: str, start: int, stop: int) -> list[str]:
    """Session tokens as ``createSession`` mints them (the server's signer and secret)."""
    signer = TokenSigner(secret, TOKEN_TTL)
    now = int(time.time())
    return [signer.mint(merchant, user_of(i), now)[0] for i in range(start, stop)]


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Window:
    population: int
    offered: float
    achieved: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    worker_us: float = 0.0
    persister_us: float = 0.0
    redis_us: float = 0.0
    other_cores: float = 0.0
    loadavg: float = 0.0
    evalsha_us: float = 0.0
    """Redis' time per EVALSHA (load, commit, the persister's scripts) from ``INFO
    commandstats``: wall time, so it also counts time Redis spent preempted."""
    evalsha_per_action: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def total_us(self) -> float:
        return self.worker_us + self.persister_us + self.redis_us

    def row(self, label: str = "") -> str:
        return (f"{label or f'{self.population:,}':>10} {self.offered:>6.0f} "
                f"{self.achieved:>7.0f} {self.p50_ms:>6.2f} {self.p99_ms:>7.2f} "
                f"{self.errors:>6} {self.worker_us:>7.0f} {self.persister_us:>6.0f} "
                f"{self.redis_us:>6.0f} {self.total_us:>7.0f} {self.evalsha_us:>6.1f} "
                f"{self.evalsha_per_action:>5.2f} {self.other_cores:>6.2f} {self.loadavg:>5.1f}")


HEADER = (f"{'players':>10} {'rate':>6} {'served':>7} {'p50ms':>6} {'p99ms':>7} {'errors':>6} "
          f"{'wrk us':>7} {'pers':>6} {'redis':>6} {'total':>7} {'sha us':>6} {'sha/a':>5} "
          f"{'other':>6} {'load':>5}")


def evalsha(client: redis.Redis) -> tuple[int, int]:
    """(calls, µs) of ``EVALSHA`` so far (wall time in Redis, preemption included)."""
    stat = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stat.get("calls", 0)), int(stat.get("usec", 0))


def drive(a: argparse.Namespace, client: redis.Redis, port: int, server_pid: int,
          tokens: list[str], rate: float, warmup: float, duration: float, tag: str,
          population: int) -> Window:
    """One open-loop window of feeds over ``tokens`` drawn uniformly; CPU per action."""
    start_wall = time.time() + 1.0 + 0.002 * a.connections
    spec = {"host": "127.0.0.1", "port": port, "path": FEED_PATH, "body": FEED_BODY,
            "rate": rate, "warmup": warmup, "duration": duration, "grace": 2.0,
            "connections": a.connections, "start_wall": start_wall, "tokens": tokens,
            "key_prefix": f"{tag}x", "draw": "uniform", "seed": zlib.crc32(tag.encode())}
    proc = subprocess.Popen([PY, str(BENCH / "loadgen.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    time.sleep(max(0.0, start_wall + warmup - time.time()))
    cpu0, sha0 = sample(server_pid, [proc.pid]), evalsha(client)
    time.sleep(max(0.0, start_wall + warmup + duration - time.time()))
    cpu1, sha1 = sample(server_pid, [proc.pid]), evalsha(client)
    load = os.getloadavg()[0]
    out = proc.stdout.read()
    proc.wait(timeout=120)
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"load generator failed (exit {proc.returncode})")
    r = json.loads(out)
    hist = HdrHistogram.decode(r["hist"].encode())
    w = Window(population, rate, statuses=r["statuses"], loadavg=load)
    w.achieved = r["ok_in_window"] / duration
    w.p50_ms = hist.get_value_at_percentile(50) / 1000
    w.p99_ms = hist.get_value_at_percentile(99) / 1000
    w.errors = r["timeouts"] + r["not_served"]
    wall = cpu1["t"] - cpu0["t"]
    served = max(1, r["ok_in_window"]) * wall / duration  # actions in the sampled wall time

    def us(kind: str) -> float:
        return (cpu1.get(kind, 0.0) - cpu0.get(kind, 0.0)) * 1e6 / served

    w.worker_us, w.persister_us, w.redis_us = us("server"), us("persister"), us("redis")
    calls = sha1[0] - sha0[0]
    w.evalsha_us = (sha1[1] - sha0[1]) / max(1, calls)
    w.evalsha_per_action = calls / served
    busy = (cpu1["machine"] - cpu0["machine"]) / wall
    ours = sum(cpu1.get(k, 0.0) - cpu0.get(k, 0.0)
               for k in ("server", "persister", "redis", "gen")) / wall
    w.other_cores = max(0.0, busy - ours)
    return w


def server_redis_port(server_pid: int) -> int:
    """The embedded redis-server's port."""
    port = redis_port(server_pid)
    if port is None:
        raise RuntimeError("the server's redis-server child was not found")
    return port


def used_memory(client: redis.Redis) -> int:
    """``used_memory`` less the clients' buffers and the AOF buffer: what the data holds
    (the bench's own pipelines leave query buffers that Redis shrinks only later)."""
    info = client.info("memory")
    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0)) - int(
        info.get("mem_aof_buffer", 0))


def settle(client: redis.Redis, keys: Keys, timeout: float = 120.0) -> None:
    """Wait until the persister drained every ledger stream and dirty set, no AOF
    rewrite runs and no lazy free is pending (so ``used_memory`` holds what stays, not
    work in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipe = client.pipeline(transaction=False)
        for shard in range(SHARDS):
            pipe.xlen(keys.ledger(shard))
            pipe.zcard(keys.dirty(shard))
        backlog = sum(pipe.execute())
        rewriting = int(client.info("persistence")["aof_rewrite_in_progress"])
        freeing = int(client.info("memory").get("lazyfree_pending_objects", 0))
        if not backlog and not rewriting and not freeing:
            time.sleep(0.5)
            return
        time.sleep(0.5)
    raise RuntimeError("the persister did not drain the backlog in time")


def rewrite_aof(client: redis.Redis) -> None:
    """Rewrite the AOF now and wait for it: the seed's own rewrite must not run later,
    inside a measured window."""
    while int(client.info("persistence")["aof_rewrite_in_progress"]):
        time.sleep(0.5)
    client.bgrewriteaof()
    time.sleep(0.5)
    while True:
        info = client.info("persistence")
        if not int(info["aof_rewrite_in_progress"]) and not int(
                info.get("aof_rewrite_scheduled", 0)):
            return
        time.sleep(0.5)


def resident(client: redis.Redis, keys: Keys) -> int:
    """Players in the shards' active sets (every player Redis holds is in its set)."""
    pipe = client.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.zcard(keys.active(shard))
    return sum(pipe.execute())


def delete_players(client: redis.Redis, merchant: str, game: str, start: int, stop: int,
                   keys: Keys, batch: int = 5000) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(start, stop):
        user = user_of(i)
        ref = PlayerRef(merchant, game, user, shard_of(merchant, user, SHARDS))
        pipe.unlink(keys.player(ref))
        pipe.zrem(keys.active(ref.shard), ref.member)
        if (i - start + 1) % batch == 0:
            pipe.execute()
    pipe.execute()


# -- main --------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--populations", default="10000,100000,1000000")
    p.add_argument("--rate", type=float, default=400, help="feeds per second, every window")
    p.add_argument("--windows", type=int, default=3, help="measured windows per population")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--key-actions", type=int, default=10_000,
                   help="feeds of the idempotency-key memory phase")
    p.add_argument("--cycles", type=int, default=2,
                   help="run the populations this many times (players beyond the first "
                        "population deleted in between), so that drift in the machine's "
                        "load falls on every population")
    p.add_argument("--no-recheck", dest="recheck", action="store_false",
                   help="do not measure the first population once more at the end")
    p.add_argument("--hold", type=float, default=0,
                   help="after seeding the last population, keep petbox up this many "
                        "seconds before measuring (for attaching py-spy)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    populations = sorted(int(x) for x in a.populations.split(","))
    keys = Keys()
    raw = json.loads((BENCH / "bench_game.json").read_text())
    config = parse_config(raw)
    tz = ZoneInfo(config.timezone)
    secret = secrets.token_hex(32)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(a).items()},
                               "windows": [], "memory": {}}
    with tempfile.TemporaryDirectory(prefix="petbox-scale-bench-") as tmp:
        env = {**os.environ, "PETBOX_DATA_DIR": str(Path(tmp) / "data"),
               "PETBOX_ACCESS_LOG": "0", "PETBOX_LOG_LEVEL": "WARNING",
               "PETBOX_RUN_PERSISTER": "1", "PETBOX_RATE_IP": "off",
               "PETBOX_TOKEN_SECRET": secret, "PETBOX_SHARDS": str(SHARDS),
               "PETBOX_TOKEN_TTL": str(TOKEN_TTL),
               "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [
                   os.environ.get("PYTHONPATH")])])}
        for name in ("PETBOX_REDIS_URL", "PETBOX_DATABASE_URL", "PETBOX_REDIS_CLUSTER"):
            env.pop(name, None)
        creds = provision(env, ROOT, "bench_game.json")
        merchant = creds["merchant"]
        port = free_port()
        log_path = Path(tmp) / "petbox-serve.log"
        with serving(env, ROOT, port, a.workers, log_path) as server:
            client = redis.Redis(port=server_redis_port(server.pid))
            run(a, populations, client, keys, config, tz, merchant, secret, port,
                server.pid, results)
            client.close()
        note_logged_errors(log_path)
    write_results(a.json, results)
    return 0


def run(a: argparse.Namespace, populations: list[int], client: redis.Redis, keys: Keys,
        config: GameConfig, tz: ZoneInfo, merchant: str, secret: str, port: int,
        server_pid: int, results: dict[str, Any]) -> None:
    tokens: list[str] = []
    by_pop: dict[int, list[Window]] = {}
    seeded = 0
    mem = results["memory"]
    first = populations[0]
    print(f"feedPet at {a.rate:g}/s over players drawn uniformly; {a.windows} window(s) of "
          f"{a.warmup:g}+{a.duration:g} s per population, {a.cycles} cycle(s); {a.workers} "
          f"workers, persister on, embedded Redis (AOF everysec), SQLite", flush=True)
    steps = [pop for _ in range(a.cycles) for pop in populations]
    if a.recheck and len(populations) > 1:
        steps.append(first)
    for n, population in enumerate(steps):
        if population < seeded:  # a new cycle: back to the first population
            settle(client, keys)
            delete_players(client, merchant, GAME, population, seeded, keys)
            rewrite_aof(client)
            seeded = population
            print(f"\n(players beyond the first {population:,} deleted)", flush=True)
        if population > seeded:
            settle(client, keys)
            m0 = used_memory(client)
            t = time.monotonic()
            seed_players(client, config, tz, merchant, GAME, seeded, population)
            if len(tokens) < population:
                tokens += mint_tokens(secret, merchant, len(tokens), population)
            seed_s = time.monotonic() - t
            rewrite_aof(client)
            settle(client, keys)
            m1 = used_memory(client)
            per_player = (m1 - m0) / (population - seeded)
            mem.setdefault(str(population), []).append(
                {"used_memory": m1, "bytes_per_seeded_player": per_player})
            print(f"\n{population:,} players: seeded {population - seeded:,} in {seed_s:.1f} s;"
                  f" used_memory {m1 / 2**20:,.1f} MiB, {per_player:,.0f} B per player at "
                  f"rest", flush=True)
            seeded = population
        else:
            print(f"\n{population:,} players again", flush=True)
        if n == 0:  # the server's first requests: not counted
            w = drive(a, client, port, server_pid, tokens, a.rate, a.warmup, a.duration,
                      "warm", population)
            print(f"{HEADER}\n{w.row('warm-up')}  (not counted)", flush=True)
        if a.hold and population == populations[-1]:
            print(f"holding for {a.hold:g} s (server pid {server_pid})", flush=True)
            time.sleep(a.hold)
        print(HEADER, flush=True)
        done = []
        for k in range(a.windows):
            w = drive(a, client, port, server_pid, tokens[:population], a.rate, a.warmup,
                      a.duration, f"s{n}w{k}", population)
            done.append(w)
            results["windows"].append(vars(w) | {"total_us": w.total_us, "step": n})
            print(w.row(), flush=True)
        by_pop.setdefault(population, []).extend(done)
        held = resident(client, keys)
        print(f"{'':>10} players in Redis after the step: {held:,}; feeds not answered 200: "
              f"{sum(w.errors for w in done)}", flush=True)
        if held < population:
            print("  WARNING: players left Redis: some feeds were read through SQL")
        if n == len(populations) - 1:  # the largest population, before any deletion
            key_phase(a, client, keys, config, tz, merchant, secret, seeded, port,
                      server_pid, mem)
            seeded += KEY_PLAYERS  # deleted with the others by the next cycle
    summary(populations, by_pop, results)


def key_phase(a: argparse.Namespace, client: redis.Redis, keys: Keys, config: GameConfig,
              tz: ZoneInfo, merchant: str, secret: str, seeded: int, port: int,
              server_pid: int, mem: dict[str, Any]) -> None:
    """Bytes of a player at rest, of its first action, and per idempotency record kept
    24 h, over ``KEY_PLAYERS`` players seeded for this phase alone (never fed before).
    Run at the largest population before anything is deleted: deleting shrinks Redis'
    dictionaries later, which would be counted here."""
    lo, hi = seeded, seeded + KEY_PLAYERS
    settle(client, keys)
    m0 = used_memory(client)
    seed_players(client, config, tz, merchant, GAME, lo, hi)
    tokens = mint_tokens(secret, merchant, lo, hi)
    settle(client, keys)
    m1, n1 = used_memory(client), client.dbsize()
    # One feed each (not drawn): every one of them acts once.
    first = first_feeds(port, tokens)
    settle(client, keys)
    m2, n2 = used_memory(client), client.dbsize()
    rate = min(a.rate, 500.0)
    drive(a, client, port, server_pid, tokens, rate, 0.0, a.key_actions / rate, "keys",
          KEY_PLAYERS)
    settle(client, keys)
    m3, n3 = used_memory(client), client.dbsize()
    ttl = client.pttl(next(iter(client.scan_iter(match="pb:*:i:*", count=1000))))
    sample_players = [keys.player(PlayerRef(merchant, GAME, user_of(i), shard_of(
        merchant, user_of(i), SHARDS))) for i in range(lo, lo + 100)]
    sample_keys = [k for k, _ in zip(client.scan_iter(match="pb:*:i:*", count=1000),
                                     range(100), strict=False)]
    usage = {"player_hash": statistics.mean(int(client.memory_usage(k) or 0)
                                            for k in sample_players),
             "idempotency_hash": statistics.mean(int(client.memory_usage(k) or 0)
                                                 for k in sample_keys)}
    at_rest = (m1 - m0) / KEY_PLAYERS
    per_key = (m3 - m2) / max(1, n3 - n2)
    first_extra = (m2 - m1) / max(1, first) - per_key
    mem.update(key_phase_players=KEY_PLAYERS, bytes_per_player_at_rest=at_rest,
               key_phase_keys=n3 - n2, bytes_per_idempotency_key=per_key,
               bytes_first_action_extra=first_extra, key_ttl_ms=ttl,
               first_feeds_ok=first, first_feeds_keys=n2 - n1, memory_usage=usage)
    print(f"\nmemory over {KEY_PLAYERS:,} players seeded for it: {at_rest:,.0f} B per player at "
          f"rest; their first feed ({first:,} answered 200, {n2 - n1:,} new keys) added "
          f"{first_extra:,.0f} B per player besides its key; then {n3 - n2:,} new "
          f"idempotency records: {per_key:,.0f} B each (TTL {ttl / 3.6e6:.1f} h); MEMORY "
          f"USAGE (the value alone, no dictionary entries): player hash "
          f"{usage['player_hash']:,.0f} B, idempotency hash {usage['idempotency_hash']:,.0f} B",
          flush=True)


def first_feeds(port: int, tokens: list[str]) -> int:
    import asyncio

    import aiohttp

    async def go() -> int:
        ok = 0
        sem = asyncio.Semaphore(32)
        async with aiohttp.ClientSession() as http:
            async def one(i: int, token: str) -> None:
                nonlocal ok
                async with sem, http.post(
                        f"http://127.0.0.1:{port}{FEED_PATH}", data=FEED_BODY,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/json",
                                 "Idempotency-Key": f"first-{i}"}) as r:
                    ok += r.status == 200
            await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
        return ok

    return asyncio.run(go())


def summary(populations: list[int], by_pop: dict[int, list[Window]],
            results: dict[str, Any]) -> None:
    def med(pop: int, attr: str) -> float:
        return statistics.median(getattr(w, attr) for w in by_pop[pop])

    print("\n== summary (medians of every window of a population, all cycles) ==")
    print(f"{'players':>10} {'windows':>7} {'wrk us':>7} {'pers us':>7} {'redis us':>8} "
          f"{'total us':>8} {'min-max':>11} {'sha us':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'other':>6}")
    for pop in populations:
        ws = by_pop[pop]
        spread = f"{min(w.total_us for w in ws):.0f}-{max(w.total_us for w in ws):.0f}"
        print(f"{pop:>10,} {len(ws):>7} {med(pop, 'worker_us'):>7.0f} "
              f"{med(pop, 'persister_us'):>7.0f} {med(pop, 'redis_us'):>8.0f} "
              f"{med(pop, 'total_us'):>8.0f} {spread:>11} {med(pop, 'evalsha_us'):>6.1f} "
              f"{med(pop, 'p50_ms'):>7.2f} "
              f"{med(pop, 'p99_ms'):>7.2f} {med(pop, 'other_cores'):>6.2f}")
    lo, hi = populations[0], populations[-1]
    for attr, name in (("total_us", "workers + persister + Redis"), ("worker_us", "workers"),
                       ("persister_us", "persister"), ("redis_us", "Redis"),
                       ("evalsha_us", "one EVALSHA's wall time in Redis")):
        base = med(lo, attr)
        if not base:  # a run too short for a part to register any CPU: no ratio to give
            print(f"cost per action {hi:,} / {lo:,} players ({name}): n/a (none measured "
                  f"at {lo:,})")
            continue
        ratio = med(hi, attr) / base
        results[f"ratio_{attr}"] = ratio
        print(f"cost per action {hi:,} / {lo:,} players ({name}): {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
