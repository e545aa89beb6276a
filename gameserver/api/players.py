"""The shopper's own player (``getPlayer``): read-only, every mechanic's view in one.

The view is :func:`mechanics.pet.player_view`; a shopper who never played sees the
starting state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gameserver.api.common import Operation, json_ok, now_s, player_ctx, services
from gameserver.api.schemas import INT, PLAYER, obj
from mechanics import pet


async def get_player(request: web.Request) -> web.Response:
    """``getPlayer``: read-only; a player who never played sees the starting state.

    Pet stats and produce as of now; check-in streak, tasks and exchange limits in
    the game's timezone."""
    ctx = await player_ctx(request)
    loaded = await services(request).store.read(ctx.ref)
    now = now_s(request)
    game = ctx.game.arm_for(ctx.ref.user, loaded.state, now) or ctx.game
    state = loaded.state or pet.new_player(game.config, now)
    view = pet.player_view(state, game.config, now, game.tz)
    body: dict[str, Any] = {"player": view, "version": loaded.version,
                            "game_version": ctx.game.version}
    return json_ok(body)


OPERATIONS = [
    Operation("getPlayer", "GET", "/v1/games/{game}/me", get_player,
              "The shopper's pet (stats as of now), wallet, inventory and progress; in a "
              "game with coupons, how many were won (their states: listMyCoupons)",
              auth="player", tag="shopper", errors=(401, 403, 404),
              response=obj({"player": PLAYER, "version": INT, "game_version": INT})),
]
