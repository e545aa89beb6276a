"""Pet and player routes; the rules live in ``mechanics/pet.py``."""

from __future__ import annotations

from aiohttp import web

from economy.schema import ID_PATTERN, Obj, Str
from gameserver.api.common import Operation, bind, now_s, player_ctx, run_action
from gameserver.appkeys import STORE
from mechanics import pet

ADOPT_BODY = Obj(fields={
    "species": Str(pattern=ID_PATTERN, max_length=64),
    "name": Str(min_length=1, max_length=pet.PET_NAME_MAX),
})
FEED_BODY = Obj(fields={"food": Str(pattern=ID_PATTERN, max_length=64)})


async def get_player(request: web.Request) -> web.Response:
    """``getPlayer``: read-only; a player who never played sees the starting state."""
    ctx = await player_ctx(request)
    loaded = await request.app[STORE].read(ctx.ref)
    now = now_s(request)
    state = loaded.state or pet.new_player(ctx.game.config, now)
    view = pet.player_view(state, ctx.game.config, now)
    return web.json_response({"player": view, "version": loaded.version,
                              "game_version": ctx.game.version})


async def adopt_pet(request: web.Request) -> web.Response:
    return await run_action(request, ADOPT_BODY, lambda body, ctx, view: bind(
        pet.adopt, pet.AdoptPet(body["species"], body["name"]), ctx.game), status=201)


async def feed_pet(request: web.Request) -> web.Response:
    return await run_action(request, FEED_BODY, lambda body, ctx, view: bind(
        pet.feed, pet.FeedPet(body["food"]), ctx.game))


PLAYER_ERRORS = (400, 401, 403, 404, 409, 422, 429, 503)

OPERATIONS = [
    Operation("getPlayer", "GET", "/v1/games/{game}/me", get_player,
              "The shopper's pet (stats as of now), wallet, inventory and progress",
              auth="player", tag="shopper", errors=(401, 403, 404)),
    Operation("adoptPet", "POST", "/v1/games/{game}/pet", adopt_pet,
              "Adopt a pet of one of the game's species", auth="player", tag="shopper",
              body=ADOPT_BODY, idempotent=True, success=201, errors=PLAYER_ERRORS),
    Operation("feedPet", "POST", "/v1/games/{game}/pet/feed", feed_pet,
              "Feed the pet: pays the food's price, raises its stats and xp",
              auth="player", tag="shopper", body=FEED_BODY, idempotent=True,
              errors=PLAYER_ERRORS),
]
