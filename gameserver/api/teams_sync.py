"""What follows a team's change, from a route or after the persister's flush: the
season's board (:func:`rank_teams`), milestones to the merchant's webhook outbox
(:func:`after_change`), and :class:`TeamSync`, the flush hook that brings members'
points to their teams.

Members earn points on their own commits (``mechanics.teams.contribute``);
:class:`TeamSync` runs after the persister flushed them and raises each member's count
on the team to what the member's state holds (idempotent: the highest report wins),
then ranks the team on the season's board. The routes are in gameserver/api/teams.py.

During an outage (on a Redis Cluster, the master of some teams' shards down; SQL
away; contention) each team is its own unit: the teams that answer get their points,
rank and milestones in that call; a report whose team does not is kept in memory
(per member and team, the highest; at most :data:`~gameserver.jobs.kept.MAX_KEPT`, the
oldest dropped and counted) and tried again on the hook's next call, which the persister makes
after every flush and, with no rows, on every pass that flushed nothing. So a member
who does not play again still reaches the team about one flush interval after its
node answers again. A call with failures logs one warning with the counts. The limit:
the kept reports live in the persister's memory only; if it stops (crash, restart)
before they are applied, they are lost until the member's next flush, which reports
the member's whole count again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from economy.errors import DomainError, NotFound
from economy.teams import TeamSeason
from gameserver.db.aggregates import AggregateArchive
from gameserver.db.persist import PlayerRow
from gameserver.games import LiveGame
from gameserver.jobs.flushhooks import FlushContext, register_flush_hook
from gameserver.jobs.kept import MAX_KEPT, KeptWork, by_shard, per_shard
from gameserver.jobs.leaderboards import KEEP_FACTOR
from gameserver.jobs.webhooks import Outbox
from gameserver.state.aggregates import AggregateStore, WireCodec
from gameserver.state.aggregates_gate import is_transient
from gameserver.state.keys import AggregateRef, Keys, system_key
from gameserver.state.store import decode_state
from mechanics import teams as rules

log = logging.getLogger("petbox.teams")

CODEC = WireCodec(rules.Team.from_wire)
SYSTEM = "~teams"
"""The user the server's own commits on the match list are recorded under."""


def team_ref(live: LiveGame, season: str, team: str, shards: int) -> AggregateRef:
    """The aggregate of team ``team`` of ``season`` in ``live``'s game."""
    return AggregateRef.of(live.merchant, live.game, rules.KIND,
                           rules.aggregate_id(season, team), shards)


async def rank_teams(redis: Redis, keys: Keys, live: LiveGame, season: TeamSeason,
                     teams: list[rules.Team]) -> None:
    """Write teams' points to the season's board: a team below ``min_size`` or without
    points is off it. Absolute scores, so a repeated write changes nothing."""
    if not season.board or not teams:
        return
    key = keys.leaderboard(live.merchant, live.game, season.board)
    ranked = {t.id: t.points for t in teams
              if len(t.members) >= season.min_size and t.points > 0}
    gone = [t.id for t in teams if t.id not in ranked]
    async with redis.pipeline(transaction=False) as pipe:
        if ranked:
            pipe.zadd(key, ranked)
        if gone:
            pipe.zrem(key, *gone)
        pipe.zremrangebyrank(key, 0, -KEEP_FACTOR * season.board_size - 1)
        await pipe.execute()


MILESTONE_EVENT = "team.milestone_reached"


@dataclass(frozen=True)
class TeamsIO:
    """What follows a team's change: the keyspace's Redis keys (its board), its
    aggregate store, and the merchant's webhook outbox (None for load-test data)."""

    redis: Redis
    keys: Keys
    shared: AggregateStore
    outbox: Outbox | None
    shards: int


async def after_change(io: TeamsIO, live: LiveGame, season: TeamSeason,
                       teams: list[rules.Team]) -> None:
    """Rank changed teams; emit each newly reached milestone to the merchant's webhook
    outbox (stable key: at least once, stored once), then note it on the team."""
    await rank_teams(io.redis, io.keys, live, season, teams)
    if io.outbox is None:
        return
    for team in teams:
        pending = team.unannounced()
        if not pending:
            continue
        for mid in pending:
            await io.outbox.emit(merchant=live.merchant, game=live.game, event=MILESTONE_EVENT,
                                 key=f"team:{season.id}:{team.id}:{mid}",
                                 data=rules.milestone_event(team, season, mid))
        ref = team_ref(live, season.id, team.id, io.shards)
        digest = hashlib.sha256(",".join(pending).encode()).hexdigest()[:32]
        await io.shared.run(ref, CODEC, SYSTEM, f"announce-{digest}", "announce",
                            _announcing(pending))


def _announcing(milestones: list[str]) -> Any:
    return lambda team, now: rules.announce(team, milestones)


PendingKey = tuple[str, str, str, str, str]
"""(merchant, game, season, team, user): one member's report on one team. Its value is
(membership seq, points): of two reports the higher pair wins, as on the team."""


@dataclass
class _Changed:
    """One season's teams a call changed (each as last read) and the reports behind."""

    teams: dict[str, rules.Team] = field(default_factory=dict)
    keys: list[PendingKey] = field(default_factory=list)


@dataclass
class _Pass:
    """What one call left for the next (a transient failure) and why."""

    failed: set[PendingKey] = field(default_factory=set)
    shards: set[int] = field(default_factory=set)
    cause: BaseException | None = None
    bug: Exception | None = None
    """The first failure that is not transient: raised once the rest is done, so the
    persister logs and counts it as any failing hook's."""

    def keep(self, keys: list[PendingKey], exc: BaseException, shard: int | None = None
             ) -> None:
        if not is_transient(exc):
            if not isinstance(exc, Exception):
                raise exc  # cancelled, or the process is stopping
            if self.bug is None:  # not retried: it would fail the same way every time
                self.bug = exc
            else:
                log.error("teams: a report failed too", exc_info=exc)
            return
        self.failed.update(keys)
        self.cause = self.cause or exc
        if shard is not None:
            self.shards.add(shard)


class TeamSync:
    """An ``on_flushed`` callback: members' points in flushed states → their teams.

    Each team is its own unit: a report whose team cannot be read or changed for a
    transient reason (:func:`~gameserver.state.aggregates_gate.is_transient`: on a
    Redis Cluster, the team's master down) is kept in :attr:`kept`
    (gameserver/jobs/kept.py), the highest per member and team, and tried again on the
    next call, while the other teams' reports are applied. The persister calls the
    hook after every flush, and with no rows on a pass that flushed nothing, so a kept
    report waits about one flush interval after its node answers again. A shard that
    failed rests (its reports kept, not tried), so a silent master costs about one
    bounded wait per rest, not one per game and flush round. Each call with a failure
    logs one warning. A failure that is not transient (a script's error) is not kept:
    the call raises it once the other teams are done (logged and counted)."""

    def __init__(self, ctx: FlushContext, *, max_pending: int = MAX_KEPT) -> None:
        self.games = ctx.games
        archive = AggregateArchive(ctx.db)
        self.io = TeamsIO(ctx.redis, ctx.keys,
                          AggregateStore(ctx.redis, ctx.keys, archive, ctx.clock,
                                         idempotency_ttl=ctx.settings.idempotency_ttl),
                          ctx.outbox, ctx.settings.shards)
        self.kept: KeptWork[PendingKey, tuple[int, int]] = KeptWork(
            "teams", ctx.metrics, log, what="member reports", max_kept=max_pending)

    def __repr__(self) -> str:
        return f"TeamSync(prefix={self.io.keys.prefix!r})"

    async def __call__(self, rows: list[PlayerRow]) -> None:
        # The kept reports first (their order is their age), then the flushed ones.
        work = self.kept.take()
        retried = set(work)
        for key, report in _reports(rows):
            work[key] = max(work.get(key, report), report)
        by_game: dict[tuple[str, str], list[PendingKey]] = defaultdict(list)
        for key in work:
            by_game[(key[0], key[1])].append(key)
        done = _Pass()
        for (merchant, game), keys in by_game.items():
            try:
                live = await self.games.get(merchant, game)
            except NotFound:
                continue
            except Exception as exc:
                done.keep(keys, exc)
                continue
            if live.config.teams:
                await self._sync_game(live, {k: work[k] for k in keys}, retried, done)
        self.kept.keep(((k, r) for k, r in work.items() if k in done.failed), done.cause,
                       done.shards)
        if done.bug is not None:
            raise done.bug

    async def _sync_game(self, live: LiveGame, work: dict[PendingKey, tuple[int, int]],
                         retried: set[PendingKey], done: _Pass) -> None:
        """Raise each reported member's count on their team, then rank those teams.
        The teams are read per shard (one node each on a cluster), all at once: a
        silent node costs the call one bounded wait, not one per team."""
        items = [(key, team_ref(live, key[2], key[3], self.io.shards))
                 for key in work if key[2] in live.config.teams]
        groups = by_shard(items, lambda item: item[1].shard)
        for shard in self.kept.resting_now(groups):
            done.failed.update(key for key, _ in groups.pop(shard))  # kept, not tried
        reads = await per_shard(groups, lambda _, group: self.io.shared.read_many(
            [ref for _, ref in group], CODEC))
        changed: dict[str, _Changed] = defaultdict(_Changed)
        for shard in sorted(reads):
            read = reads[shard]
            if isinstance(read, BaseException):
                self.kept.failed(shard, read)
                done.keep([key for key, _ in groups[shard]], read, shard)
            else:
                await self._sync_shard(live, groups[shard], read, work, retried, done,
                                       changed)
        for season_id, synced in changed.items():
            try:
                await after_change(self.io, live, live.config.teams[season_id],
                                   list(synced.teams.values()))
            except Exception as exc:  # tried again with the reports: it is idempotent
                done.keep(synced.keys, exc)

    async def _sync_shard(self, live: LiveGame, items: list[tuple[PendingKey, AggregateRef]],
                          teams: list[rules.Team | None],
                          work: dict[PendingKey, tuple[int, int]], retried: set[PendingKey],
                          done: _Pass, changed: dict[str, _Changed]) -> None:
        """One shard's reports in turn; after a transient failure the rest of the shard
        waits for the next call (its node is likely away: no bounded wait per team)."""
        for i, ((key, ref), team) in enumerate(zip(items, teams, strict=True)):
            user, (seq, points) = key[4], work[key]
            member = team.members.get(user) if team is not None else None
            if team is None or member is None or member.seq != seq:
                continue  # not (or no longer) this membership: nothing to add
            season = live.config.teams[key[2]]
            if member.points >= points:
                if key in retried:  # its sync landed, its team's follow-up may not have
                    changed[season.id].teams.setdefault(team.id, team)  # not over a newer
                    changed[season.id].keys.append(key)
                continue
            try:
                new = await _sync(self.io.shared, ref, season, user, seq, points,
                                  follow_replayed=key in retried)
            except Exception as exc:
                if self.kept.failed(ref.shard, exc):
                    done.keep([k for k, _ in items[i:]], exc, ref.shard)
                    return
                done.keep([key], exc)
                continue
            if new is not None:
                changed[season.id].teams[new.id] = new
                changed[season.id].keys.append(key)


def _reports(rows: list[PlayerRow]) -> list[tuple[PendingKey, tuple[int, int]]]:
    """Every flushed member with points: (merchant, game, season, team, user) →
    (membership seq, points)."""
    out = []
    for row in rows:
        try:
            state = decode_state(row.state)
        except Exception:
            log.exception("teams: cannot decode the state of %s", row.user_id)
            continue
        for sid, m in state.teams.items():
            if m.team and m.points > 0:
                out.append(((row.merchant_id, row.game_id, sid, m.team, row.user_id),
                            (m.seq, m.points)))
    return out


async def _sync(shared: AggregateStore, ref: AggregateRef, season: TeamSeason, user: str,
                seq: int, points: int, *, follow_replayed: bool = False
                ) -> rules.Team | None:
    """One member's report on their team: the team after it, None when refused or
    replayed (a replayed key means it was applied; ``follow_replayed``: by a call whose
    follow-up may not have run, so the team comes back)."""
    try:
        # The member's own gate keys on the team (join, leave, claim) are in this
        # space too: a server key outside their alphabet, so neither side refuses.
        reply = await shared.run(ref, CODEC, user, system_key("sync", f"{seq}-{points}"),
                                 "sync", lambda t, now: rules.sync_points(
                                     t, season, user, seq, points, now))
    except DomainError:
        return None
    if reply.replayed and not follow_replayed:
        return None
    team, _ = await shared.read(ref, CODEC)
    return team  # type: ignore[no-any-return]


register_flush_hook(TeamSync)
