"""A background pass every ``interval`` seconds, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Self


class PeriodicTask:
    """Runs :meth:`run_once` every ``interval`` seconds until :meth:`stop`.

    A failing pass (Redis or SQL down) is logged, counted in ``failures`` and tried
    again next interval; it never ends the loop. ``run_first`` runs a pass at start
    instead of after the first interval.
    """

    name = "petbox-periodic"
    run_first = False

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.failures = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = logging.getLogger(f"petbox.{self.name.removeprefix('petbox-')}")

    async def run_once(self) -> Any:
        raise NotImplementedError

    async def run(self) -> None:
        """Passes until :meth:`stop`."""
        first = self.run_first
        while not self._stop.is_set():
            if not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
                if self._stop.is_set():
                    return
            first = False
            try:
                await self.run_once()
            except Exception as exc:  # storage down: the next pass retries
                self.failures += 1
                self._log.warning("%s pass failed: %r", self.name, exc)

    def start(self) -> Self:
        self._task = asyncio.create_task(self.run(), name=self.name)
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
