"""Concurrent misses of one key share one read (a "single flight")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


async def once(flights: dict[K, asyncio.Future[T]], key: K,
               read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, shared by every caller asking for ``key`` while it runs: ``flights``
    holds the reads under way. A caller that gives up does not cancel it for the others,
    and its failure reaches every caller still waiting."""
    flight = flights.get(key)
    if flight is None:
        flight = asyncio.ensure_future(read())
        flights[key] = flight
        flight.add_done_callback(lambda done: _landed(flights, key, done))
    return await asyncio.shield(flight)


def _landed(flights: dict[K, asyncio.Future[T]], key: K, flight: asyncio.Future[T]) -> None:
    flights.pop(key, None)
    if not flight.cancelled():
        flight.exception()  # retrieved: each caller got it; none left may be waiting
