"""Merchant routes for versioned game configs: draft, publish, versions, rollback, diff.

The rules (validation before storing, immutable versions, rollback as a new
version, no-op publishes) live in :mod:`gameserver.db.configs`, shared with the
CLI; these handlers authenticate, parse and shape JSON. Everything is scoped to
the API key's merchant: another merchant's game or version is a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.config import GAME_SPEC
from economy.errors import NotFound
from economy.schema import Int, Obj, Str
from gameserver.api.admin_keys import Written, sql_write
from gameserver.api.common import Operation, checked, decode_json, game_id, merchant_of, now_s
from gameserver.api.schemas import ANY_OBJECT, BOOL, INT, STR, array, nullable, obj
from gameserver.appkeys import DB, GAMES
from gameserver.db import configs
from gameserver.ops.jsondiff import diff

MAX_VERSION = 999_999_999
"""The largest version number a request may name (as for path segments, see
``configs.parse_version``): SQL stores versions as 32-bit integers."""

PUBLISH_BODY = Obj(fields={
    "note": Str(default="", max_length=configs.NOTE_MAX,
                description="why this version (shown in the version list)"),
})
ROLLBACK_BODY = Obj(fields={
    "version": Int(minimum=1, maximum=MAX_VERSION,
                   description="the older version whose config goes live again"),
    "note": Str(default="", max_length=120, description="why (appended to the version note)"),
})

VERSION_SUMMARY = obj({"version": INT, "checksum": STR, "published_at": INT, "note": STR})
PUBLISHED = obj({
    "game": STR, "version": INT, "live_version": INT, "checksum": STR, "published_at": INT,
    "note": STR,
    "changed": {"type": "boolean",
                "description": "false when the config was live already (nothing published)"}})
CHANGE = {"type": "object", "required": ["path", "op"], "properties": {
    "path": {"type": "string", "description": "JSON path, as in validation problems"},
    "op": {"enum": ["added", "removed", "changed"]}, "from": {}, "to": {}}}


async def get_game_draft(request: web.Request) -> web.Response:
    """The game's draft, with its validation problems (empty when valid)."""
    merchant = await merchant_of(request)
    row = await configs.require_game(request.app[DB], merchant.id, game_id(request))
    if row.draft is None:
        raise NotFound("this game has no draft", game=row.game)
    return web.json_response({"game": row.game, **(row.draft_view() or {}),
                              "live_version": row.live_version, "config": row.draft,
                              "problems": configs.problems_of(row.draft)})


async def put_game_draft(request: web.Request) -> web.Response:
    """Validate the body as a full game config and store it as the draft (422 otherwise)."""
    merchant = await merchant_of(request)
    game = game_id(request)
    raw = await request.read()
    config = decode_json(raw)
    db, now = request.app[DB], now_s(request)

    async def effect(conn: AsyncConnection) -> Written:
        row = await configs.put_draft_in(conn, db, merchant.id, game, config, now)
        return Written({"game": game, **(row.draft_view() or {}),
                        "live_version": row.live_version})

    return await sql_write(request, merchant.id, "putGameDraft", raw, effect)


Publish = Callable[[AsyncConnection, str, str, dict[str, Any], int], Awaitable[configs.Published]]
"""Makes a version live in the caller's transaction: ``(conn, merchant, game, body, now)``."""


async def _go_live(request: web.Request, operation: str, spec: Obj,
                   publish: Publish) -> web.Response:
    """Run ``publish`` as the merchant's keyed SQL write, then reload the game here."""
    merchant = await merchant_of(request)
    game = game_id(request)
    raw = await request.read()
    body = checked(spec, decode_json(raw))
    now = now_s(request)

    async def effect(conn: AsyncConnection) -> Written:
        done = await publish(conn, merchant.id, game, body, now)
        return Written(done.to_json())

    resp = await sql_write(request, merchant.id, operation, raw, effect)
    await request.app[GAMES].reload(merchant.id, game)  # read-your-writes on this process
    return resp


async def publish_game(request: web.Request) -> web.Response:
    """``publishGame``: the draft becomes the next live version."""
    return await _go_live(request, "publishGame", PUBLISH_BODY,
                          lambda conn, merchant, game, body, now: configs.publish_draft_in(
                              conn, merchant, game, now, body["note"]))


async def rollback_game(request: web.Request) -> web.Response:
    """``rollbackGame``: an older version's config goes live again as a new version."""
    return await _go_live(request, "rollbackGame", ROLLBACK_BODY,
                          lambda conn, merchant, game, body, now: configs.rollback_in(
                              conn, merchant, game, body["version"], now, body["note"]))


async def list_game_versions(request: web.Request) -> web.Response:
    merchant = await merchant_of(request)
    return web.json_response(
        await configs.list_versions(request.app[DB], merchant.id, game_id(request)))


async def get_game_version(request: web.Request) -> web.Response:
    merchant = await merchant_of(request)
    game = game_id(request)
    version = configs.parse_version(request.match_info["version"])
    if version is None:
        raise NotFound("game version not found", game=game, version=request.match_info["version"])
    row = await configs.get_version(request.app[DB], merchant.id, game, version)
    live = await request.app[DB].live_version(merchant.id, game)
    return web.json_response({"game": game, **row, "live": live == version})


async def diff_game_versions(request: web.Request) -> web.Response:
    """What changes from config ``a`` to config ``b`` (numbers, ``live`` or ``draft``)."""
    merchant = await merchant_of(request)
    game = game_id(request)
    db = request.app[DB]
    old_label, old = await configs.resolve(db, merchant.id, game, request.match_info["a"])
    new_label, new = await configs.resolve(db, merchant.id, game, request.match_info["b"])
    changes = diff(old, new)
    summary = {op: sum(1 for c in changes if c["op"] == op)
               for op in ("added", "removed", "changed")}
    return web.json_response({"game": game, "from": old_label, "to": new_label,
                              "summary": summary, "changes": changes})


ERRORS = (401, 403, 404)
BASE = "/v1/admin/games/{game}"

DRAFT_SAVED = obj({"game": STR, "updated_at": INT, "checksum": STR,
                   "live_version": nullable(INT)})

OPERATIONS = [
    Operation("getGameDraft", "GET", f"{BASE}/draft", get_game_draft,
              "The game's draft config and its validation problems", auth="merchant",
              tag="merchant", errors=ERRORS, response=obj(
                  {**DRAFT_SAVED["properties"], "config": ANY_OBJECT,
                   "problems": array(ANY_OBJECT)},
                  ["game", "updated_at", "checksum", "live_version", "config", "problems"])),
    Operation("putGameDraft", "PUT", f"{BASE}/draft", put_game_draft,
              "Store a full game config as the draft (creates the game if new); "
              "422 lists every problem with its JSON path and stores nothing",
              auth="merchant", tag="merchant", body=GAME_SPEC, optional_key=True,
              errors=(400, *ERRORS, 409, 422), response=DRAFT_SAVED, config_body=True),
    Operation("publishGame", "POST", f"{BASE}/publish", publish_game,
              "Publish the draft as the next immutable version, live on every server "
              "process within a second (changed: false if it is live already)",
              auth="merchant", tag="merchant", body=PUBLISH_BODY, response=PUBLISHED,
              optional_key=True, errors=(400, *ERRORS, 409, 422)),
    Operation("listGameVersions", "GET", f"{BASE}/versions", list_game_versions,
              "Published versions of a game, newest first, with the live version and draft",
              auth="merchant", tag="merchant", errors=ERRORS, response=obj({
                  "game": STR, "live_version": nullable(INT),
                  "draft": nullable(obj({"updated_at": INT, "checksum": STR})),
                  "versions": array(VERSION_SUMMARY)})),
    Operation("getGameVersion", "GET", f"{BASE}/versions/{{version}}", get_game_version,
              "One published version with its config", auth="merchant", tag="merchant",
              errors=ERRORS, response=obj({
                  "game": STR, "version": INT, "config": ANY_OBJECT, "checksum": STR,
                  "published_at": INT, "note": STR, "live": BOOL})),
    Operation("diffGameVersions", "GET", f"{BASE}/versions/{{a}}/diff/{{b}}",
              diff_game_versions,
              "JSON-path diff from config a to config b (a version number, live or draft)",
              auth="merchant", tag="merchant", errors=ERRORS, response=obj({
                  "game": STR, "from": STR, "to": STR,
                  "summary": obj({"added": INT, "removed": INT, "changed": INT},
                                 description="changes counted by op"),
                  "changes": array(CHANGE)})),
    Operation("rollbackGame", "POST", f"{BASE}/rollback", rollback_game,
              "Make an older version's config live again, published as a new version "
              "(note 'rollback to vN'); the draft is left as it is",
              auth="merchant", tag="merchant", body=ROLLBACK_BODY, response=PUBLISHED,
              optional_key=True, errors=(400, *ERRORS, 409, 422)),
]
