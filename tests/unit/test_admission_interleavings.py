"""Admission under random interleavings of acquire (real and load-test tenants), cancel
(while waiting and while holding), timeout, release and refusals of a full queue,
several per event-loop turn so that the same-turn races happen (a slot handed over as
its waiter times out or is cancelled, a refusal then a cancel). After every turn: the
in-flight bound holds, ``queued`` is what the lines hold, no waiter waits while a slot
is free, and each lane's size buckets match its lines; at the end every client has
finished and every admitted request was released."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from economy.errors import DomainError
from gameserver.http.admission import Admission, Lane


def lines_of(adm: Admission) -> dict[tuple[int, str], Any]:
    return {(shadow, t): q for shadow, lane in enumerate(adm._lanes) for t, q in lane.lines.items()}


def check_lane(lane: Lane) -> None:
    sizes: dict[int, set[str]] = {}
    for t, q in lane.lines.items():
        sizes.setdefault(len(q), set()).add(t)
    assert {k: set(v) for k, v in lane._by_size.items()} == sizes, (lane._by_size, sizes)
    assert lane._top == max(sizes, default=0)


def check(adm: Admission, holding: set[int]) -> None:
    for lane in adm._lanes:
        check_lane(lane)
    lines = lines_of(adm)
    assert adm.in_flight <= adm.max_inflight, "over the in-flight bound"
    assert all(lines.values()), "empty deque left in _waiting"
    assert adm.queued == sum(len(q) for q in lines.values()), "queued drifted"
    live = [w for q in lines.values() for w in q if not w.done()]
    assert len(live) <= adm.max_queued
    if adm.in_flight < adm.max_inflight:
        assert not live, "a waiter waits while a slot is free"
    assert len(holding) <= adm.in_flight, "more holders than slots counted"
    assert adm.in_flight >= 0 and adm.queued >= 0


async def run(seed: int, steps: int = 600) -> dict[str, int]:
    rnd = random.Random(seed)
    m, q = rnd.randint(1, 4), rnd.randint(0, 6)
    adm = Admission(m, q, queue_wait=rnd.choice([0.0005, 0.002, 0.01]))
    holding: set[int] = set()
    go: dict[int, asyncio.Event] = {}
    tasks: dict[int, asyncio.Task[None]] = {}
    out = {"admitted": 0, "released": 0, "refused": 0, "cancelled": 0}

    async def client(i: int, tenant: str) -> None:
        try:
            await adm.acquire(tenant, shadow=tenant in "cd")
        except DomainError:
            out["refused"] += 1
            return
        except asyncio.CancelledError:
            out["cancelled"] += 1
            raise
        out["admitted"] += 1
        holding.add(i)
        try:
            await go[i].wait()
        finally:
            holding.discard(i)
            out["released"] += 1
            adm.release()

    n = 0
    for _ in range(steps):
        for _ in range(rnd.randint(1, 4)):  # several operations in one turn
            op = rnd.random()
            if op < 0.45:
                go[n] = asyncio.Event()
                tasks[n] = asyncio.create_task(client(n, rnd.choice("abcd")))
                n += 1
            elif op < 0.65:
                pending = [t for t in tasks.values() if not t.done()]
                if pending:
                    rnd.choice(pending).cancel()
            elif op < 0.95:
                if holding:
                    go[rnd.choice(sorted(holding))].set()
            else:
                pass
        if rnd.random() < 0.2:
            await asyncio.sleep(rnd.choice([0.0005, 0.002]))
        else:
            await asyncio.sleep(0)
        check(adm, holding)
    # drain: let everyone finish
    for _ in range(2000):
        for i in list(holding):
            go[i].set()
        await asyncio.sleep(0.001)
        check(adm, holding)
        if all(t.done() for t in tasks.values()):
            break
    assert all(t.done() for t in tasks.values()), "a client never finished"
    assert (adm.in_flight, adm.queued, lines_of(adm)) == (0, 0, {}), \
        (adm.in_flight, adm.queued, lines_of(adm))
    assert out["admitted"] == out["released"]
    return out


@pytest.mark.parametrize("seed", range(12))
async def test_random_interleavings(seed: int) -> None:
    out = await run(seed)
    assert out["admitted"] > 0
