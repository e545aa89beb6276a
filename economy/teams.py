"""Teams (组队): config section, frozen model, cross-checks and typed refusals.

A merchant runs team *seasons*. In a season shoppers create a team or join one by
its share code (or are matched into an open team), and the members' actions (a feed,
a check-in, a paid order) add team points by the season's ``points`` table. When the
team's points reach a milestone while it has at least ``min_size`` members, every
member of that moment may claim the milestone's reward once (through the value tier
when it holds a coupon). Leaving and switching teams are restricted by config, and a
leaving member's points stay with the team or go with them (``keep_points``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from economy.errors import DomainError, Refusal
from economy.leaderboards import SHOW_ID, Leaderboard
from economy.rewards import REWARD_SPEC, Reward, build_reward, reward_problems
from economy.schema import MAX_TIME, Bool, Int, Map, Obj, Problems, Str
from economy.section import ConfigPart, Section, window_status

if TYPE_CHECKING:
    from economy.config import GameConfig

SEASON_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MAX_TEAM_SIZE = 50
ACTION_KINDS = ("feed", "checkin", "order")
"""Member actions that earn team points: ``feedPet``, ``checkIn``, a paid ``ingestOrder``."""

MILESTONE_SPEC = Obj(description="Team points that, once reached, reward every member once.",
                     fields={
    "points": Int(minimum=1, maximum=10**12, description="team points that reach it"),
    "reward": REWARD_SPEC,
})

SEASON_SPEC = Obj(description="A team season: when it runs, team sizes, what earns points, "
                              "milestones, and the leave and switch rules.", fields={
    "name": Str(min_length=1, max_length=80),
    "starts_at": Int(minimum=0, maximum=MAX_TIME,
                     description="unix s from which teams form and points count"),
    "ends_at": Int(minimum=1, maximum=MAX_TIME,
                   description="unix s from which nothing changes: standings are final"),
    "min_size": Int(minimum=1, maximum=MAX_TEAM_SIZE, default=1,
                    description="members a team needs to reach milestones and be ranked"),
    "max_size": Int(minimum=1, maximum=MAX_TEAM_SIZE, default=5,
                    description="seats of a team; a join beyond is 409 team_full"),
    "points": Obj(description="team points per member action", default={
        "feed": 0, "checkin": 0, "order": 0}, fields={
        "feed": Int(minimum=0, maximum=10**6, default=0, description="per feedPet"),
        "checkin": Int(minimum=0, maximum=10**6, default=0, description="per checkIn"),
        "order": Int(minimum=0, maximum=10**6, default=0,
                     description="per paid order (ingestOrder)"),
    }),
    "milestones": Map(values=MILESTONE_SPEC, default={}, max_items=20,
                      key_pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
                      description="milestone id → points and reward"),
    "allow_leave": Bool(default=True, description="members may leave their team"),
    "max_teams": Int(minimum=1, maximum=20, default=2,
                     description="teams one shopper may join in the season (1: no switching)"),
    "rejoin_after_s": Int(minimum=0, maximum=30 * 86400, default=0,
                          description="wait after leaving before joining another team"),
    "keep_points": Bool(default=True,
                        description="a leaving member's points stay with the team"),
    "auto_match": Bool(default=False,
                       description="joinTeam without a code matches the shopper into an "
                                   "open team (or opens one)"),
    "board": Str(pattern=r"^$|^[a-z0-9][a-z0-9_-]{0,63}$", max_length=64, default="",
                 description="getLeaderboard id of the season's team board (empty: none)"),
    "board_size": Int(minimum=1, maximum=1000, default=100,
                      description="teams the board shows"),
})

TEAMS_SPEC = Map(values=SEASON_SPEC, default={}, max_items=10, key_pattern=SEASON_ID_PATTERN,
                 description="season id → team season (createTeam, joinTeam, getTeam, "
                             "leaveTeam)")


@dataclass(frozen=True)
class Milestone:
    id: str
    points: int
    reward: Reward


@dataclass(frozen=True)
class TeamSeason:
    """One validated team season."""

    id: str
    name: str
    starts_at: int
    ends_at: int
    min_size: int
    max_size: int
    points: dict[str, int]
    """action kind (:data:`ACTION_KINDS`) → team points per action"""
    milestones: tuple[Milestone, ...]
    """in ascending points"""
    allow_leave: bool = True
    max_teams: int = 2
    rejoin_after_s: int = 0
    keep_points: bool = True
    auto_match: bool = False
    board: str = ""
    board_size: int = 100

    def status(self, now: int) -> str:
        """``upcoming``, ``open`` or ``ended`` at ``now``."""
        return window_status(now, self.starts_at, self.ends_at)


def _season(sid: str, s: Mapping[str, Any]) -> TeamSeason:
    milestones = sorted((Milestone(mid, m["points"], build_reward(m["reward"]))
                         for mid, m in s["milestones"].items()), key=lambda m: (m.points, m.id))
    return TeamSeason(
        id=sid, name=s["name"], starts_at=s["starts_at"], ends_at=s["ends_at"],
        min_size=s["min_size"], max_size=s["max_size"], points=dict(s["points"]),
        milestones=tuple(milestones), allow_leave=s["allow_leave"], max_teams=s["max_teams"],
        rejoin_after_s=s["rejoin_after_s"], keep_points=s["keep_points"],
        auto_match=s["auto_match"], board=s["board"], board_size=s["board_size"])


def build_teams(d: Mapping[str, Any]) -> dict[str, TeamSeason]:
    """The seasons of an already validated and cross-checked game config."""
    return {sid: _season(sid, s) for sid, s in (d.get("teams") or {}).items()}


def check_teams(d: Mapping[str, Any]) -> Problems:
    """Times in order, sizes in order, rewards that exist, board ids of their own."""
    problems: Problems = []
    boards = set(d.get("leaderboards") or {})
    seen: set[str] = set()
    for sid, s in (d.get("teams") or {}).items():
        path = f"$.teams.{sid}"
        if s["ends_at"] <= s["starts_at"]:
            problems.append({"path": f"{path}.ends_at", "message": "a season must end after "
                                                                   "it starts"})
        if s["min_size"] > s["max_size"]:
            problems.append({"path": f"{path}.min_size", "message": "exceeds max_size"})
        for mid, m in s["milestones"].items():
            problems += reward_problems(m["reward"], f"{path}.milestones.{mid}.reward", dict(d))
        board = s["board"]
        if board and (board in boards or board in seen):
            problems.append({"path": f"{path}.board",
                             "message": f"board id {board!r} is already used"})
        seen.add(board)
    return problems


def team_boards(config: GameConfig) -> dict[str, Leaderboard]:
    """The seasons' team boards (``getLeaderboard``): teams ranked by points."""
    return {s.board: Leaderboard(id=s.board, name=s.name, metric=f"team:{s.id}",
                                 size=s.board_size, show=SHOW_ID)
            for s in config.teams.values() if s.board}


TEAMS = Section(name="teams", fields={"teams": TEAMS_SPEC},
                build=lambda d: {"teams": build_teams(d)}, check=check_teams,
                boards=team_boards)


@dataclass(frozen=True, kw_only=True)
class TeamsPart(ConfigPart):
    """The team seasons of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = TEAMS
    teams: dict[str, TeamSeason] = field(default_factory=dict)


class SeasonNotOpen(DomainError):
    """A team change before the season starts or from its end on."""

    code = "season_not_open"
    kind = Refusal.CONFLICT

    def __init__(self, season: str, starts_at: int, ends_at: int) -> None:
        super().__init__("this team season is not open", season=season,
                         starts_at=starts_at, ends_at=ends_at)


class TeamFull(DomainError):
    code = "team_full"
    kind = Refusal.CONFLICT

    def __init__(self, team: str, max_size: int) -> None:
        super().__init__("this team is full", team=team, max_size=max_size)


class AlreadyInTeam(DomainError):
    """The shopper is a member of a team of this season already (leave it first)."""

    code = "already_in_team"
    kind = Refusal.CONFLICT

    def __init__(self, season: str, team: str) -> None:
        super().__init__("you are already in a team of this season", season=season,
                         team=team)


class NotInTeam(DomainError):
    code = "not_in_team"
    kind = Refusal.CONFLICT

    def __init__(self, season: str) -> None:
        super().__init__("you are not in a team of this season", season=season)


class LeaveNotAllowed(DomainError):
    code = "leave_not_allowed"
    kind = Refusal.CONFLICT

    def __init__(self, season: str) -> None:
        super().__init__("members cannot leave their team in this season", season=season)


class TeamLimitReached(DomainError):
    """The shopper joined as many teams this season as the season allows."""

    code = "team_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, season: str, max_teams: int) -> None:
        super().__init__("you joined as many teams as this season allows", season=season,
                         max_teams=max_teams)


class RejoinTooSoon(DomainError):
    code = "rejoin_too_soon"
    kind = Refusal.LIMITED

    def __init__(self, season: str, at: int, now: int) -> None:
        super().__init__("you left a team too recently to join another", season=season,
                         rejoin_at=at, retry_after=max(0, at - now))


class TeamNotFound(DomainError):
    """No team with this id or code in this game (another merchant's code too)."""

    code = "team_not_found"
    kind = Refusal.NOT_FOUND

    def __init__(self, season: str) -> None:
        super().__init__("no such team", season=season)


class CodeRequired(DomainError):
    code = "team_code_required"
    kind = Refusal.INVALID

    def __init__(self, season: str) -> None:
        super().__init__("this season has no auto-match: join with a team code",
                         season=season, field="code")
