"""Pet routes: adopt, feed, play, clean, collect; the rules live in ``mechanics/pet.py``.

Each action queues the player's next reminders with its commit (pet hungry,
produce full)."""

from __future__ import annotations

from aiohttp import web

from economy.schema import ID_PATTERN, Obj, Str
from gameserver.api.common import EMPTY_BODY, PLAYER_ERRORS, Operation, run_action
from gameserver.api.schemas import COUNTS, STR, array, with_player
from gameserver.services import bind
from mechanics import pet

ADOPT_BODY = Obj(fields={
    "species": Str(pattern=ID_PATTERN, max_length=64),
    "name": Str(min_length=1, max_length=pet.PET_NAME_MAX),
})
STAGED = with_player({"stages": {**array(STR), "description": (
    "the growth stages reached by this action (their rewards granted)")}})
"""feed, play and clean: the stages reached and the player after the action."""
FEED_BODY = Obj(fields={"food": Str(pattern=ID_PATTERN, max_length=64)})


async def adopt_pet(request: web.Request) -> web.Response:
    return await run_action(request, ADOPT_BODY, lambda body, ctx: bind(
        pet.adopt, pet.AdoptPet(body["species"], body["name"]), ctx), status=201,
        reminders=True)


async def feed_pet(request: web.Request) -> web.Response:
    return await run_action(request, FEED_BODY, lambda body, ctx: bind(
        pet.feed, pet.FeedPet(body["food"]), ctx), reminders=True)


async def play_with_pet(request: web.Request) -> web.Response:
    """``playWithPet``: the species' play effects and xp, then its cooldown."""
    return await run_action(request, EMPTY_BODY, lambda body, ctx: bind(
        pet.play, pet.PlayWithPet(), ctx), reminders=True)


async def clean_pet(request: web.Request) -> web.Response:
    """``cleanPet``: the species' clean effects and xp, then its cooldown."""
    return await run_action(request, EMPTY_BODY, lambda body, ctx: bind(
        pet.clean, pet.CleanPet(), ctx), reminders=True)


async def collect_produce(request: web.Request) -> web.Response:
    """``collectProduce``: whole units produced while the shopper was away."""
    return await run_action(request, EMPTY_BODY, lambda body, ctx: bind(
        pet.collect, pet.CollectProduce(), ctx), reminders=True)


OPERATIONS = [
    Operation("adoptPet", "POST", "/v1/games/{game}/pet", adopt_pet,
              "Adopt a pet of one of the game's species", auth="player", tag="shopper",
              body=ADOPT_BODY, idempotent=True, success=201, errors=PLAYER_ERRORS,
              response=with_player({})),
    Operation("feedPet", "POST", "/v1/games/{game}/pet/feed", feed_pet,
              "Feed the pet: pays the food's price, raises its stats and xp",
              auth="player", tag="shopper", body=FEED_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=STAGED),
    Operation("playWithPet", "POST", "/v1/games/{game}/pet/play", play_with_pet,
              "Play with the pet: mood and xp, then a cooldown", auth="player",
              tag="shopper", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS,
              response=STAGED),
    Operation("cleanPet", "POST", "/v1/games/{game}/pet/clean", clean_pet,
              "Clean the pet: cleanliness and xp, then a cooldown", auth="player",
              tag="shopper", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS,
              response=STAGED),
    Operation("collectProduce", "POST", "/v1/games/{game}/pet/collect", collect_produce,
              "Collect what the pet produced while the shopper was away", auth="player",
              tag="shopper", body=EMPTY_BODY, idempotent=True, errors=PLAYER_ERRORS,
              response=with_player({"collected": COUNTS})),
]
