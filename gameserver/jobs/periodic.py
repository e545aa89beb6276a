"""A background pass every ``interval`` seconds, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from gameserver.jobs.lease import Lease


class PeriodicTask:
    """Runs :meth:`run_once` every ``interval`` seconds until :meth:`stop`.

    A failing pass (Redis or SQL down) is logged, counted in ``failures`` and tried
    again next interval; it never ends the loop. ``run_first`` runs a pass at start
    instead of after the first interval. With a ``lease`` a pass runs only on the host
    that holds it: a keeper task takes or renews it every third of its lifetime
    (whatever the interval), and :meth:`stop` releases it. So one host of many does
    the job, and another takes over within one lease lifetime when it dies.
    """

    name = "petbox-periodic"
    run_first = False

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.failures = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.lease: Lease | None = None
        self.passes = 0
        """Passes run on this host (not counting those another host's lease skipped)."""
        self.unreached: list[str] = []
        """What the last pass skipped because its Redis node did not answer (keys, or
        ``shard <n>``); the next pass tries them again."""
        self.unreached_total = 0
        """Such skips over every pass so far."""
        self._log = logging.getLogger(f"petbox.{self.name.removeprefix('petbox-')}")

    def record_unreached(self, unreached: list[str]) -> None:
        """Keep what this pass skipped on a silent Redis node, count it and say so."""
        self.unreached = unreached
        self.unreached_total += len(unreached)
        if unreached:
            self._log.warning("pass left %d unreachable Redis keys for the next pass: %s",
                              len(unreached), ", ".join(unreached))

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
            if self.lease is not None and not self.lease.held:
                continue  # another host runs this job now
            try:
                self.passes += 1
                await self.run_once()
            except Exception as exc:  # storage down: the next pass retries
                self.failures += 1
                self._log.warning("%s pass failed: %r", self.name, exc)

    async def keep_lease(self) -> None:
        """Take or renew the lease now and every third of its lifetime until :meth:`stop`."""
        assert self.lease is not None
        while not self._stop.is_set():
            try:
                await self.lease.hold()
            except Exception as exc:  # Redis down: not ours until a grab succeeds
                self._log.warning("%s lease: %r", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lease.ttl_ms / 3000)

    async def run_leased(self) -> None:
        """:meth:`run` beside the lease keeper; the first pass comes after the first grab."""
        assert self.lease is not None
        with contextlib.suppress(Exception):  # the keeper logs and retries
            await self.lease.hold()
        keeper = asyncio.create_task(self.keep_lease(), name=f"{self.name}-lease")
        try:
            await self.run()
        finally:
            self._stop.set()
            await keeper

    def leased(self, lease: Lease | None) -> Self:
        """Run this job only while holding ``lease`` (None: on this host, always)."""
        self.lease = lease
        return self

    def start(self) -> Self:
        body = self.run() if self.lease is None else self.run_leased()
        self._task = asyncio.create_task(body, name=self.name)
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.lease is not None and self.lease.held:
            with contextlib.suppress(Exception):  # it expires anyway
                await self.lease.release()
