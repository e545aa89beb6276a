"""``listWebhookEvents``: the events petbox owes a game's merchant backend, with their
delivery state (see :mod:`gameserver.jobs.webhooks`)."""

from __future__ import annotations

from aiohttp import web

from economy.errors import InvalidInput
from economy.schema import Enum
from gameserver.api.common import Operation, game_id, limit_param, merchant_of, query_int
from gameserver.appkeys import DB
from gameserver.db import configs
from gameserver.jobs.webhooks import OUTBOX

STATES = ("pending", "delivered", "failed")
MAX_LIMIT = 500


def _limit(request: web.Request) -> int:
    limit = query_int(request, "limit", 1, MAX_LIMIT)
    return 100 if limit is None else limit


def _state(request: web.Request) -> str | None:
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}", problems=[
            {"path": "$.state", "message": f"must be one of {', '.join(STATES)}"}])
    return state


async def list_webhook_events(request: web.Request) -> web.Response:
    merchant = await merchant_of(request)
    game = game_id(request)
    limit, state = _limit(request), _state(request)
    await configs.require_game(request.app[DB], merchant.id, game)
    events = await request.app[OUTBOX].list(merchant.id, game, state=state, limit=limit)
    return web.json_response({"events": [e.public() for e in events]})


EVENT = {"type": "object", "required": ["key", "event", "game", "data", "created_at", "state",
                                        "tries", "delivered_at"], "properties": {
    "key": {"type": "string"}, "event": {"type": "string"}, "game": {"type": "string"},
    "data": {"type": "object"}, "created_at": {"type": "integer"},
    "state": {"type": "string", "enum": list(STATES)}, "tries": {"type": "integer"},
    "delivered_at": {"type": ["integer", "null"]}}}

OPERATIONS = [
    Operation("listWebhookEvents", "GET", "/v1/admin/games/{game}/webhooks",
              list_webhook_events,
              "Events owed to the merchant's backend (signed POSTs to the game's webhook_url, "
              "at least once, deduped by X-Petbox-Delivery), newest first; ?state= pending, "
              "delivered or failed; ?limit= 1..500 (default 100)",
              auth="merchant", tag="merchant", errors=(401, 404, 422),
              params={"state": Enum(values=STATES, description="pending, delivered or "
                                                               "failed (default: all)"),
                      "limit": limit_param(MAX_LIMIT, f"how many events, 1..{MAX_LIMIT} "
                                                      "(default 100)")},
              response={"type": "object", "required": ["events"], "properties": {
                  "events": {"type": "array", "items": EVENT}}}),
]
