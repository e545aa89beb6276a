"""Lost-data detection: every shard's epoch key must be in Redis.

It is recorded in SQL (``meta`` row ``epoch:<shard>``) the first time it is seen; if
Redis lacks it while SQL has one, Redis lost the shard's data: the loss is counted,
the ``on_data_loss`` callbacks run (the shard stays in :attr:`Epochs.recovering`
until they succeed), then a new epoch is written to both.

A loss in the real keyspace is an ERROR naming it. The shadow keyspace (load-test
data) loses every shard by design when ``petbox shadow purge`` empties it under a
running persister: that is one WARNING per pass saying so, never read as real data
loss."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport
from gameserver.persister.wire import first_error
from gameserver.services import SHADOW_PREFIX
from gameserver.state.scripts import reply_text

log = logging.getLogger(__name__)

DataLossCallback = Callable[[int], Awaitable[None]]
"""Called with a shard whose Redis data was lost, before the shard gets a new epoch."""


class Epochs:
    """The epoch stage: finds shards whose Redis data was lost and recovers them."""

    def __init__(self, ctx: PassContext, forget_group: Callable[[int], None]) -> None:
        """``forget_group`` is told of a shard that lost its data: its ledger consumer
        group went with it."""
        self.ctx = ctx
        self.forget_group = forget_group
        self.on_data_loss: list[DataLossCallback] = []
        self.recovering: set[int] = set()
        """Shards whose Redis lost data and whose ``on_data_loss`` callbacks have not
        all succeeded yet (value grants must fail closed for them)."""
        self._known: dict[int, str] = {}
        self._shadow_lost: list[int] = []
        """Shadow shards found empty this pass (logged together: a purge empties all)."""

    async def check(self, report: PassReport) -> list[int]:
        """Check every shard's epoch key; returns the shards found to have lost data.

        A few round trips whatever the shard count: one read of every epoch key, one
        SQL read of the epochs not known yet, one write of the new epochs to Redis and
        one SQL transaction recording them (a deployment has ~1,000 shards)."""
        ctx = self.ctx
        try:
            current = await ctx.round_trip([("GET", ctx.keys.epoch(shard))
                                            for shard in ctx.shard_ids])
            if error := first_error(current):
                raise error
        except Exception as exc:
            ctx.fail(report, "epoch", [-1], exc)
            return []
        try:
            known = {**await self._recorded(), **self._known}
        except Exception as exc:  # SQL down: every shard's check waits for the next pass
            ctx.fail(report, "epoch", ctx.shard_ids, exc)
            return [shard for shard in ctx.shard_ids if shard in self.recovering]
        lost: list[int] = []
        fresh: dict[int, str] = {}
        missing: list[int] = []
        for shard, raw in zip(ctx.shard_ids, current, strict=True):
            value = None if raw is None else raw.decode()
            if value is not None:
                if known.get(shard) != value:
                    fresh[shard] = value
                else:
                    self._known[shard] = value
            elif known.get(shard) is None or await ctx.stage(
                    report, "epoch", shard, self._recover(shard, lost)):
                missing.append(shard)
            elif shard not in lost:
                lost.append(shard)
        await self._renew(report, missing, fresh, lost)
        if self._shadow_lost:
            log.warning("persister: the shadow keyspace (%s:, load-test data) is empty for "
                        "shard(s) %s, as `petbox shadow purge` leaves it; starting them "
                        "afresh from the shadow database. Real data is not affected",
                        ctx.keys.prefix, _ranges(self._shadow_lost))
            self._shadow_lost = []
        return lost

    async def _renew(self, report: PassReport, missing: list[int], fresh: dict[int, str],
                     lost: list[int]) -> None:
        """New epochs for ``missing`` shards, then every epoch of ``fresh`` in SQL."""
        try:
            fresh.update(await self._new_epochs(missing))
            await self._record(fresh)
        except Exception as exc:
            self.ctx.fail(report, "epoch", sorted({*missing, *fresh}), exc)
            lost += [s for s in missing if s in self.recovering and s not in lost]
            return
        self._known.update(fresh)
        self.recovering.difference_update(missing)

    async def _recorded(self) -> dict[int, str]:
        """Every epoch SQL has, unless all of this persister's are known already."""
        if all(shard in self._known for shard in self.ctx.shard_ids):
            return {}
        return await self.ctx.db.shard_epochs()

    async def _record(self, epochs: dict[int, str]) -> None:
        """Write ``epochs`` into SQL's ``meta`` rows, one transaction."""
        if not epochs:
            return
        await self.ctx.db.set_shard_epochs(epochs)

    async def _recover(self, shard: int, lost: list[int]) -> None:
        """Redis lost this shard's data: count it once, then run every callback."""
        lost.append(shard)
        if shard not in self.recovering:
            if self.ctx.keys.prefix == SHADOW_PREFIX:
                self._shadow_lost.append(shard)
            else:
                log.error("persister: Redis lost the data of shard %s of the real keyspace "
                          "(%s:); recovering from SQL", shard, self.ctx.keys.prefix)
            self.ctx.metrics.data_loss_detected.inc()
            self.recovering.add(shard)
        self.forget_group(shard)
        for callback in self.on_data_loss:
            await callback(shard)

    async def _new_epochs(self, shards: list[int]) -> dict[int, str]:
        """Write a new epoch for each of ``shards`` (another persister may win the race:
        then theirs is used), one round trip."""
        if not shards:
            return {}
        ctx = self.ctx
        stamp = int(ctx.clock.now() * 1000)
        commands = [command for shard in shards for command in (
            ("SET", ctx.keys.epoch(shard), f"{stamp}-{secrets.token_hex(6)}", "NX"),
            ("GET", ctx.keys.epoch(shard)))]
        replies = await ctx.round_trip(commands)
        if error := first_error(replies):
            raise error
        return {shard: reply_text(raw) for shard, raw in zip(shards, replies[1::2],
                                                              strict=True)}


def _ranges(shards: list[int]) -> str:
    """``0-15`` or ``0-3, 7`` for sorted shard numbers."""
    out: list[str] = []
    for shard in sorted(shards):
        if out and shard == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-', 1)[0]}-{shard}"
        else:
            out.append(str(shard))
    return ", ".join(out)
