"""Operations endpoints: health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gameserver.api.common import Operation
from gameserver.api.schemas import ANY_OBJECT, BOOL, INT, STR, array, map_of, obj
from gameserver.appkeys import BACKLOG_GAUGES, DB, KEYS, METRICS, REDIS, SETTINGS
from gameserver.ops.workerboard import WORKER_BOARD
from gameserver.state.redishealth import NodeHealth, probe, refresh_if_failing

OPENAPI = web.AppKey("openapi", dict[str, Any])
READY_BOUND_S = 1.0
"""How long SQL has to answer ``/readyz``'s probe."""


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis and SQL both answer within a second; 503 names what does not.

    Redis is checked per node: on a Redis Cluster, every master serving one of the
    logical shards must answer (``redis_nodes`` lists each with its slots and shards,
    and says which fail), so a host is never ready while some shards are not.

    ``workers`` says how many HTTP workers of ``serve --workers N`` are serving. One
    missing (crashed, being restarted with back-off) is ``degraded: true`` but still
    200: this process can serve, and the workers share one port, so a 503 would make
    a load balancer take the whole host out for one worker's fault. Alert on
    ``degraded`` instead."""
    nodes, sql = await asyncio.gather(_redis_nodes(request.app), _sql(request.app))
    down = sorted(s for n in nodes if not n.ok for s in n.shards)
    checks = {"redis": "ok" if not down else
              f"unavailable: shards {down} on {', '.join(n.node for n in nodes if not n.ok)}",
              "sql": sql}
    ok = all(v == "ok" for v in checks.values())
    board = request.app.get(WORKER_BOARD)
    workers = board.status() if board is not None else {"ready": 1, "expected": 1,
                                                        "degraded": False}
    # Not ready says when to probe again, as every petbox 503 does.
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks,
                              "redis_nodes": [n.as_json() for n in nodes],
                              "workers": workers}, status=200 if ok else 503,
                             headers=None if ok else {"Retry-After": "1"})


async def _redis_nodes(app: web.Application) -> list[NodeHealth]:
    """Every Redis node's health (probed again once after a slot-map refresh when one
    failed: a replica may have taken over), also set as gauges."""
    redis, keys, shards = app[REDIS], app[KEYS], app[SETTINGS].shards
    nodes = await probe(redis, keys, shards)
    if await refresh_if_failing(redis, nodes):
        nodes = await probe(redis, keys, shards)
    metrics = app[METRICS]
    for node in nodes:
        metrics.redis_node_up.labels(node.node).set(1 if node.ok else 0)
    metrics.redis_shards_down.set(sum(len(n.shards) for n in nodes if not n.ok))
    return nodes


async def _sql(app: web.Application) -> str:
    try:
        await asyncio.wait_for(app[DB].probe(READY_BOUND_S), READY_BOUND_S)
        return "ok"
    except Exception as exc:  # any failure means "not ready"; say which
        return f"unavailable: {type(exc).__name__}"


async def metrics(request: web.Request) -> web.Response:
    if (backlog_gauges := request.app.get(BACKLOG_GAUGES)) is not None:
        # Best effort: with Redis down the gauges keep their last values, and
        # petbox_redis_node_up says why.
        with contextlib.suppress(Exception):
            await backlog_gauges()
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


READINESS = obj({"status": STR, "checks": map_of(STR), "redis_nodes": array(ANY_OBJECT),
                 "workers": obj({"ready": INT, "expected": INT, "degraded": BOOL})})
"""``/readyz``'s report, ready (200) or not (503)."""

OPERATIONS = [
    Operation("healthz", "GET", "/healthz", healthz, "Liveness", auth="none", tag="operations",
              response=obj({"status": STR})),
    Operation("readyz", "GET", "/readyz", readyz, "Readiness: Redis and SQL reachable",
              auth="none", tag="operations", errors=(503,), response=READINESS,
              error_bodies={503: READINESS}),
    Operation("metrics", "GET", "/metrics", metrics, "Prometheus metrics", auth="none",
              tag="operations", response={"type": "string"},
              content_type="text/plain"),
    Operation("openapi", "GET", "/openapi.json", openapi, "This document", auth="none",
              tag="operations", response=obj({"openapi": STR, "info": ANY_OBJECT,
                                               "paths": ANY_OBJECT,
                                               "components": ANY_OBJECT})),
]
