"""Group-buy routes (拼团); the groups' expiry index and sweep are in
gameserver/api/groupbuy_sweep.py.

``createGroupBuy``, ``joinGroupBuy`` and ``leaveGroupBuy`` are two-commit actions
(gameserver/state/aggregates_gate.py): the group is the gate, each shopper's side follows
from the gate's record exactly once per Idempotency-Key. A group's id is its share
code: derived from the opener's request (HMAC with the server's secret over merchant,
game, offer, user and key, so a retry of the same request opens the same group, and
nobody can guess one), and bound to merchant and game by the aggregate's own name: a
code of another merchant's game is simply not there (404).

Each offer keeps an index of its groups by expiry (``Keys.aggregate_index``), written
before the group's gate (a group whose gate then failed is an index entry without a
group, dropped by the sweep). It serves ``listGroupBuys`` and the sweep
(:class:`GroupBuySweep`, every host, idempotent per group): a group past its expiry is
failed (or auto-completed) by one gate commit under a fixed key, so a second pass on
any host replays it; every member's side follows under a key of its own; the merchant
is told through the webhook outbox under a stable key; then the entry goes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from aiohttp import web

from economy.errors import DomainError, known_item
from economy.groupbuy import STOCK_PREFIX, GroupBuyBusy, GroupNotFound, GroupOffer
from economy.schema import Obj, Str
from gameserver.api.common import (
    EMPTY_BODY,
    PLAYER_ERRORS,
    Operation,
    PlayerPost,
    idempotency_key,
    json_ok,
    merchant_game,
    now_s,
    player_ctx,
    player_post,
    read_body,
    reply_response,
    request_hash,
    run_gated,
    services,
)
from gameserver.api.groupbuy_sweep import (
    CODEC,
    group_ref,
    index_group,
    index_key,
    sweep_ctx,
)
from gameserver.api.groupbuy_sweep import GroupBuySweep as GroupBuySweep  # re-exported
from gameserver.api.schemas import BOOL, COUNTS, GRANTED, array, obj
from gameserver.api.serial import one_at_a_time
from gameserver.appkeys import REDIS, SETTINGS
from gameserver.games import LiveGame
from gameserver.http.sharecodes import base32_code, share_digest
from gameserver.services import RuleContext
from gameserver.state.aggregates_app import aggregates_of
from gameserver.state.aggregates_gate import GateMaker, register_value_effect
from gameserver.state.store import Reply, Rule
from gameserver.state.value import StockView
from mechanics import groupbuy as rules
from mechanics.aggregate import SharedOutcome
from mechanics.state import PlayerState

CODE_LENGTH = 10
CODE_PATTERN = rf"^[a-z2-7]{{{CODE_LENGTH}}}$"
"""A share code: 10 base32 characters (50 bits of an HMAC)."""
ADMIN_LIMIT = 100
"""Open groups ``listGroupBuysAdmin`` shows."""
LIST_LIMIT = 20
"""Open groups ``listGroupBuys`` shows (those expiring last first: most time to fill)."""

JOIN_BODY = Obj(description="The share code of the group to join.", fields={
    "code": Str(pattern=CODE_PATTERN, max_length=10),
})


def _offer(live: LiveGame, offer_id: str) -> GroupOffer:
    return known_item(live.config.groupbuys, offer_id, "group-buy offer", "groupbuy")


def group_code(secret: str, merchant: str, game: str, offer: str, user: str,
               key: str) -> str:
    """The group a shopper's ``createGroupBuy`` with ``key`` opens (the same on a retry)."""
    return base32_code(share_digest(secret, "groupbuy", merchant, game, offer, user, key),
                       CODE_LENGTH)


def _effect(owed: dict[str, Any], game: LiveGame, view: StockView) -> Rule:
    config = game.config

    def rule(state: PlayerState | None, now: int) -> Any:
        scarce = rules.Scarce(view.out("coupon:"), view.out(STOCK_PREFIX))
        return rules.apply_effect(state, owed, now, config, scarce)
    return rule


for _kind in (rules.JOIN, rules.DONE, rules.FAILED, rules.LEAVE):
    register_value_effect(_kind, _effect)


async def _run(request: web.Request, post: PlayerPost, gid: str, gate: GateMaker) -> Reply:
    shards = request.app[SETTINGS].shards
    return await run_gated(request, post, group_ref(post.ctx.game, gid, shards), CODEC, gate)


def _late_post(request: web.Request, ctx: RuleContext, body: dict[str, Any],
               raw: bytes) -> PlayerPost:
    """The request as :func:`player_post` gives it, for the routes that check the body
    and the offer before the key (so their refusals keep that order)."""
    return PlayerPost(ctx, idempotency_key(request), body, request_hash(request, raw))


def _one_at_a_time(request: web.Request, live: LiveGame, offer: str,
                   user: str) -> contextlib.AbstractAsyncContextManager[None]:
    """One opening or joining per shopper and offer at a time (gameserver/api/serial.py):
    ``per_shopper`` is checked against the shopper's committed state."""
    return one_at_a_time(request, f"groupbuy:{live.merchant}:{live.game}:{offer}:{user}",
                         lambda: GroupBuyBusy(offer))


async def _stock_left(request: web.Request, live: LiveGame, offer: GroupOffer
                      ) -> tuple[int | None, int]:
    """Units (left, pending) of the offer's stock; pending (held by grants in flight) is
    read only when too few are left for a full group."""
    if offer.stock is None:
        return None, 0
    value, ref = services(request).value, offer.stock_ref
    view = await value.stock_left(live.merchant, live.game, {ref: live.totals[ref]})
    left = view.left.get(ref, 0)
    if left < offer.size:
        await value.read_pending(live.merchant, live.game, view, [ref])
    return left, view.pending.get(ref, 0)


async def create_group_buy(request: web.Request) -> web.Response:
    """``createGroupBuy``: open a group of the offer; the opener is its first member."""
    post = await player_post(request, EMPTY_BODY)
    ctx, key = post.ctx, post.key
    live, user = ctx.game, ctx.ref.user
    offer = _offer(live, request.match_info["offer"])
    gid = group_code(request.app[SETTINGS].token_secret, ctx.ref.merchant, ctx.ref.game,
                     offer.id, ctx.ref.user, key)
    left, pending = await _stock_left(request, live, offer)
    config = live.config

    def gate(state: PlayerState | None) -> Any:
        def rule(group: rules.Group | None, now: int) -> SharedOutcome:
            if group is None:  # (a retry that finds its group replays before this)
                rules.check_stock(offer, left, pending)
                rules.check_join(state, offer, config, now)
            return rules.open_group(group, gid, offer, user, now)
        return rule

    now = now_s(request)
    redis, keys = request.app[REDIS], services(request).keys
    await index_group(redis, keys, live, offer.id, gid, now + offer.duration_s)
    store = aggregates_of(request.app, services(request)).store
    ref = group_ref(live, gid, request.app[SETTINGS].shards)
    try:
        async with _one_at_a_time(request, live, offer.id, user):
            reply = await _run(request, post, gid, gate)
    except DomainError:  # refused: unlist the id unless a group stands under it
        if (await store.read(ref, CODEC))[0] is None:
            await redis.zrem(index_key(keys, live, offer.id), gid)
        raise
    if reply.replayed:  # a late retry: the group is as it was, not listed anew
        group = (await store.read(ref, CODEC))[0]
        if group is not None and group.state != "open":
            await redis.zrem(index_key(keys, live, offer.id), gid)
    return reply_response(reply)


async def join_group_buy(request: web.Request) -> web.Response:
    """``joinGroupBuy``: take a seat with the share code; the last seat completes the
    group and every member gets the reward once."""
    ctx = await player_ctx(request)
    body, raw = await read_body(request, JOIN_BODY)
    live, user, gid = ctx.game, ctx.ref.user, body["code"]
    offer = _offer(live, request.match_info["offer"])
    config = live.config

    def gate(state: PlayerState | None) -> Any:
        def rule(group: rules.Group | None, now: int) -> SharedOutcome:
            outcome = rules.join_group(group, gid, offer, user, now)
            rules.check_join(state, offer, config, now)
            return outcome
        return rule

    async with _one_at_a_time(request, live, offer.id, user):
        reply = await _run(request, _late_post(request, ctx, body, raw), gid, gate)
    if reply.status == 200 and orjson.loads(reply.body).get("state") == "complete":
        # due now: the sweep tells the merchant at its next pass, not at the expiry
        await request.app[REDIS].zadd(index_key(services(request).keys, live, offer.id),
                                      {gid: 0}, xx=True)
    return reply_response(reply)


async def leave_group_buy(request: web.Request) -> web.Response:
    """``leaveGroupBuy``: a member (not the opener) leaves an open group and gets back
    what joining cost."""
    ctx = await player_ctx(request)
    _, raw = await read_body(request, EMPTY_BODY)
    live, user, gid = ctx.game, ctx.ref.user, _gid(request)
    offer = _offer(live, request.match_info["offer"])

    def gate(state: PlayerState | None) -> Any:
        return lambda group, now: rules.leave_group(group, gid, offer, user, now)

    return reply_response(await _run(request, _late_post(request, ctx, {}, raw), gid, gate))


def _gid(request: web.Request) -> str:
    gid = request.match_info["group"]
    if len(gid) != 10 or not gid.isalnum() or gid.lower() != gid:
        raise GroupNotFound(gid)
    return gid


async def get_group_buy(request: web.Request) -> web.Response:
    """``getGroupBuy``: members, seats left and state of one group."""
    ctx = await player_ctx(request)
    live, gid = ctx.game, _gid(request)
    offer = _offer(live, request.match_info["offer"])
    store = aggregates_of(request.app, services(request)).store
    group, _ = await store.read(group_ref(live, gid, request.app[SETTINGS].shards), CODEC)
    if group is None or group.offer != offer.id:
        raise GroupNotFound(gid)
    return json_ok(rules.group_view(group, gid, offer, now_s(request), ctx.ref.user))


async def _read_groups(request: web.Request, live: LiveGame, raw: list[Any]
                       ) -> list[tuple[str, rules.Group]]:
    """The groups an index read listed (ids as Redis gave them), those that exist."""
    gids = [g.decode() if isinstance(g, bytes) else str(g) for g in raw]
    shards = request.app[SETTINGS].shards
    groups = await aggregates_of(request.app, services(request)).store.read_many(
        [group_ref(live, gid, shards) for gid in gids], CODEC)
    return [(gid, g) for gid, g in zip(gids, groups, strict=True) if g is not None]


async def list_group_buys(request: web.Request) -> web.Response:
    """``listGroupBuys``: open groups of the offer a shopper may join."""
    ctx = await player_ctx(request)
    live = ctx.game
    offer = _offer(live, request.match_info["offer"])
    now = now_s(request)
    listed = await request.app[REDIS].zrevrangebyscore(
        index_key(services(request).keys, live, offer.id), "+inf", f"({now}", start=0,
        num=LIST_LIMIT * 2)
    rows = [rules.group_view(g, gid, offer, now, ctx.ref.user)
            for gid, g in await _read_groups(request, live, listed)]
    rows = [r for r in rows if r["state"] == "open" and r["seats_left"] > 0]
    return json_ok({"offer": offer.id, "title": offer.title, "size": offer.size,
                    "price_fen": offer.price_fen, "server_time": now,
                    "groups": rows[:LIST_LIMIT]})


async def list_group_buys_admin(request: web.Request) -> web.Response:
    """``listGroupBuysAdmin``: the merchant's view of an offer: its open groups (members
    unmasked, oldest expiry first, up to ``ADMIN_LIMIT``), how many are open, and its
    stock when it has one."""
    live = await merchant_game(request)
    offer = _offer(live, request.match_info["offer"])
    svc = services(request)
    now = now_s(request)
    index = index_key(svc.keys, live, offer.id)
    listed = await request.app[REDIS].zrangebyscore(index, f"({now}", "+inf", start=0,
                                                    num=ADMIN_LIMIT)
    rows = []
    for gid, group in await _read_groups(request, live, listed):
        if group.settled_state(offer.auto_complete, now) == "open":
            rows.append({**rules.group_view(group, gid, offer, now),
                         "users": group.users()})
    stock = None
    if offer.stock is not None:
        await svc.value.ensure_stock(live.merchant, live.game, live.totals)
        stock = (await svc.value.stock_report(live.merchant, live.game, [offer.stock_ref]))[0]
    return json_ok({"offer": offer.id, "title": offer.title, "size": offer.size,
                    "duration_s": offer.duration_s, "auto_complete": offer.auto_complete,
                    "server_time": now, "open": await request.app[REDIS].zcount(
                        index, f"({now}", "+inf"), "groups": rows, "stock": stock})


# -- the expiry sweep -----------------------------------------------------------------


BACKGROUND = [sweep_ctx]


_MEMBER = obj({
    "user": {"type": "string", "description": "masked"}, "joined_at": {"type": "integer"},
    "opener": {"type": "boolean"}, "me": {"type": "boolean"},
    "system": {"type": "boolean", "description": "present (true) only on a seat an "
               "auto-completed group filled at its expiry"}},
    ["user", "joined_at", "opener", "me"])
_GROUP_PROPS: dict[str, Any] = {
    "group": {"type": "string"}, "code": {"type": "string"}, "offer": {"type": "string"},
    "title": {"type": "string"}, "size": {"type": "integer"},
    "members": {"type": "array", "items": _MEMBER}, "member_count": {"type": "integer"},
    "seats_left": {"type": "integer"},
    "state": {"type": "string", "enum": ["open", "complete", "failed"]},
    "created_at": {"type": "integer"}, "expires_at": {"type": "integer"},
    "price_fen": {"type": "integer"}, "server_time": {"type": "integer"},
}
GROUP_RESPONSE = obj(_GROUP_PROPS)
_ACTION_PROPS: dict[str, Any] = {
    **_GROUP_PROPS,
    "reward": obj({"granted": BOOL, "reason": {"enum": ["already", "sold_out"]},
                   **GRANTED["properties"]}, ["granted"],
                  "present when this seat completed the group: what this shopper was "
                  "granted (granted: false and a reason when nothing was)"),
    "wallet": COUNTS,
}
ACTION_RESPONSE = obj(_ACTION_PROPS, [*_GROUP_PROPS, "wallet"])
"""createGroupBuy, joinGroupBuy: the group after the seat, and the shopper's wallet."""
LEAVE_RESPONSE = obj({**_ACTION_PROPS, "refunded": {
    **COUNTS, "description": "what joining cost, given back"}},
    [*_GROUP_PROPS, "refunded", "wallet"])
LIST_RESPONSE = obj({
    "offer": {"type": "string"}, "title": {"type": "string"}, "size": {"type": "integer"},
    "price_fen": {"type": "integer"}, "server_time": {"type": "integer"},
    "groups": {"type": "array", "items": GROUP_RESPONSE},
})

ADMIN_RESPONSE = obj({
    "offer": {"type": "string"}, "title": {"type": "string"}, "size": {"type": "integer"},
    "duration_s": {"type": "integer"}, "auto_complete": {"type": "boolean"},
    "server_time": {"type": "integer"},
    "open": {"type": "integer", "description": "open groups of the offer"},
    "groups": array(obj({**_GROUP_PROPS,
                         "users": {"type": "array", "items": {"type": "string"}}})),
    "stock": {"description": "getStock's row of the offer's stock, or null"},
})

OPERATIONS = [
    Operation("createGroupBuy", "POST", "/v1/games/{game}/groupbuys/{offer}", create_group_buy,
              "Open a group of a group-buy offer and get its share code",
              auth="player", tag="plays", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=ACTION_RESPONSE),
    Operation("joinGroupBuy", "POST", "/v1/games/{game}/groupbuys/{offer}/join",
              join_group_buy,
              "Join a group with its share code (full: 409 group_full; expired: 409 "
              "group_expired); the last seat completes it and rewards every member once",
              auth="player", tag="plays", body=JOIN_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=ACTION_RESPONSE),
    Operation("leaveGroupBuy", "POST",
              "/v1/games/{game}/groupbuys/{offer}/groups/{group}/leave", leave_group_buy,
              "Leave an open group (not its opener); what joining cost is given back",
              auth="player", tag="plays", body=EMPTY_BODY, idempotent=True,
              errors=PLAYER_ERRORS, response=LEAVE_RESPONSE),
    Operation("getGroupBuy", "GET", "/v1/games/{game}/groupbuys/{offer}/groups/{group}",
              get_group_buy, "A group: members, seats left, state (open, complete, failed)",
              auth="player", tag="plays", errors=(401, 403, 404), response=GROUP_RESPONSE),
    Operation("listGroupBuys", "GET", "/v1/games/{game}/groupbuys/{offer}", list_group_buys,
              "Open groups of an offer a shopper may join",
              auth="player", tag="plays", errors=(401, 403, 404), response=LIST_RESPONSE),
    Operation("listGroupBuysAdmin", "GET", "/v1/admin/games/{game}/groupbuys/{offer}",
              list_group_buys_admin,
              "The merchant's view of a group-buy offer: open groups with their members, "
              "how many are open, its stock", auth="merchant", tag="merchant",
              errors=(401, 403, 404), response=ADMIN_RESPONSE),
]
