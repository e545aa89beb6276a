"""A bare aiohttp server for replay tests: answers like petbox, does nothing.

``python bare_server.py PORT [DELAY_MS [CONCURRENCY]]`` serves ``createSession`` (a token per user),
``getPlayer``, ``adoptPet`` and ``feedPet``; ``playWithPet`` is broken (always a
500), ``collectProduce`` sheds (``503 overloaded`` with ``Retry-After``, as petbox's
admission does) and ``cleanPet`` is a 503 without ``Retry-After`` (a proxy's: a
failure); every other path is a petbox-style 404. A user id containing ``slowlogin``
waits 300 ms for its session, one containing ``shedlogin`` has its login shed.
``GET /_seen`` tells what arrived (counts, headers seen), so tests can check what the
replay sent without trusting its own numbers.

With ``DELAY_MS`` every game request sleeps that long before answering, and with
``CONCURRENCY`` at most that many are served at once (the rest queue): a slow
target of known capacity (``CONCURRENCY / DELAY`` requests/s).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from aiohttp import web

SEEN: Counter[str] = Counter()
DELAY_S = 0.0
GATE: asyncio.Semaphore | None = None


async def session(request: web.Request) -> web.Response:
    body = await request.json()
    SEEN["createSession"] += 1
    if "slowlogin" in body["user"]:
        await asyncio.sleep(0.3)
    if "shedlogin" in body["user"]:
        return overloaded()
    if len(body.get("sign", "")) != 64:
        SEEN["bad_sign"] += 1
    expires = int(time.time()) + 3600
    return web.json_response({"token": f"tok-{body['user']}", "expires_at": expires},
                             status=201)


async def game(request: web.Request) -> web.Response:
    if GATE is not None:
        async with GATE:
            await asyncio.sleep(DELAY_S)
    elif DELAY_S:
        await asyncio.sleep(DELAY_S)
    SEEN[f"{request.method} {request.match_info['rest']}"] += 1
    if not request.headers.get("Authorization", "").startswith("Bearer tok-"):
        SEEN["no_token"] += 1
    if request.headers.get("X-Petbox-Shadow") == "1":
        SEEN["shadow"] += 1
    if request.method == "POST":
        if request.headers.get("Idempotency-Key"):
            SEEN["idempotency_key"] += 1
        await request.read()
        return web.json_response({}, status=201 if request.match_info["rest"] == "pet" else 200)
    return web.json_response({"player": {}})


async def not_found(request: web.Request) -> web.Response:
    SEEN["404"] += 1
    return web.json_response({"error": {"code": "not_found", "message": "no such route",
                                        "details": {}}}, status=404)


async def broken(request: web.Request) -> web.Response:
    SEEN["500"] += 1
    return web.json_response({"error": {"code": "internal", "message": "broken on purpose",
                                        "details": {}}}, status=500)


def overloaded() -> web.Response:
    SEEN["503 overloaded"] += 1
    return web.json_response({"error": {"code": "overloaded", "message": "at capacity",
                                        "details": {}}}, status=503,
                             headers={"Retry-After": "1"})


async def shed(request: web.Request) -> web.Response:
    return overloaded()


async def proxy_503(request: web.Request) -> web.Response:
    SEEN["503"] += 1
    return web.Response(text="<html>503 Service Unavailable</html>", status=503,
                        content_type="text/html")


async def seen(request: web.Request) -> web.Response:
    return web.json_response(dict(SEEN))


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/sessions", session)
    app.router.add_get("/_seen", seen)
    app.router.add_route("*", "/v1/games/{game}/{rest:(me|pet|pet/feed)}", game)
    app.router.add_post("/v1/games/{game}/pet/play", broken)
    app.router.add_post("/v1/games/{game}/pet/collect", shed)
    app.router.add_post("/v1/games/{game}/pet/clean", proxy_503)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    DELAY_S = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    if len(sys.argv) > 3:
        GATE = asyncio.Semaphore(int(sys.argv[3]))
    print(json.dumps({"port": port}), flush=True)
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)
