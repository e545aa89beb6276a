"""Supervising the processes of ``petbox serve --workers N`` (and the bench's servers):
signals go on to the children, and the parent returns when they have all exited.

Kept free of heavy imports: the bench's bare baseline uses it too, and whatever a
module imports lives in every worker's heap.
"""

from __future__ import annotations

import os
import signal
from multiprocessing.process import BaseProcess
from typing import Any


def supervise(procs: list[BaseProcess]) -> None:
    """Pass SIGTERM and SIGINT on to the started ``procs`` and wait for all of them."""
    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
