"""``erasePlayer``: a shopper's personal data of one game, erased at the merchant's
request (PIPL art. 47; docs/privacy.md). The work is :mod:`gameserver.state.erasure`;
this room keys it like every merchant write that changes a player (``grantPlayer``):
the merchant's Idempotency-Key is required and kept in SQL, so a retry replays the
first response and erases once. Shadow requests erase in the shadow keyspace only."""

from __future__ import annotations

from aiohttp import web

from economy.errors import NotFound
from economy.schema import Obj
from gameserver.api.admin_keys import keyed_run
from gameserver.api.common import (
    Operation,
    game_id,
    idempotency_key,
    merchant_of,
    read_body,
    services,
)
from gameserver.api.schemas import COUNTS, INT, STR, obj
from gameserver.appkeys import CLOCK, GAMES, REDIS, SETTINGS
from gameserver.services import Services
from gameserver.state.erasure import Eraser
from gameserver.state.keys import USER_RE, PlayerRef, shard_of
from gameserver.state.store import Reply, encode_json


def eraser(app: web.Application, svc: Services) -> Eraser:
    """The eraser of ``svc``'s keyspace (the real one, or the shadow one)."""
    return Eraser.of(app[SETTINGS], app[REDIS], svc.keys, svc.db, svc.store, app[CLOCK])


ERASE_BODY = Obj(fields={})


async def erase_player(request: web.Request) -> web.Response:
    """``erasePlayer``: erase one shopper of one game (see the module docstring)."""
    merchant = await merchant_of(request, shadow=True)
    live = await request.app[GAMES].get(merchant.id, game_id(request))
    key = idempotency_key(request)
    _body, raw = await read_body(request, ERASE_BODY)  # {}: nothing to say yet
    user = request.match_info["user"]
    if not USER_RE.fullmatch(user):
        raise NotFound("player not found", user=user)
    ref = PlayerRef(live.merchant, live.game, user,
                    shard_of(live.merchant, user, request.app[SETTINGS].shards))
    svc = services(request)

    async def run() -> Reply:
        done = await eraser(request.app, svc).erase(ref, live)
        return Reply(200, encode_json(done))

    return await keyed_run(request, live.merchant, "erasePlayer", key, raw, run)


OPERATIONS = [
    Operation("erasePlayer", "POST", "/v1/admin/games/{game}/players/{user}/erase",
              erase_player, "Erase a shopper's personal data of this game (PIPL art. 47)",
              auth="merchant", tag="merchant", body=ERASE_BODY, idempotent=True,
              description="Needs an Idempotency-Key (400 idempotency_key_required without "
                          "one); a retry with the same key answers the first response. "
                          "Deletes the shopper's play state, stored responses, experiment "
                          "exposures, reminders, board places and Redis records; keeps the "
                          "ledger, grants, draws, revealed seeds, orders, refunds and "
                          "shared plays under a pseudonym, and renames them to it in "
                          "the shared states they played on (docs/privacy.md). 409 "
                          "erase_unsettled (nothing changed) while the shopper holds a "
                          "pending prize, an open group, a held sale unit, an assist of "
                          "theirs that may still complete or a shared "
                          "play's follow-up; 409 erase_pending when their last changes are "
                          "not in SQL within PETBOX_ERASE_WAIT (retry). Afterwards the "
                          "shopper's actions are 409 player_erased for "
                          "PETBOX_ERASE_TOMBSTONE seconds; then they start as a new player.",
              errors=(400, 401, 403, 404, 409, 422, 503),
              response=obj({"pseudonym": STR, "deleted": COUNTS,
                            "pseudonymised": COUNTS, "redis_keys_deleted": INT,
                            "refused_until": INT})),
]
