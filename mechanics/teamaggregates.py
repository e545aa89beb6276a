"""The shared state of teams: the team aggregate (its members, points, milestones
reached) with its ids and share codes, and a season's auto-match list. The rules that
change them are in :mod:`mechanics.teams`; the shopper's slice is
:mod:`mechanics.teamstate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from economy.teams import TeamNotFound

KIND = "team"
"""The aggregate kind of a team."""
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
"""Share-code letters: lower case, no look-alikes (0/o, 1/l/i)."""
ID_LEN = 8
SECRET_LEN = 8
CODE_RE = re.compile(f"^[{ALPHABET}]{{{ID_LEN + SECRET_LEN}}}$")
TEAM_ID_RE = re.compile(f"^[{ALPHABET}]{{{ID_LEN}}}$")


@dataclass
class Reached:
    """A milestone the team reached: when, and who was a member then."""

    at: int
    members: list[str]


@dataclass
class Member:
    seq: int
    joined_at: int
    points: int = 0


@dataclass
class Team:
    """A team's shared state."""

    season: str
    id: str
    secret: str
    """the code's second half: the share code is ``id + secret``"""
    name: str
    owner: str
    created_at: int
    open: bool = False
    """listed for auto-match"""
    members: dict[str, Member] = field(default_factory=dict)
    kept: int = 0
    """points of members who left, kept by the team (``keep_points``)"""
    joins: int = 0
    """joins ever: the next membership's ``seq``"""
    reached: dict[str, Reached] = field(default_factory=dict)
    announced: list[str] = field(default_factory=list)
    """reached milestones the merchant's webhook outbox has (see :func:`announce`)"""

    @property
    def code(self) -> str:
        return self.id + self.secret

    @property
    def points(self) -> int:
        return self.kept + sum(m.points for m in self.members.values())

    def copy(self) -> Team:
        return Team(self.season, self.id, self.secret, self.name, self.owner,
                    self.created_at, self.open,
                    {u: Member(m.seq, m.joined_at, m.points) for u, m in self.members.items()},
                    self.kept, self.joins,
                    {k: Reached(r.at, list(r.members)) for k, r in self.reached.items()},
                    list(self.announced))

    def to_wire(self) -> dict[str, Any]:
        return {"s": self.season, "i": self.id, "k": self.secret, "n": self.name,
                "o": self.owner, "c": self.created_at, "op": self.open,
                "m": {u: [m.seq, m.joined_at, m.points] for u, m in self.members.items()},
                "kp": self.kept, "j": self.joins,
                "r": {k: [r.at, r.members] for k, r in self.reached.items()},
                "an": self.announced}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Team:
        return cls(raw["s"], raw["i"], raw["k"], raw["n"], raw["o"], raw["c"], raw["op"],
                   {u: Member(*m) for u, m in raw["m"].items()}, raw["kp"], raw["j"],
                   {k: Reached(r[0], list(r[1])) for k, r in raw["r"].items()},
                   list(raw.get("an", [])))

    def unannounced(self) -> list[str]:
        """Reached milestones not yet handed to the merchant's webhook outbox."""
        return [mid for mid in self.reached if mid not in self.announced]


# -- ids and codes ----------------------------------------------------------------------


def code_from(entropy: bytes) -> tuple[str, str]:
    """(team id, secret) from at least 16 unpredictable bytes (the server derives them
    with its secret from the shopper and the Idempotency-Key, so a retried create
    reaches the same team): 16 letters of 31, about 79 bits, 40 in the secret."""
    if len(entropy) < 16:
        raise ValueError("a team code needs at least 16 bytes of entropy")
    n = int.from_bytes(entropy, "big")
    letters = []
    for _ in range(ID_LEN + SECRET_LEN):
        n, r = divmod(n, len(ALPHABET))
        letters.append(ALPHABET[r])
    return "".join(letters[:ID_LEN]), "".join(letters[ID_LEN:])


def split_code(code: str, season: str) -> tuple[str, str]:
    """(team id, secret) of a share code; a malformed code is a team not found."""
    if not CODE_RE.fullmatch(code):
        raise TeamNotFound(season)
    return code[:ID_LEN], code[ID_LEN:]


def aggregate_id(season: str, team: str) -> str:
    return f"{season}-{team}"


MATCH_KIND = "teammatch"
"""The aggregate kind of a season's auto-match list (id: the season)."""
MATCH_LIST_MAX = 500


@dataclass
class MatchList:
    """Open teams of a season with seats, oldest first (auto-match tries these)."""

    open: list[str] = field(default_factory=list)

    def to_wire(self) -> list[str]:
        return self.open

    @classmethod
    def from_wire(cls, raw: list[str]) -> MatchList:
        return cls(list(raw))


def rename_member(team: Team, user: str, alias: str) -> Team | None:
    """``team`` naming ``alias`` wherever it named ``user`` (owner, member, a reached
    milestone's members), or None when it does not name them (``erasePlayer``, docs/privacy.md).
    The seat and the points stay: the team's totals do not move."""
    if team.owner != user and user not in team.members and not any(
            user in r.members for r in team.reached.values()):
        return None

    def swap(u: str) -> str:
        return alias if u == user else u

    new = team.copy()
    new.owner = swap(team.owner)
    new.members = {swap(u): m for u, m in new.members.items()}  # the same order
    new.reached = {k: Reached(r.at, [swap(u) for u in r.members])
                   for k, r in new.reached.items()}
    return new
