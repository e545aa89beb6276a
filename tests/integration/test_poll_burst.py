"""10,000 votes at once on one poll, against real Redis and SQL: tallies exactly equal
the accepted votes, the per-day cap holds under contention, duplicates replay, no 5xx.

Sized to stay cheap in CI: sessions are minted with the signer (no HTTP), the poll's
tallies are spread over 64 buckets (the most a config allows, as a merchant would set a
midnight poll), and the client never sleeps."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from tests.conftest import World, answered_despite_503
from tests.integration.test_poll_http import POLL_CONFIG, poll_view, tallies, token, vote

SHOPPERS = 1000
TRIES = 10
"""votes each shopper sends (3 a day accepted): 10,000 castVote requests in all"""
LIMIT = POLL_CONFIG["polls"]["best"]["votes_per_day"]
BURST_CONFIG: dict[str, Any] = copy.deepcopy(POLL_CONFIG)
BURST_CONFIG["polls"]["best"]["buckets"] = 64


@pytest.fixture
async def pw(world: World) -> World:
    await world.merchant("pollshop", config=BURST_CONFIG)
    return world


async def test_ten_thousand_concurrent_votes_exact_tallies(pw: World) -> None:
    """2,500 shoppers cast 4 votes each at once (3 accepted a day: 7,500), every
    fiftieth request also sent twice with its key: tallies = accepted votes. Overload
    is answered 503 with Retry-After, never another 5xx; the client retries those with
    the same key, as a real one does, and nothing is counted twice."""
    options = ["red", "blue", "green"]
    jobs = []
    tokens = [token(pw, f"burst{u}") for u in range(SHOPPERS)]
    for n in range(TRIES):  # every shopper's first vote, then every second one, ...
        for u, tok in enumerate(tokens):
            jobs.append((tok, options[(u + n) % 3], f"b{u}-{n}"))
    assert len(jobs) == 10_000
    dupes = jobs[::50]
    shed: list[int] = []

    async def answered(tok: str, option: str, key: str) -> Any:
        return await answered_despite_503(lambda: vote(pw, tok, option, key), shed, key,
                                          pause=0)

    started = time.monotonic()
    results = await asyncio.gather(*[answered(t, o, k) for t, o, k in jobs + dupes])
    took = time.monotonic() - started
    statuses = [r.status for r in results]
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    print(f"{len(results)} castVote requests in {took:.2f} s "
          f"({len(results) / took:.0f}/s), 503 answers retried: {len(shed)}")
    accepted: dict[str, dict[str, str]] = {}
    for (tok, option, key), resp in zip(jobs + dupes, results, strict=True):
        if resp.status == 200:
            accepted.setdefault(key, {})[tok] = option
        else:
            assert (await resp.json())["error"]["code"] in ("vote_limit_reached",
                                                             "idempotency_in_progress")
    assert len(accepted) == SHOPPERS * LIMIT
    expected = dict.fromkeys(options, 0)
    for by_tok in accepted.values():
        expected[next(iter(by_tok.values()))] += 1
    view = await poll_view(pw)
    assert tallies(view) == expected and view["total"] == SHOPPERS * LIMIT
