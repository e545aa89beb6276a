"""Supervising the processes of ``petbox serve --workers N`` (and the bench's servers):
signals go on to the children, a child that dies is logged and started again, and the
parent returns when they have all exited.

A worker that died unnoticed would leave the others to carry all the traffic at
double the latency (its share of the listening port goes with it), so every exit
outside a shutdown is an error line with the exit code, and the process is started
afresh. A child that keeps dying is restarted with exponential back-off (``backoff``
doubling up to ``max_backoff``: 0.5 s, 1 s, 2 s … 30 s by default; the first restart
after a stable run is immediate), never given up on: one worker's fault (a bad host
file, a dependency it cannot reach) must not take the other workers' traffic down with
it. A child that then stays up ``stable_after`` seconds is healthy again (its next
death restarts at once). ``/readyz`` reports the missing worker (``degraded``), see
``gameserver/api/ops.py``, and the error lines say how long the next restart waits.

Kept free of heavy imports: the bench's bare baseline uses it too, and whatever a
module imports lives in every worker's heap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("petbox.supervise")

Spawn = Callable[[], BaseProcess]
"""Makes (does not start) one child process; called again to replace a dead one."""

OnExit = Callable[[int], None]
"""Told the index (in ``spawns``) of a child found dead, before it is restarted."""


def supervise(spawns: list[Spawn], *, backoff: float = 0.5, max_backoff: float = 30.0,
              stable_after: float = 60.0, on_exit: OnExit | None = None) -> None:
    """Start one process per ``spawns`` entry, pass SIGTERM and SIGINT on to them, restart
    any that exits before a signal came (with capped exponential back-off while it keeps
    dying), and return once all have exited after a signal."""
    _Supervisor(spawns, backoff, max_backoff, stable_after, on_exit).run()


def restart_delay(streak: int, backoff: float, max_backoff: float) -> float:
    """Seconds before restarting a child that died ``streak`` times in a row (counted
    since it last ran ``stable_after`` seconds): 0, then ``backoff`` doubling, capped."""
    if streak <= 1:
        return 0.0
    return min(max_backoff, backoff * 2.0 ** min(streak - 2, 62))


class _Supervisor:
    def __init__(self, spawns: list[Spawn], backoff: float, max_backoff: float,
                 stable_after: float, on_exit: OnExit | None) -> None:
        self.spawns = spawns
        self.backoff, self.max_backoff = backoff, max_backoff
        self.stable_after = stable_after
        self.on_exit = on_exit
        self.procs: list[BaseProcess | None] = [None] * len(spawns)
        self.started = [0.0] * len(spawns)
        self.streak = [0] * len(spawns)
        self.due: list[float | None] = [None] * len(spawns)
        self.stopping = False

    def run(self) -> None:
        for index in range(len(self.spawns)):
            self._start(index)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        while True:
            alive = [p for p in self.procs if p is not None and not _exited(p)]
            if self.stopping and not alive:
                break
            wait([p.sentinel for p in alive], timeout=self._next_wake())
            if self.stopping:
                continue
            now = time.monotonic()
            for index, proc in enumerate(self.procs):
                if proc is not None and _exited(proc):
                    self._died(index, proc, now)
                due = self.due[index]
                if due is not None and now >= due and not self.stopping:
                    self._start(index)
        for proc in self.procs:
            if proc is not None:
                proc.join()

    def _next_wake(self) -> float:
        """Until the next restart is due (at most 1 s: a signal is noticed in time)."""
        pending = [d for d in self.due if d is not None]
        if not pending:
            return 1.0
        return max(0.0, min(1.0, min(pending) - time.monotonic()))

    def _start(self, index: int) -> None:
        proc = self.spawns[index]()
        proc.start()
        self.procs[index] = proc
        self.started[index] = time.monotonic()
        self.due[index] = None

    def _died(self, index: int, dead: BaseProcess, now: float) -> None:
        """Note the death and schedule the restart after the back-off."""
        self.procs[index] = None
        if now - self.started[index] >= self.stable_after:
            self.streak[index] = 0
        self.streak[index] += 1
        delay = restart_delay(self.streak[index], self.backoff, self.max_backoff)
        self.due[index] = now + delay
        code = "unknown" if dead.exitcode is None else dead.exitcode
        log.error("%s (pid %s) exited with code %s; starting it again%s", dead.name,
                  dead.pid, code,
                  f" in {delay:.1f} s ({self.streak[index]} exits in a row)" if delay else "")
        if self.on_exit is not None:
            self.on_exit(index)

    def _forward(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        for proc in self.procs:
            if proc is not None and proc.pid is not None and not _exited(proc):
                with contextlib.suppress(ProcessLookupError):  # it died just now
                    os.kill(proc.pid, signum)


def _exited(proc: BaseProcess) -> bool:
    """Whether ``proc`` has exited: its exit code is known, or its sentinel (a pipe end the
    child holds until it dies) is readable.

    The sentinel settles it when something else in this process reaped the child first
    (a ``waitpid`` on a reused pid): ``is_alive()`` then answers True for ever, and
    trusting it alone spun the loop at full CPU, never restarting the worker nor stopping
    on SIGTERM. A dying child closes its files a moment before the kernel makes its exit
    status known, so a readable sentinel is given up to ``STATUS_WAIT_S`` for the status
    (a blocking ``waitpid`` could hang on a pid reused by a live child)."""
    if not proc.is_alive():
        return True
    if not wait([proc.sentinel], timeout=0):
        return False
    deadline = time.monotonic() + STATUS_WAIT_S
    while proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    return True


STATUS_WAIT_S = 1.0
"""How long a child whose sentinel is readable is given for its exit status to be known."""
