"""Leaderboard route: ``getLeaderboard``.

Scores come from ``mechanics/leaderboard.py`` via the persister's leaderboard
hook (``gameserver/jobs/leaderboards.py``), so a board is at most about one flush
interval behind the players' actions; the response says so in
``updated_within_s``. Load-test sessions read the shadow boards.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from economy.config import section_boards
from economy.errors import UnknownItem
from economy.leaderboards import MAX_SIZE, SHOW_ID, Leaderboard
from gameserver.api.common import (
    Operation,
    json_ok,
    limit_param,
    player_ctx,
    query_int,
    services,
)
from gameserver.api.schemas import array, obj
from gameserver.appkeys import REDIS, SETTINGS
from gameserver.games import LiveGame
from gameserver.jobs.leaderboards import Standing, read_board, shown_names

DEFAULT_LIMIT = 20


def _board(live: LiveGame, board_id: str) -> Leaderboard:
    """A player board of ``$.leaderboards``, or a board a mechanic ranks itself."""
    board = live.config.leaderboards.get(board_id)
    if board is None:
        board = section_boards(live.config).get(board_id)
    if board is None:
        raise UnknownItem(f"unknown leaderboard {board_id!r}", kind="leaderboard",
                          id=board_id, known=sorted(live.config.leaderboards))
    return board


def _limit(request: web.Request, size: int) -> int:
    """``?limit=``: 1..size, default 20 (or the size of a smaller board)."""
    limit = query_int(request, "limit", 1, size)
    return min(DEFAULT_LIMIT, size) if limit is None else limit


def _entry(standing: Standing, names: dict[str, str], me: str) -> dict[str, Any]:
    """An entry as every shopper sees it: a display name, never the raw user id."""
    return {"rank": standing.rank, "name": names[standing.user], "score": standing.score,
            "you": standing.user == me}


async def get_leaderboard(request: web.Request) -> web.Response:
    """``getLeaderboard``: the board's best ``limit`` players and the shopper's own
    rank and score (``me`` is null when they have no score on the board)."""
    ctx = await player_ctx(request)
    board = _board(ctx.game, request.match_info["board"])
    limit = _limit(request, board.size)
    key = services(request).keys.leaderboard(ctx.ref.merchant, ctx.ref.game, board.id)
    redis = request.app[REDIS]
    view = await read_board(redis, key, ctx.ref.user, limit)
    if board.show == SHOW_ID:  # a mechanic's board of non-shoppers (teams): their ids
        names = {s.user: s.user for s in view.entries}
    else:
        names_key = (None if board.show == "masked" else
                     services(request).keys.leaderboard_names(ctx.ref.merchant, ctx.ref.game,
                                                              board.id))
        names = await shown_names(redis, names_key, [s.user for s in view.entries])
    me = None if view.me is None else {"rank": view.me.rank, "score": view.me.score}
    return json_ok({
        "board": board.id, "name": board.name, "metric": board.metric, "size": board.size,
        "show": board.show,
        "entries": [_entry(s, names, ctx.ref.user) for s in view.entries], "me": me,
        "updated_within_s": request.app[SETTINGS].flush_interval,
    })


_RANK: dict[str, Any] = {"rank": {"type": "integer", "minimum": 1},
                         "score": {"type": "integer"}}
_STANDING = obj(_RANK)
BOARD_RESPONSE = obj({
    "board": {"type": "string"}, "name": {"type": "string"},
    "metric": {"type": "string", "description": "xp, draws, checkins, currency:<id>, item:<id>; "
                                             "a mechanic's own board names what it ranks "
                                             "(team:<season>: entries are team ids)"},
    "size": {"type": "integer"},
    "show": {"enum": ["masked", "pet_name", "id"],
             "description": "how entries name players (the board's config); `id`: a "
                            "mechanic's board of non-shoppers (teams), named by their id"},
    "entries": array(obj({
        **_RANK, "name": {"type": "string",
                          "description": "a masked id or a pet name, never a shopper's "
                                         "user id (a team board: the team's id)"},
        "you": {"type": "boolean", "description": "this entry is the asking shopper"}})),
    "me": {"oneOf": [_STANDING, {"type": "null"}],
           "description": "the shopper's standing; null without a score on the board"},
    "updated_within_s": {"type": "number",
                         "description": "scores lag the players' actions by about this "
                                        "(the persister's flush interval)"},
})

OPERATIONS = [
    Operation("getLeaderboard", "GET", "/v1/games/{game}/leaderboards/{board}",
              get_leaderboard,
              "A leaderboard's top players (higher score first; ties by user id, "
              "descending), named by a masked id or pet name, and the shopper's own "
              "rank; updated by the persister, so about one flush interval behind",
              auth="player", tag="shopper", errors=(401, 403, 404, 422),
              params={"limit": limit_param(MAX_SIZE, "how many entries, 1..the board's "
                                                     "size (default 20)")},
              response=BOARD_RESPONSE),
]
