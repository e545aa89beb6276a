"""Teams (组队): pure rules of a team season, with time and randomness as arguments.

A team is an aggregate (kind :data:`KIND`, id ``<season>-<team>``). Creating, joining
and leaving are two-commit actions (docs/architecture.md, "Aggregates"):

- the gate, on the team (:func:`create_team`, :func:`join_team`, :func:`leave_team`),
  decides everything shared (season open, seats, membership) and, from the shopper's
  state as peeked, what needs the shopper (:func:`check_can_join`: already in a team,
  teams joined, the wait after leaving);
- the shopper's side (:func:`apply_join`, :func:`apply_leave`) follows from the gate's
  owed record alone and never refuses.

Points are earned on the shopper's own commit: :func:`contribute` follows every
player action the server binds (registry ``follows``) and adds the season's points
for a feed, a check-in or a new paid order to the membership, in the same commit, so
a retried action never counts twice. The team learns them by :func:`sync_points`
(run after the persister flushed the shopper): the team keeps, per member, the
highest total the member reported for the *same* membership (``seq``), which is
idempotent and order-insensitive. Milestones are reached on the team (with the
members of that moment) and claimed by each of them once (:func:`claim_milestones`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from economy.errors import InvalidInput, known_item
from economy.teams import (
    AlreadyInTeam,
    LeaveNotAllowed,
    NotInTeam,
    RejoinTooSoon,
    SeasonNotOpen,
    TeamFull,
    TeamLimitReached,
    TeamNotFound,
    TeamSeason,
)
from mechanics.aggregate import SharedOutcome
from mechanics.checkin import CheckIn
from mechanics.grants import Effects, grant
from mechanics.masking import masked_id
from mechanics.outcome import Outcome
from mechanics.pet import FeedPet
from mechanics.state import PlayerState, Rng, new_player
from mechanics.tasks import Order
from mechanics.teamaggregates import (  # re-exported: the rules' public surface
    ALPHABET as ALPHABET,
)
from mechanics.teamaggregates import CODE_RE as CODE_RE
from mechanics.teamaggregates import KIND as KIND
from mechanics.teamaggregates import MATCH_KIND as MATCH_KIND
from mechanics.teamaggregates import MATCH_LIST_MAX as MATCH_LIST_MAX
from mechanics.teamaggregates import TEAM_ID_RE as TEAM_ID_RE
from mechanics.teamaggregates import MatchList as MatchList
from mechanics.teamaggregates import Member as Member
from mechanics.teamaggregates import Reached as Reached
from mechanics.teamaggregates import Team as Team
from mechanics.teamaggregates import aggregate_id as aggregate_id
from mechanics.teamaggregates import code_from as code_from
from mechanics.teamaggregates import split_code as split_code
from mechanics.teamstate import Membership

JOIN = "team_join"
LEAVE = "team_leave"
"""The owed records a join (or create) and a leave leave for the shopper's commit."""

def season_of(config: GameConfig, season_id: str) -> TeamSeason:
    return known_item(config.teams, season_id, "team season", "team_season")


# -- the gates (on the team) -----------------------------------------------------------


def _check_open(season: TeamSeason, now: int) -> None:
    if season.status(now) != "open":
        raise SeasonNotOpen(season.id, season.starts_at, season.ends_at)


def membership(state: PlayerState | None, season: str) -> Membership:
    """The shopper's membership in ``season`` (an empty one if none)."""
    if state is None:
        return Membership()
    return state.teams.get(season) or Membership()


def check_can_join(state: PlayerState | None, season: TeamSeason, now: int) -> None:
    """What a join needs of the shopper, checked on the peeked state before the gate."""
    m = membership(state, season.id)
    if m.team:
        raise AlreadyInTeam(season.id, m.team)
    if m.joined >= season.max_teams:
        raise TeamLimitReached(season.id, season.max_teams)
    if m.left_at and now < m.left_at + season.rejoin_after_s:
        raise RejoinTooSoon(season.id, m.left_at + season.rejoin_after_s, now)


def _reach(team: Team, season: TeamSeason, now: int) -> None:
    """Record the milestones the team's points reach now, with today's members."""
    if len(team.members) < season.min_size:
        return
    points = team.points
    for milestone in season.milestones:
        if milestone.id not in team.reached and points >= milestone.points:
            team.reached[milestone.id] = Reached(now, sorted(team.members))


def _joined(team: Team, season: TeamSeason, user: str, now: int) -> SharedOutcome:
    """Seat ``user`` on ``team`` (a copy) and owe them the membership."""
    team.joins += 1
    team.members[user] = Member(team.joins, now)
    _reach(team, season, now)
    view = team_view(team, season, user, now)
    owed = {"effect": JOIN, "season": season.id, "team": team.id, "seq": team.joins,
            "view": view}
    record = {"u": user, "a": "join", "seq": team.joins}
    return SharedOutcome(team, view, record, owed)


def create_team(team: Team | None, season: TeamSeason, user: str, team_id: str, secret: str,
                name: str, open_: bool, now: int) -> SharedOutcome:
    """The gate of ``createTeam``: a new team with ``user`` as its first member.
    ``team`` must not exist yet (an id drawn twice is refused: draw again)."""
    _check_open(season, now)
    if team is not None:
        raise AlreadyInTeam(season.id, team_id)  # the handler draws another id
    new = Team(season.id, team_id, secret, name or f"Team {team_id}", user, now, open_)
    return _joined(new, season, user, now)


def join_team(team: Team | None, season: TeamSeason, user: str, secret: str | None,
              now: int) -> SharedOutcome:
    """The gate of ``joinTeam``: a seat for ``user``. ``secret`` is the code's second
    half (None: auto-match, which only seats in open teams)."""
    if team is None:
        raise TeamNotFound(season.id)
    if secret is None and not team.open:
        raise TeamNotFound(season.id)
    if secret is not None and not hmac.compare_digest(secret, team.secret):
        raise TeamNotFound(season.id)
    _check_open(season, now)
    if user in team.members:
        raise AlreadyInTeam(season.id, team.id)
    if len(team.members) >= season.max_size:
        raise TeamFull(team.id, season.max_size)
    return _joined(team.copy(), season, user, now)


def leave_team(team: Team | None, season: TeamSeason, user: str, seq: int, points: int,
               now: int) -> SharedOutcome:
    """The gate of ``leaveTeam``. ``seq`` and ``points``: the shopper's membership as
    peeked (their points may be ahead of the team's copy: the higher one counts)."""
    _check_open(season, now)
    if not season.allow_leave:
        raise LeaveNotAllowed(season.id)
    member = team.members.get(user) if team is not None else None
    if team is None or member is None or member.seq != seq:
        raise NotInTeam(season.id)
    new = team.copy()
    del new.members[user]
    earned = max(member.points, points)
    if season.keep_points:
        new.kept += earned
    response = {"season": season.id, "team": team.id, "left": True,
                "points_kept_by_team": earned if season.keep_points else 0,
                "team_points": new.points}
    owed = {"effect": LEAVE, "season": season.id, "team": team.id, "seq": seq,
            "response": response}
    return SharedOutcome(new, response, {"u": user, "a": "leave", "seq": seq, "p": earned}, owed)


def sync_points(team: Team | None, season: TeamSeason, user: str, seq: int, points: int,
                now: int) -> SharedOutcome:
    """The team learns a member's points: the highest total reported for the same
    membership wins (idempotent, any order). A report for a membership that ended,
    or from a team that is gone, changes nothing."""
    if team is None:
        return SharedOutcome(None, {"synced": False})
    member = team.members.get(user)
    if member is None or member.seq != seq or points <= member.points:
        return SharedOutcome(team, {"synced": False, "team_points": team.points})
    new = team.copy()
    new.members[user].points = points
    _reach(new, season, now)
    return SharedOutcome(new, {"synced": True, "team_points": new.points},
                         {"u": user, "a": "sync", "seq": seq, "p": points})


def announce(team: Team | None, milestones: list[str]) -> SharedOutcome:
    """Note that the outbox holds these reached milestones' events (emitted first, then
    noted: a crash in between emits again, and the outbox keeps one per key)."""
    if team is None:
        return SharedOutcome(None, {})
    new = team.copy()
    new.announced += [mid for mid in milestones if mid in new.reached
                      and mid not in new.announced]
    return SharedOutcome(new, {"announced": new.announced})


def milestone_event(team: Team, season: TeamSeason, milestone: str) -> dict[str, Any]:
    """The ``team.milestone_reached`` webhook's data: who reached what, and the reward
    each of them may claim."""
    reached = team.reached[milestone]
    by_id = {m.id: m for m in season.milestones}
    reward = by_id[milestone].reward.to_json() if milestone in by_id else {}
    return {"season": season.id, "team": team.id, "name": team.name, "milestone": milestone,
            "points": by_id[milestone].points if milestone in by_id else None,
            "reached_at": reached.at, "members": list(reached.members), "reward": reward}


def list_team(match: MatchList | None, team: str) -> SharedOutcome:
    """Put a new open team on the list (a full list takes no more: those teams fill by
    their code)."""
    open_ = list(match.open) if match is not None else []
    if team not in open_ and len(open_) < MATCH_LIST_MAX:
        open_.append(team)
    return SharedOutcome(MatchList(open_), {"listed": team in open_})


def unlist_team(match: MatchList | None, team: str) -> SharedOutcome:
    """Take a team that filled (or is gone) off the list."""
    open_ = [t for t in (match.open if match is not None else []) if t != team]
    return SharedOutcome(MatchList(open_), {"listed": False})


# -- the shopper's side (never refuses) ------------------------------------------------


def apply_join(state: PlayerState | None, owed: dict[str, Any], now: int,
               config: GameConfig) -> Outcome:
    """The membership a join's gate recorded. A shopper already in another team (two
    joins raced) keeps it: the later seat stays empty of points."""
    new = state.copy() if state is not None else new_player(config, now)
    season = owed["season"]
    m = membership(new, season).copy()
    if not m.team:
        m.team, m.seq, m.points = owed["team"], owed["seq"], 0
        m.joined += 1
        new.teams = {**new.teams, season: m}
    new.last_seen = now
    return Outcome(state=new, response=dict(owed["view"]))


def apply_leave(state: PlayerState | None, owed: dict[str, Any], now: int,
                config: GameConfig) -> Outcome:
    """The end of the membership a leave's gate recorded."""
    new = state.copy() if state is not None else new_player(config, now)
    season = owed["season"]
    m = membership(new, season).copy()
    if m.team == owed["team"] and m.seq == owed["seq"]:
        m.team, m.seq, m.points, m.left_at = "", 0, 0, now
        new.teams = {**new.teams, season: m}
    new.last_seen = now
    return Outcome(state=new, response=dict(owed["response"]))


# -- points from other mechanics' actions ----------------------------------------------


def action_kind(action: Any, outcome: Outcome) -> str | None:
    """Which point-earning kind an action is (None: it earns nothing)."""
    if isinstance(action, FeedPet):
        return "feed"
    if isinstance(action, CheckIn):
        return "checkin"
    if isinstance(action, Order) and outcome.response.get("duplicate") is False:
        return "order"
    return None


def contribute(action: Any, outcome: Outcome, now: int, config: GameConfig) -> Outcome:
    """Follows every bound player action: add the season's points for it to each
    membership of an open season, in the action's own commit."""
    if not config.teams:
        return outcome
    kind = action_kind(action, outcome)
    if kind is None:
        return outcome
    seasons = dict(outcome.state.teams)
    changed = False
    for sid, m in outcome.state.teams.items():
        season = config.teams.get(sid)
        if not m.team or season is None or season.status(now) != "open":
            continue
        if earned := season.points.get(kind, 0):
            seasons[sid] = m.copy()
            seasons[sid].points += earned
            changed = True
    if changed:
        outcome.state.teams = seasons
    return outcome


# -- milestones --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimMilestones:
    """Claim the rewards of the milestones ``team`` (as read) reached with the shopper."""

    season: str
    user: str
    team: Team | None


def claimable(team: Team | None, m: Membership, user: str) -> list[str]:
    """Milestones reached while ``user`` was a member that they have not claimed."""
    if team is None or m.team != team.id:
        return []
    return [mid for mid, r in team.reached.items() if user in r.members and mid not in m.claimed]


def claim_milestones(state: PlayerState | None, action: ClaimMilestones, now: int, rng: Rng,
                     config: GameConfig, *, coupons_out: frozenset[str] = frozenset()
                     ) -> Outcome:
    """Grant each claimable milestone's reward once (coupons through the value tier)."""
    season = season_of(config, action.season)
    new = state.copy() if state is not None else new_player(config, now)
    m = membership(new, season.id).copy()
    if not m.team or action.team is None or action.team.id != m.team:
        raise NotInTeam(season.id)
    fx, claimed = Effects(), {}
    by_id = {ms.id: ms for ms in season.milestones}
    for mid in claimable(action.team, m, action.user):
        if mid in by_id:
            claimed[mid] = grant(new, by_id[mid].reward, f"team:{season.id}:{mid}", config, fx,
                                 coupons_out=coupons_out)
            m.claimed.append(mid)
    new.teams = {**new.teams, season.id: m}
    new.last_seen = now
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants, response={"season": season.id, "team": m.team,
                                               "claimed": claimed, "wallet": dict(new.wallet)})


# -- views -------------------------------------------------------------------------------


def team_view(team: Team, season: TeamSeason, user: str | None, now: int,
              rank: int | None = None, *, merchant: bool = False) -> dict[str, Any]:
    """What ``getTeam`` shows ``user``: members with their points, the team's points,
    milestones (reached or not); the share code only to a member.

    Shoppers see every member's id masked (:func:`~mechanics.leaderboard.masked_id`),
    the owner's too, with ``me`` and ``owner`` marking who is who: team ids are public
    on the team board, and a raw id is the shopper's platform id (an openid). The
    merchant's view (``merchant``) shows them whole."""
    def shown(u: str) -> str:
        return u if merchant else masked_id(u)

    members = sorted(team.members.items(), key=lambda um: (-um[1].points, um[1].seq))
    view: dict[str, Any] = {
        "season": season.id, "team": team.id, "name": team.name, "owner": shown(team.owner),
        "status": season.status(now), "created_at": team.created_at, "open": team.open,
        "points": team.points, "kept_points": team.kept, "size": len(team.members),
        "min_size": season.min_size, "max_size": season.max_size,
        "seats_left": max(0, season.max_size - len(team.members)),
        "members": [{"user": shown(u), "points": m.points, "joined_at": m.joined_at,
                     "me": u == user, "owner": u == team.owner} for u, m in members],
        "milestones": [{"id": ms.id, "points": ms.points, "reward": ms.reward.to_json(),
                        "reached_at": team.reached[ms.id].at if ms.id in team.reached else None}
                       for ms in season.milestones],
        "rank": rank, "server_time": now}
    if user is not None and user in team.members:
        view["code"] = team.code
    return view


def teams_view(state: PlayerState, config: GameConfig, now: int,
               tz: tzinfo | None) -> dict[str, Any] | None:
    """The player view's part: the shopper's team per season (None: no seasons)."""
    if not config.teams:
        return None
    out: dict[str, Any] = {}
    for sid, season in config.teams.items():
        m = state.teams.get(sid) or Membership()
        out[sid] = {"team": m.team or None, "points": m.points, "teams_joined": m.joined,
                    "claimed": list(m.claimed), "status": season.status(now)}
    return out


def check_name(name: str) -> str:
    """A team name as shown to its members and on the board: at most 40 printable
    characters once trimmed (empty: the caller names the team). Control and formatting
    characters (newlines, NUL, bidi overrides such as U+202E, zero-width spaces) are
    refused, as in a pet's name: other shoppers read this text."""
    name = name.strip()
    if len(name) > 40 or not name.isprintable():
        raise InvalidInput("a team name is at most 40 printable characters (no control "
                           "or formatting characters)", field="name")
    return name
