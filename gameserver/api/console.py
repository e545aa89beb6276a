"""The merchant console: a static page at ``/console`` and ``listGames``.

The console is plain HTML, CSS and JavaScript shipped as package data in
``gameserver/static`` (no build step, nothing from a CDN); it logs in with a
merchant API key and calls the documented merchant routes, so it can do nothing
the HTTP API cannot. ``listGames`` is the one route it needed that did not exist:
the key's merchant and its games, for the game picker.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from economy.errors import NotFound
from gameserver.api.common import Operation, merchant_of
from gameserver.api.schemas import BOOL, INT, STR, array, nullable, obj
from gameserver.appkeys import DB
from gameserver.db import configs

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_ASSET_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg)")
_TYPES = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}

# The page talks to this origin only; no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    path = STATIC_DIR / name
    if not path.is_file():
        raise NotFound("no such console file", file=name)
    return path.read_bytes()


async def console_page(request: web.Request) -> web.Response:
    """The console's single page; everything else it loads comes from /console/static."""
    return web.Response(body=_read("console.html"), content_type="text/html",
                        charset="utf-8", headers=SECURITY_HEADERS)


async def console_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    match = _ASSET_RE.fullmatch(name)
    if match is None:
        raise NotFound("no such console file", file=name[:80])
    return web.Response(body=_read(name), content_type=_TYPES[match.group(1)],
                        charset="utf-8", headers=SECURITY_HEADERS)


async def list_games(request: web.Request) -> web.Response:
    """The key's merchant and its games (live version, whether a draft exists)."""
    merchant = await merchant_of(request)
    games = await configs.list_games(request.app[DB], merchant.id)
    return web.json_response({"merchant": merchant.id, "name": merchant.name, "games": games})


GAME_LIST = obj({
    "merchant": STR, "name": STR,
    "games": array(obj({"game": STR, "live_version": nullable(INT), "has_draft": BOOL,
                        "draft_updated_at": nullable(INT), "updated_at": INT}))})

OPERATIONS = [
    Operation("listGames", "GET", "/v1/admin/games", list_games,
              "The API key's merchant and its games: live version and whether a draft exists",
              auth="merchant", tag="merchant", errors=(401, 403), response=GAME_LIST),
    Operation("console", "GET", "/console", console_page,
              "The merchant console (HTML): drafts, simulation, publishing, stock, analytics",
              auth="none", tag="console", response={"type": "string"},
              content_type="text/html"),
    Operation("consoleAsset", "GET", "/console/static/{name}", console_asset,
              "The console's scripts and styles", auth="none", tag="console",
              errors=(404,), response={"type": "string"}, content_type="*/*"),
]
