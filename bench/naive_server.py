"""The issue's middle reference: a *naive* aiohttp + redis-py read + Lua-commit endpoint.

Issue 2 calibrates petbox against "a naive aiohttp + redis-py read + Lua-commit
endpoint" (≈ 0.16 of bare aiohttp on the machine it was measured on). This is that
endpoint, so the bench can measure the same reference on *this* machine in the same
run: ``POST /v1/games/{game}/pet/feed`` reads the player's msgpack state and version
with one ``HMGET``, adds satiety in Python, and commits with one Lua script (version
check, state write, one ledger ``XADD``) through redis-py's ``register_script``. No
auth, no idempotency, no rules engine, no metrics, no persister: the floor that any
Redis-backed game server pays.

The player key comes from the ``Authorization`` header (the bench sends one fake
token per player), so players are spread like petbox's.

    python bench/naive_server.py --port 8082 --workers 2 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgpack
import redis.asyncio as aioredis
from aiohttp import web
from bare_server import run_workers

COMMIT = """
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'p', KEYS[1], 'd', ARGV[4])
return 1
"""

REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis", aioredis.Redis)
SCRIPT: web.AppKey[Any] = web.AppKey("script", object)


async def feed(request: web.Request) -> web.Response:
    body = await request.json()
    r = request.app[REDIS]
    key = "naive:{p:" + request.headers.get("Authorization", "anon")[-12:] + "}"
    for _ in range(5):  # version conflicts are rare here (players round-robin)
        version, raw = await r.hmget(key, "v", "s")
        state = msgpack.unpackb(raw) if isinstance(raw, bytes) else {"satiety": 0, "fed": 0}
        state["satiety"] = min(100_000, state["satiety"] + 10)
        state["fed"] += 1
        old = int(version or 0)
        if await request.app[SCRIPT](keys=[key, "naive:ledger"],
                                     args=[old, old + 1, msgpack.packb(state), -1]):
            return web.json_response({"ok": True, "food": body.get("food"),
                                      "version": old + 1, "satiety": state["satiety"]})
    return web.json_response({"error": {"code": "conflict"}}, status=409)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(redis_url: str) -> web.Application:
    app = web.Application()

    async def redis_ctx(app: web.Application) -> Any:
        app[REDIS] = aioredis.Redis.from_url(redis_url, max_connections=256)
        app[SCRIPT] = app[REDIS].register_script(COMMIT)
        yield
        await app[REDIS].aclose()

    app.cleanup_ctx.append(redis_ctx)
    app.router.add_post("/v1/games/{game}/pet/feed", feed)
    app.router.add_get("/healthz", healthz)
    return app


def serve_one(host: str, port: int, reuse_port: bool, redis_url: str,
              loop: str = "asyncio") -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    web.run_app(make_app(redis_url), host=host, port=port, reuse_port=reuse_port,
                access_log=None, print=None, shutdown_timeout=2)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--redis-dir", default=None,
                   help="start a redis-server of its own here (AOF, everysec; as petbox's "
                        "embedded default), so its CPU is counted with this server's")
    a = p.parse_args(argv)
    if a.redis_dir:
        from gameserver.ops.embedded import RedisProcess

        embedded = RedisProcess(a.redis_dir)
        embedded.start()
        a.redis_url = embedded.url
    elif not a.redis_url:
        p.error("--redis-url or --redis-dir is needed")
    if a.workers == 1:
        serve_one(a.host, a.port, False, a.redis_url, a.loop)
        if a.redis_dir:
            embedded.stop()
        return 0
    run_workers(serve_one, (a.host, a.port, True, a.redis_url, a.loop), a.workers, "naive")
    if a.redis_dir:
        embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
