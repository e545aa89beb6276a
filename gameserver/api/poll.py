"""Voting routes: ``castVote`` (a two-commit action) and ``getPoll`` (public).

``castVote`` counts the vote in the shopper's poll bucket (the gate) and then pays
the price and grants the reward on the shopper (the second commit), exactly once per
Idempotency-Key (gameserver/state/aggregates_gate.py). ``getPoll`` sums the buckets.
"""

from __future__ import annotations

from aiohttp import web

from economy.errors import known_item
from economy.poll import Poll
from economy.schema import Obj, Str
from gameserver.api.common import (
    MERCHANT_PARAM,
    PLAYER_ERRORS,
    PUBLIC_ERRORS,
    Operation,
    json_ok,
    now_s,
    player_post,
    public_game,
    reply_response,
    run_gated,
    services,
)
from gameserver.api.schemas import COUNTS, INT, STR, array, nullable, obj
from gameserver.api.serial import one_at_a_time
from gameserver.appkeys import SETTINGS
from gameserver.games import LiveGame
from gameserver.http.errors import ActionInProgress
from gameserver.state.aggregates import SharedRule, WireCodec
from gameserver.state.aggregates_app import aggregates_of
from gameserver.state.aggregates_gate import register_apply
from gameserver.state.keys import AggregateRef
from mechanics import poll as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

CODEC = WireCodec(rules.PollBucket.from_wire)

VOTE_BODY = Obj(description="The option voted for.", fields={
    "option": Str(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", max_length=64),
})


def _poll(live: LiveGame, poll_id: str) -> Poll:
    return known_item(live.config.polls, poll_id, "poll", "poll")


def _bucket_ref(live: LiveGame, poll: Poll, bucket: int, shards: int) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, rules.KIND,
                           rules.bucket_id(poll.id, bucket), shards)


register_apply(rules.EFFECT, rules.apply_vote)


async def cast_vote(request: web.Request) -> web.Response:
    """``castVote``: one vote for ``option``; a retry with the key replays."""
    post = await player_post(request, VOTE_BODY)
    ctx, body = post.ctx, post.body
    live = ctx.game
    poll = _poll(live, request.match_info["poll"])
    shards = request.app[SETTINGS].shards
    bucket = _bucket_ref(live, poll, rules.bucket_of(ctx.ref.user, poll.buckets), shards)
    user, option, tz, config = ctx.ref.user, body["option"], live.tz, live.config

    def gate(state: PlayerState | None) -> SharedRule:
        def rule(b: rules.PollBucket | None, now: int) -> SharedOutcome:
            rules.check_ballot(poll, option, now)
            rules.check_price(state, poll, config, now)
            return rules.cast_vote(b, poll, user, option, now, tz)
        return rule

    if not poll.cost:
        return reply_response(await run_gated(request, post, bucket, CODEC, gate))
    # A price is checked against the shopper as peeked: their priced votes (on any poll
    # of the game, one wallet) go one at a time, or a burst would all pass the check and
    # leave debts (gameserver/api/serial.py).
    async with one_at_a_time(request, f"vote:{live.merchant}:{live.game}:{user}",
                             lambda: ActionInProgress("vote")):
        return reply_response(await run_gated(request, post, bucket, CODEC, gate))


async def get_poll(request: web.Request) -> web.Response:
    """``getPoll``: options with live tallies, status, and the frozen result once closed.
    Public; a load-test token reads the shadow tallies its votes went to."""
    live = await public_game(request)
    poll = _poll(live, request.match_info["poll"])
    shards = request.app[SETTINGS].shards
    refs = [_bucket_ref(live, poll, i, shards) for i in range(poll.buckets)]
    store = aggregates_of(request.app, services(request)).store
    buckets = await store.read_many(refs, CODEC)
    return json_ok(rules.poll_view(poll, buckets, now_s(request)))


_OPTION = obj({"id": STR, "label": STR, "votes": INT})
POLL_RESPONSE = obj({
    "poll": STR, "title": STR,
    "status": {"type": "string", "enum": ["upcoming", "open", "closed"]},
    "opens_at": INT, "closes_at": INT, "server_time": INT, "votes_per_day": INT,
    "cost": {**COUNTS, "description": "what a vote costs: currency → amount"},
    "reward": {**COUNTS, "description": "what a vote earns: currency → amount"},
    "options": array(_OPTION),
    "total": {"type": "integer", "description": "accepted votes (Σ of the options' votes)"},
    "result": {**nullable(obj({"frozen_at": INT, "total": INT, "winners": array(STR)})),
               "description": "null until the close; then the frozen winners and total"},
})
VOTE_RESPONSE = obj({
    "poll": STR, "option": STR, "votes_today": INT, "votes_left_today": INT,
    "wallet": COUNTS,
})

OPERATIONS = [
    Operation("castVote", "POST", "/v1/games/{game}/polls/{poll}/vote", cast_vote,
              "Vote for one option (votes per shopper per day, optional price and reward); "
              "counted exactly once per Idempotency-Key",
              auth="player", tag="plays", body=VOTE_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=VOTE_RESPONSE),
    Operation("getPoll", "GET", "/v1/games/{game}/polls/{poll}", get_poll,
              "Public: options with live tallies, open and close times, and the result "
              "frozen at the close",
              auth="public", tag="plays", errors=PUBLIC_ERRORS, params=MERCHANT_PARAM,
              response=POLL_RESPONSE),
]
