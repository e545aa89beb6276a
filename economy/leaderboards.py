"""Leaderboards: config spec, frozen model and cross-checks.

A board ranks the players of one game by a *metric* of their state:

=================  ===================================================
``xp``             the pet's xp (0 without a pet)
``currency:<id>``  the current balance of a currency of ``$.currencies``
``item:<id>``      the count held of an item of ``$.items``
``draws``          blind-box draws over all series, ever
``checkins``       check-ins, ever
=================  ===================================================

Scores are computed by :func:`mechanics.leaderboard.board_scores`; the server
keeps the top of each board (``docs/leaderboards.md``). Changing a board's
metric mixes old and new scores until every player was flushed again: give a
board with a new meaning a new id instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from economy.schema import Enum, Int, Map, Obj, Problems, Str
from economy.section import ConfigPart, Section

METRICS: Final = ("xp", "draws", "checkins")
"""Metrics without a reference; ``currency:<id>`` and ``item:<id>`` name one."""
REF_KINDS: Final = ("currency", "item")
MAX_SIZE: Final = 1000
SHOW: Final = ("masked", "pet_name")
"""How a board names its players to other shoppers (never by the raw user id: in
production that is a platform openid)."""
SHOW_ID: Final = "id"
"""A board a mechanic ranks itself whose entries are not shoppers (teams): shown by
their own id (not configurable: a shopper board never shows ids)."""
METRIC_PATTERN: Final = r"^(xp|draws|checkins|(currency|item):[a-z0-9][a-z0-9_-]{0,63})$"

LEADERBOARD_SPEC = Obj(description="A ranking of the game's players by one metric.", fields={
    "name": Str(min_length=1, max_length=60),
    "metric": Str(pattern=METRIC_PATTERN, max_length=80,
                  description="xp, draws, checkins, currency:<id> or item:<id>"),
    "size": Int(minimum=1, maximum=MAX_SIZE, default=100,
                description="how many top players the board shows"),
    "show": Enum(values=SHOW, default="masked",
                 description="how other shoppers see a player: `masked` (their id with "
                             "the middle hidden, e.g. `oA***yz`) or `pet_name` (their pet's "
                             "name, masked id without a pet); never the raw user id"),
})

LEADERBOARDS_SPEC = Map(values=LEADERBOARD_SPEC, default={}, max_items=20,
                        description="board id → board (updated within one flush interval)")


@dataclass(frozen=True)
class Leaderboard:
    """One board; ``kind`` is ``xp``, ``draws``, ``checkins``, ``currency`` or ``item``,
    ``ref`` the currency or item id (empty for the others)."""

    id: str
    name: str
    metric: str
    size: int
    show: str = "masked"

    @property
    def kind(self) -> str:
        return self.metric.split(":", 1)[0]

    @property
    def ref(self) -> str:
        return self.metric.split(":", 1)[1] if ":" in self.metric else ""


def build_leaderboards(d: Mapping[str, Any]) -> dict[str, Leaderboard]:
    """The boards of an already validated and cross-checked game config."""
    return {k: Leaderboard(id=k, name=v["name"], metric=v["metric"], size=v["size"],
                           show=v.get("show", "masked"))
            for k, v in d.get("leaderboards", {}).items()}


def check_leaderboards(d: Mapping[str, Any]) -> Problems:
    """Every board's currency or item must exist in the config ``d``."""
    problems: Problems = []
    sections = {"currency": d.get("currencies", {}), "item": d.get("items", {})}
    for bid, board in (d.get("leaderboards") or {}).items():
        kind, _, ref = str(board["metric"]).partition(":")
        if kind in sections and ref not in sections[kind]:
            problems.append({"path": f"$.leaderboards.{bid}.metric",
                             "message": f"unknown {kind} {ref!r}"})
    return problems


LEADERBOARDS = Section(name="leaderboards", fields={"leaderboards": LEADERBOARDS_SPEC},
                      build=lambda d: {"leaderboards": build_leaderboards(d)},
                      check=check_leaderboards)


@dataclass(frozen=True, kw_only=True)
class LeaderboardsPart(ConfigPart):
    SECTION: ClassVar[Section] = LEADERBOARDS
    leaderboards: dict[str, Leaderboard] = field(default_factory=dict)


__all__ = [
    "LEADERBOARDS",
    "LEADERBOARDS_SPEC",
    "LEADERBOARD_SPEC",
    "MAX_SIZE",
    "METRICS",
    "REF_KINDS",
    "Leaderboard",
    "LeaderboardsPart",
    "build_leaderboards",
    "check_leaderboards",
]
