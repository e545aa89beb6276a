"""How long a Lua call may wait for company, so that requests stay within a target p99.

The batcher (gameserver/state/batching.py) saves CPU when several calls share one pipeline:
about 170 µs of client and Redis work per round trip, whatever its size
(docs/benchmarks.md). Under CPU pressure it already waits for company. Below that, a
request finishes in a couple of milliseconds while a shopper would not notice ten, so
the difference is a latency budget the process can spend on bigger batches, and so on
less CPU per action, which is what raises the rate it serves within that p99.

:class:`LatencyBudget` spends it by feedback, as TCP spends a congestion window
(additive increase, multiplicative decrease): every request's duration is observed;
at the end of each short window, when more than ``tail`` of the window's requests took
longer than ``guard × target``, the linger halves, otherwise it grows by one step, up
to ``ceiling``. It never needs a model of the load: whatever makes requests slow (a
long linger, a busy core, a slow Redis) makes it wait less.
"""

from __future__ import annotations

from aiohttp import web


class LatencyBudget:
    """Additive-increase, multiplicative-decrease controller of the batcher's linger.

    ``observe`` is called once per request (a counter and a comparison); ``linger``
    once per batch, with the loop's clock. Time is an argument, so the controller is
    tested without a loop or a clock."""

    def __init__(self, target: float, *, ceiling: float, window: float = 0.25,
                 guard: float = 0.7, tail: float = 0.01, steps: int = 40) -> None:
        if target <= 0 or ceiling < 0:
            raise ValueError("target must be positive and ceiling not negative")
        self.target = target
        """The p99 the requests should stay under, seconds."""
        self.ceiling = ceiling
        """The longest a call may wait for company, seconds."""
        self.window = window
        """Seconds of requests behind each adjustment."""
        self.threshold = guard * target
        """A request slower than this counts against the linger: the margin keeps the
        p99 under the target while the linger probes upwards."""
        self.tail = tail
        """Share of a window's requests allowed over ``threshold`` (0.01: its p99)."""
        self.step = target / steps
        """The linger's growth per calm window."""
        self.linger_s = 0.0
        """The linger now, seconds; starts at 0 (no wait until the requests show room)."""
        self._requests = 0
        self._slow = 0
        self._window_end = 0.0

    def observe(self, seconds: float) -> None:
        """One request took ``seconds``."""
        self._requests += 1
        if seconds > self.threshold:
            self._slow += 1

    def linger(self, now: float) -> float:
        """The linger at ``now`` (the loop's clock, seconds), adjusted once a window."""
        if now >= self._window_end:
            self._adjust()
            self._window_end = now + self.window
        return self.linger_s

    def _adjust(self) -> None:
        requests, slow = self._requests, self._slow
        self._requests = self._slow = 0
        if not requests:  # nothing served: no evidence either way
            return
        if slow > requests * self.tail:
            self.linger_s = self.linger_s / 2 if self.linger_s > self.step else 0.0
        else:
            self.linger_s = min(self.ceiling, self.linger_s + self.step)


LATENCY_BUDGET = web.AppKey("latency_budget", LatencyBudget)
"""Set when ``PETBOX_LATENCY_TARGET_MS`` is: the request path reports to it."""
