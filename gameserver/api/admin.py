"""Merchant routes (``/v1/admin/...``): always scoped to the key's own merchant.

A game, version or player of another merchant is reported as 404, never 403, so
an API key cannot probe what other merchants have.
"""

from __future__ import annotations

from aiohttp import web

from economy.errors import NotFound
from gameserver.api.common import Operation, game_id, merchant_of, now_s
from gameserver.appkeys import DB, GAMES, SETTINGS, STORE
from gameserver.keys import USER_RE, PlayerRef, shard_of
from mechanics import pet


async def get_player_admin(request: web.Request) -> web.Response:
    """The player as the merchant sees it, with the most recent ledger entries in SQL."""
    merchant = await merchant_of(request)
    live = await request.app[GAMES].get(merchant.id, game_id(request))
    user = request.match_info["user"]
    if not USER_RE.fullmatch(user):
        raise NotFound("player not found", user=user)
    ref = PlayerRef(merchant.id, live.game, user,
                    shard_of(merchant.id, user, request.app[SETTINGS].shards))
    loaded = await request.app[STORE].read(ref)
    if loaded.state is None:
        raise NotFound("player not found", user=user)
    ledger = await request.app[DB].recent_ledger(ref, limit=50)
    view = pet.player_view(loaded.state, live.config, now_s(request))
    return web.json_response({"user": user, "player": view, "version": loaded.version,
                              "ledger": ledger})


async def list_game_versions(request: web.Request) -> web.Response:
    merchant = await merchant_of(request)
    game = game_id(request)
    versions = await request.app[DB].list_versions(merchant.id, game)
    if not versions:
        raise NotFound("game not found", game=game)
    live = await request.app[DB].live_version(merchant.id, game)
    return web.json_response({"game": game, "live_version": live, "versions": versions})


OPERATIONS = [
    Operation("getPlayerAdmin", "GET", "/v1/admin/games/{game}/players/{user}",
              get_player_admin, "A player as the merchant sees it, with recent ledger",
              auth="merchant", tag="merchant", errors=(401, 403, 404)),
    Operation("listGameVersions", "GET", "/v1/admin/games/{game}/versions", list_game_versions,
              "Published versions of a game, newest first", auth="merchant", tag="merchant",
              errors=(401, 403, 404)),
]
