"""``simulateGame``: Monte Carlo over a blind-box series of a draft or a version.

The simulation is :func:`economy.simulate.simulate` (the real draw code path).
It is CPU work, so it runs on the merchants' own bounded thread pool (one at a time
per merchant: :mod:`gameserver.api.merchant_work`), and a request is capped at
:data:`MAX_TOTAL_DRAWS` draws (players × draws) — about the 10 s budget of one
core — anything bigger is refused with 422 before any work.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from economy.errors import InvalidInput, NotFound
from economy.schema import Int, Map, Obj, Str
from economy.simulate import simulate
from gameserver.api.common import (
    Operation,
    checked,
    decode_json,
    game_id,
    merchant_of,
    services,
)
from gameserver.api.merchant_work import run_simulation
from gameserver.api.schemas import ANY_OBJECT, INT, NUM, STR, map_of, nullable, obj
from gameserver.appkeys import DB
from gameserver.db import configs
from gameserver.games import parse_config

MAX_TOTAL_DRAWS = 1_000_000

SIMULATE_BODY = Obj(fields={
    "series": Str(min_length=1, max_length=64, description="the blind-box series"),
    "version": Str(default="", max_length=12,
                   description="a version number, live or draft (default: the draft if "
                               "there is one, else the live version)"),
    "players": Int(default=1000, minimum=1, maximum=MAX_TOTAL_DRAWS),
    "draws": Int(default=100, minimum=1, maximum=MAX_TOTAL_DRAWS,
                 description="draws per player, a multiple of batch"),
    "batch": Int(default=1, choices=(1, 10), description="1 or 10 (ten-pulls)"),
    "seed": Str(default="0", max_length=64, description="same seed, same result"),
    "stock": Map(default={}, values=Int(minimum=0, maximum=10**9),
                 description="limited prize → stock at the start (default: what the game "
                             "has left of it now, or the configured stock of a prize it "
                             "does not count yet)"),
})


def _problems(body: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    if body["draws"] % body["batch"]:  # batch is 1 or 10 (SIMULATE_BODY)
        out.append({"path": "$.draws", "message": "must be a multiple of batch"})
    if body["players"] * body["draws"] > MAX_TOTAL_DRAWS:
        out.append({"path": "$.draws",
                    "message": f"players × draws must be ≤ {MAX_TOTAL_DRAWS}"})
    return out


async def _config(request: web.Request, merchant: str, game: str,
                  ref: str) -> tuple[str, dict[str, Any]]:
    db = request.app[DB]
    if ref:
        return await configs.resolve(db, merchant, game, ref)
    row = await configs.require_game(db, merchant, game)
    return await configs.resolve(db, merchant, game, "draft" if row.draft else "live")


async def simulate_game(request: web.Request) -> web.Response:
    merchant = await merchant_of(request)
    game = game_id(request)
    body = checked(SIMULATE_BODY, decode_json(await request.read()))
    problems = _problems(body)
    if problems:
        raise InvalidInput("simulation request is invalid", problems=problems)
    label, raw = await _config(request, merchant.id, game, body["version"])
    series = parse_config(raw).boxes.series.get(body["series"])
    if series is None:
        raise NotFound("no such series in this config", series=body["series"], config=label)
    limited = {e.id for e in series.prizes}
    unknown = sorted(set(body["stock"]) - limited)
    if unknown:  # a typo would otherwise simulate the configured stock, silently
        raise InvalidInput("stock names a prize the series does not have", problems=[
            {"path": f"$.stock.{p}", "message": f"not a limited prize of {series.id} "
             f"(its prizes: {', '.join(sorted(limited)) or 'none'})"} for p in unknown])
    stock = {e.id: e.prize.stock for e in series.entries if e.prize is not None}
    unnamed = sorted(limited - set(body["stock"]))
    stock.update(await _left(request, merchant.id, game, unnamed) if unnamed else {})
    stock.update(body["stock"])
    result = await run_simulation(request, merchant.id, simulate, series, body["players"],
                                  body["draws"], body["seed"], batch=body["batch"],
                                  stock=stock)
    return web.json_response({"game": game, "config": label, "series": series.id,
                              "seed": body["seed"], "stock": stock, **result.to_json()})


async def _left(request: web.Request, merchant: str, game: str,
                prizes: list[str]) -> dict[str, int]:
    """What the game has left of ``prizes`` now (SQL's count), for those it counts: a
    forecast of a draft mid-event starts from the units still there, not from the
    configured total of which part is already won."""
    rows = await services(request).value.stock_report(merchant, game,
                                                      [f"prize:{p}" for p in prizes])
    return {row["ref"].removeprefix("prize:"): max(0, row["left"]) for row in rows}


RATE = obj({"count": INT, "rate": NUM})

OPERATIONS = [
    Operation("simulateGame", "POST", "/v1/admin/games/{game}/simulate", simulate_game,
              "Monte Carlo over a series of the draft or a version: distribution per item "
              f"and tier, pity rates, prize cost per draw, draws to complete the set, "
              f"sell-out points (players × draws ≤ {MAX_TOTAL_DRAWS})",
              auth="merchant", tag="merchant", body=SIMULATE_BODY, errors=(400, 401, 403,
                                                                           404, 422, 429),
              response=obj({
                  "game": STR, "config": STR, "series": STR, "seed": STR,
                  "stock": map_of(INT), "players": INT,
                  "draws": INT, "batch": INT, "items": map_of(RATE), "tiers": map_of(RATE),
                  "pity": map_of(NUM), "prize_cost_fen_per_draw": NUM,
                  "price_per_draw": ANY_OBJECT, "complete_set": ANY_OBJECT,
                  "sold_out_at_draw": map_of(nullable(INT))},
                  ["game", "config", "series", "players", "draws", "items", "tiers"])),
]
