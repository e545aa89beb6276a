"""Leaderboard route: ``getLeaderboard``.

Scores come from ``mechanics/leaderboard.py`` via the persister's leaderboard
hook (``gameserver/leaderboards.py``), so a board is at most about one flush
interval behind the players' actions; the response says so in
``updated_within_s``. Load-test sessions read the shadow boards.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from economy.errors import InvalidInput, UnknownItem
from economy.leaderboards import Leaderboard
from gameserver.api.common import Operation, json_ok, player_ctx, services
from gameserver.appkeys import REDIS, SETTINGS
from gameserver.games import LiveGame
from gameserver.leaderboards import Standing, read_board

DEFAULT_LIMIT = 20


def _board(live: LiveGame, board_id: str) -> Leaderboard:
    board = live.config.leaderboards.get(board_id)
    if board is None:
        raise UnknownItem(f"unknown leaderboard {board_id!r}", kind="leaderboard",
                          id=board_id, known=sorted(live.config.leaderboards))
    return board


def _limit(request: web.Request, size: int) -> int:
    """``?limit=``: 1..size, default 20 (or the size of a smaller board)."""
    text = request.query.get("limit", "")
    if not text:
        return min(DEFAULT_LIMIT, size)
    if not text.isdigit() or not 1 <= int(text) <= size:
        raise InvalidInput(f"limit must be an integer 1..{size}", field="limit")
    return int(text)


def _entry(standing: Standing) -> dict[str, Any]:
    return {"rank": standing.rank, "user": standing.user, "score": standing.score}


async def get_leaderboard(request: web.Request) -> web.Response:
    """``getLeaderboard``: the board's best ``limit`` players and the shopper's own
    rank and score (``me`` is null when they have no score on the board)."""
    ctx = await player_ctx(request)
    board = _board(ctx.game, request.match_info["board"])
    limit = _limit(request, board.size)
    key = services(request).keys.leaderboard(ctx.ref.merchant, ctx.ref.game, board.id)
    view = await read_board(request.app[REDIS], key, ctx.ref.user, limit)
    me = None if view.me is None else {"rank": view.me.rank, "score": view.me.score}
    return json_ok({
        "board": board.id, "name": board.name, "metric": board.metric, "size": board.size,
        "entries": [_entry(s) for s in view.entries], "me": me,
        "updated_within_s": request.app[SETTINGS].flush_interval,
    })


_RANK: dict[str, Any] = {"rank": {"type": "integer", "minimum": 1},
                         "score": {"type": "integer"}}
_STANDING: dict[str, Any] = {"type": "object", "properties": _RANK}
BOARD_RESPONSE: dict[str, Any] = {"type": "object", "properties": {
    "board": {"type": "string"}, "name": {"type": "string"},
    "metric": {"type": "string", "description": "xp, draws, checkins, currency:<id>, item:<id>"},
    "size": {"type": "integer"},
    "entries": {"type": "array", "items": {"type": "object", "properties": {
        **_RANK, "user": {"type": "string"}}}},
    "me": {"oneOf": [_STANDING, {"type": "null"}],
           "description": "the shopper's standing; null without a score on the board"},
    "updated_within_s": {"type": "number",
                         "description": "scores lag the players' actions by about this "
                                        "(the persister's flush interval)"},
}}

OPERATIONS = [
    Operation("getLeaderboard", "GET", "/v1/games/{game}/leaderboards/{board}",
              get_leaderboard,
              "A leaderboard's top players (higher score first; ties by user id, "
              "descending) and the shopper's own rank; updated by the persister, so "
              "about one flush interval behind",
              auth="player", tag="shopper", errors=(401, 403, 404, 422),
              params={"limit": "how many entries, 1..the board's size (default 20)"},
              response=BOARD_RESPONSE),
]
