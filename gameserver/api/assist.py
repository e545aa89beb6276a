"""Friend-assist routes: ``startAssist``, ``giveAssist`` (two-commit actions) and
``getAssist``.

Both writes go through the two-commit protocol (gameserver/state/aggregates_gate.py): the
assist aggregate is the gate, the acting shopper's commit follows. The help that
completes an assist also owes the owner their reward; the same gate commit records
it, this request applies it right after the helper's commit (through the value tier:
a coupon reward is a limited grant), and the owed reconciler does if the request could
not. The helper is always the session's user, never a body field.

An assist's code is its id: 10 base32 characters of an HMAC (gameserver/http/sharecodes.py),
under a key derived from the server's token secret, of (merchant, game, campaign, owner,
round). It is unguessable without the secret, bound to the merchant and game (the aggregate's name
holds both: another merchant's code is 404), and the same for two concurrent starts of
one round, so those meet at one aggregate and only one assist is created.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from economy.assist import AssistCampaign, AssistNotFound
from economy.errors import DomainError, known_item
from economy.schema import Obj, Str
from gameserver.api.common import (
    EMPTY_BODY,
    PLAYER_ERRORS,
    Operation,
    json_ok,
    merchant_game,
    now_s,
    player_ctx,
    player_post,
    reply_response,
    run_gated,
    services,
)
from gameserver.api.schemas import GRANTED, REWARD, obj
from gameserver.appkeys import SETTINGS, SIGNER
from gameserver.games import LiveGame
from gameserver.http.sharecodes import base32_code, share_digest
from gameserver.services import RuleContext
from gameserver.state.aggregates import SharedRule, WireCodec
from gameserver.state.aggregates_app import aggregates_of
from gameserver.state.aggregates_gate import register_apply, register_notice, register_value_effect
from gameserver.state.keys import AggregateRef, PlayerRef
from gameserver.state.store import Reply, Rule
from gameserver.state.value import StockView
from mechanics import assist as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

CODEC = WireCodec(rules.Assist.from_wire)
CODE_RE = rf"^[a-z2-7]{{{rules.CODE_LENGTH}}}$"

HELP_BODY = Obj(description="The share code of the assist to help.", fields={
    "code": Str(pattern=CODE_RE, max_length=rules.CODE_LENGTH),
})


def _campaign(live: LiveGame, campaign_id: str) -> AssistCampaign:
    return known_item(live.config.assists, campaign_id, "assist campaign", "assist_campaign")


def _ref(request: web.Request, live: LiveGame, campaign: str, code: str) -> AggregateRef:
    return AggregateRef.of(live.merchant, live.game, rules.KIND,
                           rules.aggregate_id(campaign, code), request.app[SETTINGS].shards)


def share_code(secret: str, merchant: str, game: str, campaign: str, owner: str,
               round_: int) -> str:
    """The code of ``owner``'s ``round_``-th assist in ``campaign`` (module docstring)."""
    return base32_code(share_digest(secret, merchant, game, campaign, owner, str(round_),
                                    key_label=b"petbox-assist-code"), rules.CODE_LENGTH)


def session_age(request: web.Request, ctx: RuleContext) -> int:
    """Seconds since the shopper's session was created (tokens live ``token_ttl``)."""
    assert ctx.claims is not None
    issued = ctx.claims.expires_at - request.app[SIGNER].ttl
    return max(0, now_s(request) - issued)


def _reward_effect(owed: dict[str, Any], game: LiveGame, view: StockView) -> Rule:
    config = game.config
    return lambda state, now: rules.apply_reward(state, owed, now, config,
                                                 view.out("coupon:"))


def _completed_notice(owed: dict[str, Any], owner: PlayerRef, reply: dict[str, Any]
                      ) -> tuple[str, str, dict[str, Any]]:
    """``assist.completed`` for the merchant's backend, once per assist (its key)."""
    campaign, code = owed["campaign"], owed["code"]
    return ("assist.completed", f"assist.completed:{campaign}:{code}", {
        "campaign": campaign, "assist": code, "owner": owner.user, "needed": owed["needed"],
        "reward": owed["reward"], "reward_state": reply.get("reward"),
        "granted": reply.get("granted", {})})


register_apply(rules.START_EFFECT, rules.apply_start)
register_apply(rules.HELP_EFFECT, rules.apply_help)
register_value_effect(rules.REWARD_EFFECT, _reward_effect)
register_notice(rules.REWARD_EFFECT, _completed_notice)


async def start_assist(request: web.Request) -> web.Response:
    """``startAssist``: open an assist of the campaign and get its share code."""
    post = await player_post(request, EMPTY_BODY)
    ctx = post.ctx
    live, owner = ctx.game, ctx.ref.user
    campaign = _campaign(live, request.match_info["campaign"])
    first = await services(request).store.peek(ctx.ref, post.key, post.digest)
    if isinstance(first, Reply):  # a used key: its reply
        return reply_response(first)
    round_ = rules.check_start(first.state, campaign, now_s(request))
    code = share_code(request.app[SETTINGS].token_secret, live.merchant, live.game,
                      campaign.id, owner, round_)

    def gate(state: PlayerState | None) -> SharedRule:
        def rule(a: rules.Assist | None, now: int) -> SharedOutcome:
            rules.check_start(state, campaign, now)
            return rules.start(a, campaign, owner, code, now)
        return rule

    reply = await run_gated(request, post, _ref(request, live, campaign.id, code), CODEC, gate)
    return reply_response(reply)


async def give_assist(request: web.Request) -> web.Response:
    """``giveAssist``: the session's user helps the assist whose code is sent."""
    post = await player_post(request, HELP_BODY)
    ctx = post.ctx
    live, helper, code = ctx.game, ctx.ref.user, post.body["code"]
    campaign = _campaign(live, request.match_info["campaign"])
    age, tz = session_age(request, ctx), live.tz

    def gate(state: PlayerState | None) -> SharedRule:
        def rule(a: rules.Assist | None, now: int) -> SharedOutcome:
            return rules.give(a, campaign, code, helper, state, age, now, tz)
        return rule

    ref = _ref(request, live, campaign.id, code)
    assist, _ = await aggregates_of(request.app, services(request)).store.read(ref, CODEC)
    try:
        rules.refuse_early(assist, campaign, code, helper, now_s(request))
    except DomainError:
        # The key's own answer comes first: a retry replays, and a key used by another
        # request is 422, as on every route (one read, on the refusal path only).
        first = await services(request).store.peek(ctx.ref, post.key, post.digest)
        if isinstance(first, Reply):
            return reply_response(first)
        raise
    return reply_response(await run_gated(request, post, ref, CODEC, gate))


async def _assist(request: web.Request, live: LiveGame
                  ) -> tuple[AssistCampaign, str, rules.Assist]:
    """The path's campaign, assist code and assist (404 for a code that is not one)."""
    campaign = _campaign(live, request.match_info["campaign"])
    code = request.match_info["assist"]
    assist = None
    if re.fullmatch(CODE_RE, code):
        assist, _ = await aggregates_of(request.app, services(request)).store.read(
            _ref(request, live, campaign.id, code), CODEC)
    if assist is None:
        raise AssistNotFound(campaign.id, code)
    return campaign, code, assist


async def get_assist(request: web.Request) -> web.Response:
    """``getAssist``: helps so far, needed, state and reward state."""
    ctx = await player_ctx(request)
    live = ctx.game
    campaign, code, assist = await _assist(request, live)
    svc = services(request)
    now = now_s(request)
    reward = None
    if assist.owner == ctx.ref.user and assist.completed_at:
        reward = rules.owner_reward_state((await svc.store.read(ctx.ref)).state,
                                          campaign.id, code)
    return json_ok(rules.assist_view(assist, campaign, ctx.ref.user, now, reward))


async def get_assist_admin(request: web.Request) -> web.Response:
    """``getAssistAdmin``: one assist as the merchant sees it (customer support): the
    shopper view plus the owner and the helpers in the order they helped."""
    campaign, _, assist = await _assist(request, await merchant_game(request))
    view = rules.assist_view(assist, campaign, "", now_s(request))
    shown = {k: v for k, v in view.items() if k not in ("mine", "helped")}  # the caller's
    return json_ok(shown | {"owner": assist.owner, "helpers": assist.helpers})


RECENT = 20
SCAN_LIMIT = 50_000
"""Assists a campaign report reads from SQL at most (the newest flushed first)."""


async def get_assist_campaign_admin(request: web.Request) -> web.Response:
    """``getAssistCampaignAdmin``: a campaign's results from SQL (assists the persister
    has flushed, about a flush interval behind): started, open, complete, expired,
    helps, and the newest assists."""
    live = await merchant_game(request)
    campaign = _campaign(live, request.match_info["campaign"])
    prefix = f"{campaign.id}-"
    store = aggregates_of(request.app, services(request)).store
    rows = await store.archive.states_with_prefix(
        live.merchant, live.game, rules.KIND, prefix, len(prefix) + rules.CODE_LENGTH,
        SCAN_LIMIT + 1)
    assists = [CODEC.decode(raw) for raw in rows[:SCAN_LIMIT]]
    return json_ok(rules.campaign_report(assists, campaign, now_s(request), RECENT)
                   | {"truncated": len(rows) > SCAN_LIMIT})


START_RESPONSE = obj({
    "assist": {"type": "string", "description": "the assist's id: its share code"},
    "code": {"type": "string", "description": "share code (10 base32 characters)"},
    "campaign": {"type": "string"}, "needed": {"type": "integer"},
    "helps": {"type": "integer"}, "expires_at": {"type": "integer"},
})
HELP_RESPONSE = obj({
    "assist": {"type": "string"}, "campaign": {"type": "string"},
    "helps": {"type": "integer", "description": "helps the assist has, this one included"},
    "needed": {"type": "integer"},
    "complete": {"type": "boolean", "description": "this help completed the assist"},
    "reward": {**GRANTED, "description": "the helper reward granted"},
    "wallet": {"type": "object", "additionalProperties": {"type": "integer"}},
})
ASSIST_RESPONSE = obj({
    "assist": {"type": "string"}, "code": {"type": "string"}, "campaign": {"type": "string"},
    "title": {"type": "string"},
    "state": {"type": "string", "enum": ["open", "complete", "expired"]},
    "helps": {"type": "integer"}, "needed": {"type": "integer"},
    "helps_left": {"type": "integer"}, "started_at": {"type": "integer"},
    "expires_at": {"type": "integer"},
    "completed_at": {"type": ["integer", "null"]},
    "mine": {"type": "boolean", "description": "the caller started this assist"},
    "helped": {"type": "boolean", "description": "the caller helped this assist"},
    "reward": REWARD,
    "reward_state": {"type": "string",
                     "enum": ["pending", "due", "granted", "coupon_unavailable", "earned"]},
    "server_time": {"type": "integer"},
})

ASSIST_ADMIN_RESPONSE = obj({
    **{k: v for k, v in ASSIST_RESPONSE["properties"].items() if k not in ("mine", "helped")},
    "owner": {"type": "string"},
    "helpers": {"type": "array", "items": {"type": "string"},
                "description": "users who helped, in order"},
})
_SUMMARY = obj({
    "assist": {"type": "string"}, "owner": {"type": "string"},
    "state": {"type": "string", "enum": ["open", "complete", "expired"]},
    "helps": {"type": "integer"}, "needed": {"type": "integer"},
    "started_at": {"type": "integer"}, "completed_at": {"type": ["integer", "null"]}})
CAMPAIGN_RESPONSE = obj({
    "campaign": {"type": "string"}, "title": {"type": "string"},
    "needed": {"type": "integer"},
    "started": {"type": "integer"}, "open": {"type": "integer"},
    "complete": {"type": "integer"}, "expired": {"type": "integer"},
    "helps": {"type": "integer", "description": "helps counted over every assist"},
    "recent": {"type": "array", "items": _SUMMARY, "description": "the newest assists"},
    "truncated": {"type": "boolean",
                  "description": "more assists than one report reads: counts are partial"},
    "server_time": {"type": "integer"},
})

OPERATIONS = [
    Operation("startAssist", "POST", "/v1/games/{game}/assists/{campaign}", start_assist,
              "Start a friend assist (助力) of the campaign and get its share code",
              auth="player", tag="plays", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=START_RESPONSE),
    Operation("giveAssist", "POST", "/v1/games/{game}/assists/{campaign}/help", give_assist,
              "Help the assist whose share code is sent; the helper is the session's user. "
              "At the needed help the owner gets the reward, once",
              auth="player", tag="plays", body=HELP_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=HELP_RESPONSE),
    Operation("getAssist", "GET", "/v1/games/{game}/assists/{campaign}/{assist}", get_assist,
              "An assist: helps so far, needed, state, and the state of the owner's reward",
              auth="player", tag="plays", errors=(401, 403, 404), response=ASSIST_RESPONSE),
    Operation("getAssistCampaignAdmin", "GET", "/v1/admin/games/{game}/assists/{campaign}",
              get_assist_campaign_admin,
              "An assist campaign's results: assists started, open, complete, expired, "
              "helps, the newest assists (from SQL, a flush interval behind)",
              auth="merchant", tag="merchant", errors=(401, 403, 404),
              response=CAMPAIGN_RESPONSE),
    Operation("getAssistAdmin", "GET", "/v1/admin/games/{game}/assists/{campaign}/{assist}",
              get_assist_admin, "One assist with its owner and helpers (customer support)",
              auth="merchant", tag="merchant", errors=(401, 403, 404),
              response=ASSIST_ADMIN_RESPONSE),
]
