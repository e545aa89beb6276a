"""SQL transactions over several shards: grouping shards' rows into transactions of
about ``txn_rows``, and isolating a shard whose rows SQL rejects so it holds up only
itself. The ledger and flush stages both write through :func:`commit`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gameserver.db import persist
from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One shard's share of a SQL transaction, and what Redis is told once it committed."""

    rows: list[Any] = field(default_factory=list)
    extra: persist.CommitRows = field(default_factory=persist.CommitRows)
    """Ledger: the records, stored responses and newest states of the entries' commits."""
    done: list[Any] = field(default_factory=list)
    """Ledger: the entry ids to acknowledge. Flush: ``mark_flushed.lua``'s arguments."""
    parked: list[Any] = field(default_factory=list)
    """Ledger: the ids of entries that could not be decoded, to park with the
    acknowledgement (``park_ledger.lua``). Parked ledger: unused."""
    keys: list[str] = field(default_factory=list)
    """Flush: the player hashes, in ``done``'s order."""


Parts = dict[int, Part]
Write = Callable[[Parts], Awaitable[None]]
"""Writes some shards' parts to SQL in one transaction."""
Finish = Callable[[Parts, PassReport], Awaitable[set[int]]]
"""Tells Redis about the shards written (one round trip); returns those it finished."""


async def commit(ctx: PassContext, stage: str, parts: Parts, write: Write, finish: Finish,
                 report: PassReport) -> set[int]:
    """Write ``parts`` to SQL in as few transactions as :func:`transactions` makes,
    then ``finish`` the shards written in Redis (one round trip); returns the shards
    finished. When SQL stops answering, the transactions left wait for the next pass."""
    written: set[int] = set()
    groups = transactions(parts, ctx.limits.txn_rows)
    for i, group in enumerate(groups):
        done, down = await _write_isolated(ctx, stage, group, write, report)
        written |= done
        if down is not None:
            if rest := [shard for later in groups[i + 1:] for shard in later]:
                ctx.fail(report, stage, rest, down)
            break
    if not written:
        return written
    return await finish({shard: parts[shard] for shard in sorted(written)}, report)


def transactions(parts: Parts, txn_rows: int) -> list[Parts]:
    """Shards' parts grouped into transactions: all in one when they hold at most
    ``txn_rows`` rows, else about equal ones of at most ``txn_rows`` (a part is never
    split, so a part bigger than that is a transaction of its own)."""
    total = sum(len(part.rows) for part in parts.values())
    count = max(1, -(-total // txn_rows))
    target = -(-total // count)
    groups: list[Parts] = []
    rows = 0
    for shard in sorted(parts):
        size = len(parts[shard].rows)
        if not groups or (size and rows and (rows >= target or rows + size > txn_rows)):
            groups.append({})
            rows = 0
        groups[-1][shard] = parts[shard]
        rows += size
    return groups


async def _write_isolated(ctx: PassContext, stage: str, group: Parts, write: Write,
                          report: PassReport) -> tuple[set[int], Exception | None]:
    """One transaction for ``group``. If it fails while SQL answers, one per shard,
    so that a row SQL rejects holds up its own shard only. Returns the shards
    written, and the error when SQL does not answer."""
    try:
        await write(group)
        return set(group), None
    except Exception as exc:
        if not await ctx.sql_answers():
            ctx.fail(report, stage, group, exc)
            return set(), exc
        if len(group) == 1:
            ctx.fail(report, stage, group, exc)
            return set(), None
        log.warning("persister: a %s transaction of shards %s failed (%r); writing "
                    "them one by one", stage, sorted(group), exc)
        ctx.metrics.persister_errors.labels(stage).inc()
    written: set[int] = set()
    for shard, part in group.items():
        try:
            await write({shard: part})
            written.add(shard)
        except Exception as exc:
            ctx.fail(report, stage, [shard], exc)
    return written, None
