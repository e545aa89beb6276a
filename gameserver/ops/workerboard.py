"""Which HTTP workers of ``petbox serve --workers N`` are up, for ``/readyz``.

One byte per worker in memory shared by the supervisor and its workers: a worker sets
its own once its app has started (resources open, listening), the supervisor clears it
when it finds the worker dead. Any worker can therefore say how many of its siblings
are serving, without a round trip to anything.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class WorkerBoard:
    """The shared slots and this process's index in them (``index`` None: the parent)."""

    def __init__(self, slots: Any, index: int | None = None) -> None:
        self.slots = slots
        self.index = index

    @property
    def expected(self) -> int:
        return len(self.slots)

    @property
    def ready(self) -> int:
        return sum(1 for v in self.slots if v)

    def mark(self, index: int, up: bool) -> None:
        self.slots[index] = 1 if up else 0

    async def on_startup(self, _app: web.Application) -> None:
        if self.index is not None:
            self.mark(self.index, True)

    def status(self) -> dict[str, Any]:
        ready, expected = self.ready, self.expected
        return {"ready": ready, "expected": expected, "degraded": ready < expected}


WORKER_BOARD = web.AppKey("worker_board", WorkerBoard)
