"""What follows a team's change, from a route or after the persister's flush: the
season's board (:func:`rank_teams`), milestones to the merchant's webhook outbox
(:func:`after_change`), and :class:`TeamSync`, the flush hook that brings members'
points to their teams.

Members earn points on their own commits (``mechanics.teams.contribute``);
:class:`TeamSync` runs after the persister flushed them and raises each member's count
on the team to what the member's state holds (idempotent: the highest report wins),
then ranks the team on the season's board. The routes are in gameserver/api/teams.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from economy.errors import DomainError, NotFound
from economy.teams import TeamSeason
from gameserver.db.aggregates import AggregateArchive
from gameserver.db.persist import PlayerRow
from gameserver.games import LiveGame
from gameserver.jobs.flushhooks import FlushContext, register_flush_hook
from gameserver.jobs.leaderboards import KEEP_FACTOR
from gameserver.jobs.webhooks import Outbox
from gameserver.state.aggregates import AggregateStore, WireCodec
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


class TeamSync:
    """An ``on_flushed`` callback: members' points in flushed states → their teams."""

    def __init__(self, ctx: FlushContext) -> None:
        self.games = ctx.games
        archive = AggregateArchive(ctx.db)
        self.io = TeamsIO(ctx.redis, ctx.keys,
                          AggregateStore(ctx.redis, ctx.keys, archive, ctx.clock,
                                         idempotency_ttl=ctx.settings.idempotency_ttl),
                          ctx.outbox, ctx.settings.shards)

    def __repr__(self) -> str:
        return f"TeamSync(prefix={self.io.keys.prefix!r})"

    async def __call__(self, rows: list[PlayerRow]) -> None:
        by_game: dict[tuple[str, str], list[PlayerRow]] = defaultdict(list)
        for row in rows:
            by_game[(row.merchant_id, row.game_id)].append(row)
        for (merchant, game), game_rows in by_game.items():
            try:
                live = await self.games.get(merchant, game)
            except NotFound:
                continue
            if live.config.teams:
                await self.sync_game(live, game_rows)

    async def sync_game(self, live: LiveGame, rows: list[PlayerRow]) -> None:
        """Raise each flushed member's count on their team, then rank those teams."""
        shared = self.io.shared
        reports = _reports(live, rows)
        if not reports:
            return
        refs = [team_ref(live, season, team, self.io.shards) for season, team, *_ in reports]
        teams = await shared.read_many(refs, CODEC)
        changed: dict[str, list[rules.Team]] = defaultdict(list)
        for (season_id, _, user, seq, points), ref, team in zip(reports, refs, teams,
                                                                strict=True):
            member = team.members.get(user) if team is not None else None
            if member is None or member.seq != seq or member.points >= points:
                continue
            season = live.config.teams[season_id]
            new = await _sync(shared, ref, season, user, seq, points)
            if new is not None:
                changed[season_id].append(new)
        for season_id, synced in changed.items():
            await after_change(self.io, live, live.config.teams[season_id], synced)


def _reports(live: LiveGame, rows: list[PlayerRow]) -> list[tuple[str, str, str, int, int]]:
    """(season, team, user, seq, points) of every flushed member with points."""
    out = []
    for row in rows:
        try:
            state = decode_state(row.state)
        except Exception:
            log.exception("teams: cannot decode the state of %s", row.user_id)
            continue
        for sid, m in state.teams.items():
            if m.team and m.points > 0 and sid in live.config.teams:
                out.append((sid, m.team, row.user_id, m.seq, m.points))
    return out


async def _sync(shared: AggregateStore, ref: AggregateRef, season: TeamSeason, user: str,
                seq: int, points: int) -> rules.Team | None:
    """One member's report on their team (a replayed key means it was applied)."""
    try:
        # The member's own gate keys on the team (join, leave, claim) are in this
        # space too: a server key outside their alphabet, so neither side refuses.
        reply = await shared.run(ref, CODEC, user, system_key("sync", f"{seq}-{points}"),
                                 "sync", lambda t, now: rules.sync_points(
                                     t, season, user, seq, points, now))
    except DomainError:
        return None
    if reply.replayed:
        return None
    team, _ = await shared.read(ref, CODEC)
    return team  # type: ignore[no-any-return]


register_flush_hook(TeamSync)
