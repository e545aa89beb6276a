"""Admission control: a bounded number of requests in flight per process, a short
bounded queue in front, and ``503 overloaded`` with ``Retry-After`` beyond it.

Overload is answered here, by design, before a request has touched anything, rather
than by whichever pool (Redis connections, SQL connections) runs dry first halfway
through an action. The pools are sized from the same bound (``Settings``), so an
admitted request never finds one exhausted; at worst it waits a bounded time for a
connection another admitted request is about to give back.

What is counted: every route but the operations endpoints (``/healthz``, ``/readyz``,
``/metrics``, ``/openapi.json``), which must answer even when the process is saturated
(a load balancer that cannot read ``/readyz`` would take a busy process out).

Refusals: ``queue_full`` (``max_queued`` already waiting) at once, ``queue_timeout``
after ``queue_wait`` seconds in the queue. Both are 503 ``overloaded`` with
``Retry-After: 1``; nothing was done, so the client may retry with the same
Idempotency-Key.

Waiting is fair between games (:class:`Admission`): the shoppers of one game whose
crowd fills the queue wait behind each other, not in front of every other game's.

A request is admitted once its body has arrived (:func:`_body_arrived`), not while it
is still arriving: a slot is what every merchant's shoppers share, and a request that
held one while its client sent the body a byte at a time held it for as long as that
client liked. ``max_inflight`` such connections (within the per-IP rate limit, and
``createSession`` needs no token) refused every other request of the process.
A body still incomplete ``body_wait`` seconds after the headers is 400 ``body_timeout``
(counted as ``petbox_admission_rejected_total{reason="body_timeout"}``), and the
connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gameserver.http.bodylimit import BODY_LIMITS
from gameserver.http.errors import BodyTimeout, Overloaded, error_response, http_status
from gameserver.ops.metrics import Metrics
from gameserver.ops.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})


class Admission:
    """The in-flight bound of one process: ``acquire`` admits, queues or refuses.

    Waiting is fair between tenants (a game's shoppers, :func:`tenant_of`): each tenant
    waits in a queue of its own, a slot given back goes to the tenants in turn (round
    robin) rather than to whoever queued first, and a full queue refuses the newest
    waiter of the tenant with most waiting rather than a tenant with fewer. At midnight
    one game's crowd can fill a process's queue many times over; it then waits behind
    itself while the shoppers of every other game still get their turn."""

    def __init__(self, max_inflight: int, max_queued: int, queue_wait: float,
                 metrics: Metrics | None = None) -> None:
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.queue_wait = queue_wait
        self.metrics = metrics
        self.in_flight = 0
        self.queued = 0
        # Tenants with waiters, in turn order (a dict keeps insertion order: the next
        # turn is the first key; a served tenant with more waiters goes to the back).
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, tenant: str = "") -> None:
        """Take a slot for ``tenant``, waiting in its queue if there is room;
        :class:`Overloaded` if not."""
        if self.in_flight < self.max_inflight and not self.queued:
            self.in_flight += 1  # free slot, nobody ahead: never suspends
            self._gauge()
            return
        if self.queued >= self.max_queued and not self._make_room(tenant):
            self._refuse("queue_full")
        await self._wait(tenant)

    def release(self) -> None:
        """Give a slot back: to the next tenant's oldest waiter if any is waiting."""
        while self._waiting:
            tenant = next(iter(self._waiting))
            line = self._waiting.pop(tenant)
            waiter = line.popleft()
            self.queued -= 1
            if line:
                self._waiting[tenant] = line  # to the back: the others go first
            if not waiter.done():  # else cancelled, its task not yet run: skip it
                waiter.set_result(None)  # the slot passes on: in_flight unchanged
                self._gauge()
                return
        self.in_flight -= 1
        self._gauge()

    def _make_room(self, tenant: str) -> bool:
        """The queue is full: refuse the newest waiter of the tenant with most waiting,
        if it has at least two more than ``tenant`` (so that, queued, ``tenant`` still
        has no more than it); True if room was made."""
        mine = len(self._waiting.get(tenant, ()))
        heaviest = max(self._waiting, key=lambda t: len(self._waiting[t]), default=None)
        if heaviest is None or len(self._waiting[heaviest]) < mine + 2:
            return False
        line = self._waiting[heaviest]
        for i in range(len(line) - 1, -1, -1):
            waiter = line[i]
            if not waiter.done():
                del line[i]
                self.queued -= 1
                if not line:
                    del self._waiting[heaviest]
                self._count("queue_full")
                waiter.set_exception(Overloaded("queue_full"))
                return True
        return False

    async def _wait(self, tenant: str) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(waiter)
        self.queued += 1
        self._gauge()
        try:
            async with asyncio.timeout(self.queue_wait):
                await waiter
        except TimeoutError:
            if self._handed(waiter):
                return  # the slot came as the time ran out: take it
            self._leave(tenant, waiter)
            self._refuse("queue_timeout")
        except asyncio.CancelledError:  # the client went away while waiting
            if self._handed(waiter):
                self.release()
            else:
                self._leave(tenant, waiter)
            raise

    @staticmethod
    def _handed(waiter: asyncio.Future[None]) -> bool:
        """Whether ``waiter`` was given a slot (its result set, not refused)."""
        return waiter.done() and not waiter.cancelled() and waiter.exception() is None

    def _leave(self, tenant: str, waiter: asyncio.Future[None]) -> None:
        """Take a waiter that timed out or went away out of its tenant's queue (unless
        :meth:`release` or :meth:`_make_room` already did)."""
        line = self._waiting.get(tenant)
        if line is None or waiter not in line:
            return
        line.remove(waiter)
        self.queued -= 1
        if not line:
            del self._waiting[tenant]
        self._gauge()

    def _refuse(self, reason: str) -> None:
        self._count(reason)
        raise Overloaded(reason)

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.admission_rejected.labels(reason).inc()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.admission_in_flight.set(self.in_flight)
            self.metrics.admission_queued.set(self.queued)


def admission_middleware(settings: Settings, metrics: Metrics) -> Middleware | None:
    """The middleware for ``settings`` (None when ``max_inflight`` is 0: off); register
    it right after ``error_middleware`` so a refusal gets the JSON error body and is
    the first thing decided about a request."""
    if settings.max_inflight <= 0:
        return None
    admission = Admission(settings.max_inflight, settings.max_queued, settings.queue_wait,
                          metrics)

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        if not await _body_arrived(request, settings.body_wait):
            metrics.admission_rejected.labels("body_timeout").inc()
            late = BodyTimeout(settings.body_wait)
            resp = error_response(http_status(late), late.code, late.message, late.details)
            resp.force_close()  # the rest of the body may still trickle in: not read
            return resp
        await admission.acquire(tenant_of(request))
        try:
            return await handler(request)
        finally:
            admission.release()

    return admit


def tenant_of(request: web.Request) -> str:
    """Whose share of the process a request waits in: its game (the path's ``{game}``;
    merchant routes of a game count with its shoppers), or ``""`` for routes of no game.
    Unauthenticated, so a client can name any game: that buys it a queue of its own,
    not more slots, and the per-IP rate limit still bounds it."""
    return request.match_info.get("game", "")


async def _body_arrived(request: web.Request, wait: float) -> bool:
    """Read the request's body, waiting at most ``wait`` seconds, before it takes a slot;
    False if it has not arrived by then.

    aiohttp keeps what was read, so the handler's own ``read()`` gets it at once, and a
    body past the application's cap is the usual 413 (a body that does not decode as
    sent, the usual 400). Config writes (operations with a cap of their own, in
    :data:`~gameserver.http.bodylimit.BODY_LIMITS`) are left to their handler: it reads
    them on a clone of the request with the larger cap, only once the merchant key is
    checked, so only a merchant can send one slowly, within its rate limit."""
    if not request.body_exists or request.content.is_eof() or \
            request.match_info.route.name in request.app.get(BODY_LIMITS, {}):
        return True  # no body, all of it here already (the usual small one), or a config
    try:
        async with asyncio.timeout(wait):
            await request.read()
    except TimeoutError:
        return False
    return True
