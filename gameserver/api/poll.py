"""Voting routes: ``castVote`` (a two-commit action) and ``getPoll`` (public).

``castVote`` counts the vote in the shopper's poll bucket (the gate) and then pays
the price and grants the reward on the shopper (the second commit), exactly once per
Idempotency-Key (gameserver/aggregates_gate.py). ``getPoll`` sums the buckets.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from economy.errors import UnknownItem
from economy.poll import Poll
from economy.schema import Obj, Str
from gameserver.aggregates import SharedRule, WireCodec
from gameserver.aggregates_app import aggregates_of
from gameserver.aggregates_gate import register_effect
from gameserver.api.common import (
    PLAYER_ERRORS,
    Operation,
    idempotency_key,
    json_ok,
    player_ctx,
    public_game,
    read_body,
    reply_response,
    request_hash,
    services,
)
from gameserver.appkeys import CLOCK, SETTINGS
from gameserver.games import LiveGame
from gameserver.keys import AggregateRef
from gameserver.store import Rule
from mechanics import poll as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

CODEC = WireCodec(rules.PollBucket.from_wire)

VOTE_BODY = Obj(description="The option voted for.", fields={
    "option": Str(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", max_length=64),
})


def _poll(live: LiveGame, poll_id: str) -> Poll:
    poll = live.config.polls.get(poll_id)
    if poll is None:
        raise UnknownItem(f"unknown poll {poll_id!r}", kind="poll", id=poll_id,
                          known=sorted(live.config.polls))
    return poll


def _bucket_ref(live: LiveGame, poll: Poll, bucket: int, shards: int) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, rules.KIND,
                           rules.bucket_id(poll.id, bucket), shards)


def _vote_effect(owed: dict[str, Any], game: LiveGame) -> Rule:
    config = game.config
    return lambda state, now: rules.apply_vote(state, owed, now, config)


register_effect(rules.EFFECT, _vote_effect)


async def cast_vote(request: web.Request) -> web.Response:
    """``castVote``: one vote for ``option``; a retry with the key replays."""
    ctx = await player_ctx(request)
    key = idempotency_key(request)
    body, raw = await read_body(request, VOTE_BODY)
    live = ctx.game
    poll = _poll(live, request.match_info["poll"])
    shards = request.app[SETTINGS].shards
    bucket = _bucket_ref(live, poll, rules.bucket_of(ctx.ref.user, poll.buckets), shards)
    user, option, tz, config = ctx.ref.user, body["option"], live.tz, live.config

    def gate(state: PlayerState | None) -> SharedRule:
        def rule(b: rules.PollBucket | None, now: int) -> SharedOutcome:
            rules.check_price(state, poll, config, now)
            return rules.cast_vote(b, poll, user, option, now, tz)
        return rule

    svc = services(request)
    reply = await aggregates_of(request.app, svc).actions.run(
        ctx.ref, bucket, CODEC, key, request_hash(request, raw), live, gate)
    return reply_response(reply)




async def get_poll(request: web.Request) -> web.Response:
    """``getPoll``: options with live tallies, status, and the frozen result once closed.
    Public; a load-test token reads the shadow tallies its votes went to."""
    live = await public_game(request)
    poll = _poll(live, request.match_info["poll"])
    shards = request.app[SETTINGS].shards
    refs = [_bucket_ref(live, poll, i, shards) for i in range(poll.buckets)]
    store = aggregates_of(request.app, services(request)).store
    buckets = await store.read_many(refs, CODEC)
    return json_ok(rules.poll_view(poll, buckets, int(request.app[CLOCK].now())))


_OPTION = {"type": "object", "properties": {
    "id": {"type": "string"}, "label": {"type": "string"}, "votes": {"type": "integer"}}}
POLL_RESPONSE: dict[str, Any] = {"type": "object", "properties": {
    "poll": {"type": "string"}, "title": {"type": "string"},
    "status": {"type": "string", "enum": ["upcoming", "open", "closed"]},
    "opens_at": {"type": "integer"}, "closes_at": {"type": "integer"},
    "server_time": {"type": "integer"}, "votes_per_day": {"type": "integer"},
    "options": {"type": "array", "items": _OPTION},
    "total": {"type": "integer", "description": "accepted votes (Σ of the options' votes)"},
    "result": {"description": "null until the close; then the frozen winners and total"},
}}
VOTE_RESPONSE: dict[str, Any] = {"type": "object", "properties": {
    "poll": {"type": "string"}, "option": {"type": "string"},
    "votes_today": {"type": "integer"}, "votes_left_today": {"type": "integer"},
    "wallet": {"type": "object", "additionalProperties": {"type": "integer"}},
}}

OPERATIONS = [
    Operation("castVote", "POST", "/v1/games/{game}/polls/{poll}/vote", cast_vote,
              "Vote for one option (votes per shopper per day, optional price and reward); "
              "counted exactly once per Idempotency-Key",
              auth="player", tag="plays", body=VOTE_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=VOTE_RESPONSE),
    Operation("getPoll", "GET", "/v1/games/{game}/polls/{poll}", get_poll,
              "Public: options with live tallies, open and close times, and the result "
              "frozen at the close",
              auth="none", tag="plays", errors=(401, 403, 404, 422),
              params={"merchant": "the merchant's id (needed without a player token)"},
              response=POLL_RESPONSE),
]
