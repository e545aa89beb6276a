"""``exportEvents``: a game's events as an NDJSON stream, resumable from a cursor.

The stream is written page by page (:mod:`gameserver.db.export`), so memory
stays constant however many rows a game has. Everything that can be refused
(credentials, game, cursor, limit) is checked before the first byte; if SQL
fails mid-stream, an ``{"type": "error", "cursor"}`` line ends the stream in
place of the end line, and the export resumes from that cursor.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from economy.schema import Str
from gameserver.api.common import (
    Operation,
    game_id,
    limit_param,
    merchant_of,
    query_int,
    refuse_unknown_params,
)
from gameserver.appkeys import DB, SETTINGS
from gameserver.db import configs, export
from gameserver.db.export_cursor import MAX_LENGTH

log = logging.getLogger("petbox.export")

NDJSON = "application/x-ndjson"
CURSOR_PATTERN = r"^(v2\.[A-Za-z0-9_-]+|v1\.[0-9]{1,18}(\.[0-9]{1,18}){2,3})?$"
"""The shape of what :class:`gameserver.db.export_cursor.CursorCodec` reads (empty: from
the beginning; v1: a cursor of the release before, still read)."""


def _limit(request: web.Request) -> int | None:
    return query_int(request, "limit", 1, export.MAX_LIMIT)


async def export_events(request: web.Request) -> web.StreamResponse:
    merchant = await merchant_of(request)
    game = game_id(request)
    db = request.app[DB]
    refuse_unknown_params(request, ("cursor", "limit"))  # ?curser= must not start over
    limit = _limit(request)
    cursor = request.query.get("cursor")
    cursors = export.codec(request.app[SETTINGS].token_secret, merchant.id, game)
    cursors.decode(cursor)  # refuse a bad cursor before any SQL work
    await configs.require_game(db, merchant.id, game)
    plan = await export.plan(db, cursors, cursor, limit)
    resp = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    await resp.prepare(request)
    last = cursors.encode(plan.after)
    try:
        async for chunk in export.chunks(db, plan):
            await resp.write(chunk)
            last = _last_cursor(chunk)
    except (ConnectionResetError, OSError):
        raise  # the client went away: nothing to tell it
    except Exception:
        log.exception("export of %s/%s failed at %s", merchant.id, game, last)
        await resp.write(json.dumps({"type": "error", "cursor": last,
                                     "message": "export interrupted; resume from cursor"})
                         .encode() + b"\n")
    await resp.write_eof()
    return resp


def _last_cursor(chunk: bytes) -> str:
    """The cursor of the last line in ``chunk`` (where an error line says to resume)."""
    tail = chunk.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return str(json.loads(tail)["cursor"])


OPERATIONS = [
    Operation("exportEvents", "GET", "/v1/admin/games/{game}/export", export_events,
              "NDJSON stream of the game's ledger entries, draws, confirmed grants, "
              "shared plays' commits (votes, joins, grabs), orders, partial refunds and "
              "coupon redemptions after a cursor: each line carries the (opaque) cursor "
              "that resumes after it; the last line is "
              '{"type": "end", "cursor", "count", "more"}',
              auth="merchant", tag="merchant", errors=(401, 403, 404, 422, 503),
              content_type=NDJSON, response={"type": "string", "description": "NDJSON"},
              params={"cursor": Str(pattern=CURSOR_PATTERN, max_length=MAX_LENGTH, description=(
                          "resume after this cursor (from an earlier line, end line or error "
                          "line of this game's export); empty: from the beginning")),
                      "limit": limit_param(export.MAX_LIMIT, "at most this many event "
                                           f"lines (1..{export.MAX_LIMIT}; default: all "
                                           "up to now)")}),
]
