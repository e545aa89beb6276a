"""ScriptBatcher against a real redis-server: each caller gets its own reply or error,
calls of one loop turn share a pipeline, and nothing is sent twice or for nobody."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gameserver.appkeys import BATCHER
from gameserver.ops.embedded import RedisProcess, free_port
from gameserver.ops.settings import Settings
from gameserver.state.batching import ScriptBatcher
from gameserver.state.latency_budget import LATENCY_BUDGET, LatencyBudget

# Appends ARGV[1] to a list and answers {ARGV[1], length}; refuses 'bad' before writing.
APPEND = """
if ARGV[1] == 'bad' then return redis.error_reply('refused ' .. KEYS[1]) end
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
return {ARGV[1], n}
"""


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, max_connections=16)
    yield client
    await client.aclose()


async def test_each_caller_gets_its_own_reply_and_one_turn_is_one_pipeline(
        redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = batcher.script(APPEND)
    replies = await asyncio.gather(*(script(keys=[f"k{i % 7}"], args=[f"v{i}"])
                                     for i in range(300)))
    assert [r[0] for r in replies] == [f"v{i}".encode() for i in range(300)]
    # Per key, the lengths seen are 1..n: every call ran exactly once. (Two batches in
    # flight on two connections may run in either order; one request's calls never
    # share a batch, since it awaits its load before its commit.)
    for k in range(7):
        lengths = sorted(r[1] for i, r in enumerate(replies) if i % 7 == k)
        assert lengths == list(range(1, len(lengths) + 1))
        assert sorted(await redis.lrange(f"k{k}", 0, -1)) == sorted(
            f"v{i}".encode() for i in range(300) if i % 7 == k)
    # 300 calls queued in one turn: two pipelines of at most 256 (max_batch).
    assert (batcher.calls, batcher.batches) == (300, 2)


async def test_batches_grow_while_redis_is_busy(redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis, max_in_flight=1)
    script = batcher.script(APPEND)
    first = [asyncio.ensure_future(script(keys=["q"], args=[f"a{i}"])) for i in range(3)]
    await asyncio.sleep(0)  # the first batch (3 calls) leaves on this turn
    later = [asyncio.ensure_future(script(keys=["q"], args=[f"b{i}"])) for i in range(40)]
    await asyncio.gather(*first, *later)
    # The 40 later calls waited for the one batch in flight and left together.
    assert (batcher.calls, batcher.batches) == (43, 2)
    assert await redis.llen("q") == 43


async def test_an_error_reply_fails_only_its_own_call(redis: aioredis.Redis) -> None:
    script = ScriptBatcher(redis).script(APPEND)
    results = await asyncio.gather(
        script(keys=["e"], args=["one"]), script(keys=["e"], args=["bad"]),
        script(keys=["e"], args=["two"]), return_exceptions=True)
    assert results[0] == [b"one", 1]
    assert isinstance(results[1], ResponseError) and "refused e" in str(results[1])
    assert results[2] == [b"two", 2]


async def test_scripts_forgotten_by_redis_are_loaded_again(redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = batcher.script(APPEND)
    assert await script(keys=["n"], args=["x"]) == [b"x", 1]
    await redis.script_flush()  # what a restarted or failed-over Redis looks like
    replies = await asyncio.gather(*(script(keys=["n"], args=[f"y{i}"]) for i in range(5)))
    assert replies == [[f"y{i}".encode(), i + 2] for i in range(5)]
    assert await redis.llen("n") == 6  # the refused EVALSHAs did not run; each resend ran once


async def test_a_call_cancelled_before_its_batch_left_is_never_sent(
        redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = batcher.script(APPEND)
    dropped = script(keys=["c"], args=["dropped"])
    kept = script(keys=["c"], args=["kept"])
    dropped.cancel()
    assert await kept == [b"kept", 1]
    assert await redis.lrange("c", 0, -1) == [b"kept"]
    assert batcher.calls == 1


async def test_connection_errors_fail_every_call_of_the_batch() -> None:
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    script = ScriptBatcher(client).script(APPEND)
    results = await asyncio.gather(*(script(keys=["z"], args=[str(i)]) for i in range(4)),
                                   return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results)
    await client.aclose()


async def test_a_paused_redis_fails_the_batch_on_its_deadline_then_recovers(
        tmp_path: Any) -> None:
    """One deadline (the client's socket_timeout) covers the whole round trip; a batch
    that missed it leaves its connection, so later replies can never be mismatched."""
    with RedisProcess(tmp_path / "redis", appendonly=False) as server:
        client = aioredis.Redis.from_url(server.url, socket_timeout=0.3)
        batcher = ScriptBatcher(client)
        script = batcher.script(APPEND)
        assert await script(keys=["p"], args=["before"]) == [b"before", 1]
        server.pause()
        try:
            started = asyncio.get_running_loop().time()
            results = await asyncio.gather(*(script(keys=["p"], args=[f"x{i}"])
                                             for i in range(3)), return_exceptions=True)
            waited = asyncio.get_running_loop().time() - started
        finally:
            server.resume()
        assert all(isinstance(r, RedisTimeoutError) for r in results), results
        assert 0.3 <= waited < 1.5
        # The paused server ran the three calls once it woke up; the late replies went
        # down with the dropped connection, and a fresh one answers in step.
        assert await script(keys=["p"], args=["after"]) == [b"after", 5]
        await batcher.aclose()
        await client.aclose()


async def _calls_at_300_per_second(script: Any, key: str, budget: LatencyBudget | None = None,
                                   request_seconds: float = 0.0) -> None:
    """120 calls, one per 1/300 s; with a ``budget``, each followed by a request of
    ``request_seconds`` reported to it."""
    calls = []
    for i in range(120):
        calls.append(asyncio.ensure_future(script(keys=[key], args=[str(i)])))
        if budget is not None:
            budget.observe(request_seconds)
        await asyncio.sleep(1 / 300)
    await asyncio.gather(*calls)


async def test_linger_gathers_batches_only_while_calls_are_frequent(
        redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis, linger=0.05, busy=0.0)  # the test process idles
    script = batcher.script(APPEND)
    # A lone call at a low rate leaves on the next loop turn, not after the linger.
    started = asyncio.get_running_loop().time()
    assert await script(keys=["l"], args=["lone"]) == [b"lone", 1]
    assert asyncio.get_running_loop().time() - started < 0.015
    # 300 calls a second, one per loop turn (15 expected within a linger, at least
    # MIN_JOINERS): after a measuring window, each batch waits and gathers several turns.
    await _calls_at_300_per_second(script, "l")
    assert await redis.llen("l") == 121
    assert batcher.batches < 121 / 2, (batcher.calls, batcher.batches)
    assert batcher._rate > 100


async def test_a_full_batch_does_not_wait_for_its_linger(redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis, linger=5.0, max_batch=10)
    batcher._rate, batcher._load = 1000.0, 1.0  # as if calls were coming fast, CPU busy
    batcher._window_start = asyncio.get_running_loop().time()
    script = batcher.script(APPEND)
    started = asyncio.get_running_loop().time()
    replies = await asyncio.gather(*(script(keys=["f"], args=[str(i)]) for i in range(10)))
    assert [r[1] for r in replies] == list(range(1, 11))
    assert asyncio.get_running_loop().time() - started < 1.0
    assert (batcher.calls, batcher.batches) == (10, 1)


async def test_no_linger_while_the_process_has_cpu_to_spare(redis: aioredis.Redis) -> None:
    batcher = ScriptBatcher(redis, linger=0.05, busy=0.5)
    script = batcher.script(APPEND)
    await _calls_at_300_per_second(script, "idle")  # as above, but the process idles
    assert batcher._rate > 100 and batcher._load < 0.5
    assert (batcher.calls, batcher.batches) == (120, 120)  # each left on its own turn


async def test_a_latency_budget_gathers_batches_while_requests_are_fast(
        redis: aioredis.Redis) -> None:
    # The process idles (no linger for CPU's sake), but the requests take 1 ms against a
    # 10 ms target: the budget's linger grows 2.5 ms a 20 ms window up to 5 ms, and from
    # about 3.3 ms on (one joiner expected at 300 calls a second) calls wait for company.
    budget = LatencyBudget(0.010, ceiling=0.005, window=0.02, steps=4)
    batcher = ScriptBatcher(redis, linger=0.005, busy=1.5, budget=budget)
    script = batcher.script(APPEND)
    await _calls_at_300_per_second(script, "fast", budget, 0.001)
    assert await redis.llen("fast") == 120
    assert budget.linger_s == 0.005
    assert batcher.calls == 120 and batcher.batches < 90, (batcher.calls, batcher.batches)


async def test_no_linger_when_the_requests_use_their_whole_budget(
        redis: aioredis.Redis) -> None:
    budget = LatencyBudget(0.010, ceiling=0.005, window=0.02, steps=4)
    batcher = ScriptBatcher(redis, linger=0.005, busy=1.5, budget=budget)
    script = batcher.script(APPEND)
    await _calls_at_300_per_second(script, "slow", budget, 0.008)  # over the 7 ms guard
    assert budget.linger_s == 0.0
    assert (batcher.calls, batcher.batches) == (120, 120)  # each left on its own turn


async def test_the_request_path_reports_to_the_latency_budget(
        aiohttp_client: Any, settings: Settings, clock: Any) -> None:
    from gameserver.app import create_app

    plain = create_app(settings, clock=clock)
    await aiohttp_client(plain)
    assert LATENCY_BUDGET not in plain and plain[BATCHER].budget is None  # off by default

    app = create_app(replace(settings, latency_target=0.010), clock=clock)
    client = await aiohttp_client(app)
    budget = app[LATENCY_BUDGET]
    assert app[BATCHER].budget is budget and budget.ceiling == settings.redis_pipeline_linger
    for _ in range(20):
        assert (await client.get("/healthz")).status == 200
    # 20 quick requests and none slow: the first window grows the linger one step.
    assert budget.linger(asyncio.get_running_loop().time()) == pytest.approx(0.010 / 40)
