"""Red-envelope rain routes: ``grabEnvelope`` (two commits) and ``getEnvelopeRain``
(public).

A grab takes the next envelope of the shopper's pool bucket (the gate, an aggregate)
and credits its amount to the shopper (the second commit), exactly once per
Idempotency-Key (gameserver/state/aggregates_gate.py). Round seeds are made by the server's
RNG (``secrets``) the first time a rain is read or grabbed from, and committed to the
rain's seed aggregate before any amount is computed from them.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from economy.errors import InvalidInput, known_item
from economy.rains import (
    MAX_ENVELOPES,
    MAX_POOL_FEN,
    ROUND_ID_PATTERN,
    SIM_MAX_ENVELOPES,
    Rain,
    RoundTerms,
    round_buckets,
    simulate_round,
    split_pool,
    stock_ref,
)
from economy.schema import Int, Obj, Str
from gameserver.api.common import (
    MERCHANT_PARAM,
    PLAYER_ERRORS,
    PUBLIC_ERRORS,
    Operation,
    json_ok,
    merchant_game,
    player_post,
    public_game,
    read_body,
    reply_response,
    run_gated,
    services,
)
from gameserver.api.merchant_work import run_simulation
from gameserver.api.schemas import obj
from gameserver.appkeys import CLOCK, SETTINGS
from gameserver.games import LiveGame
from gameserver.state.aggregates import AggregateStore, SharedRule, WireCodec
from gameserver.state.aggregates_app import aggregates_of
from gameserver.state.aggregates_gate import register_value_effect
from gameserver.state.keys import AggregateRef
from gameserver.state.singleflight import once
from gameserver.state.store import Rule
from gameserver.state.value import StockView
from mechanics import rains as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

CODEC = WireCodec(rules.PoolBucket.from_wire)
SEEDS_CODEC = WireCodec(rules.RainSeeds.from_wire)
SEEDS_USER = "_rain"
"""The aggregate idempotency 'user' of seed commits (no shopper makes them)."""

GRAB_BODY = Obj(description="The round to grab in (getEnvelopeRain lists them).", fields={
    "round": Str(pattern=ROUND_ID_PATTERN, max_length=24),
})


def _rain(live: LiveGame, rain_id: str) -> Rain:
    return known_item(live.config.rains, rain_id, "rain", "rain")


def _ref(live: LiveGame, kind: str, aggregate: str, shards: int) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, kind, aggregate, shards)


SplitKey = tuple[str, str, RoundTerms]


class SplitCache:
    """Round splits of this process, each computed once per (seed, round, terms).

    A split costs one HMAC per envelope (about 0.4 s for 100,000), so it runs in a
    worker thread, off the loop; the grabs that arrive while it runs await the same
    computation (a single flight) instead of each starting their own. The newest
    ``kept`` splits are kept, the least recently used dropped first, so a round being
    grabbed stays while others come and go. ``computed`` counts the splits computed
    (for metrics and tests)."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.computed = 0
        self._done: OrderedDict[SplitKey, Sequence[int]] = OrderedDict()
        self._flights: dict[SplitKey, asyncio.Future[Sequence[int]]] = {}

    async def get(self, seed: str, round_id: str, terms: RoundTerms) -> Sequence[int]:
        """The split of ``round_id`` under ``seed`` and ``terms``."""
        key = (seed, round_id, terms)
        found = self._done.get(key)
        if found is not None:
            self._done.move_to_end(key)
            return found
        return await once(self._flights, key, lambda: self._compute(key))

    async def _compute(self, key: SplitKey) -> Sequence[int]:
        self.computed += 1
        # 8 bytes an envelope (a tuple of ints takes about 36): 64 splits of 100,000
        # envelopes hold 51 MB, not 230
        split = array("q", await asyncio.to_thread(split_pool, *key))
        self._done[key] = split
        while len(self._done) > self.kept:
            self._done.popitem(last=False)
        return split


SPLITS_KEPT = 64
SPLITS = SplitCache(SPLITS_KEPT)
"""This process's round splits; ``SPLITS.computed`` counts the splits computed."""


async def round_split(seed: str, round_id: str, terms: RoundTerms) -> Sequence[int]:
    """A round's split, computed once per process and seed (:class:`SplitCache`)."""
    return await SPLITS.get(seed, round_id, terms)


async def ensure_seeds(shared: AggregateStore, live: LiveGame, rain: Rain,
                       shards: int) -> rules.RainSeeds:
    """The rain's seeds, committing fresh ones for rounds that have none. Two processes
    racing commit once: the loser's rule sees the winner's seeds and keeps them."""
    ref = _ref(live, rules.SEEDS_KIND, rules.seeds_id(rain.id), shards)
    seeds, _ = await shared.read(ref, SEEDS_CODEC)
    missing = rules.missing_rounds(rain, seeds)
    if not missing:
        return seeds  # type: ignore[no-any-return]
    fresh = {r: secrets.token_hex(32) for r in missing}
    key = "seeds-" + hashlib.sha256("\n".join(missing).encode()).hexdigest()[:32]

    def rule(state: rules.RainSeeds | None, now: int) -> SharedOutcome:
        return rules.add_seeds(state, rain, fresh)

    return await shared.run_then_read(  # type: ignore[no-any-return]
        ref, SEEDS_CODEC, SEEDS_USER, key, rule)


def _grab_effect(owed: dict[str, Any], game: LiveGame, view: StockView) -> Rule:
    config = game.config
    ref = stock_ref(owed["rain"], owed["round"])
    return lambda state, now: rules.apply_grab(state, owed, now, config,
                                               void=view.left.get(ref, 1) <= 0)


register_value_effect(rules.EFFECT, _grab_effect)


async def grab_envelope(request: web.Request) -> web.Response:
    """``grabEnvelope``: the next envelope of the shopper's bucket; a retry replays."""
    post = await player_post(request, GRAB_BODY)
    ctx = post.ctx
    live = ctx.game
    rain = _rain(live, request.match_info["rain"])
    r = rules.round_of(rain, post.body["round"])
    shards = request.app[SETTINGS].shards
    aggs = aggregates_of(request.app, services(request))
    seeds = await ensure_seeds(aggs.store, live, rain, shards)
    entry = seeds.rounds[r.id]
    # only an open round needs its split: a grab of an upcoming or ended round is
    # refused by the gate (or replayed, when its key took an envelope) without it
    amounts = None
    if r.status(int(request.app[CLOCK].now())) == "open":
        amounts = await round_split(entry.seed, r.id, entry.terms)
    index_of = rules.bucket_of(ctx.ref.user, round_buckets(rain.buckets, entry.terms))
    bucket = _ref(live, rules.KIND, rules.bucket_id(rain.id, r.id, index_of), shards)
    user = ctx.ref.user

    def gate(state: PlayerState | None) -> SharedRule:
        balance = rules.balance_of(state, live.config, rain.currency)

        def rule(b: rules.PoolBucket | None, now: int) -> SharedOutcome:
            return rules.grab(b, rain, r, entry, index_of, user, amounts, now, balance)
        return rule

    return reply_response(await run_gated(request, post, bucket, CODEC, gate))


SIMULATE_BODY = Obj(description="A round of the live rain, optionally with other terms.",
                    fields={
    "round": Str(pattern=ROUND_ID_PATTERN, max_length=24),
    "shoppers": Int(minimum=1, maximum=10**8, default=10_000,
                    description="shoppers who grab in the round"),
    "runs": Int(minimum=1, maximum=10_000, default=100, description="splits simulated"),
    "seed": Str(max_length=64, default="0", description="same seed, same report"),
    "pool_fen": Int(minimum=1, maximum=MAX_POOL_FEN, default=None),
    "envelopes": Int(minimum=1, maximum=MAX_ENVELOPES, default=None),
    "min_fen": Int(minimum=1, maximum=MAX_POOL_FEN, default=None),
})


async def simulate_envelope_rain(request: web.Request) -> web.Response:
    """``simulateEnvelopeRain``: envelope sizes and the round's expected cost."""
    live = await merchant_game(request)
    body, _ = await read_body(request, SIMULATE_BODY)
    rain = _rain(live, request.match_info["rain"])
    r = rules.round_of(rain, body["round"])
    base = r.terms()
    terms = RoundTerms(body["pool_fen"] or base.pool_fen, body["envelopes"] or base.envelopes,
                       body["min_fen"] or base.min_fen)
    if terms.pool_fen < terms.envelopes * terms.min_fen:
        raise InvalidInput("the pool must cover every envelope's minimum", field="pool_fen")
    if body["runs"] * terms.envelopes > SIM_MAX_ENVELOPES:  # bounded CPU per request
        raise InvalidInput(f"runs × envelopes must be ≤ {SIM_MAX_ENVELOPES}", field="runs")
    report = await run_simulation(request, live.merchant, simulate_round, terms, r.id,
                                  body["shoppers"], r.grab_limit, body["runs"], body["seed"])
    return json_ok({"rain": rain.id, "round": r.id, "pool_fen": terms.pool_fen,
                    "envelopes": terms.envelopes, "min_fen": terms.min_fen,
                    "grab_limit": r.grab_limit, **report})


PoolStates = dict[str, list[rules.PoolBucket | None]]
ViewCache = dict[tuple[str, str, str, str], tuple[int, rules.RainSeeds, PoolStates]]
_VIEWS: weakref.WeakKeyDictionary[web.Application, ViewCache] = weakref.WeakKeyDictionary()
"""Per app (so apps of one process, as in tests, never share reads)."""
VIEWS_KEPT = 1024


async def _pool_states(request: web.Request, live: LiveGame, rain: Rain,
                       now: int) -> tuple[rules.RainSeeds, PoolStates]:
    """The rain's seeds and every round's bucket states, read at most once a second per
    process and rain: the midnight crowd polls this view, and a read sums all buckets
    (one pipelined round trip carrying every bucket's state)."""
    svc = services(request)
    key = (svc.keys.prefix, live.merchant, live.game, rain.id)
    views = _VIEWS.setdefault(request.app, {})
    cached = views.get(key)
    if cached is not None and cached[0] == now and not rules.missing_rounds(rain, cached[1]):
        return cached[1], cached[2]
    shards = request.app[SETTINGS].shards
    shared = aggregates_of(request.app, svc).store
    seeds = await ensure_seeds(shared, live, rain, shards)
    counts = {rid: round_buckets(rain.buckets, seeds.rounds[rid].terms) for rid in rain.rounds}
    refs = [_ref(live, rules.KIND, rules.bucket_id(rain.id, rid, i), shards)
            for rid, n in counts.items() for i in range(n)]
    states = iter(await shared.read_many(refs, CODEC))
    per_round = {rid: [next(states) for _ in range(n)] for rid, n in counts.items()}
    if len(views) >= VIEWS_KEPT:
        views.clear()
    views[key] = (now, seeds, per_round)
    return seeds, per_round


async def get_envelope_rain(request: web.Request) -> web.Response:
    """``getEnvelopeRain``: rounds with what is left, seed hashes, and revealed seeds.
    Public; a load-test token reads the shadow pool its grabs went to. Counts are at
    most a second old (:func:`_pool_states`); without a token, caches may keep the
    answer a second too."""
    live = await public_game(request)
    rain = _rain(live, request.match_info["rain"])
    now = int(request.app[CLOCK].now())
    seeds, per_round = await _pool_states(request, live, rain, now)
    resp = json_ok(rules.rain_view(rain, seeds, per_round, now))
    if not request.headers.get("Authorization"):
        resp.headers["Cache-Control"] = "public, max-age=1"
    return resp


_ROUND = obj({
    "round": {"type": "string"},
    "buckets": {"type": "integer", "description": "aggregates the round's pool is split over"},
    "status": {"type": "string", "enum": ["upcoming", "open", "empty", "ended"]},
    "starts_at": {"type": "integer"}, "ends_at": {"type": "integer"},
    "pool_fen": {"type": "integer"}, "envelopes": {"type": "integer"},
    "min_fen": {"type": "integer"}, "grab_limit": {"type": "integer"},
    "envelopes_left": {"type": "integer"}, "pool_left_fen": {"type": "integer"},
    "granted_fen": {"type": "integer"},
    "returned_fen": {"type": "integer", "description": "after the end: pool − granted"},
    "seed_hash": {"type": ["string", "null"]},
    "seed": {"type": ["string", "null"], "description": "revealed from ends_at on"},
})
RAIN_RESPONSE = obj({
    "rain": {"type": "string"}, "title": {"type": "string"},
    "kind": {"type": "string", "enum": ["cash", "coupon"]}, "currency": {"type": "string"},
    "server_time": {"type": "integer"},
    "rounds": {"type": "array", "items": _ROUND},
})
GRAB_RESPONSE = obj({
    "rain": {"type": "string"}, "round": {"type": "string"},
    "amount_fen": {"type": "integer"},
    "nonce": {"type": "integer", "description": "the envelope's index in the round's split"},
    "kind": {"type": "string"}, "currency": {"type": "string"},
    "seed_hash": {"type": "string"}, "reveal_at": {"type": "integer"},
    "grabs_left": {"type": "integer"},
    "uncredited_fen": {"type": "integer", "description": "present only when the balance "
                       "grew past what the grab saw and could not hold the whole "
                       "envelope: the part not credited (amount_fen is what was)"},
    "void": {"type": "boolean", "description": "present (true) only when the envelope "
             "could not be credited: SQL had no envelope of the round left"},
    "wallet": {"type": "object", "additionalProperties": {"type": "integer"}},
}, ["rain", "round", "amount_fen", "nonce", "kind", "currency", "seed_hash", "reveal_at",
    "grabs_left", "wallet"])

SIMULATE_RESPONSE = obj({
    "rain": {"type": "string"}, "round": {"type": "string"},
    "pool_fen": {"type": "integer"}, "envelopes": {"type": "integer"},
    "min_fen": {"type": "integer"}, "grab_limit": {"type": "integer"},
    "runs": {"type": "integer"}, "shoppers": {"type": "integer"},
    "envelopes_grabbed": {"type": "integer"},
    "sizes_fen": {"type": "object", "additionalProperties": {"type": "number"}},
    "at_minimum": {"type": "number", "description": "share of envelopes at the minimum"},
    "expected_cost_fen": {"type": "number"},
    "expected_cost_per_shopper_fen": {"type": "number"},
    "returned_fen": {"type": "number"}, "chance_of_envelope": {"type": "number"},
})

OPERATIONS = [
    Operation("getEnvelopeRain", "GET", "/v1/games/{game}/rains/{rain}", get_envelope_rain,
              "Public: the rain's rounds, envelopes and pool left, each round's seed hash, "
              "and its seed from the round's end on",
              auth="public", tag="plays", errors=PUBLIC_ERRORS, params=MERCHANT_PARAM,
              response=RAIN_RESPONSE),
    Operation("grabEnvelope", "POST", "/v1/games/{game}/rains/{rain}/grab", grab_envelope,
              "Grab the next envelope of a round while it is open; its amount is "
              "verifiable from the seed revealed after the round",
              auth="player", tag="plays", body=GRAB_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=GRAB_RESPONSE),
    Operation("simulateEnvelopeRain", "POST", "/v1/admin/games/{game}/rains/{rain}/simulate",
              simulate_envelope_rain,
              "Simulate a round of the live rain (or other terms): the distribution of "
              "envelope sizes and the expected cost per shopper",
              auth="merchant", tag="merchant", body=SIMULATE_BODY,
              errors=(400, 401, 403, 404, 422, 429), response=SIMULATE_RESPONSE),
]
