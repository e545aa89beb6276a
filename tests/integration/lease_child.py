"""A host that holds a lease until it is killed, for the takeover tests.

``python -m tests.integration.lease_child <redis-url> job <name> <ttl-ms>``: a leased
periodic job whose every pass increments ``runs:<token>``;
``python -m tests.integration.lease_child <redis-url> shards <group> <n> <ttl-ms>``:
a :class:`ShardLeases` member writing its shards to ``shards:<token>`` each pass.
Each prints its token on its first line once it holds something.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from gameserver.jobs.lease import Lease, ShardLeases
from gameserver.jobs.periodic import PeriodicTask


class CountingJob(PeriodicTask):
    """Counts its passes in Redis, so the parent sees which host runs the job."""

    def __init__(self, redis: aioredis.Redis, interval: float) -> None:
        super().__init__(interval)
        self.redis = redis

    async def run_once(self) -> None:
        assert self.lease is not None
        await self.redis.incr(f"runs:{self.lease.token}")


async def job(url: str, name: str, ttl_ms: int) -> None:
    redis = aioredis.from_url(url)
    task = CountingJob(redis, 0.02)
    task.lease = Lease(redis, name, ttl_ms)
    print(task.lease.token, flush=True)
    await task.run_leased()


async def shards(url: str, group: str, n: int, ttl_ms: int) -> None:
    redis = aioredis.from_url(url)
    member = ShardLeases(redis, group, n, ttl_ms)
    print(member.token, flush=True)
    while True:
        mine = await member.assign()
        await redis.set(f"shards:{member.token}", ",".join(map(str, mine)))
        await asyncio.sleep(ttl_ms / 5000)


if __name__ == "__main__":
    url, mode, *rest = sys.argv[1:]
    if mode == "job":
        asyncio.run(job(url, rest[0], int(rest[1])))
    else:
        asyncio.run(shards(url, rest[0], int(rest[1]), int(rest[2])))
