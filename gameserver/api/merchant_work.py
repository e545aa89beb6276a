"""Merchants' CPU work (Monte Carlo simulations), bounded per merchant and per process.

A simulation is seconds of pure-Python CPU. On the default thread pool
(``min(32, cores + 4)`` threads) a merchant could fill it with a handful of concurrent
requests: shoppers' own work there (an envelope rain's split) would wait behind them,
and every such thread takes the GIL from the event loop that serves every merchant's
shoppers. So merchants' simulations run on a small pool of their own, each merchant
one at a time per process, and only so many in a process at once (running or waiting
for a thread). Past either bound the request is 429 ``rate_limited`` with
``Retry-After``, and nothing is computed.

A merchant's slot is held until its thread is done, not until its request is: a client
that disconnects and asks again while the first run still computes is refused too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from gameserver.http.errors import RateLimited

T = TypeVar("T")

THREADS = 2
"""Simulations computing at once in a process."""
ADMITTED = 4
"""Simulations admitted in a process at once (computing or waiting for a thread)."""
RETRY_AFTER_S = 5
"""What a refusal suggests waiting: about half of the largest simulation's time."""


class MerchantWork:
    """A thread pool for merchants' simulations with per-merchant and total bounds."""

    def __init__(self, threads: int = THREADS, admitted: int = ADMITTED) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="petbox-simulate")
        self.admitted = admitted
        self._running: dict[str, int] = {}

    def in_flight(self) -> int:
        """Simulations admitted and not yet done (their threads included)."""
        return sum(self._running.values())

    async def run(self, merchant: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the pool for ``merchant``; :class:`RateLimited` if
        that merchant already has one in flight or the process has ``admitted``."""
        if self._running.get(merchant):
            raise RateLimited("a simulation of this merchant is still running; retry when "
                              "it is done", limit="merchant_simulation",
                              retry_after=RETRY_AFTER_S)
        if self.in_flight() >= self.admitted:
            raise RateLimited("this server is running as many simulations as it takes; "
                              "retry later", limit="simulation", retry_after=RETRY_AFTER_S)
        self._running[merchant] = 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        future.add_done_callback(lambda f: self._done(merchant, f))
        # shielded: a cancelled request leaves the future (and so the slot) to the thread
        return await asyncio.shield(future)

    def _done(self, merchant: str, future: asyncio.Future[Any]) -> None:
        self._running.pop(merchant, None)
        if not future.cancelled():
            future.exception()  # retrieved: a run whose request left logs no warning

    def close(self) -> None:
        """Stop taking work; a simulation still computing finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)


MERCHANT_WORK = web.AppKey("merchant_work", MerchantWork)


async def merchant_work_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's pool for merchants' simulations, shut down with the app."""
    app[MERCHANT_WORK] = MerchantWork()
    yield
    app[MERCHANT_WORK].close()


async def run_simulation(request: web.Request, merchant: str, fn: Callable[..., T],
                         *args: Any, **kwargs: Any) -> T:
    """``fn`` for a merchant route, on the app's bounded pool (see the module)."""
    return await request.app[MERCHANT_WORK].run(merchant, fn, *args, **kwargs)
