"""Operations endpoints: health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gameserver.api.common import Operation
from gameserver.appkeys import DB, METRICS, REDIS
from gameserver.workerboard import WORKER_BOARD

OPENAPI = web.AppKey("openapi", dict[str, Any])


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis and SQL both answer within a second; 503 names what does not.

    ``workers`` says how many HTTP workers of ``serve --workers N`` are serving. One
    missing (crashed, being restarted with back-off) is ``degraded: true`` but still
    200: this process can serve, and the workers share one port, so a 503 would make
    a load balancer take the whole host out for one worker's fault. Alert on
    ``degraded`` instead."""
    checks: dict[str, str] = {}
    for name, probe in (("redis", request.app[REDIS].ping()), ("sql", request.app[DB].ping())):
        try:
            await asyncio.wait_for(probe, 1.0)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; say which
            checks[name] = f"unavailable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    board = request.app.get(WORKER_BOARD)
    workers = board.status() if board is not None else {"ready": 1, "expected": 1,
                                                        "degraded": False}
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks,
                              "workers": workers}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


OPERATIONS = [
    Operation("healthz", "GET", "/healthz", healthz, "Liveness", auth="none", tag="operations"),
    Operation("readyz", "GET", "/readyz", readyz, "Readiness: Redis and SQL reachable",
              auth="none", tag="operations", errors=(503,)),
    Operation("metrics", "GET", "/metrics", metrics, "Prometheus metrics", auth="none",
              tag="operations", response={"type": "string"},
              content_type="text/plain"),
    Operation("openapi", "GET", "/openapi.json", openapi, "This document", auth="none",
              tag="operations"),
]
