"""Per-shard work of a flush hook, and what it keeps when a shard fails.

A flush hook (gameserver/jobs/flushhooks.py) writes keys spread over shards: on a
Redis Cluster, over masters. With one master down, the work on its shards fails while
the rest can go through, so a hook groups its work by shard (:func:`by_shard`), runs
the groups at once (:func:`per_shard`: a silent node costs one bounded wait, not one
per group), and hands what failed for a transient reason
(:func:`~gameserver.state.aggregates_gate.is_transient`) to :class:`KeptWork`, which
keeps it for the hook's next call. The persister calls a hook after every flush and,
with no rows, on every pass that flushed nothing, so kept work is tried again about
one flush interval later even when its players never play again.

A failure that is not transient (a bug, a script's error) is not kept: it would fail
the same way forever. The hook raises it once the rest is done, and the persister logs
and counts it (``petbox_persister_errors_total{stage="on_flushed"}``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from gameserver.ops.metrics import Metrics
from gameserver.state.aggregates_gate import is_transient

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
S = TypeVar("S", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

REST_S = 2.0
"""After a transient failure on a shard, how long its work is kept without trying (the
persister calls a hook every flush round: without a rest, a silent master cost one
bounded wait per round, which held up the whole pass, the healthy shards' flush too)."""

MAX_KEPT = 10_000
"""Items one hook keeps for its next call at most: past it the oldest are dropped
(counted and logged); their players' next flush repairs them."""


def by_shard(items: Iterable[T], shard: Callable[[T], S]) -> dict[S, list[T]]:
    """``items`` grouped by ``shard(item)``, each group in the items' order."""
    groups: dict[S, list[T]] = defaultdict(list)
    for item in items:
        groups[shard(item)].append(item)
    return dict(groups)


async def per_shard(groups: Mapping[S, T], run: Callable[[S, T], Awaitable[R]]
                    ) -> dict[S, R | BaseException]:
    """``run`` on every group at once: shard → its result, or what it raised."""
    shards = list(groups)
    results = await asyncio.gather(*(run(s, groups[s]) for s in shards),
                                   return_exceptions=True)
    return dict(zip(shards, results, strict=True))


class KeptWork(Generic[K, V]):
    """What one hook keeps for its next call: items (``K`` → ``V``, oldest first, at
    most :attr:`max_kept`) and the shards resting after a transient failure (their
    items are kept, not tried, for :attr:`rest_s`: a silent master costs about one
    bounded wait per rest, not one per call). Reports the kept and dropped counts as
    ``petbox_flush_hook_pending`` and ``petbox_flush_hook_dropped_total`` under
    ``hook``, and each call with a failure as one warning."""

    def __init__(self, hook: str, metrics: Metrics | None, logger: logging.Logger, *,
                 what: str, max_kept: int = MAX_KEPT, rest_s: float = REST_S) -> None:
        self.hook = hook
        self.metrics = metrics
        self.log = logger
        self.what = what
        """What an item is, for the warning ("member reports")."""
        self.max_kept = max_kept
        self.rest_s = rest_s
        self.pending: dict[K, V] = {}
        """Items a transient failure left for the next call, oldest first."""
        self.resting: dict[Hashable, float] = {}
        """Shards that failed → when to try them again (``time.monotonic``)."""

    def take(self) -> dict[K, V]:
        """The kept items, oldest first, handed to the call (kept again if they fail)."""
        work, self.pending = self.pending, {}
        return work

    def resting_now(self, shards: Iterable[S]) -> set[S]:
        """Which of ``shards`` rest: their work is kept, not tried."""
        now = time.monotonic()
        return {s for s in shards if self.resting.get(s, 0.0) > now}

    def failed(self, shard: Hashable, exc: BaseException) -> bool:
        """A shard's work failed with ``exc``; True when it is transient (then the
        shard rests and its work is to be kept)."""
        if not is_transient(exc):
            return False
        self.resting[shard] = time.monotonic() + self.rest_s
        return True

    def keep(self, items: Iterable[tuple[K, V]], cause: BaseException | None,
             shards: Iterable[Hashable] = ()) -> None:
        """Keep ``items`` (in age order, after what this call kept already) for the next
        call, at most :attr:`max_kept`: past it the oldest go. ``cause``: the transient
        failure of this call (None: only items of resting shards were kept, which
        warns nobody again); ``shards``: those that failed, for the warning."""
        new = 0
        for key, value in items:
            self.pending[key] = value
            new += 1
        dropped = max(0, len(self.pending) - self.max_kept)
        for key in list(itertools.islice(self.pending, dropped)):
            del self.pending[key]
        if self.metrics is not None:
            self.metrics.flush_hook_pending.labels(self.hook).set(len(self.pending))
            if dropped:
                self.metrics.flush_hook_dropped.labels(self.hook).inc(dropped)
        if cause is not None:
            self.log.warning("%s: %d %s not applied (%r, shards %s); %d kept for the next "
                             "call, %d oldest dropped (at most %d kept)", self.hook, new,
                             self.what, cause, sorted(map(str, shards)), len(self.pending),
                             dropped, self.max_kept)
