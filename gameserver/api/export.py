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
import re

from aiohttp import web

from economy.schema import Str
from gameserver.api.common import Operation, game_id, limit_param, merchant_of, query_int
from gameserver.appkeys import DB
from gameserver.db import configs, export

log = logging.getLogger("petbox.export")

NDJSON = "application/x-ndjson"
CURSOR_PATTERN = (rf"^({re.escape(export.CURSOR_PREFIX)}[0-9]{{1,18}}"
                  rf"(\.[0-9]{{1,18}}){{{export.LEGACY_SOURCES - 1},{len(export.SOURCES) - 1}}})?$")
"""What :func:`gameserver.db.export.decode_cursor` accepts (empty: from the beginning)."""


def _limit(request: web.Request) -> int | None:
    return query_int(request, "limit", 1, export.MAX_LIMIT)


async def export_events(request: web.Request) -> web.StreamResponse:
    merchant = await merchant_of(request)
    game = game_id(request)
    db = request.app[DB]
    limit = _limit(request)
    cursor = request.query.get("cursor")
    export.decode_cursor(cursor)  # refuse a bad cursor before any SQL work
    await configs.require_game(db, merchant.id, game)
    plan = await export.plan(db, merchant.id, game, cursor, limit)
    resp = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    await resp.prepare(request)
    last = export.encode_cursor(plan.after)
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
              "NDJSON stream of the game's ledger entries, draws, confirmed grants and "
              "shared plays' commits (votes, joins, grabs) after a cursor: each line carries "
              "the cursor that resumes after it; the last line is "
              '{"type": "end", "cursor", "count", "more"}',
              auth="merchant", tag="merchant", errors=(401, 403, 404, 422, 503),
              content_type=NDJSON, response={"type": "string", "description": "NDJSON"},
              params={"cursor": Str(pattern=CURSOR_PATTERN, max_length=100, description=(
                          "resume after this cursor (from an earlier line, end line or error "
                          "line); empty: from the beginning")),
                      "limit": limit_param(export.MAX_LIMIT, "at most this many event "
                                           f"lines (1..{export.MAX_LIMIT}; default: all "
                                           "up to now)")}),
]
