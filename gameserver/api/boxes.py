"""Blind-box routes: disclosure, draws, draw history, seed rotation.

Rules live in ``mechanics/boxes.py`` and the odds in ``economy/odds.py``; limited
prizes go through the value tier (``gameserver/state/value.py``), so a prize is in SQL
before the shopper sees it and never oversold.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from economy.boxes import Series
from economy.errors import InvalidInput, known_item
from economy.odds import disclose
from economy.schema import Int, Obj, Str
from gameserver.api.common import (
    EMPTY_BODY,
    QUERY_INT_DIGITS,
    Operation,
    game_id,
    json_ok,
    limit_param,
    now_s,
    player_claims,
    player_ctx,
    public_shadow,
    query_int,
    run_action,
    services,
)
from gameserver.api.schemas import (
    ANY_OBJECT,
    BOOL,
    BOX_SERIES_STATE,
    COUNTS,
    DRAW,
    INT,
    NUM,
    STR,
    array,
    map_of,
    nullable,
    obj,
)
from gameserver.appkeys import GAMES
from gameserver.db.draws import draw_page
from gameserver.games import LiveGame
from gameserver.services import RuleContext, bind
from gameserver.state.keys import MERCHANT_RE, system_key
from gameserver.state.store import Rule
from mechanics import boxes
from mechanics.calendar import local_day
from mechanics.experiments import ShowArm, show_arm
from mechanics.state import PlayerState

DRAW_BODY = Obj(fields={
    "count": Int(choices=(1, 10), default=1, description="1 or 10"),
    "client_seed": Str(max_length=64, default="",
                       description="your own randomness, mixed into the draw (optional)"),
})
PAGE_MAX = 100
CURSOR_MAX = 10**QUERY_INT_DIGITS - 1
"""The largest ``?cursor=`` of listDraws: what :func:`query_int` reads (a draw id)."""
PRICE = obj({"currency": STR, "amount": INT})
SERIES = obj({
    "series": STR, "name": STR, "table": STR, "price": PRICE, "opens_at": INT,
    "closes_at": INT, "caps": obj({"daily": INT, "total": INT}),
    "tiers": array(obj({"id": STR, "name": STR, "rank": INT, "base_probability": NUM,
                        "consolidated_probability": NUM},
                       ["id", "name", "rank", "base_probability"])),
    "items": array(obj({"id": STR, "rarity": STR, "kind": STR, "weight": INT,
                        "base_probability": NUM, "base_probability_exact": STR,
                        "consolidated_probability": NUM, "max_copies": INT,
                        "prize": ANY_OBJECT},
                       ["id", "rarity", "kind", "weight", "base_probability",
                        "base_probability_exact"])),
    "pity": ANY_OBJECT, "duplicates": ANY_OBJECT,
    "completion_reward": nullable(ANY_OBJECT),
    "prize_value_fen": ANY_OBJECT,
    "stock_left": nullable(map_of(INT)),
    "precision": STR, "game_version": INT, "live_version": INT,
    # with a token: the player's seed commitment and progress in this series, and the
    # experiment arm whose odds are shown (the names the answer really has: a client
    # typed from this document reads the seed hash where it is)
    "player": obj({"seed_hash": STR, "nonce": INT,
                   **BOX_SERIES_STATE["properties"]}),
    "arm": nullable(STR),
    "experiments": obj({"note": STR, "arms": array(ANY_OBJECT)}),
}, ["series", "name", "table", "price", "tiers", "items", "pity", "stock_left",
    "game_version"], "the series as published: odds, pity, caps, prize values, stock left "
                     "(null for an old version); with a token, `player` (the player's "
                     "committed seed_hash, next nonce, pity) and `arm`; without one, "
                     "`experiments` (every arm's odds) while an experiment runs or when "
                     "the version asked for ran one")


def _series(live: LiveGame, series_id: str) -> Series:
    return known_item(live.config.boxes.series, series_id, "series")


def _series_totals(live: LiveGame, series: Series) -> dict[str, int]:
    return {f"prize:{e.id}": live.totals[f"prize:{e.id}"] for e in series.prizes}


async def _public_game(request: web.Request) -> tuple[LiveGame, RuleContext | None]:
    """The game of a public route: from the token if one is sent, else ``?merchant=``
    (whose shadow keyspace a load-test merchant's ``X-Petbox-Shadow: 1`` reads)."""
    if request.headers.get("Authorization"):
        ctx = await player_ctx(request)
        return ctx.game, ctx
    merchant = request.query.get("merchant", "")
    if not MERCHANT_RE.fullmatch(merchant):
        raise InvalidInput("without a player token, name the merchant: ?merchant=<id>",
                           field="merchant")
    await public_shadow(request, merchant)
    return await request.app[GAMES].get(merchant, game_id(request)), None


async def get_box_series(request: web.Request) -> web.Response:
    """``getBoxSeries``: odds, pity, caps, prize values and stock left; with a token,
    the player's committed seed hash too (committed now if the player has none), and the
    odds of the experiment arm the player is in. Without a token, the live config's odds
    and, while an experiment runs, every arm's odds (they may vary by cohort)."""
    live, ctx = await _public_game(request)
    asked = _asked_version(request)
    if asked is not None and asked != live.version:
        return json_ok(await _old_disclosure(request, live, asked))
    series = _series(live, request.match_info["series"])
    view = await services(request).value.stock_left(live.merchant, live.game,
                                                    _series_totals(live, series))
    if ctx is None:
        body = disclose(series, view.by_prefix("prize:"))
        # a version asked for by number is read to verify its draws: list every arm that
        # could have drawn under it, also once the experiment's window is over
        at = now_s(request) if asked is None else None
        arms = _arm_disclosures(live, series.id, view.by_prefix("prize:"), at)
        if arms:
            body["experiments"] = {"note": EXPERIMENT_NOTE if at is not None
                                   else VERSION_ARMS_NOTE, "arms": arms}
    else:
        player, state = await _player_seed(request, ctx, series.id)
        arm = live.arm_for(ctx.ref.user, state, now_s(request))
        await _expose(request, ctx, state, arm)
        body = disclose(_series(arm or live, series.id), view.by_prefix("prize:"))
        body["arm"] = arm.arm if arm is not None else None
        body["player"] = player
    body["game_version"] = live.version
    return json_ok(body)


def _asked_version(request: web.Request) -> int | None:
    """``?version=N``: a published version to disclose (None: the live one)."""
    return query_int(request, "version", 1, 2**31 - 1)


async def _old_disclosure(request: web.Request, live: LiveGame,
                          version: int) -> dict[str, Any]:
    """The series as version ``version`` published it, to verify draws recorded under
    it (their ``version`` and ``table``). Stock left is today's, which an old version
    does not have: shown as none (``stock_left`` null) rather than guessed."""
    old = await request.app[GAMES].version(live.merchant, live.game, version)
    series = _series(old, request.match_info["series"])
    body = disclose(series, {})
    body["stock_left"] = None
    # a draw made under an experiment arm of this version records the arm's table: list
    # every such arm, or that draw could not be checked once the version is replaced
    arms = _arm_disclosures(old, series.id, {}, None)
    if arms:
        body["experiments"] = {"note": VERSION_ARMS_NOTE, "arms": arms}
    body["game_version"] = version
    body["live_version"] = live.version
    return body


EXPERIMENT_NOTE = ("an experiment is running: odds may vary by cohort. Each arm's odds are "
                   "listed; with your token this page shows the odds you get.")
VERSION_ARMS_NOTE = ("this version ran an experiment: odds varied by cohort. Each arm's odds "
                     "are listed; a draw record's arm names the one it was drawn with.")


def _arm_disclosures(live: LiveGame, series_id: str, stock: Mapping[str, int],
                     now: int | None) -> list[dict[str, Any]]:
    """Every running arm's disclosure of the series (full disclosure, Korea-style).

    ``now`` None lists the arms of every experiment the version runs, whatever its
    window: the arms its draws may have been made with (stopping or shipping an
    experiment publishes a new version, so a version's running ones are all of them).
    """
    out: list[dict[str, Any]] = []
    for exp in live.config.experiments.values():
        if not (exp.status == "running" if now is None else exp.running(now)):
            continue
        for arm_id, arm in exp.arms.items():
            game = live.arm_game(exp.id, arm_id)
            if game is None or series_id not in game.config.boxes.series:
                continue
            shown = disclose(game.config.boxes.series[series_id], stock)
            out.append({"experiment": exp.id, "arm": arm_id, "percent": arm.percent,
                        "table": shown["table"], "tiers": shown["tiers"],
                        "items": shown["items"], "pity": shown["pity"],
                        "price": shown["price"]})
    return out


SEED_COMMIT_KEY = system_key("box", "seed-commit")
"""The player key of a first seed commitment: the server's, never one a shopper sends."""


async def _player_seed(request: web.Request, ctx: RuleContext,
                       series_id: str) -> tuple[dict[str, Any], PlayerState]:
    """The player's seed commitment (and state); a player without one commits one first
    (idempotently), so the hash is published before their first draw."""
    svc = services(request)
    state = (await svc.store.read(ctx.ref)).state
    if state is None or not state.boxes.seed:
        await svc.run(ctx.ref, SEED_COMMIT_KEY, "box-seed-commit", _rotate_rule(ctx))
        state = (await svc.store.read(ctx.ref)).state
    assert state is not None
    day = local_day(now_s(request), ctx.game.tz)
    return boxes.series_view(state.boxes, series_id, day), state


async def _expose(request: web.Request, ctx: RuleContext, state: PlayerState,
                  arm: LiveGame | None) -> None:
    """Expose the shopper to the arm whose odds they are about to be shown, unless they
    are exposed to it already. A player without a seed was exposed by the seed's commit;
    one whose seed is older than the experiment would otherwise see the arm's odds
    without being counted in it, until their next action (the ones the odds turned away
    never counted at all). Once per experiment: the commit marks the arm in the state."""
    ids = arm.arm_ids if arm is not None else None
    if ids is None or state.experiments.get(ids[0]) == ids[1]:
        return
    await services(request).run(ctx.ref, system_key("box", f"arm-shown-{ids[0]}"),
                                "box-arm-shown", bind(show_arm, ShowArm(), ctx))


def _box_context(ctx: RuleContext) -> boxes.BoxContext:
    """What a box rule gets in place of the RNG, built when it runs (so a re-application
    after a prize ran out sees the lowered view); the game version goes on each record."""
    claims = ctx.claims
    return boxes.BoxContext(fresh_seed=ctx.seed, stock_left=ctx.view.by_prefix("prize:"),
                            tz=ctx.game.tz, age_band=claims.age_band if claims else None,
                            guardian_consent=claims.guardian_consent if claims else False,
                            version=ctx.game.version, arm=ctx.game.arm)


def _draw_rule(body: dict[str, Any], ctx: RuleContext, series_id: str) -> Rule:
    action = boxes.DrawBox(series_id, body["count"], body["client_seed"] or None)
    return bind(boxes.draw, action, ctx.with_seed(secrets.token_hex(32)), _box_context)


def _rotate_rule(ctx: RuleContext) -> Rule:
    return bind(boxes.rotate_seed, boxes.RotateSeed(), ctx.with_seed(secrets.token_hex(32)),
                _box_context)


async def draw_box(request: web.Request) -> web.Response:
    """``drawBox``: 1 or 10 draws in one commit; limited prizes held in SQL first."""
    claims = player_claims(request)
    live = await request.app[GAMES].get(claims.merchant, game_id(request))
    series = _series(live, request.match_info["series"])
    view = await services(request).value.stock_left(live.merchant, live.game,
                                                    _series_totals(live, series))
    return await run_action(request, DRAW_BODY, lambda body, ctx: _draw_rule(
        body, ctx, series.id), view=view)


async def rotate_seed(request: web.Request) -> web.Response:
    """``rotateSeed``: reveal the current server seed (verify past draws with it) and
    commit to a new one."""
    return await run_action(request, EMPTY_BODY, lambda body, ctx: _rotate_rule(ctx))


async def list_draws(request: web.Request) -> web.Response:
    """``listDraws``: the player's draws, newest first, with revealed seeds where rotated.

    Draws reach SQL through the persister, so the newest second may not show yet.
    """
    ctx = await player_ctx(request)
    before, limit = _page(request)
    rows = await draw_page(services(request).db, ctx.ref, before, limit)
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return json_ok({"draws": rows, "next_cursor": next_cursor})


def _page(request: web.Request) -> tuple[int | None, int]:
    limit = query_int(request, "limit", 1, PAGE_MAX)
    return query_int(request, "cursor", 0, CURSOR_MAX), 20 if limit is None else limit


OPERATIONS = [
    Operation("getBoxSeries", "GET", "/v1/games/{game}/boxes/{series}", get_box_series,
              "Disclosure: items, rarities, base and consolidated odds, pity, caps, prize "
              "values, stock left; with a token, the player's seed hash",
              auth="public", tag="blind boxes", errors=(401, 403, 404, 422),
              params={"merchant": Str(pattern=f"^{MERCHANT_RE.pattern}$", min_length=1,
                                      max_length=32, description="the merchant's id "
                                      "(needed without a player token)"),
                      "version": Int(minimum=1, maximum=2**31 - 1, description=(
                          "a published version of the game (default: the live one), to "
                          "verify draws recorded under it; an old version's stock_left "
                          "is null and it carries live_version; without a token it lists "
                          "every arm of an experiment the version ran"))},
              response=SERIES),
    Operation("drawBox", "POST", "/v1/games/{game}/boxes/{series}/draw", draw_box,
              "Draw 1 or 10 boxes in one action (provably fair)", auth="player",
              tag="blind boxes", body=DRAW_BODY, idempotent=True,
              errors=(400, 401, 403, 404, 409, 422, 429, 503), response=obj(
                  {"draws": array(DRAW), "wallet": COUNTS, "inventory": COUNTS,
                   "box": ANY_OBJECT, "completed": BOOL},
                  ["draws", "wallet", "inventory"])),
    Operation("rotateSeed", "POST", "/v1/games/{game}/boxes/seed/rotate", rotate_seed,
              "Reveal the current server seed and commit to a new one", auth="player",
              tag="blind boxes", body=EMPTY_BODY, idempotent=True,
              errors=(400, 401, 403, 404, 409, 422), response=obj({
                  "revealed": nullable(obj({"server_seed": STR, "seed_hash": STR,
                                            "nonces": INT})),
                  "seed_hash": STR, "nonce": INT},
                  description="revealed: the seed now retired (null before any) and how "
                              "many nonces it served; seed_hash: the new seed's commitment")),
    Operation("listDraws", "GET", "/v1/games/{game}/draws", list_draws,
              "The player's draws, newest first, with what is needed to verify each",
              auth="player", tag="blind boxes", errors=(401, 403, 404, 422),
              params={"cursor": Int(minimum=0, maximum=CURSOR_MAX,
                                    description="the next_cursor of the previous page"),
                      "limit": limit_param(PAGE_MAX, f"1..{PAGE_MAX} (default 20)")},
              response=obj({"draws": array({**DRAW, "properties": {
                  **DRAW["properties"], "id": INT, "server_seed": nullable(STR)}}),
                  "next_cursor": nullable(INT)})),
]
