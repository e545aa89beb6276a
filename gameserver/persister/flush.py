"""The flush stage: dirty players to SQL, then their dirty marks cleared.

The dirty players of each shard whose ledger stage succeeded are read
(``read_flush.lua``, one call per shard), upserted in one transaction where SQL holds
an older version, then ``mark_flushed.lua`` (one call per shard, one pipeline)
records the flushed version (``f``) and clears the dirty mark of players that did not
change meanwhile. The ledger goes first so SQL never holds a state whose ledger it
lacks: a shard whose ledger failed is not flushed. Since ledger entries carry their
states (:mod:`.ledger` writes and marks them), what is left here is a player whose
newest drained commit came from a server of an earlier release, whose entries have no
state. Then the ``on_flushed`` callbacks
get the rows (the leaderboards are built so), or none on a pass with nothing to flush."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gameserver.db.persist import PlayerRow
from gameserver.persister.context import PassContext
from gameserver.persister.report import PassReport
from gameserver.persister.transactions import Part, Parts, commit
from gameserver.persister.wire import Command, player_row

log = logging.getLogger(__name__)

FlushedCallback = Callable[[list[PlayerRow]], Awaitable[None]]
"""Called with the rows of a flush round once they are in SQL and marked flushed (e.g.
the leaderboard updater), and with none on a pass that flushed nothing (so a hook
retries what it kept); a failing callback is logged and counted, the flush stands."""
WritePlayers = Callable[[list[PlayerRow]], Awaitable[None]]
"""The SQL half of a flush: player rows upserted in one transaction."""


class Flush:
    """Writes the dirty players of a persister's shards behind to SQL."""

    def __init__(self, ctx: PassContext, write: WritePlayers) -> None:
        self.ctx = ctx
        self.write = write
        self.on_flushed: list[FlushedCallback] = []
        self._read_flush = ctx.script("read_flush")
        self._mark_flushed = ctx.script("mark_flushed")

    async def run(self, report: PassReport, members: dict[int, list[str]],
                  hooks_told: bool = False) -> None:
        """Flush the given dirty members; shards that gave a full batch are read again.
        ``hooks_told``: the ledger stage told the hooks of states this pass already."""
        limits = self.ctx.limits
        for round_ in range(limits.max_rounds):
            members = {shard: found for shard, found in members.items() if found}
            if not members:
                if round_ == 0 and not hooks_told:  # a quiet pass: the hooks retry
                    await self.notify([])           # what they kept (teams)
                return
            # A shard whose players are all held back has nothing to write or mark.
            parts = {shard: part for shard, part in
                     (await self._read_players(report, members)).items() if part.keys}
            marked = await commit(self.ctx, "flush", parts, self._write_parts, self._mark,
                                  report) if parts else set()
            rows = [row for shard in sorted(marked) for row in parts[shard].rows]
            if rows or not hooks_told:
                await self.notify(rows)
            full = [shard for shard in sorted(marked) if len(members[shard]) >= limits.batch]
            if not full or round_ == limits.max_rounds - 1:
                return
            members = await self.dirty_members(report, full)

    async def dirty_members(self, report: PassReport,
                            shards: list[int]) -> dict[int, list[str]]:
        """The oldest dirty players of each shard (one round trip)."""
        return await self.ctx.read_members(report, "flush",
                                           {shard: self.dirty_read(shard) for shard in shards})

    def dirty_read(self, shard: int) -> Command:
        return ("ZRANGE", self.ctx.keys.dirty(shard), 0, self.ctx.limits.batch - 1)

    async def _read_players(self, report: PassReport, members: dict[int, list[str]]) -> Parts:
        """Version and state of the members whose ledger is drained (``read_flush.lua``:
        one script call per shard, one round trip)."""
        ctx = self.ctx
        shards = sorted(members)
        keys = {shard: [ctx.keys.player_from_member(shard, m) for m in members[shard]]
                for shard in shards}
        parts: Parts = {}
        try:
            replies = await ctx.eval_all([
                self._read_flush.command([ctx.keys.ledger(shard), *keys[shard]], [])
                for shard in shards])
        except Exception as exc:
            ctx.fail(report, "flush", shards, exc)
            return parts
        now = int(ctx.clock.now())
        for shard, reply in zip(shards, replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                parts[shard] = part = player_part(members[shard], keys[shard], reply, now)
                ctx.metrics.flush_held_back.inc(len(members[shard]) - len(part.keys))
            except Exception as exc:
                ctx.fail(report, "flush", [shard], exc)
        return parts

    async def _write_parts(self, parts: Parts) -> None:
        rows = [row for part in parts.values() for row in part.rows]
        rows.sort()  # lock order: unique by (merchant_id, game_id, user_id), the first fields
        await self.write(rows)

    async def _mark(self, parts: Parts, report: PassReport) -> set[int]:
        """Record the flushed versions and clear the dirty marks (one round trip)."""
        ctx = self.ctx
        marked = await ctx.per_shard(report, "flush", {
            shard: [self._mark_flushed.command([ctx.keys.dirty(shard), *part.keys], part.done)]
            for shard, part in parts.items()})
        rows = 0
        for shard, [cleaned] in sorted(marked.items()):
            rows += len(parts[shard].rows)
            report.players_clean += int(cleaned)
        report.players_flushed += rows
        ctx.metrics.persister_rows.labels("players").inc(rows)
        return set(marked)

    async def notify(self, rows: list[PlayerRow]) -> None:
        """Run the ``on_flushed`` callbacks (``rows`` may be empty: a round or pass that
        flushed nothing); their failures never fail the flush."""
        for callback in self.on_flushed:
            try:
                await callback(rows)
            except Exception:
                log.exception("persister: on_flushed callback %r failed", callback)
                self.ctx.metrics.persister_errors.labels("on_flushed").inc()


def player_part(members: list[str], keys: list[str], reply: list[Any], now: int) -> Part:
    """SQL rows of the members still in Redis, and ``mark_flushed.lua``'s arguments:
    each member with the version read ('' = its hash is gone)."""
    part = Part()
    rows, done = part.rows, part.done
    for i, member in enumerate(members):
        version, state = reply[2 * i], reply[2 * i + 1]
        if version == -1:  # its ledger entry is not in SQL yet: flush it in a later pass
            continue
        part.keys.append(keys[i])
        if version is None or state is None:
            done += (member, "")
            continue
        rows.append(player_row(member, int(version), state, now))
        done += (member, version)
    return part
