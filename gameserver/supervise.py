"""Supervising the processes of ``petbox serve --workers N`` (and the bench's servers):
signals go on to the children, a child that dies is logged and started again, and the
parent returns when they have all exited.

A worker that died unnoticed would leave the others to carry all the traffic at
double the latency (its share of the listening port goes with it), so every exit
outside a shutdown is an error line with the exit code, and the process is started
afresh. A child that keeps dying (``max_restarts`` within ``restart_window`` seconds)
stops the whole server with an error, so that whatever runs petbox (systemd,
Kubernetes) sees the failure instead of a half-working server.

Kept free of heavy imports: the bench's bare baseline uses it too, and whatever a
module imports lives in every worker's heap.
"""

from __future__ import annotations

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


class TooManyRestarts(RuntimeError):
    """A child kept dying: the server stops rather than limp on."""


def supervise(spawns: list[Spawn], *, max_restarts: int = 5,
              restart_window: float = 60.0, backoff: float = 0.5) -> None:
    """Start one process per ``spawns`` entry, pass SIGTERM and SIGINT on to them, restart
    any that exits before a signal came, and return once all have exited after one.
    Raises :class:`TooManyRestarts` (after stopping the others) when one child died more
    than ``max_restarts`` times within ``restart_window`` seconds."""
    _Supervisor(spawns, max_restarts, restart_window, backoff).run()


class _Supervisor:
    def __init__(self, spawns: list[Spawn], max_restarts: int, window: float,
                 backoff: float) -> None:
        self.spawns = spawns
        self.max_restarts = max_restarts
        self.window = window
        self.backoff = backoff
        self.procs: list[BaseProcess] = []
        self.deaths: list[list[float]] = [[] for _ in spawns]
        self.stopping = False

    def run(self) -> None:
        self.procs = [spawn() for spawn in self.spawns]
        for proc in self.procs:
            proc.start()
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        while True:
            alive = [proc for proc in self.procs if proc.is_alive()]
            if self.stopping and not alive:
                break
            wait([proc.sentinel for proc in alive], timeout=1.0)
            for index, proc in enumerate(self.procs):
                if not self.stopping and not proc.is_alive():
                    self._replace(index, proc)
        for proc in self.procs:
            proc.join()

    def _forward(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        self._signal_all(signum)

    def _replace(self, index: int, dead: BaseProcess) -> None:
        """Start a fresh process in place of ``dead``, unless it died too often lately."""
        now = time.monotonic()
        deaths = self.deaths[index] = [t for t in self.deaths[index] if now - t < self.window]
        deaths.append(now)
        giving_up = len(deaths) > self.max_restarts
        log.error("%s (pid %s) exited with code %s; %s", dead.name, dead.pid, dead.exitcode,
                  "giving up: stopping the server" if giving_up else "starting it again")
        if giving_up:
            self.stopping = True
            self._signal_all(signal.SIGTERM)
            for proc in self.procs:
                proc.join()
            raise TooManyRestarts(f"{dead.name} exited {len(deaths)} times within "
                                  f"{self.window:.0f} s (last exit code {dead.exitcode})")
        time.sleep(self.backoff * (len(deaths) - 1))  # a crash loop must not spin the CPU
        if self.stopping:  # a signal came during the back-off
            return
        fresh = self.spawns[index]()
        fresh.start()
        self.procs[index] = fresh

    def _signal_all(self, signum: int) -> None:
        for proc in self.procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)
