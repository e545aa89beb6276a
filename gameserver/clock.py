"""Server time, injectable: the real clock in production, a manual one in tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for rules (``now``) and monotonic time for waits and deadlines."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock tests move by hand (``advance``); monotonic time stays real for waits."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when
