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
from dataclasses import dataclass
from typing import Any, Final

from economy.schema import Int, Map, Obj, Problems, Str

METRICS: Final = ("xp", "draws", "checkins")
"""Metrics without a reference; ``currency:<id>`` and ``item:<id>`` name one."""
REF_KINDS: Final = ("currency", "item")
MAX_SIZE: Final = 1000
METRIC_PATTERN: Final = r"^(xp|draws|checkins|(currency|item):[a-z0-9][a-z0-9_-]{0,63})$"

LEADERBOARD_SPEC = Obj(description="A ranking of the game's players by one metric.", fields={
    "name": Str(min_length=1, max_length=60),
    "metric": Str(pattern=METRIC_PATTERN, max_length=80,
                  description="xp, draws, checkins, currency:<id> or item:<id>"),
    "size": Int(minimum=1, maximum=MAX_SIZE, default=100,
                description="how many top players the board shows"),
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

    @property
    def kind(self) -> str:
        return self.metric.split(":", 1)[0]

    @property
    def ref(self) -> str:
        return self.metric.split(":", 1)[1] if ":" in self.metric else ""


def build_leaderboards(d: Mapping[str, Any]) -> dict[str, Leaderboard]:
    """The boards of an already validated and cross-checked game config."""
    return {k: Leaderboard(id=k, name=v["name"], metric=v["metric"], size=v["size"])
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


__all__ = [
    "LEADERBOARDS_SPEC",
    "LEADERBOARD_SPEC",
    "MAX_SIZE",
    "METRICS",
    "REF_KINDS",
    "Leaderboard",
    "build_leaderboards",
    "check_leaderboards",
]
