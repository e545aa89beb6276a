"""Flash sales and presales over HTTP: ``getFlashSale`` and ``getPresale`` (public),
``claimFlashSale`` and ``reservePresale`` (shoppers). Rules: :mod:`mechanics.flashsale`.

A claim is a player action whose outcome holds one unit of the value tier (ref
``flash:<sale>`` or ``presale:<presale>``): the unit is reserved in the bucketed
Redis gate, then in SQL with its grant row, then the shopper's state commits, exactly
once per Idempotency-Key. A claim before the start is refused by the rule before
anything is read; once a sale is sold out, claims are answered ``409 sold_out`` from
this process's stock cache without touching the gate.

A ``sold_out`` says how many units claims still being settled hold (``stock_pending``,
with ``Retry-After`` when some do), as the public view does: such a claim can fail (SQL
refused or timed out) and give its unit back, and a crowd told a bare "sold out" would
leave it unsold. The client looks again through the cached public view, not by claiming
in a loop: a claim costs a player load, a view costs nothing past the cache.

The public views read the stock left through :class:`StockCache`: one Redis read per
sale and process every ``STOCK_CACHE_S`` however many shoppers poll (concurrent misses
share one read). The countdown is computed per request from server time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from economy.flashsale import FlashSale, Presale, SoldOut
from gameserver.api.common import (
    EMPTY_BODY,
    MERCHANT_PARAM,
    PLAYER_ERRORS,
    Operation,
    idempotency_key,
    json_ok,
    now_s,
    player_ctx,
    public_game,
    read_body,
    reply_response,
    request_hash,
    services,
)
from gameserver.api.flashsale_sweep import sweeper_ctx
from gameserver.api.schemas import obj
from gameserver.games import LiveGame
from gameserver.services import RuleContext, Services, bind
from gameserver.state.singleflight import once
from mechanics import flashsale as rules

STOCK_CACHE_S = 1.0
"""How stale the public stock left (and a claim's sold-out shortcut) may be."""


Stock = tuple[int, int]
"""Units (left, pending): left to claim, and (when none is left) held by claims in flight."""


class StockCache:
    """Units left and pending per (keyspace, merchant, game, ref), read at most once per
    ``ttl`` seconds per process; concurrent misses share one read."""

    def __init__(self, ttl: float = STOCK_CACHE_S) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, ...], tuple[float, Stock]] = {}
        self._flights: dict[tuple[str, ...], asyncio.Future[Stock]] = {}
        self.reads = 0
        """Reads that went to Redis (tests and metrics: the cache works)."""

    async def left(self, key: tuple[str, ...], read: Callable[[], Awaitable[Stock]]) -> Stock:
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return await once(self._flights, key, lambda: self._read(key, read))

    async def _read(self, key: tuple[str, ...], read: Callable[[], Awaitable[Stock]]) -> Stock:
        self.reads += 1
        value = await read()
        self._entries[key] = (time.monotonic(), value)
        return value

    def peek(self, key: tuple[str, ...]) -> Stock | None:
        """The cached units (left, pending) if still fresh, else None (never reads)."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl else None

    def mark_out(self, key: tuple[str, ...], pending: int) -> None:
        """A claim found nothing left (``pending`` in flight): claims of this process that
        have not reached the gate yet are answered sold out without it, for ``ttl``."""
        self._entries[key] = (time.monotonic(), (0, pending))

    def clear(self) -> None:
        self._entries.clear()


STOCK_CACHE = web.AppKey("flashsale_stock_cache", StockCache)


async def _cache_ctx(app: web.Application) -> AsyncIterator[None]:
    app[STOCK_CACHE] = StockCache()
    yield


def _cache_key(svc: Services, live: LiveGame, ref: str) -> tuple[str, ...]:
    return (svc.keys.prefix, live.merchant, live.game, ref)


async def stock_left(request: web.Request, svc: Services, live: LiveGame, ref: str,
                     total: int) -> Stock:
    """Units of ``ref`` (left, pending), through the process's cache."""
    async def read() -> Stock:
        view = await svc.value.stock_left(live.merchant, live.game, {ref: total},
                                          pending=True)
        return int(view.left.get(ref, 0)), int(view.pending.get(ref, 0))
    return await request.app[STOCK_CACHE].left(_cache_key(svc, live, ref), read)


def _chance(cache: StockCache, key: tuple[str, ...], ref: str
            ) -> Callable[[RuleContext], rules.Chance]:
    """The claim rule's chance: the RNG, and the refs that are out or only in flight, by
    the request's view (lowered when a reservation came up short) or, where the view
    has not seen the ref, the process's cache (read when the rule runs, after the
    player's load)."""
    def chance(ctx: RuleContext) -> rules.Chance:
        view, cached = ctx.view, cache.peek(key)
        gone = {r for r, n in view.left.items() if n <= 0}
        pending: Mapping[str, int] = view.pending
        if ref not in view.left and cached is not None and cached[0] <= 0:
            gone.add(ref)
            pending = {**pending, ref: cached[1]}
        return rules.Chance(ctx.rng, frozenset(gone), pending)
    return chance


async def _claim(request: web.Request, ctx: RuleContext, sale_id: str,
                 item: FlashSale | Presale | None, opens_at: int,
                 rule: Callable[..., Any]) -> web.Response:
    """A claim: the sold-out shortcut from the cache once the sale is open, then load →
    rule → value tier → commit once per key (a rule refusal reserves nothing)."""
    key = idempotency_key(request)
    _, raw = await read_body(request, EMPTY_BODY)
    svc = services(request)
    cache, ref = request.app[STOCK_CACHE], item.ref if item else ""
    ckey = _cache_key(svc, ctx.game, ref)
    opened = item is not None and now_s(request) >= opens_at
    ctx.view.tell_pending = True
    if opened and item:
        left, pending = await stock_left(request, svc, ctx.game, ref, item.stock)
        if left <= 0:
            ctx.view.left[ref], ctx.view.pending[ref] = 0, pending
    bound = bind(rule, rules.Claim(sale_id), ctx, _chance(cache, ckey, ref))
    try:
        reply = await svc.run(ctx.ref, key, request_hash(request, raw), bound, view=ctx.view,
                              totals=ctx.game.totals)
    except SoldOut as out:
        cache.mark_out(ckey, int(out.details.get("stock_pending", 0)))
        raise
    return reply_response(reply)


async def claim_flash_sale(request: web.Request) -> web.Response:
    """``claimFlashSale``: hold one unit until ``pay_by``."""
    ctx = await player_ctx(request)
    sale_id = request.match_info["sale"]
    sale = ctx.game.config.flashsales.get(sale_id)
    return await _claim(request, ctx, sale_id, sale, sale.starts_at if sale else 0,
                        rules.claim_flashsale)


async def reserve_presale(request: web.Request) -> web.Response:
    """``reservePresale``: hold one reservation until ``convert_until``."""
    ctx = await player_ctx(request)
    presale_id = request.match_info["presale"]
    presale = ctx.game.config.presales.get(presale_id)
    return await _claim(request, ctx, presale_id, presale,
                        presale.reserve_from if presale else 0, rules.reserve_presale)




async def get_flash_sale(request: web.Request) -> web.Response:
    """``getFlashSale``: price, start, server time, countdown and stock left."""
    live = await public_game(request)
    sale = rules.find_flash_sale(live.config, request.match_info["sale"])
    left, pending = await stock_left(request, services(request), live, sale.ref, sale.stock)
    return json_ok(rules.flash_view(sale, now_s(request), left, pending))


async def get_presale(request: web.Request) -> web.Response:
    """``getPresale``: windows, terms, server time and reservations left."""
    live = await public_game(request)
    presale = rules.find_presale(live.config, request.match_info["presale"])
    left, pending = await stock_left(request, services(request), live, presale.ref,
                                     presale.stock)
    return json_ok(rules.presale_view(presale, now_s(request), left, pending))


_INT = {"type": "integer"}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_NINT = {"type": ["integer", "null"]}
_PENDING = ("with none left: units claims still being settled hold, which may come back "
            "(还有机会: look again after a second)")
ELIGIBILITY = obj({"member_task": _NSTR, "task": _NSTR, "min_orders": _INT})
FLASH_RESPONSE = obj({
    "sale": _STR, "title": _STR, "sku": _STR, "price_fen": _INT, "list_price_fen": _NINT,
    "starts_at": _INT, "ends_at": _NINT, "server_time": _INT,
    "starts_in": {"type": "integer", "description": "seconds until the start (0: started)"},
    "status": {"type": "string", "enum": ["upcoming", "live", "sold_out", "ended"]},
    "stock": _INT, "stock_left": {"type": "integer", "description": f"cached ≤ {STOCK_CACHE_S} s"},
    "stock_pending": {"type": "integer", "description": _PENDING},
    "per_shopper": _INT, "pay_seconds": _INT, "eligibility": ELIGIBILITY})
_TERMS = ["sku", "price_fen", "deposit_fen", "benefit", "event_at"]
"""A presale's terms always shown; priority_until or deposit_value_fen by its benefit."""
_BENEFIT_TEXT = ("priority: priority_until is shown; deposit_multiplier: deposit_value_fen")
PRESALE_RESPONSE = obj({
    "presale": _STR, "title": _STR, "sku": _STR, "price_fen": _INT, "deposit_fen": _INT,
    "benefit": {"type": "string", "enum": ["priority", "deposit_multiplier"],
                "description": _BENEFIT_TEXT},
    "priority_until": _INT, "deposit_value_fen": _INT, "reserve_from": _INT,
    "reserve_until": _INT, "event_at": _INT, "convert_until": _INT, "server_time": _INT,
    "starts_in": _INT, "event_in": _INT,
    "status": {"type": "string", "enum": ["upcoming", "reserving", "sold_out", "waiting",
                                          "buying", "ended"]},
    "stock": _INT, "stock_left": _INT,
    "stock_pending": {"type": "integer", "description": _PENDING},
    "per_shopper": _INT, "eligibility": ELIGIBILITY},
    ["presale", "title", *_TERMS, "reserve_from", "reserve_until", "convert_until",
     "server_time", "starts_in", "event_in", "status", "stock", "stock_left",
     "stock_pending", "per_shopper", "eligibility"])
_HOLD = ["hold", "sale", "status", "claimed_at", "until"]
_HOLD_PROPS: dict[str, Any] = {
    "hold": {"type": "string", "description": "the hold's id (shown in getPlayer)"},
    "sale": _STR, "status": {"type": "string", "enum": ["held"]}, "claimed_at": _INT,
    "until": {"type": "integer", "description": "paid (converted) by then, or it expires"},
    "sku": _STR, "price_fen": _INT}
CLAIM_RESPONSE = obj({**_HOLD_PROPS, "pay_by": _INT},
                     [*_HOLD, "sku", "price_fen", "pay_by"])
"""claimFlashSale: the hold and what it is paid for."""
RESERVE_RESPONSE = obj({
    **_HOLD_PROPS, "deposit_fen": _INT,
    "benefit": {"type": "string", "enum": ["priority", "deposit_multiplier"],
                "description": _BENEFIT_TEXT},
    "event_at": _INT, "priority_until": _INT, "deposit_value_fen": _INT},
    [*_HOLD, *_TERMS])
"""reservePresale: the reservation and the presale's terms."""

_CLAIM_ERRORS = PLAYER_ERRORS
_PUBLIC_ERRORS = (401, 403, 404, 422)

OPERATIONS = [
    Operation("getFlashSale", "GET", "/v1/games/{game}/flashsales/{sale}", get_flash_sale,
              "Public: price, start, server time and countdown, and the stock left",
              auth="public", tag="plays", errors=_PUBLIC_ERRORS, params=MERCHANT_PARAM,
              response=FLASH_RESPONSE),
    Operation("claimFlashSale", "POST", "/v1/games/{game}/flashsales/{sale}/claim",
              claim_flash_sale,
              "Hold one unit until pay_by (a paid order with the sale's SKU confirms it); "
              "409 not_started before the start, 409 sold_out when none is left (with "
              "details.stock_pending and Retry-After while claims in flight hold units "
              "that may come back)",
              auth="player", tag="plays", body=EMPTY_BODY, idempotent=True,
              errors=_CLAIM_ERRORS, response=CLAIM_RESPONSE),
    Operation("getPresale", "GET", "/v1/games/{game}/presales/{presale}", get_presale,
              "Public: reservation and purchase windows, deposit and benefit, server time, "
              "reservations left", auth="public", tag="plays", errors=_PUBLIC_ERRORS,
              params=MERCHANT_PARAM, response=PRESALE_RESPONSE),
    Operation("reservePresale", "POST", "/v1/games/{game}/presales/{presale}", reserve_presale,
              "Reserve (提前购) before the event; converted by a paid order with the "
              "presale's SKU by convert_until, else released",
              auth="player", tag="plays", body=EMPTY_BODY, idempotent=True,
              errors=_CLAIM_ERRORS, response=RESERVE_RESPONSE),
]

BACKGROUND = [_cache_ctx, sweeper_ctx()]
"""This room's ``cleanup_ctx`` entries: the stock cache, and the sweeper that ends holds
past their deadline (on hosts that run background jobs)."""
