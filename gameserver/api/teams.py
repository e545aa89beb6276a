"""Team routes: ``createTeam``, ``joinTeam``, ``leaveTeam`` (two-commit actions),
``getTeam``, ``claimTeamRewards``, and the merchant's views. What follows a team's
change (its board, milestone webhooks) and the flush hook that brings members' points
to their teams are in gameserver/api/teams_sync.py.

Create, join and leave gate on the team aggregate and follow on the shopper, exactly
once per Idempotency-Key (gameserver/state/aggregates_gate.py). A new team's id and share
code are derived with the server's secret from the shopper and the key, so a retried
create reaches the same team.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from aiohttp import web

from economy.leaderboards import MAX_SIZE as MAX_BOARD
from economy.schema import Bool, Obj, Str
from economy.teams import CodeRequired, NotInTeam, TeamFull, TeamNotFound, TeamSeason
from gameserver.api.common import (
    EMPTY_BODY,
    PLAYER_ERRORS,
    Operation,
    PlayerPost,
    idempotency_key,
    json_ok,
    limit_param,
    merchant_game,
    now_s,
    player_ctx,
    query_int,
    read_body,
    reply_response,
    request_hash,
    run_gated,
    services,
)
from gameserver.api.schemas import (
    COUNTS,
    GRANTED,
    INT,
    REWARD,
    STR,
    array,
    map_of,
    nullable,
    obj,
)
from gameserver.api.serial import one_at_a_time
from gameserver.api.teams_sync import (
    CODEC,
    SYSTEM,
    TeamsIO,
    TeamSync,
    after_change,
    rank_teams,
    team_ref,
)
from gameserver.appkeys import REDIS, SETTINGS
from gameserver.games import LiveGame
from gameserver.http.errors import ActionInProgress
from gameserver.http.sharecodes import share_digest
from gameserver.jobs.webhooks import OUTBOX
from gameserver.services import RuleContext, Services, bind
from gameserver.state.aggregates import AggregateStore, WireCodec
from gameserver.state.aggregates_app import Aggregates, aggregates_of
from gameserver.state.aggregates_gate import register_apply
from gameserver.state.keys import AggregateRef
from gameserver.state.scripts import reply_text
from gameserver.state.store import Loaded, Reply
from mechanics import teams as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

MATCH_CODEC = WireCodec(rules.MatchList.from_wire)
AUTO_MATCH_TRIES = 5

CREATE_BODY = Obj(description="A new team; the creator is its first member.", fields={
    "name": Str(max_length=40, default="", description="shown to members and on the board"),
    "open": Bool(default=False, description="listed for auto-match (seasons with it)"),
})
JOIN_BODY = Obj(description="The share code; without one, auto-match (if the season has "
                            "it).", fields={
    "code": Str(pattern=r"^[a-z0-9]{1,32}$", max_length=32, default="",
                description="the team's share code"),
})


def _match_ref(live: LiveGame, season: str, shards: int) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, rules.MATCH_KIND, season, shards)


register_apply(rules.JOIN, rules.apply_join)
register_apply(rules.LEAVE, rules.apply_leave)


class _Request:
    """What every team route reads: the shopper, their game and season, the stores."""

    def __init__(self, request: web.Request, ctx: RuleContext, season: TeamSeason) -> None:
        self.request = request
        self.ctx = ctx
        self.live = ctx.game
        self.season = season
        self.shards = request.app[SETTINGS].shards
        self.svc = services(request)
        self.agg: Aggregates = aggregates_of(request.app, self.svc)
        self.shared: AggregateStore = self.agg.store

    @classmethod
    async def of(cls, request: web.Request) -> _Request:
        ctx = await player_ctx(request)
        return cls(request, ctx, rules.season_of(ctx.game.config, request.match_info["season"]))

    @classmethod
    async def posted(cls, request: web.Request, spec: Obj) -> tuple[_Request, PlayerPost]:
        """A team POST: as :meth:`of` (so an unknown season is 404 before a missing key
        is 400), then the key and the body."""
        r = await cls.of(request)
        key = idempotency_key(request)
        body, raw = await read_body(request, spec)
        return r, PlayerPost(r.ctx, key, body, request_hash(request, raw))

    async def member_first(self, post: PlayerPost) -> Reply | tuple[Loaded, str]:
        """The shopper as peeked and their team in the season (refused if none), or the
        reply a used key already has."""
        first = await self.svc.store.peek(self.ctx.ref, post.key, post.digest)
        if isinstance(first, Reply):
            return first
        team = rules.membership(first.state, self.season.id).team
        if not team:
            raise NotInTeam(self.season.id)
        return first, team

    def team_ref(self, team: str) -> AggregateRef:
        return team_ref(self.live, self.season.id, team, self.shards)

    async def changed(self, team_id: str) -> None:
        """After a change: the team's points on the board, its new milestones to the
        merchant's webhook outbox."""
        team, _ = await self.shared.read(self.team_ref(team_id), CODEC)
        if team is not None:
            app = self.request.app
            io = TeamsIO(app[REDIS], self.svc.keys, self.shared,
                         None if self.svc.shadow else app[OUTBOX], self.shards)
            await after_change(io, self.live, self.season, [team])


def _join_gate(season: TeamSeason, user: str, secret: str | None) -> Any:
    def gate(state: PlayerState | None) -> Any:
        def rule(team: rules.Team | None, now: int) -> SharedOutcome:
            rules.check_can_join(state, season, now)
            return rules.join_team(team, season, user, secret, now)
        return rule
    return gate


def team_code(secret: str, merchant: str, game: str, season: str, user: str,
              key: str) -> tuple[str, str]:
    """(team id, secret) of the team a shopper's ``createTeam`` with ``key`` opens (the
    same on a retry)."""
    return rules.code_from(share_digest(secret, merchant, game, season, user, key))


async def _create(r: _Request, key: str, digest: str, name: str, open_: bool) -> Reply:
    ref = r.ctx.ref
    team_id, secret = team_code(r.request.app[SETTINGS].token_secret, ref.merchant,
                                ref.game, r.season.id, ref.user, key)
    season, user = r.season, ref.user

    def gate(state: PlayerState | None) -> Any:
        def rule(team: rules.Team | None, now: int) -> SharedOutcome:
            rules.check_can_join(state, season, now)
            return rules.create_team(team, season, user, team_id, secret, name, open_, now)
        return rule

    reply = await r.agg.actions.run(ref, r.team_ref(team_id), CODEC, key, digest, r.live, gate)
    if open_ and season.auto_match:
        await r.shared.run(_match_ref(r.live, season.id, r.shards), MATCH_CODEC, SYSTEM,
                              f"add-{team_id}", "list",
                              lambda m, now: rules.list_team(m, team_id))
    await r.changed(team_id)
    return reply


def _one_at_a_time(r: _Request) -> contextlib.AbstractAsyncContextManager[None]:
    """One create or join per shopper and season at a time (gameserver/api/serial.py):
    ``max_teams`` and one team per season are checked against the shopper as peeked."""
    ref = r.ctx.ref
    return one_at_a_time(r.request, f"teams:{ref.merchant}:{ref.game}:{r.season.id}:"
                                    f"{ref.user}", lambda: ActionInProgress("team"))


async def create_team(request: web.Request) -> web.Response:
    """``createTeam``: a new team with the shopper as its first member and its code."""
    r, post = await _Request.posted(request, CREATE_BODY)
    name = rules.check_name(post.body["name"])
    async with _one_at_a_time(r):
        reply = await _create(r, post.key, post.digest, name, post.body["open"])
    return reply_response(reply)


async def _unlist(r: _Request, team_id: str) -> None:
    await r.shared.run(_match_ref(r.live, r.season.id, r.shards), MATCH_CODEC, SYSTEM,
                          f"rm-{team_id}", "unlist", lambda m, now: rules.unlist_team(m, team_id))


async def _after_join(r: _Request, reply: Reply, team_id: str) -> None:
    """Unlist a team the join filled; rank it."""
    body = orjson.loads(reply.body)
    if r.season.auto_match and body.get("seats_left") == 0:
        await _unlist(r, team_id)
    await r.changed(team_id)


async def _auto_match(r: _Request, key: str, digest: str) -> Reply:
    """Join the oldest listed team with a seat; none: open a new listed team."""
    match, _ = await r.shared.read(_match_ref(r.live, r.season.id, r.shards), MATCH_CODEC)
    gate = _join_gate(r.season, r.ctx.ref.user, None)
    for team_id in (match.open if match is not None else [])[:AUTO_MATCH_TRIES]:
        try:
            reply = await r.agg.actions.run(r.ctx.ref, r.team_ref(team_id), CODEC, key, digest,
                                            r.live, gate)
        except (TeamFull, TeamNotFound):
            await _unlist(r, team_id)  # the list was behind: repair it and go on
            continue
        await _after_join(r, reply, team_id)
        return reply
    return await _create(r, key, digest, "", True)


async def join_team(request: web.Request) -> web.Response:
    """``joinTeam``: a seat in the team of ``code``; without a code, auto-match."""
    r, post = await _Request.posted(request, JOIN_BODY)
    key, body, digest = post.key, post.body, post.digest
    if not body["code"]:
        if not r.season.auto_match:
            raise CodeRequired(r.season.id)
        async with _one_at_a_time(r):
            return reply_response(await _auto_match(r, key, digest))
    team_id, secret = rules.split_code(body["code"], r.season.id)
    async with _one_at_a_time(r):
        reply = await r.agg.actions.run(r.ctx.ref, r.team_ref(team_id), CODEC, key, digest,
                                        r.live, _join_gate(r.season, r.ctx.ref.user, secret))
    await _after_join(r, reply, team_id)
    return reply_response(reply)


async def leave_team(request: web.Request) -> web.Response:
    """``leaveTeam``: leave the current team of the season (if its rules allow)."""
    r, post = await _Request.posted(request, EMPTY_BODY)
    peeked = await r.member_first(post)
    if isinstance(peeked, Reply):
        return reply_response(peeked)
    _, team_id = peeked
    season, user = r.season, r.ctx.ref.user

    def gate(state: PlayerState | None) -> Any:
        peeked = rules.membership(state, season.id)

        def rule(team: rules.Team | None, now: int) -> SharedOutcome:
            return rules.leave_team(team, season, user, peeked.seq, peeked.points, now)
        return rule

    reply = await run_gated(request, post, r.team_ref(team_id), CODEC, gate)
    await r.changed(team_id)
    return reply_response(reply)


async def _path_team(request: web.Request, shared: AggregateStore, live: LiveGame,
                     season: TeamSeason) -> tuple[str, rules.Team]:
    """The team the path names (404 for an id that is not one, or no such team)."""
    team_id = request.match_info["team"]
    if not rules.TEAM_ID_RE.fullmatch(team_id):
        raise TeamNotFound(season.id)
    ref = team_ref(live, season.id, team_id, request.app[SETTINGS].shards)
    team, _ = await shared.read(ref, CODEC)
    if team is None:
        raise TeamNotFound(season.id)
    return team_id, team


async def get_team(request: web.Request) -> web.Response:
    """``getTeam``: members with their points, the team's points and rank, milestones;
    the share code to members."""
    r = await _Request.of(request)
    team_id, team = await _path_team(request, r.shared, r.live, r.season)
    rank = None
    if r.season.board:
        key = r.svc.keys.leaderboard(r.live.merchant, r.live.game, r.season.board)
        place: Any = await request.app[REDIS].zrevrank(key, team_id)
        rank = None if place is None else int(place) + 1
    return json_ok(rules.team_view(team, r.season, r.ctx.ref.user, now_s(request), rank))


async def claim_team_rewards(request: web.Request) -> web.Response:
    """``claimTeamRewards``: the rewards of milestones the team reached with the shopper
    as a member, each once (coupons through the value tier)."""
    r, post = await _Request.posted(request, EMPTY_BODY)
    peeked = await r.member_first(post)
    if isinstance(peeked, Reply):
        return reply_response(peeked)
    first, team_id = peeked
    team, _ = await r.shared.read(r.team_ref(team_id), CODEC)
    rule = bind(rules.claim_milestones,
                rules.ClaimMilestones(r.season.id, r.ctx.ref.user, team), r.ctx)
    reply = await r.svc.run(r.ctx.ref, post.key, post.digest, rule, view=r.ctx.view,
                            totals=r.live.totals, first=first)
    return reply_response(reply)


# -- the merchant's view -------------------------------------------------------------


async def _admin(request: web.Request) -> tuple[LiveGame, TeamSeason, Services]:
    live = await merchant_game(request)
    return live, rules.season_of(live.config, request.match_info["season"]), services(request)


def _admin_limit(request: web.Request, size: int) -> int:
    limit = query_int(request, "limit", 1, size)
    return min(20, size) if limit is None else limit


async def get_team_season_admin(request: web.Request) -> web.Response:
    """``getTeamSeasonAdmin``: the season's settings, its status and its best teams."""
    live, season, svc = await _admin(request)
    limit = _admin_limit(request, season.board_size)
    ranked: list[tuple[str, int]] = []
    if season.board:
        key = svc.keys.leaderboard(live.merchant, live.game, season.board)
        top: Any = await request.app[REDIS].zrevrange(key, 0, limit - 1, withscores=True)
        ranked = [(reply_text(member), int(score)) for member, score in top]
    shards = request.app[SETTINGS].shards
    refs = [team_ref(live, season.id, tid, shards) for tid, _ in ranked]
    teams = await aggregates_of(request.app, svc).store.read_many(refs, CODEC)
    now = now_s(request)
    return json_ok({
        "season": season.id, "name": season.name, "status": season.status(now),
        "starts_at": season.starts_at, "ends_at": season.ends_at,
        "min_size": season.min_size, "max_size": season.max_size, "points": season.points,
        "milestones": [{"id": m.id, "points": m.points, "reward": m.reward.to_json()}
                       for m in season.milestones],
        "board": season.board or None, "server_time": now,
        "teams": [{"rank": i + 1, "team": tid, "points": points,
                   "name": team.name if team else None,
                   "size": len(team.members) if team else None,
                   "milestones_reached": sorted(team.reached) if team else []}
                  for i, ((tid, points), team) in enumerate(zip(ranked, teams, strict=True))]})


async def get_team_admin(request: web.Request) -> web.Response:
    """``getTeamAdmin``: one team as the merchant sees it (with its share code)."""
    live, season, svc = await _admin(request)
    _, team = await _path_team(request, aggregates_of(request.app, svc).store, live, season)
    view = rules.team_view(team, season, None, now_s(request), merchant=True)
    return json_ok({**view, "code": team.code,
                    "reached": {mid: {"at": r.at, "members": r.members}
                                for mid, r in team.reached.items()}})


# -- the operations -------------------------------------------------------------------

_MEMBER = obj({
    "user": {"type": "string", "description": "masked for shoppers (oA***yz); whole in the "
                                              "merchant's view"},
    "points": INT, "joined_at": INT,
    "me": {"type": "boolean", "description": "this member is the caller"},
    "owner": {"type": "boolean", "description": "this member created the team"}})
_MILESTONE = obj({"id": STR, "points": INT, "reward": REWARD,
                  "reached_at": nullable(INT)})
_TEAM_PROPS: dict[str, Any] = {
    "season": {"type": "string"}, "team": {"type": "string"}, "name": {"type": "string"},
    "owner": {"type": "string", "description": "who created the team: masked for shoppers, "
                                               "whole in the merchant's view"},
    "status": {"type": "string", "enum": ["upcoming", "open", "ended"]},
    "created_at": {"type": "integer"}, "open": {"type": "boolean"},
    "points": {"type": "integer", "description": "members' points plus points kept from "
                                                 "members who left"},
    "kept_points": {"type": "integer"}, "size": {"type": "integer"},
    "min_size": {"type": "integer"}, "max_size": {"type": "integer"},
    "seats_left": {"type": "integer"},
    "members": {"type": "array", "items": _MEMBER, "description": "highest points first"},
    "milestones": {"type": "array", "items": _MILESTONE},
    "rank": {"type": ["integer", "null"], "description": "place on the season's board"},
    "code": {"type": "string", "description": "the share code (members only)"},
    "server_time": {"type": "integer"},
}
TEAM_RESPONSE = obj(_TEAM_PROPS, [k for k in _TEAM_PROPS if k != "code"])
"""getTeam: the share code only when the caller is a member."""
MEMBER_TEAM_RESPONSE = obj(_TEAM_PROPS)
"""createTeam, joinTeam: the caller is a member, so the code is there."""
ADMIN_TEAM_RESPONSE = obj({
    **_TEAM_PROPS,
    "reached": map_of(obj({"at": INT, "members": array(STR)})) | {
        "description": "milestone id → when it was reached and the members of that "
                       "moment"}})
LEAVE_RESPONSE = obj({
    "season": {"type": "string"}, "team": {"type": "string"}, "left": {"type": "boolean"},
    "points_kept_by_team": {"type": "integer"}, "team_points": {"type": "integer"}})
CLAIM_RESPONSE = obj({
    "season": {"type": "string"}, "team": {"type": "string"},
    "claimed": {**map_of(GRANTED), "description": "milestone id → what was granted"},
    "wallet": COUNTS})

SEASON_ADMIN_RESPONSE = obj({
    "season": {"type": "string"}, "name": {"type": "string"},
    "status": {"type": "string", "enum": ["upcoming", "open", "ended"]},
    "starts_at": {"type": "integer"}, "ends_at": {"type": "integer"},
    "min_size": {"type": "integer"}, "max_size": {"type": "integer"},
    "points": {"type": "object", "additionalProperties": {"type": "integer"}},
    "milestones": array(obj({"id": STR, "points": INT, "reward": REWARD})),
    "board": {"type": ["string", "null"]}, "server_time": {"type": "integer"},
    "teams": {"type": "array", "description": "the board's best teams (none without a board)",
              "items": obj({
                  "rank": {"type": "integer"}, "team": {"type": "string"},
                  "points": {"type": "integer"}, "name": {"type": ["string", "null"]},
                  "size": {"type": ["integer", "null"]},
                  "milestones_reached": {"type": "array", "items": {"type": "string"}}})},
})

_PATH = "/v1/games/{game}/teams/{season}"
OPERATIONS = [
    Operation("createTeam", "POST", _PATH, create_team,
              "Create a team of a season and become its first member; the response has "
              "the share code", auth="player", tag="plays", body=CREATE_BODY,
              idempotent=True, errors=PLAYER_ERRORS, response=MEMBER_TEAM_RESPONSE),
    Operation("joinTeam", "POST", _PATH + "/join", join_team,
              "Join the team of a share code (full: 409 team_full); without a code, be "
              "matched into an open team (seasons with auto-match)", auth="player",
              tag="plays", body=JOIN_BODY, idempotent=True, errors=PLAYER_ERRORS,
              response=MEMBER_TEAM_RESPONSE),
    Operation("leaveTeam", "POST", _PATH + "/leave", leave_team,
              "Leave the current team of the season, as its rules allow", auth="player",
              tag="plays", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS,
              response=LEAVE_RESPONSE),
    Operation("claimTeamRewards", "POST", _PATH + "/claim", claim_team_rewards,
              "Claim the rewards of milestones the team reached while the shopper was a "
              "member, each once", auth="player", tag="plays", body=EMPTY_BODY,
              idempotent=True, errors=PLAYER_ERRORS, response=CLAIM_RESPONSE),
    Operation("getTeam", "GET", _PATH + "/{team}", get_team,
              "A team: members and their points, the team's points and rank, milestones",
              auth="player", tag="plays", errors=(401, 403, 404, 422),
              response=TEAM_RESPONSE),
    Operation("getTeamSeasonAdmin", "GET", "/v1/admin/games/{game}/teams/{season}",
              get_team_season_admin,
              "A team season as the merchant sees it: settings, status and the best teams "
              "of its board", auth="merchant", tag="merchant", errors=(401, 403, 404, 422),
              params={"limit": limit_param(MAX_BOARD, "how many teams, 1..the board's "
                                                      "size (default 20)")},
              response=SEASON_ADMIN_RESPONSE),
    Operation("getTeamAdmin", "GET", "/v1/admin/games/{game}/teams/{season}/{team}",
              get_team_admin,
              "One team as the merchant sees it: members, points, milestones reached with "
              "the members of that moment, and its share code", auth="merchant",
              tag="merchant", errors=(401, 403, 404, 422), response=ADMIN_TEAM_RESPONSE),
]

__all__ = ["OPERATIONS", "TeamSync", "rank_teams"]
