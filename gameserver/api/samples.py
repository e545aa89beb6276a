"""Sampling routes: ``getSampleCampaign`` (public), ``applySample``, ``listMySamples``,
``reviewSample``, and for the merchant ``drawSampleWinners`` and
``getSampleCampaignAdmin``.

An application is one commit on the shopper's application bucket (an aggregate; it owes
the shopper nothing). A review is two commits (the bucket records the report once, the
shopper gets the reward; gameserver/state/aggregates_gate.py). The lottery seed is made by
the server's RNG (``secrets``) on the campaign's first read and committed before any
application can be taken, so its hash is public for the whole window.

Winners are announced to the merchant through the signed webhook outbox
(gameserver/jobs/webhooks.py), event ``sample.won`` with key
``sample-won:<game>:<campaign>:<user>``: a first-come winner when their application
commits (again on a retry of it), lottery winners when the draw commits (again on any
later ``drawSampleWinners``). The outbox stores a key once, so re-emitting is harmless.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

from economy.errors import known_item
from economy.samples import REPORT_MAX, Campaign
from economy.schema import Obj, Str
from gameserver.api.common import (
    EMPTY_BODY,
    MERCHANT_PARAM,
    PLAYER_ERRORS,
    PUBLIC_ERRORS,
    SHADOW_REQUEST,
    Operation,
    idempotency_key,
    json_ok,
    merchant_game,
    now_s,
    player_ctx,
    player_post,
    public_game,
    read_body,
    reply_response,
    run_gated,
    services,
)
from gameserver.api.schemas import BOOL, COUNTS, INT, STR, array, nullable, obj
from gameserver.appkeys import CLOCK, SETTINGS
from gameserver.games import LiveGame
from gameserver.jobs.webhooks import OUTBOX, Outbox
from gameserver.state.aggregates import AggregateStore, SharedRule, WireCodec
from gameserver.state.aggregates_app import aggregates_of
from gameserver.state.aggregates_gate import register_apply
from gameserver.state.keys import AggregateRef
from gameserver.state.store import Reply
from mechanics import samples as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

CODEC = WireCodec(rules.AppBucket.from_wire)
META_CODEC = WireCodec(rules.CampaignMeta.from_wire)
SYSTEM_USER = "_sample"
"""The aggregate idempotency 'user' of seed and draw commits (no shopper makes them)."""

REVIEW_BODY = Obj(description="The review report.", fields={
    "report": Str(min_length=1, max_length=REPORT_MAX),
})


def _campaign(live: LiveGame, campaign_id: str) -> Campaign:
    return known_item(live.config.samples, campaign_id, "campaign", "campaign")


def _meta_ref(live: LiveGame, campaign: Campaign, shards: int) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, rules.META_KIND, campaign.id, shards)


def _bucket_ref(live: LiveGame, campaign: Campaign, bucket: int, shards: int) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, rules.KIND,
                           rules.bucket_id(campaign.id, bucket), shards)


async def ensure_meta(shared: AggregateStore, live: LiveGame, campaign: Campaign,
                      shards: int) -> rules.CampaignMeta:
    """The campaign's meta, committing a fresh seed first if it has none (two processes
    racing commit once; the loser's rule keeps the winner's seed)."""
    ref = _meta_ref(live, campaign, shards)
    meta, _ = await shared.read(ref, META_CODEC)
    if meta is not None:
        return meta  # type: ignore[no-any-return]
    seed = secrets.token_hex(32)

    def rule(state: rules.CampaignMeta | None, now: int) -> SharedOutcome:
        return rules.make_meta(state, seed)

    return await shared.run_then_read(  # type: ignore[no-any-return]
        ref, META_CODEC, SYSTEM_USER, "seed", rule)


async def _buckets(shared: AggregateStore, live: LiveGame, campaign: Campaign,
                   shards: int) -> list[rules.AppBucket | None]:
    refs = [_bucket_ref(live, campaign, i, shards) for i in range(campaign.lanes)]
    return await shared.read_many(refs, CODEC)


WON_EVENT = "sample.won"


def _outbox(request: web.Request) -> Outbox:
    """The outbox of this request's keyspace: load-test traffic emits into the shadow
    database (whose events are never delivered), real traffic into the app's."""
    if request.get(SHADOW_REQUEST, False):
        return Outbox(services(request).db, request.app[CLOCK])
    return request.app[OUTBOX]


async def announce(request: web.Request, live: LiveGame, campaign: Campaign,
                   winners: list[tuple[str, int]]) -> None:
    """Tell the merchant whom to ship a sample to (once per winner, by key)."""
    outbox = _outbox(request)
    for user, won in winners:
        await outbox.emit(merchant=live.merchant, game=live.game, event=WON_EVENT,
                          key=f"sample-won:{live.game}:{campaign.id}:{user}", data={
                              "campaign": campaign.id, "sku": campaign.sku, "user": user,
                              "won_at": won, "mode": campaign.mode,
                              "review_until": (won + campaign.review.within_s
                                               if campaign.review else None)})


register_apply(rules.EFFECT, rules.apply_review)


async def apply_sample(request: web.Request) -> web.Response:
    """``applySample``: one application, if eligible and in the window; a retry replays."""
    post = await player_post(request, EMPTY_BODY)
    ctx = post.ctx
    live = ctx.game
    campaign = _campaign(live, request.match_info["campaign"])
    shards = request.app[SETTINGS].shards
    aggs = aggregates_of(request.app, services(request))
    await ensure_meta(aggs.store, live, campaign, shards)  # the seed is public before
    index_of = rules.bucket_of(ctx.ref.user, campaign.lanes)
    bucket = _bucket_ref(live, campaign, index_of, shards)
    user = ctx.ref.user

    def gate(state: PlayerState | None) -> SharedRule:
        def rule(b: rules.AppBucket | None, now: int) -> SharedOutcome:
            return rules.apply(b, campaign, index_of, user, state, now)
        return rule

    reply = await run_gated(request, post, bucket, CODEC, gate)
    await _announce_first_come(request, live, campaign, user, reply)
    return reply_response(reply)


async def _announce_first_come(request: web.Request, live: LiveGame, campaign: Campaign,
                               user: str, reply: Reply) -> None:
    if reply.status != 200:
        return
    body = orjson.loads(reply.body)
    if body.get("status") == "won":
        await announce(request, live, campaign, [(user, int(body["applied_at"]))])


async def review_sample(request: web.Request) -> web.Response:
    """``reviewSample``: a winner's report, once; the reward follows on the shopper."""
    post = await player_post(request, REVIEW_BODY)
    ctx, body = post.ctx, post.body
    live = ctx.game
    campaign = _campaign(live, request.match_info["campaign"])
    shards = request.app[SETTINGS].shards
    aggs = aggregates_of(request.app, services(request))
    meta, _ = await aggs.store.read(_meta_ref(live, campaign, shards), META_CODEC)
    bucket = _bucket_ref(live, campaign, rules.bucket_of(ctx.ref.user, campaign.lanes),
                         shards)
    user, report = ctx.ref.user, body["report"]

    def gate(state: PlayerState | None) -> SharedRule:
        def rule(b: rules.AppBucket | None, now: int) -> SharedOutcome:
            won = rules.won_at(campaign, b, meta, user)
            return rules.review(b, campaign, user, report, won, now)
        return rule

    return reply_response(await run_gated(request, post, bucket, CODEC, gate))


async def list_my_samples(request: web.Request) -> web.Response:
    """``listMySamples``: the campaigns the shopper applied to and where each stands."""
    ctx = await player_ctx(request)
    live = ctx.game
    shards = request.app[SETTINGS].shards
    shared = aggregates_of(request.app, services(request)).store
    campaigns = list(live.config.samples.values())
    user = ctx.ref.user
    buckets = await shared.read_many(
        [_bucket_ref(live, c, rules.bucket_of(user, c.lanes), shards) for c in campaigns],
        CODEC)
    metas = await shared.read_many([_meta_ref(live, c, shards) for c in campaigns], META_CODEC)
    return json_ok({"samples": rules.my_samples(campaigns, metas, buckets, user)})


async def _campaign_state(request: web.Request, live: LiveGame
                          ) -> tuple[Campaign, rules.CampaignMeta, list[rules.AppBucket | None]]:
    """The path's campaign, its meta (seeded on the first read) and its buckets."""
    campaign = _campaign(live, request.match_info["campaign"])
    shards = request.app[SETTINGS].shards
    shared = aggregates_of(request.app, services(request)).store
    meta = await ensure_meta(shared, live, campaign, shards)
    return campaign, meta, await _buckets(shared, live, campaign, shards)


async def get_sample_campaign(request: web.Request) -> web.Response:
    """``getSampleCampaign``: terms, window, counts, seed hash, and the result once drawn."""
    campaign, meta, buckets = await _campaign_state(request, await public_game(request))
    return json_ok(rules.campaign_view(campaign, meta, buckets, now_s(request)))


async def draw_sample_winners(request: web.Request) -> web.Response:
    """``drawSampleWinners``: the lottery, after the window; drawn once (a second call,
    with any key, answers the first result)."""
    live = await merchant_game(request)
    idempotency_key(request)  # required: the draw decides who gets value
    await read_body(request, EMPTY_BODY)
    campaign = _campaign(live, request.match_info["campaign"])
    shards = request.app[SETTINGS].shards
    shared = aggregates_of(request.app, services(request)).store
    # Checked before reading the applicants: once due, no application can still commit.
    rules.check_draw(campaign, int(request.app[CLOCK].now()))
    await ensure_meta(shared, live, campaign, shards)
    applicants = sorted(u for b in await _buckets(shared, live, campaign, shards)
                        if b is not None for u in b.applicants)

    def rule(state: rules.CampaignMeta | None, now: int) -> SharedOutcome:
        return rules.draw(state, campaign, applicants, now)

    meta = await shared.run_then_read(_meta_ref(live, campaign, shards), META_CODEC,
                                      SYSTEM_USER, "draw", rule)
    if meta.drawn is not None:
        await announce(request, live, campaign,
                       [(u, meta.drawn.at) for u in meta.drawn.result.winners])
    return json_ok(rules.result_view(campaign, meta))


async def get_sample_campaign_admin(request: web.Request) -> web.Response:
    """``getSampleCampaignAdmin``: the public view plus winners, review rate, reports."""
    campaign, meta, buckets = await _campaign_state(request, await merchant_game(request))
    return json_ok(rules.admin_view(campaign, meta, buckets, now_s(request)))


_RESULT_PROPS: dict[str, Any] = {
    "campaign": {"type": "string"}, "drawn_at": {"type": "integer"},
    "seed": {"type": "string"}, "seed_hash": {"type": "string"},
    "winners": {"type": "integer"}, "cutoff": {"type": ["string", "null"]},
    "applicants": {"type": "integer"}, "applicants_hash": {"type": "string"},
}
_RESULT = {"type": ["object", "null"], "properties": _RESULT_PROPS,
           "required": list(_RESULT_PROPS)}
_CAMPAIGN_PROPS: dict[str, Any] = {
    "campaign": {"type": "string"}, "title": {"type": "string"}, "sku": {"type": "string"},
    "stock": {"type": "integer"}, "mode": {"type": "string", "enum": ["first_come", "lottery"]},
    "status": {"type": "string", "enum": ["upcoming", "open", "closed", "drawn"]},
    "opens_at": {"type": "integer"}, "closes_at": {"type": "integer"},
    "server_time": {"type": "integer"},
    "eligibility": obj({"member": BOOL, "follow": BOOL, "min_orders": INT},
                       description="what an applicant must have: a member task, a follow "
                                   "task, this many orders"),
    "review_reward": nullable(COUNTS),
    "applicants": {"type": "integer"}, "winners": {"type": "integer"},
    "stock_left": {"type": "integer"}, "seed_hash": {"type": ["string", "null"]},
    "result": _RESULT,
}
CAMPAIGN_RESPONSE = obj(_CAMPAIGN_PROPS)
ADMIN_RESPONSE = obj({
    **_CAMPAIGN_PROPS,
    "winner_users": {"type": "array", "items": {"type": "string"}},
    "reviews": {"type": "integer"}, "review_rate": {"type": "number"},
    "reports": array(obj({"user": STR, "at": INT, "report": STR})),
})
APPLY_RESPONSE = obj({
    "campaign": {"type": "string"},
    "status": {"type": "string", "enum": ["applied", "won", "waitlisted"]},
    "applied_at": {"type": "integer"},
})
MINE_RESPONSE = obj({
    "samples": array(obj({
        "campaign": {"type": "string"}, "sku": {"type": "string"},
        "status": {"type": "string", "enum": ["applied", "waitlisted", "won", "lost"]},
        "applied_at": {"type": "integer"}, "won_at": {"type": ["integer", "null"]},
        "reviewed": {"type": "boolean"}, "review_until": {"type": ["integer", "null"]}})),
})
REVIEW_RESPONSE = obj({
    "campaign": {"type": "string"}, "reviewed_at": {"type": "integer"},
    "reward": COUNTS, "wallet": COUNTS,
})

OPERATIONS = [
    Operation("getSampleCampaign", "GET", "/v1/games/{game}/samples/{campaign}",
              get_sample_campaign,
              "Public: a sampling campaign's terms, window, applicants, the lottery seed hash "
              "and, once drawn, the result with the revealed seed",
              auth="public", tag="plays", errors=PUBLIC_ERRORS, params=MERCHANT_PARAM,
              response=CAMPAIGN_RESPONSE),
    Operation("applySample", "POST", "/v1/games/{game}/samples/{campaign}/apply", apply_sample,
              "Apply for a free sample (once, in the window, if eligible); first come wins "
              "at once while stock lasts",
              auth="player", tag="plays", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=APPLY_RESPONSE),
    Operation("listMySamples", "GET", "/v1/games/{game}/samples", list_my_samples,
              "The campaigns the shopper applied to: applied, waitlisted, won or lost, and "
              "the review task",
              auth="player", tag="plays", errors=(401, 403, 404), response=MINE_RESPONSE),
    Operation("reviewSample", "POST", "/v1/games/{game}/samples/{campaign}/review",
              review_sample, "A winner's review report (once); rewards the configured amount",
              auth="player", tag="plays", body=REVIEW_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=REVIEW_RESPONSE),
    Operation("drawSampleWinners", "POST", "/v1/admin/games/{game}/samples/{campaign}/draw",
              draw_sample_winners,
              "Draw a lottery campaign's winners after the window (provably fair, once)",
              auth="merchant", tag="merchant", body=EMPTY_BODY, idempotent=True,
              errors=(400, 401, 403, 404, 409, 422), response=_RESULT),
    Operation("getSampleCampaignAdmin", "GET", "/v1/admin/games/{game}/samples/{campaign}",
              get_sample_campaign_admin,
              "A campaign as the merchant sees it: applicants, winners, review rate, reports",
              auth="merchant", tag="merchant", errors=(401, 403, 404),
              response=ADMIN_RESPONSE),
]
