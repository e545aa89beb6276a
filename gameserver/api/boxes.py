"""Blind-box routes: disclosure, draws, draw history, seed rotation.

Rules live in ``mechanics/boxes.py`` and the odds in ``economy/odds.py``; limited
prizes go through the value tier (``gameserver/value.py``), so a prize is in SQL
before the shopper sees it and never oversold.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from sqlalchemy import and_, select

from economy.boxes import Series
from economy.errors import InvalidInput, UnknownItem
from economy.odds import disclose
from economy.schema import Int, Obj, Str
from gameserver.api.common import (
    Operation,
    PlayerCtx,
    game_id,
    json_ok,
    player_claims,
    player_ctx,
    run_action,
    services,
)
from gameserver.appkeys import GAMES
from gameserver.db import models as m
from gameserver.games import LiveGame
from gameserver.keys import MERCHANT_RE, PlayerRef
from gameserver.store import Rule
from gameserver.value import StockView
from mechanics import boxes
from mechanics.outcome import Outcome
from mechanics.state import PlayerState

DRAW_BODY = Obj(fields={
    "count": Int(minimum=1, maximum=10, default=1, description="1 or 10"),
    "client_seed": Str(max_length=64, default="",
                       description="your own randomness, mixed into the draw (optional)"),
})
EMPTY_BODY = Obj(fields={})
PAGE_MAX = 100


def _series(live: LiveGame, series_id: str) -> Series:
    series = live.config.boxes.series.get(series_id)
    if series is None:
        raise UnknownItem(f"unknown series {series_id!r}", kind="series", id=series_id,
                          known=sorted(live.config.boxes.series))
    return series


def _series_totals(live: LiveGame, series: Series) -> dict[str, int]:
    return {f"prize:{e.id}": live.totals[f"prize:{e.id}"] for e in series.prizes}


async def _public_game(request: web.Request) -> tuple[LiveGame, PlayerCtx | None]:
    """The game of a public route: from the token if one is sent, else ``?merchant=``."""
    if request.headers.get("Authorization"):
        ctx = await player_ctx(request)
        return ctx.game, ctx
    merchant = request.query.get("merchant", "")
    if not MERCHANT_RE.fullmatch(merchant):
        raise InvalidInput("without a player token, name the merchant: ?merchant=<id>",
                           field="merchant")
    return await request.app[GAMES].get(merchant, game_id(request)), None


async def get_box_series(request: web.Request) -> web.Response:
    """``getBoxSeries``: odds, pity, caps, prize values and stock left; with a token,
    the player's committed seed hash too (committed now if the player has none)."""
    live, ctx = await _public_game(request)
    series = _series(live, request.match_info["series"])
    view = await services(request).value.stock_left(live.merchant, live.game,
                                                    _series_totals(live, series))
    body = disclose(series, view.by_prefix("prize:"))
    body["game_version"] = live.version
    if ctx is not None:
        body["player"] = await _player_seed(request, ctx, series.id)
    return json_ok(body)


async def _player_seed(request: web.Request, ctx: PlayerCtx, series_id: str) -> dict[str, Any]:
    """The player's seed commitment; a player without one commits one first (idempotently),
    so the hash is published before their first draw."""
    store = services(request).store
    state = (await store.read(ctx.ref)).state
    if state is None or not state.boxes.seed:
        await store.run(ctx.ref, "box-seed-commit", "box-seed-commit", _rotate_rule(ctx))
        state = (await store.read(ctx.ref)).state
    assert state is not None
    return boxes.series_view(state.boxes, series_id)


def _context(ctx: PlayerCtx, fresh_seed: str, view: StockView) -> boxes.BoxContext:
    return boxes.BoxContext(fresh_seed=fresh_seed, stock_left=view.by_prefix("prize:"),
                            tz=ctx.game.tz, age_band=ctx.claims.age_band,
                            guardian_consent=ctx.claims.guardian_consent)


def _with_version(outcome: Outcome, version: int) -> Outcome:
    """Stamp the game version on every draw record (the rule does not know it)."""
    for record in outcome.response.get("draws", []):
        record["version"] = version
    for event in outcome.events:
        if event.get("type") == "box_draw":
            event["version"] = version
    return outcome


def _draw_rule(body: dict[str, Any], ctx: PlayerCtx, view: StockView, series_id: str) -> Rule:
    action = boxes.DrawBox(series_id, body["count"], body["client_seed"] or None)
    fresh_seed = secrets.token_hex(32)
    config, version = ctx.game.config, ctx.game.version

    def rule(state: PlayerState | None, now: int) -> Outcome:
        # Reads the view at call time: after a prize ran out the store re-applies us.
        outcome = boxes.draw(state, action, now, _context(ctx, fresh_seed, view), config)
        return _with_version(outcome, version)

    return rule


async def draw_box(request: web.Request) -> web.Response:
    """``drawBox``: 1 or 10 draws in one commit; limited prizes held in SQL first."""
    claims = player_claims(request)
    live = await request.app[GAMES].get(claims.merchant, game_id(request))
    series = _series(live, request.match_info["series"])
    view = await services(request).value.stock_left(live.merchant, live.game,
                                                    _series_totals(live, series))
    return await run_action(request, DRAW_BODY, lambda body, ctx, v: _draw_rule(
        body, ctx, v, series.id), view=view)


def _rotate_rule(ctx: PlayerCtx) -> Rule:
    fresh_seed = secrets.token_hex(32)
    config = ctx.game.config

    def rule(state: PlayerState | None, now: int) -> Outcome:
        return boxes.rotate_seed(state, boxes.RotateSeed(), now,
                                 _context(ctx, fresh_seed, StockView()), config)

    return rule


async def rotate_seed(request: web.Request) -> web.Response:
    """``rotateSeed``: reveal the current server seed (verify past draws with it) and
    commit to a new one."""
    return await run_action(request, EMPTY_BODY, lambda body, ctx, v: _rotate_rule(ctx))


async def list_draws(request: web.Request) -> web.Response:
    """``listDraws``: the player's draws, newest first, with revealed seeds where rotated.

    Draws reach SQL through the persister, so the newest second may not show yet.
    """
    ctx = await player_ctx(request)
    before, limit = _page(request)
    rows = await _draw_rows(request, ctx.ref, before, limit)
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return json_ok({"draws": rows, "next_cursor": next_cursor})


def _page(request: web.Request) -> tuple[int | None, int]:
    try:
        before = int(request.query["cursor"]) if request.query.get("cursor") else None
        limit = int(request.query.get("limit", "20"))
    except ValueError as exc:
        raise InvalidInput("cursor and limit must be integers") from exc
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidInput(f"limit must be 1..{PAGE_MAX}", field="limit")
    return before, limit


async def _draw_rows(request: web.Request, ref: PlayerRef, before: int | None,
                     limit: int) -> list[dict[str, Any]]:
    d, s = m.draws, m.revealed_seeds
    join = d.outerjoin(s, and_(s.c.merchant_id == d.c.merchant_id, s.c.game_id == d.c.game_id,
                               s.c.user_id == d.c.user_id, s.c.seed_hash == d.c.seed_hash))
    q = (select(d.c.id, d.c.record, d.c.ts_ms, s.c.seed).select_from(join)
         .where(d.c.merchant_id == ref.merchant, d.c.game_id == ref.game,
                d.c.user_id == ref.user)
         .order_by(d.c.id.desc()).limit(limit))
    if before is not None:
        q = q.where(d.c.id < before)
    async with services(request).db.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [{"id": r[0], **r[1], "server_seed": r[3]} for r in rows]


OPERATIONS = [
    Operation("getBoxSeries", "GET", "/v1/games/{game}/boxes/{series}", get_box_series,
              "Disclosure: items, rarities, base and consolidated odds, pity, caps, prize "
              "values, stock left; with a token, the player's seed hash",
              auth="none", tag="blind boxes", errors=(401, 404, 422),
              params={"merchant": "the merchant's id (needed without a player token)"}),
    Operation("drawBox", "POST", "/v1/games/{game}/boxes/{series}/draw", draw_box,
              "Draw 1 or 10 boxes in one action (provably fair)", auth="player",
              tag="blind boxes", body=DRAW_BODY, idempotent=True,
              errors=(400, 401, 403, 404, 409, 422, 429, 503)),
    Operation("rotateSeed", "POST", "/v1/games/{game}/boxes/seed/rotate", rotate_seed,
              "Reveal the current server seed and commit to a new one", auth="player",
              tag="blind boxes", body=EMPTY_BODY, idempotent=True,
              errors=(400, 401, 403, 404, 409, 422)),
    Operation("listDraws", "GET", "/v1/games/{game}/draws", list_draws,
              "The player's draws, newest first, with what is needed to verify each",
              auth="player", tag="blind boxes", errors=(401, 403, 404, 422),
              params={"cursor": "the next_cursor of the previous page",
                      "limit": f"1..{PAGE_MAX} (default 20)"}),
]
