"""Pet and player routes; the rules live in ``mechanics/pet.py``."""

from __future__ import annotations

from aiohttp import web

from economy.schema import ID_PATTERN, Obj, Str
from gameserver.api.common import (
    PLAYER_ERRORS,
    Operation,
    json_ok,
    now_s,
    player_ctx,
    services,
)
from gameserver.api.daily import EMPTY_BODY, loop_rule, run_loop_action
from mechanics import pet

ADOPT_BODY = Obj(fields={
    "species": Str(pattern=ID_PATTERN, max_length=64),
    "name": Str(min_length=1, max_length=pet.PET_NAME_MAX),
})
FEED_BODY = Obj(fields={"food": Str(pattern=ID_PATTERN, max_length=64)})


async def get_player(request: web.Request) -> web.Response:
    """``getPlayer``: read-only; a player who never played sees the starting state.

    Pet stats and produce as of now; check-in streak, tasks and exchange limits in
    the game's timezone."""
    ctx = await player_ctx(request)
    loaded = await services(request).store.read(ctx.ref)
    now = now_s(request)
    state = loaded.state or pet.new_player(ctx.game.config, now)
    view = pet.player_view(state, ctx.game.config, now, ctx.game.tz)
    return json_ok({"player": view, "version": loaded.version,
                    "game_version": ctx.game.version})


async def adopt_pet(request: web.Request) -> web.Response:
    return await run_loop_action(request, ADOPT_BODY, lambda body, ctx, view: loop_rule(
        pet.adopt, pet.AdoptPet(body["species"], body["name"]), ctx.game, view), status=201,
        reminders=True)


async def feed_pet(request: web.Request) -> web.Response:
    return await run_loop_action(request, FEED_BODY, lambda body, ctx, view: loop_rule(
        pet.feed, pet.FeedPet(body["food"]), ctx.game, view), reminders=True)


async def play_with_pet(request: web.Request) -> web.Response:
    """``playWithPet``: the species' play effects and xp, then its cooldown."""
    return await run_loop_action(request, EMPTY_BODY, lambda body, ctx, view: loop_rule(
        pet.play, pet.PlayWithPet(), ctx.game, view), reminders=True)


async def clean_pet(request: web.Request) -> web.Response:
    """``cleanPet``: the species' clean effects and xp, then its cooldown."""
    return await run_loop_action(request, EMPTY_BODY, lambda body, ctx, view: loop_rule(
        pet.clean, pet.CleanPet(), ctx.game, view), reminders=True)


async def collect_produce(request: web.Request) -> web.Response:
    """``collectProduce``: whole units produced while the shopper was away."""
    return await run_loop_action(request, EMPTY_BODY, lambda body, ctx, view: loop_rule(
        pet.collect, pet.CollectProduce(), ctx.game, view, coupons=False), reminders=True)


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
    Operation("playWithPet", "POST", "/v1/games/{game}/pet/play", play_with_pet,
              "Play with the pet: mood and xp, then a cooldown", auth="player",
              tag="shopper", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS),
    Operation("cleanPet", "POST", "/v1/games/{game}/pet/clean", clean_pet,
              "Clean the pet: cleanliness and xp, then a cooldown", auth="player",
              tag="shopper", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS),
    Operation("collectProduce", "POST", "/v1/games/{game}/pet/collect", collect_produce,
              "Collect what the pet produced while the shopper was away", auth="player",
              tag="shopper", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS),
]
