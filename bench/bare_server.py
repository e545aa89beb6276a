"""The baseline: a bare aiohttp JSON endpoint, N processes sharing one port.

Same framework and defaults as petbox (plain asyncio loop, no access log), and the
same request shape: ``POST /v1/games/{game}/pet/feed`` with a small JSON body,
decoded and answered with a small JSON object. No Redis, no auth, no rules.

    python bench/bare_server.py --port 8081 --workers 2
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gameserver.ops.supervise import supervise


async def feed(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"ok": True, "food": body.get("food"),
                              "user": request.headers.get("Authorization", "")[-8:]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/games/{game}/pet/feed", feed)
    app.router.add_get("/healthz", healthz)
    return app


def serve_one(host: str, port: int, reuse_port: bool, loop: str = "asyncio") -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    web.run_app(make_app(), host=host, port=port, reuse_port=reuse_port,
                access_log=None, print=None, shutdown_timeout=2)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    a = p.parse_args(argv)
    if a.workers == 1:
        serve_one(a.host, a.port, False, a.loop)
        return 0
    run_workers(serve_one, (a.host, a.port, True, a.loop), a.workers, "bare")
    return 0


def run_workers(target: Callable[..., None], args: tuple[Any, ...], workers: int,
                name: str) -> None:
    """``target(*args)`` in ``workers`` spawned processes (they share the port through
    SO_REUSEPORT); SIGTERM and SIGINT are passed on; returns when all have exited."""
    ctx = multiprocessing.get_context("spawn")
    supervise([functools.partial(ctx.Process, target=target, args=args, name=f"{name}-{i}")
               for i in range(workers)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
