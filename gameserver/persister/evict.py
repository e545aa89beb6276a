"""The evict stage: players idle past ``idle_evict_after`` whose SQL copy is current
(``f == v``) and that are not dirty are deleted by ``evict.lua``, which re-checks
everything atomically. The store reads them back from SQL."""

from __future__ import annotations

from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport
from gameserver.persister.wire import Command


class Evict:
    """Drops idle players of a persister's shards from Redis."""

    def __init__(self, ctx: PassContext) -> None:
        self.ctx = ctx
        self._evict = ctx.script("evict")

    async def run(self, report: PassReport, idle: dict[int, list[str]], cutoff: int) -> None:
        """Evict the given candidates; shards that gave a full batch are read further."""
        ctx, batch = self.ctx, self.ctx.limits.batch
        start: dict[int, int] = {}
        for round_ in range(ctx.limits.max_rounds):
            idle = {shard: found for shard, found in idle.items() if found}
            if not idle:
                return
            shards = sorted(idle)
            try:
                replies = await ctx.eval_all([self._evict.command(
                    [ctx.keys.dirty(shard), ctx.keys.active(shard),
                     *(ctx.keys.player_from_member(shard, m) for m in idle[shard])],
                    [cutoff, 0, *idle[shard]]) for shard in shards])
            except Exception as exc:
                ctx.fail(report, "evict", shards, exc)
                return
            full: list[int] = []
            for shard, reply in zip(shards, replies, strict=True):
                if isinstance(reply, Exception):
                    ctx.fail(report, "evict", [shard], reply)
                    continue
                evicted = int(reply)
                report.evicted += evicted
                ctx.metrics.evictions.inc(evicted)
                if len(idle[shard]) >= batch:
                    # Players kept (dirty or unflushed) stay in the set: skip past them.
                    start[shard] = start.get(shard, 0) + len(idle[shard]) - evicted
                    full.append(shard)
            if not full or round_ == ctx.limits.max_rounds - 1:
                return
            idle = await self.idle_members(report, full, cutoff, start)

    async def idle_members(self, report: PassReport, shards: list[int], cutoff: int,
                           start: dict[int, int]) -> dict[int, list[str]]:
        """Each shard's players idle since before ``cutoff``, from ``start`` on."""
        return await self.ctx.read_members(report, "evict", {
            shard: self.idle_read(shard, cutoff, start.get(shard, 0)) for shard in shards})

    def idle_read(self, shard: int, cutoff: int, start: int) -> Command:
        return ("ZRANGEBYSCORE", self.ctx.keys.active(shard), "-inf", cutoff,
                "LIMIT", start, self.ctx.limits.batch)
