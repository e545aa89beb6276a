"""Leases on a real Redis: one holder at a time, only the holder renews or releases,
and a host killed with SIGKILL is taken over within one lease lifetime; shard leases
split the shards over the live hosts and take a dead host's shards over."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis

from gameserver.jobs.lease import Lease, ShardLeases, process_name
from tests.integration.lease_child import CountingJob

TTL_MS = 600


@pytest.fixture
def spawn(redis_url: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "tests.integration.lease_child",
                                 redis_url, *args], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


async def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return (await asyncio.to_thread(proc.stdout.readline)).strip()


async def _until(check: Callable[[], object], within: float = 5.0) -> float:
    """Seconds until ``check()`` (an awaitable's result) is true; fails after ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await check():  # type: ignore[misc]
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def test_process_names_are_unique_per_process() -> None:
    code = "from gameserver.jobs.lease import process_name; print(process_name('serve'))"
    names = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip() for _ in range(2)}
    names.add(process_name("serve"))
    assert len(names) == 3 and all("-serve-" in n for n in names)


async def test_one_holder_and_only_the_holder_renews_or_releases(
        redis: aioredis.Redis) -> None:
    a, b = Lease(redis, "job", TTL_MS), Lease(redis, "job", TTL_MS)
    assert await a.hold() and a.held
    assert not await b.hold() and not b.held
    assert not await b.release()  # not b's: a still holds it
    assert await a.holder() == a.token
    assert await a.hold()  # renewed
    assert await a.release() and not a.held
    assert await b.hold() and await a.holder() == b.token
    assert not await a.release()
    # A holder that stalled past its lifetime cannot renew the successor's lease.
    await asyncio.sleep(TTL_MS / 1000 + 0.1)
    assert not b.held
    assert await a.hold() and not await b.hold()


async def test_a_killed_job_holder_is_taken_over_within_one_lifetime(
        redis: aioredis.Redis, spawn: Callable[..., subprocess.Popen[str]]) -> None:
    child = spawn("job", "reconciler", str(TTL_MS))
    theirs = await _first_line(child)
    await _until(lambda: redis.exists(f"runs:{theirs}"))
    ours = CountingJob(redis, 0.02)
    ours.lease = Lease(redis, "reconciler", TTL_MS)
    ours.start()
    try:
        await asyncio.sleep(3 * TTL_MS / 1000)  # the holder renews: we never run
        assert ours.passes == 0 and int(await redis.get(f"runs:{theirs}") or 0) > 10
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_runs = int(await redis.get(f"runs:{theirs}") or 0)
        took = await _until(lambda: asyncio.sleep(0, ours.passes > 0))
        assert took < TTL_MS / 1000 + 0.5  # the lease expired, the keeper took it
        await asyncio.sleep(0.2)
        assert int(await redis.get(f"runs:{theirs}") or 0) == killed_runs
        assert int(await redis.get(f"runs:{ours.lease.token}") or 0) > 0
    finally:
        await ours.stop()
    assert await redis.exists("petbox:lease:reconciler") == 0  # released on stop


async def _assignments(redis: aioredis.Redis, tokens: list[str]) -> list[list[int]]:
    found = []
    for token in tokens:
        raw = await redis.get(f"shards:{token}")
        found.append([int(s) for s in raw.decode().split(",") if s] if raw else [])
    return found


async def test_shards_split_over_hosts_and_a_killed_host_is_taken_over(
        redis: aioredis.Redis, spawn: Callable[..., subprocess.Popen[str]]) -> None:
    n = 16
    procs = [spawn("shards", "persister", str(n), str(TTL_MS)) for _ in range(3)]
    tokens = [await _first_line(p) for p in procs]

    async def split_evenly() -> bool:
        got = await _assignments(redis, tokens)
        flat = sorted(s for shards in got for s in shards)
        return flat == list(range(n)) and all(len(s) <= 6 for s in got)

    try:
        await _until(split_evenly)  # every shard exactly once, ≤ ceil(16 / 3) each
    except AssertionError:
        raise AssertionError(await _assignments(redis, tokens)) from None
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    await redis.delete(f"shards:{tokens[0]}")
    tokens = tokens[1:]

    async def two_cover_all() -> bool:
        got = await _assignments(redis, tokens)
        return sorted(s for shards in got for s in shards) == list(range(n)) and \
            [len(s) for s in got] == [8, 8]

    took = await _until(two_cover_all)
    assert took < 3 * TTL_MS / 1000 + 1.0  # lease and heartbeat expiry, one pass


async def test_shard_leases_in_process_are_disjoint(redis: aioredis.Redis) -> None:
    hosts = [ShardLeases(redis, "p", 16, TTL_MS) for _ in range(2)]
    for _ in range(3):  # the first pass may take more than a share: the next gives back
        got = [await h.assign() for h in hosts]
    assert sorted(got[0] + got[1]) == list(range(16))
    assert sorted(len(g) for g in got) == [8, 8]
    assert sorted(hosts[0].held() + hosts[1].held()) == list(range(16))
    await hosts[0].release_all()
    assert await hosts[1].assign() == list(range(16))


async def test_shards_whose_leases_redis_lost_are_taken_again_in_the_same_pass(
        redis: aioredis.Redis) -> None:
    """Redis restarted (or the leases expired while it was down): the host's next
    assignment takes its shards again at once, not one pass later (a final flush in that
    pass saw no shard of its own and called the backlog drained)."""
    host = ShardLeases(redis, "p", 4, TTL_MS)
    assert await host.assign() == [0, 1, 2, 3]
    await redis.flushall()
    assert await host.assign() == [0, 1, 2, 3]
    assert {await redis.get(host.key(s)) for s in range(4)} == {host.token.encode()}
