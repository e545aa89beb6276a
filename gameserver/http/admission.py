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

Waiting is fair between merchants (:class:`Admission`): the shoppers of one merchant
whose crowd fills the queue wait behind each other, not in front of every other
merchant's; load-test (shadow) traffic waits behind all real shoppers.

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

from gameserver.api.common import SHADOW_HEADER, valid_player_claims
from gameserver.http.bodylimit import BODY_LIMITS
from gameserver.http.errors import BodyTimeout, Overloaded, error_response, http_status
from gameserver.ops.metrics import Metrics
from gameserver.ops.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})


Waiter = asyncio.Future[None]


class Lane:
    """One lane of waiters: per tenant its waiters, oldest first; tenants served in
    turn; the tenant with most waiting found without a scan (tenants are bucketed by
    how many they have waiting, and the top bucket is tracked: a refusal under a full
    queue costs the same with one tenant waiting or a thousand)."""

    def __init__(self) -> None:
        self.lines: dict[str, deque[Waiter]] = {}
        """Tenants with waiters, in turn order (a dict keeps insertion order: the next
        turn is the first key; a served tenant with more waiters goes to the back)."""
        self._by_size: dict[int, dict[str, None]] = {}
        self._top = 0

    def __bool__(self) -> bool:
        return bool(self.lines)

    def size(self, tenant: str) -> int:
        return len(self.lines.get(tenant, ()))

    def heaviest(self) -> str | None:
        """A tenant with most waiting (None: nobody waits)."""
        return next(iter(self._by_size[self._top]), None) if self._top else None

    def push(self, tenant: str, waiter: Waiter) -> None:
        line = self.lines.setdefault(tenant, deque())
        line.append(waiter)
        self._resized(tenant, len(line) - 1, len(line))

    def pop_next(self) -> Waiter | None:
        """The oldest waiter of the tenant whose turn it is (None: nobody waits)."""
        if not self.lines:
            return None
        tenant = next(iter(self.lines))
        line = self.lines.pop(tenant)
        waiter = line.popleft()
        if line:
            self.lines[tenant] = line  # to the back: the others go first
        self._resized(tenant, len(line) + 1, len(line))
        return waiter

    def pop_newest(self, tenant: str) -> Waiter | None:
        """``tenant``'s newest waiter still waiting (None: none)."""
        line = self.lines[tenant]
        for i in range(len(line) - 1, -1, -1):
            if not line[i].done():
                waiter = line[i]
                del line[i]
                self._shrunk(tenant, line)
                return waiter
        return None

    def remove(self, tenant: str, waiter: Waiter) -> bool:
        """Take ``waiter`` out if it is still in ``tenant``'s line."""
        line = self.lines.get(tenant)
        if line is None or waiter not in line:
            return False
        line.remove(waiter)
        self._shrunk(tenant, line)
        return True

    def _shrunk(self, tenant: str, line: deque[Waiter]) -> None:
        if not line:
            del self.lines[tenant]
        self._resized(tenant, len(line) + 1, len(line))

    def _resized(self, tenant: str, old: int, new: int) -> None:
        if old:
            bucket = self._by_size[old]
            del bucket[tenant]
            if not bucket:
                del self._by_size[old]
        if new:
            self._by_size.setdefault(new, {})[tenant] = None
        # sizes move by one: the top moves to the new size, or down by one when its
        # last tenant left it (that tenant is then one below)
        if new > self._top:
            self._top = new
        elif old == self._top and old not in self._by_size:
            self._top = new if new else max(self._by_size, default=0)


class Admission:
    """The in-flight bound of one process: ``acquire`` admits, queues or refuses.

    Waiting is fair between tenants (merchants, :func:`tenant_of`): each tenant
    waits in a queue of its own, a slot given back goes to the tenants in turn (round
    robin) rather than to whoever queued first, and a full queue refuses the newest
    waiter of the tenant with most waiting rather than a tenant with fewer. At midnight
    one merchant's crowd can fill a process's queue many times over; it then waits
    behind itself while the shoppers of every other merchant still get their turn.

    Load-test (shadow) traffic waits in a lane of its own behind every real shopper: a
    slot given back goes to a shadow waiter only when no real one waits, and a full
    queue refuses shadow waiters before any real one. A rehearsal on the live site
    then sheds itself, not the shoppers it rehearses for."""

    def __init__(self, max_inflight: int, max_queued: int, queue_wait: float,
                 metrics: Metrics | None = None) -> None:
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.queue_wait = queue_wait
        self.metrics = metrics
        self.in_flight = 0
        self.queued = 0
        self._lanes = (Lane(), Lane())
        """Real shoppers' waiters, then load-test (shadow) ones."""

    async def acquire(self, tenant: str = "", shadow: bool = False) -> None:
        """Take a slot for ``tenant``, waiting in its queue if there is room;
        :class:`Overloaded` if not."""
        if self.in_flight < self.max_inflight and not self.queued:
            self.in_flight += 1  # free slot, nobody ahead: never suspends
            self._gauge()
            return
        if self.queued >= self.max_queued and not self._make_room(tenant, shadow):
            self._refuse("queue_full")
        await self._wait(self._lanes[shadow], tenant)

    def release(self) -> None:
        """Give a slot back: to the next tenant's oldest waiter if any is waiting, real
        shoppers first."""
        for lane in self._lanes:
            while (waiter := lane.pop_next()) is not None:
                self.queued -= 1
                if not waiter.done():  # else cancelled, its task not yet run: skip it
                    waiter.set_result(None)  # the slot passes on: in_flight unchanged
                    self._gauge()
                    return
        self.in_flight -= 1
        self._gauge()

    def _make_room(self, tenant: str, shadow: bool) -> bool:
        """The queue is full: refuse a shadow waiter for a real arrival, else the newest
        waiter of the tenant of its lane with most waiting, if it has at least two more
        than ``tenant`` (so that, queued, ``tenant`` still has no more than it); True if
        room was made."""
        shadows = self._lanes[True]
        if not shadow and shadows and self._refuse_newest(shadows):
            return True
        lane = self._lanes[shadow]
        heaviest = lane.heaviest()
        if heaviest is None or lane.size(heaviest) < lane.size(tenant) + 2:
            return False
        return self._refuse_newest(lane)

    def _refuse_newest(self, lane: Lane) -> bool:
        """Refuse the newest waiter of the lane's heaviest tenant; True if one was."""
        heaviest = lane.heaviest()
        waiter = None if heaviest is None else lane.pop_newest(heaviest)
        if waiter is None:
            return False
        self.queued -= 1
        self._count("queue_full")
        waiter.set_exception(Overloaded("queue_full"))
        return True

    async def _wait(self, lane: Lane, tenant: str) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.push(tenant, waiter)
        self.queued += 1
        self._gauge()
        try:
            async with asyncio.timeout(self.queue_wait):
                await waiter
        except TimeoutError:
            if self._handed(waiter):
                return  # the slot came as the time ran out: take it
            self._leave(lane, tenant, waiter)
            self._refuse("queue_timeout")
        except asyncio.CancelledError:  # the client went away while waiting
            if self._handed(waiter):
                self.release()
            else:
                self._leave(lane, tenant, waiter)
            raise

    @staticmethod
    def _handed(waiter: asyncio.Future[None]) -> bool:
        """Whether ``waiter`` was given a slot (its result set, not refused)."""
        return waiter.done() and not waiter.cancelled() and waiter.exception() is None

    def _leave(self, lane: Lane, tenant: str, waiter: asyncio.Future[None]) -> None:
        """Take a waiter that timed out or went away out of its tenant's queue (unless
        :meth:`release` or :meth:`_make_room` already did)."""
        if lane.remove(tenant, waiter):
            self.queued -= 1
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
        await admission.acquire(*tenant_of(request))
        try:
            return await handler(request)
        finally:
            admission.release()

    return admit


def tenant_of(request: web.Request) -> tuple[str, bool]:
    """Whose share of the process a request waits in, and whether it is load-test
    traffic: with a valid player token, its merchant and the token's shadow flag (the
    token is verified here once for the request; the rate limiter and the handler reuse
    it); without one (logins, order events, public reads) the one tenant ``""``, and
    shadow if the request says so (``X-Petbox-Shadow: 1``: claiming it unproven only
    puts a request behind real shoppers). Tenants are merchants, not games: nobody can
    make up a merchant (the token is signed), while a game id is whatever a path says,
    and one made up per request would have bought a queue of its own that pushed real
    shoppers' waiters out (the per-IP limit runs after admission, so it does not bound
    that)."""
    claims = valid_player_claims(request)
    if claims is not None:
        return claims.merchant, claims.shadow
    return "", request.headers.get(SHADOW_HEADER) == "1"


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
