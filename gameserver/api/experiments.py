"""Merchant routes for experiments (A/B tests of the game config).

An experiment lives in the versioned config (``economy.experiments``): putting,
stopping or shipping one publishes a new version (in the version history with its
note), validated in full, every arm's merged config included. The draft, when there
is one, gets the same change when it still validates, so publishing it later does not
undo the experiment. Results are computed in SQL (``gameserver.db.experiments``).
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.errors import NotFound
from economy.experiment_edits import (
    ExperimentNotFound,
    existing_experiment,
    put_experiment,
    ship_arm,
    stop_experiment,
)
from economy.experiments import (
    ARM_SPEC,
    ENDED,
    EXPERIMENT_SPEC,
    STATUSES,
    Experiment,
    status_at,
)
from economy.schema import ID_PATTERN, Bool, Enum, Obj, Spec, Str
from economy.simulate import simulate
from gameserver.api.admin_keys import Written, sql_write
from gameserver.api.common import Operation, checked, decode_json, game_id, merchant_of, now_s
from gameserver.api.merchant_work import run_simulation
from gameserver.api.schemas import shared
from gameserver.appkeys import DB, GAMES
from gameserver.db import configs
from gameserver.db.database import Merchant
from gameserver.db.experiments import experiment_results, sync_draft_in, version_config_in
from gameserver.games import LiveGame
from gameserver.ops.jsondiff import diff

ID_RE = re.compile(ID_PATTERN.strip("^$"))
PUT_BODY = Obj(description="An experiment (see the game config's experiments).", fields={
    **{k: v for k, v in EXPERIMENT_SPEC.fields.items()
       if k not in ("salt", "status", "shipped_arm")},
    "salt": Str(pattern=r"^[A-Za-z0-9_-]{0,64}$", default="", max_length=64,
                description="default: a random salt on creation, the old one on edits"),
    "status": Enum(values=("draft", "running"), default="draft",
                   description="draft: validated, nobody assigned; running: assigning"),
})
SHIP_BODY = Obj(fields={
    "arm": Str(pattern=ID_PATTERN, min_length=1, max_length=64),
    "confirm": Bool(default=False, description="false: only show the diff; true: publish"),
    "note": Str(default="", max_length=120),
})
SIM_PLAYERS = 200
SIM_DRAWS = 50
"""The per-arm simulation of getExperiment: 200 shoppers × 50 single draws per series."""

VIEW_STATUSES = (*STATUSES, ENDED)
STATUS_NOTE = ("draft (validated, nobody assigned), running, ended (running in the "
               "config, but its stops_at passed: nobody is assigned, its results are "
               "frozen, a new experiment may start), stopped, shipped")
_ARM_CONFIG = ARM_SPEC.schema()
ARM_VIEW = {**_ARM_CONFIG, "properties": {**_ARM_CONFIG["properties"], "tables": {
    "type": "object", "additionalProperties": {"type": "string"},
    "description": "series -> the arm's box table hash (what its draw records name); "
                   "in listExperiments and getExperiment, not in a write's answer"}}}
"""An arm as configured plus the ``tables`` that :func:`_view` adds (the config's arm
schema alone forbids any other field)."""
# the experiment as configured (every field of the config's experiment, so a typed client
# sees them), its id, each arm with its tables, and what getExperiment adds
EXPERIMENT_VIEW = shared("Experiment", {"type": "object",
                                        "required": ["experiment", "status", "arms"],
                   "properties": {**EXPERIMENT_SPEC.schema()["properties"],
                                  "experiment": {"type": "string"},
                                  "status": {"type": "string", "enum": list(VIEW_STATUSES),
                                             "description": STATUS_NOTE},
                                  "arms": {"type": "object",
                                           "additionalProperties": ARM_VIEW},
                                  "game_version": {"type": "integer"},
                                  "simulation": {"type": "object",
                                                 "additionalProperties": True}}})
PUBLISHED_VIEW = {"type": "object", "required": ["experiment", "published"], "properties": {
    "experiment": EXPERIMENT_VIEW, "published": {"type": "object"},
    "draft": {"type": "string"}}}


def _experiment_id(request: web.Request) -> str:
    eid = request.match_info["experiment"]
    if not ID_RE.fullmatch(eid):
        raise ExperimentNotFound(eid)
    return eid


def _view(eid: str, raw: dict[str, Any], built: Experiment | None,
          now: int) -> dict[str, Any]:
    """The experiment as stored, its status as of ``now`` (``ended`` past ``stops_at``),
    and with ``built``, each arm's box tables."""
    view = {"experiment": eid, **raw}
    view["status"] = status_at(str(raw.get("status", "draft")), int(raw["stops_at"]), now)
    if built is not None:
        view["arms"] = {aid: {**arm, "tables": _tables(built, aid)}
                        for aid, arm in raw["arms"].items()}
    return view


def _tables(exp: Experiment, arm: str) -> dict[str, str]:
    """Each blind-box series' table hash in this arm (what draw records name)."""
    cfg = exp.configs.get(arm)
    return {sid: s.table_hash for sid, s in cfg.boxes.series.items()} if cfg else {}


async def _live(request: web.Request, merchant: str, game: str) -> tuple[LiveGame,
                                                                         dict[str, Any]]:
    """The live version (parsed) and its config as stored."""
    row = await configs.require_game(request.app[DB], merchant, game)
    if row.live_version is None:
        raise NotFound("this game has no live version", game=game)
    live = await request.app[GAMES].version(merchant, game, row.live_version)
    stored = await configs.get_version(request.app[DB], merchant, game, row.live_version)
    return live, stored["config"]


async def _publish(request: web.Request, merchant: Merchant, operation: str, raw: bytes,
                   note: str, change: Callable[[dict[str, Any]], dict[str, Any]],
                   eid: str) -> web.Response:
    game, now = game_id(request), now_s(request)

    async def effect(conn: AsyncConnection) -> Written:
        done = await configs.publish_change_in(conn, merchant.id, game, now, note, change)
        draft = await sync_draft_in(conn, merchant.id, game, change)
        stored = await version_config_in(conn, merchant.id, game, done.version)
        exp = existing_experiment(stored, eid)
        return Written({"experiment": _view(eid, exp, None, now),
                        "published": done.to_json(),
                        "draft": draft})

    resp = await sql_write(request, merchant.id, operation, raw, effect)
    await request.app[GAMES].reload(merchant.id, game)  # read-your-writes on this process
    return resp


async def _change_request(request: web.Request,
                          spec: Spec) -> tuple[Merchant, str, bytes, dict[str, Any]]:
    """The merchant, experiment id, raw body and checked body of a change to an experiment."""
    merchant = await merchant_of(request)
    # another merchant's (or no) game is 404 whatever the body says
    await configs.require_game(request.app[DB], merchant.id, game_id(request))
    eid = _experiment_id(request)
    raw = await request.read()
    return merchant, eid, raw, checked(spec, decode_json(raw))


async def put_experiment_op(request: web.Request) -> web.Response:
    """``putExperiment``: create or edit an experiment, published as a new version."""
    merchant, eid, raw, body = await _change_request(request, PUT_BODY)
    now = now_s(request)
    salt = secrets.token_hex(8)
    return await _publish(request, merchant, "putExperiment", raw, f"experiment {eid}: put",
                          lambda c: put_experiment(c, eid, body, now, salt), eid)


async def stop_experiment_op(request: web.Request) -> web.Response:
    """``stopExperiment``: everyone back on the live config, published as a new version."""
    merchant, eid, raw, _ = await _change_request(request, Obj(fields={}))
    return await _publish(request, merchant, "stopExperiment", raw, f"experiment {eid}: stop",
                          lambda c: stop_experiment(c, eid), eid)


async def ship_experiment_arm(request: web.Request) -> web.Response:
    """``shipExperimentArm``: without ``confirm`` the diff it would publish; with it, the
    arm's merged config published as the next version (experiment marked shipped)."""
    merchant, eid, raw, body = await _change_request(request, SHIP_BODY)
    arm = body["arm"]
    if not body["confirm"]:
        _, stored = await _live(request, merchant.id, game_id(request))
        shipped = ship_arm(copy.deepcopy(stored), eid, arm)
        return web.json_response({"experiment": eid, "arm": arm, "confirm_required": True,
                                  "changes": diff(stored, shipped)})
    note = f"experiment {eid}: ship arm {arm}" + (f": {body['note']}" if body["note"] else "")
    return await _publish(request, merchant, "shipExperimentArm", raw, note,
                          lambda c: ship_arm(c, eid, arm), eid)


async def get_experiment(request: web.Request) -> web.Response:
    """``getExperiment``: the experiment as configured, each arm's box tables, and with
    ``?simulate=1`` a Monte Carlo run of every series in every arm."""
    merchant = await merchant_of(request)
    eid = _experiment_id(request)
    live, stored = await _live(request, merchant.id, game_id(request))
    exp = existing_experiment(stored, eid)
    built = live.config.experiments.get(eid)
    view = _view(eid, exp, built, now_s(request))
    view["game_version"] = live.version
    if request.query.get("simulate") == "1" and built is not None:
        # CPU work (arms × series simulations): on the merchants' bounded pool, never
        # on the event loop that serves every shopper
        view["simulation"] = await run_simulation(request, merchant.id, _simulate, built)
    return web.json_response(view)


def _simulate(exp: Experiment) -> dict[str, Any]:
    """Per arm and series: the simulator's report over the arm's merged config."""
    return {arm: {sid: simulate(series, SIM_PLAYERS, SIM_DRAWS, f"{exp.salt}:{arm}").to_json()
                  for sid, series in cfg.boxes.series.items()}
            for arm, cfg in exp.configs.items()}


async def list_experiments(request: web.Request) -> web.Response:
    """``listExperiments``: every experiment of the live config."""
    merchant = await merchant_of(request)
    game = game_id(request)
    live, stored = await _live(request, merchant.id, game)
    exps, now = stored.get("experiments") or {}, now_s(request)
    return web.json_response({"game": game, "game_version": live.version, "experiments": [
        _view(eid, e, live.config.experiments.get(eid), now)
        for eid, e in sorted(exps.items())]})


async def get_experiment_results(request: web.Request) -> web.Response:
    """``getExperimentResults``: per-arm results computed in SQL with intervals, tests
    against the control, the sample-ratio check and the fixed-horizon verdict."""
    merchant = await merchant_of(request)
    eid = _experiment_id(request)
    live, _ = await _live(request, merchant.id, game_id(request))
    exp = live.config.experiments.get(eid)
    if exp is None:  # removed since (stopped first): its rows are still in SQL
        old = await configs.last_version_with(request.app[DB], merchant.id, live.game,
                                              "experiments", eid)
        if old is None:
            raise ExperimentNotFound(eid)
        exp = (await request.app[GAMES].version(merchant.id, live.game, old)
               ).config.experiments[eid]
    body = await experiment_results(request.app[DB].report, merchant.id, live.game, exp, live.tz,
                                    now_s(request))
    return web.json_response(body)


ERRORS = (401, 403, 404)
BASE = "/v1/admin/games/{game}/experiments"
RESULTS = {"type": "object", "required": ["experiment", "exposed", "metrics", "primary"],
           "properties": {"experiment": {"type": "string"},
                          "status": {"type": "string", "enum": list(VIEW_STATUSES),
                                     "description": STATUS_NOTE},
                          "exposed": {"type": "object"},
                          "sample_ratio": {"type": ["object", "null"]},
                          "primary": {"type": "object"}, "metrics": {"type": "object"},
                          "method": {"type": "object"}}}

OPERATIONS = [
    Operation("listExperiments", "GET", BASE, list_experiments,
              "Experiments of the live config", auth="merchant", tag="merchant",
              errors=ERRORS, response={
                  "type": "object", "required": ["game", "game_version", "experiments"],
                  "properties": {"game": {"type": "string"},
                                 "game_version": {"type": "integer",
                                                  "description": "the live version"},
                                 "experiments": {"type": "array",
                                                 "items": EXPERIMENT_VIEW}}}),
    Operation("putExperiment", "PUT", f"{BASE}/{{experiment}}", put_experiment_op,
              "Create or edit an experiment; publishes a new version (every arm's merged "
              "config validated); 409 once started for allocation, arms or metrics",
              auth="merchant", tag="merchant", body=PUT_BODY, optional_key=True,
              response=PUBLISHED_VIEW, errors=(400, *ERRORS, 409, 422), config_body=True),
    Operation("getExperiment", "GET", f"{BASE}/{{experiment}}", get_experiment,
              "An experiment, each arm's box tables, and (simulate=1) a simulation per arm",
              auth="merchant", tag="merchant", errors=(*ERRORS, 429), response=EXPERIMENT_VIEW,
              params={"simulate": "1: run the Monte Carlo simulator on every arm"}),
    Operation("getExperimentResults", "GET", f"{BASE}/{{experiment}}/results",
              get_experiment_results,
              "Per-arm results (retention, draws, spend, prize cost, orders, GMV) with "
              "intervals, tests, a sample-ratio check and the fixed-horizon verdict",
              auth="merchant", tag="merchant", errors=ERRORS, response=RESULTS),
    Operation("shipExperimentArm", "POST", f"{BASE}/{{experiment}}/ship", ship_experiment_arm,
              "Publish an arm's merged config as the next version (confirm: false shows "
              "the diff only)", auth="merchant", tag="merchant", body=SHIP_BODY,
              optional_key=True, errors=(400, *ERRORS, 409, 422),
              response={"type": "object", "required": ["experiment"], "properties": {
                  "experiment": {"description": "the experiment's id (confirm: false) or "
                                                "the experiment as now stored"},
                  "arm": {"type": "string"}, "confirm_required": {"type": "boolean"},
                  "published": {"type": "object"}}}),
    Operation("stopExperiment", "POST", f"{BASE}/{{experiment}}/stop", stop_experiment_op,
              "Stop an experiment: everyone back on the live config (a new version)",
              auth="merchant", tag="merchant", body=Obj(fields={}), optional_key=True,
              response=PUBLISHED_VIEW, errors=(400, *ERRORS, 409, 422)),
]
