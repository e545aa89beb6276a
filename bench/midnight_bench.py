"""A midnight wall against ``petbox serve``: one play's request from 0 to ``--rate``/s in
one step at its start, each request a different shopper.

    .venv/bin/python bench/midnight_bench.py --play flashsale --claims 5000 --rate 5000 --stock 1000
    .venv/bin/python bench/midnight_bench.py --play vote --claims 10000 --rate 2000
    .venv/bin/python bench/midnight_bench.py --play groupbuy --claims 4000 --rate 2000 --size 5
    .venv/bin/python bench/midnight_bench.py --play draw --claims 1000 --rate 1e9 --stock 20 \
        --first-attempt

Plays (``--play``):

- ``flashsale``: ``claimFlashSale`` on a sale of ``--stock`` units that starts then; the
  result is the units held (must be the stock) and the seconds until sold out;
- ``vote``: ``castVote`` on a poll that opens then (three options, each shopper votes
  once); the result is the votes accepted, which must equal the poll's ``total``;
- ``groupbuy``: before the start, ``claims / (size - 1)`` leaders open a group each
  (``createGroupBuy``, not measured); at the start the ``claims`` joiners
  (``joinGroupBuy``) take the seats, ``size - 1`` per group; every group must complete;
- ``draw``: ``drawBox`` on a series where six draws in seven aim at a coupon of
  ``--stock`` units (every third shopper draws ten at once); the coupons granted must
  be the stock exactly when the draws outnumber it, and SQL must agree. With
  ``--rate 1e9`` every draw is in flight at once: the burst of reliability issue D5.

``--first-attempt``: no retries; the statuses are each request's first answer (what
share of a burst is refused, by design, before any client retries).

Starts a server of its own (embedded Redis and SQLite in a temporary directory, or
``--redis-url``/``--database-url``), publishes the game a few seconds ahead of the
start, mints one session per shopper before it, and at the start sends request *i* at
``start + i / rate`` (open loop: a request's latency counts from its due time, so a
slow server cannot hide its queue; a ``503`` is retried with its key after its
``Retry-After``, as a client does, its latency running to the final answer; a flash
sale's ``sold_out`` with units still in flight is looked at again through the public
view, a claim again once a unit is back). Prints
one JSON line: requests/s achieved, p50/p99 latency, statuses, the 503s retried, and
the play's own result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gameserver.http.signing import session_signature  # noqa: E402
from gameserver.ops.embedded import free_port  # noqa: E402

MERCHANT, GAME = "benchflash", "squirrel"


def _petbox(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gameserver.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"petbox {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


def _game(play: str, starts_at: int, a: argparse.Namespace) -> dict[str, Any]:
    """The feed bench's game with the play's one sale, poll or group-buy offer."""
    game: dict[str, Any] = json.loads((ROOT / "bench" / "bench_game.json").read_text())
    if play == "flashsale":
        game["flashsales"] = {"midnight": {"title": "Midnight", "sku": "BENCH-1",
                                           "price_fen": 990, "starts_at": starts_at,
                                           "stock": a.stock, "pay_seconds": 900}}
    elif play == "vote":
        game["polls"] = {"midnight": {
            "title": "Midnight flavour", "opens_at": starts_at, "closes_at": starts_at + 86400,
            "options": {o: {"label": o} for o in OPTIONS}, "votes_per_day": 1,
            "buckets": a.buckets}}
    elif play == "draw":
        series = json.loads(json.dumps(DRAW_SERIES))
        series["prizes"]["coupon_x"]["stock"] = a.stock
        game["items"] = {"fig_a": {"name": "A"}, "fig_b": {"name": "B"}}
        game["boxes"] = {"series": {"forest": series}}
    else:
        game["groupbuys"] = {"midnight": {"title": "Midnight group", "size": a.size,
                                          "duration_s": 3600, "price_fen": 990,
                                          "reward": {"currency": {"coin": 1}}}}
    return game


OPTIONS = ("mango", "cashew", "almond")
GAME_PATH = f"/v1/games/{GAME}"
URLS = {"flashsale": f"{GAME_PATH}/flashsales/midnight/claim",
        "vote": f"{GAME_PATH}/polls/midnight/vote",
        "groupbuy": f"{GAME_PATH}/groupbuys/midnight/join",
        "draw": f"{GAME_PATH}/boxes/forest/draw"}
DRAW_SERIES = {
    "name": "Forest", "price": {"currency": "coin", "amount": 10},
    "tiers": {"common": {"name": "Common", "rank": 0}, "rare": {"name": "Rare", "rank": 1}},
    "items": {"fig_a": {"tier": "common", "weight": 50}, "fig_b": {"tier": "rare", "weight": 50}},
    "pity": {},
    "prizes": {"coupon_x": {"name": "5 yuan coupon", "kind": "coupon", "tier": "rare",
                            "weight": 600, "stock": 20, "fallback": "fig_a", "template": "T-5",
                            "face_value_fen": 500, "max_copies": 0}}}
"""The burst test's series: six draws in seven aim at the limited coupon."""


def _body(play: str, i: int, codes: list[str], size: int) -> dict[str, Any]:
    """Request *i*'s body: a vote spread over the options, a join of group i // (size-1)."""
    if play == "vote":
        return {"option": OPTIONS[i % len(OPTIONS)]}
    if play == "groupbuy":
        return {"code": codes[i // (size - 1)]}
    if play == "draw":
        return {"count": 10 if i % 3 == 0 else 1}
    return {}


def _token(http_base: str, creds: dict[str, str], user: str) -> dict[str, Any]:
    ts = int(time.time())
    sign = session_signature(creds["signing_secret"], MERCHANT, user, ts)
    return {"merchant": MERCHANT, "user": user, "ts": ts, "sign": sign}


async def _sessions(base: str, creds: dict[str, str], n: int) -> list[str]:
    sem = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as http:
        async def one(i: int) -> str:
            async with sem, http.post(f"{base}/v1/sessions",
                                      json=_token(base, creds, f"b{i}")) as r:
                return str((await r.json())["token"])
        return list(await asyncio.gather(*[one(i) for i in range(n)]))


RETRIES = 6


async def _post(http: aiohttp.ClientSession, url: str, tok: str, key: str,
                body: dict[str, Any]) -> tuple[int, str, float]:
    try:
        async with http.post(url, json=body, headers={
                "Authorization": f"Bearer {tok}", "Idempotency-Key": key}) as r:
            body = await r.json()
            code = body.get("error", {}).get("code", "") if r.status >= 400 else ""
            if r.status == 200 and "draws" in body:
                coupons["acknowledged"] += sum(d["item"] == "coupon_x" for d in body["draws"])
            return r.status, code, float(r.headers.get("Retry-After") or 0)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, type(exc).__name__, 0.0


shed: Counter[str] = Counter()
"""503 answers that were retried (by code)."""
looked: Counter[str] = Counter()
"""Flash sale: views read after a ``sold_out`` with units in flight, and what they led to."""
LOOKS = 30
"""A flash-sale shopper looks again at most this many times after a ``sold_out``."""
first: Counter[str] = Counter()
"""Each request's first answer (status and error code)."""
coupons: Counter[str] = Counter()
"""Coupons in acknowledged draws (``draw``)."""


async def _look_again(http: aiohttp.ClientSession, base: str, url: str, tok: str, key: str,
                      wait: float) -> tuple[int, str]:
    """A ``sold_out`` with units still in flight (it came with ``Retry-After``): look at
    the public view after each wait, as a mini-program does (cheap: cached per process),
    and claim again with a new key once a unit is back; stop when none is pending."""
    view_url = f"{base}{GAME_PATH}/flashsales/midnight"
    for n in range(LOOKS):
        await asyncio.sleep(wait or 1)
        async with http.get(view_url, headers={"Authorization": f"Bearer {tok}"}) as r:
            view = await r.json()
        looked["views"] += 1
        if view.get("stock_left", 0) > 0:
            looked["claims"] += 1
            status, code, wait = await _post(http, url, tok, f"{key}-{n}", {})
            if status != 409 and status != 503:
                return status, code
        elif not view.get("stock_pending", 0):
            return 409, "sold_out"
    return 409, "sold_out"


async def _leaders(base: str, tokens: list[str]) -> list[str]:
    """Open one group per leader token (before the start); their share codes."""
    sem = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as http:
        async def one(i: int, tok: str) -> str:
            async with sem, http.post(f"{base}{GAME_PATH}/groupbuys/midnight", json={},
                                      headers={"Authorization": f"Bearer {tok}",
                                               "Idempotency-Key": f"lead{i}"}) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"createGroupBuy answered {r.status}: {body}")
                return str(body["code"])
        return list(await asyncio.gather(*[one(i, t) for i, t in enumerate(tokens)]))


async def _midnight(base: str, play: str, tokens: list[str], starts_at: int, rate: float,
                    codes: list[str], size: int,
                    tries: int = RETRIES) -> list[tuple[float, float, int, str]]:
    """(due offset s, latency s, status, code) of every request, open loop from the
    start; one answered 503 is retried with its key after Retry-After (as a client
    does), its latency running to the final answer."""
    url = f"{base}{URLS[play]}"
    out: list[tuple[float, float, int, str]] = []
    t0 = time.monotonic() + (starts_at - time.time())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def one(i: int, tok: str) -> None:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            for attempt in range(tries):  # a client retries a 503 after its Retry-After
                status, code, retry_after = await _post(http, url, tok, f"c{i}",
                                                        _body(play, i, codes, size))
                if attempt == 0:
                    first[f"{status} {code}".strip()] += 1
                if status != 503 or attempt == tries - 1:
                    break
                shed[code] += 1
                await asyncio.sleep(retry_after or 1)
            if code == "sold_out" and retry_after:
                status, code = await _look_again(http, base, url, tok, f"c{i}", retry_after)
            out.append((due - t0, time.monotonic() - due, status, code))
        await asyncio.gather(*[one(i, t) for i, t in enumerate(tokens)])
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--play", choices=sorted(URLS), default="flashsale")
    ap.add_argument("--claims", type=int, default=5000, help="requests (shoppers) at the start")
    ap.add_argument("--rate", type=float, default=5000.0, help="requests/s from the start")
    ap.add_argument("--stock", type=int, default=1000, help="flashsale: units on sale")
    ap.add_argument("--size", type=int, default=5, help="groupbuy: seats per group")
    ap.add_argument("--buckets", type=int, default=16, help="vote: the poll's buckets")
    ap.add_argument("--first-attempt", action="store_true",
                    help="no retries: statuses are each request's first answer")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--redis-url")
    ap.add_argument("--database-url")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flashbench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
        env.update(PETBOX_DATA_DIR=tmp, PETBOX_TOKEN_SECRET="flash-bench-secret-0123",
                   PETBOX_ACCESS_LOG="0", PETBOX_LOG_LEVEL="WARNING", PETBOX_RATE_IP="off",
                   PETBOX_RATE_PLAYER="off")
        if a.redis_url:
            env["PETBOX_REDIS_URL"] = a.redis_url
        if a.database_url:
            env["PETBOX_DATABASE_URL"] = a.database_url
        creds = json.loads(_petbox(env, "merchant", "create", MERCHANT, "--json"))
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "gameserver.cli", "serve", "--port",
                                   str(port), "--workers", str(a.workers)], env=env, cwd=ROOT,
                                  start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            return _run(a, env, creds, base, tmp)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def _run(a: argparse.Namespace, env: dict[str, str], creds: dict[str, str], base: str,
         tmp: str) -> int:
    for _ in range(300):
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=0.5):
            break
        time.sleep(0.1)
    groups = -(-a.claims // (a.size - 1)) if a.play == "groupbuy" else 0
    tokens = asyncio.run(_sessions(base, creds, a.claims + groups))
    leaders, tokens = tokens[a.claims:], tokens[:a.claims]
    starts_at = int(time.time()) + 6 + (groups // 200 if groups else 0)
    game = Path(tmp) / "game.json"
    game.write_text(json.dumps(_game(a.play, starts_at, a)))
    _petbox(env, "game", "publish", MERCHANT, GAME, str(game))
    codes = asyncio.run(_leaders(base, leaders)) if groups else []
    results = asyncio.run(_midnight(base, a.play, tokens, starts_at, a.rate, codes, a.size,
                                    1 if a.first_attempt else RETRIES))
    ok = [r for r in results if r[2] == 200]
    last = max((due + lat for due, lat, _, _ in ok), default=0.0)
    span = max(due + lat for due, lat, _, _ in results)
    report: dict[str, Any] = {
        "play": a.play, "requests": a.claims, "rate": a.rate, "workers": a.workers,
        "achieved_per_s": round(len(results) / span, 1), "ok": len(ok),
        "last_ok_after_s": round(last, 3),
        "p50_ms": round(_pct([r[1] for r in results], 0.5) * 1000, 1),
        "p99_ms": round(_pct([r[1] for r in results], 0.99) * 1000, 1),
        "statuses": dict(Counter(f"{s} {c}".strip() for _, _, s, c in results)),
        "retried_503": dict(shed), "first_answers": dict(first), "looked_again": dict(looked),
        "refused_first_pct": round(100 * (a.claims - first["200"]) / a.claims, 2),
        "loadavg": os.getloadavg()[0]}
    passed = _verdict(a, base, creds, report, groups)
    print(json.dumps(report))
    return 0 if passed else 1


def _verdict(a: argparse.Namespace, base: str, creds: dict[str, str], report: dict[str, Any],
             groups: int) -> bool:
    """The play's own result, into ``report``: whether it is what the play must give."""
    if a.play == "flashsale":
        report.update(stock=a.stock, sold_out_after_s=report["last_ok_after_s"])
        return bool(report["ok"] == a.stock)
    if a.play == "vote":
        total = asyncio.run(_get(f"{base}{GAME_PATH}/polls/midnight?merchant={MERCHANT}"))
        report["poll_total"] = total["total"]
        return bool(total["total"] == report["ok"] == a.claims)
    if a.play == "draw":
        return _draw_verdict(a, base, creds, report)
    report["groups"] = groups
    return bool(report["ok"] == a.claims)


def _draw_verdict(a: argparse.Namespace, base: str, creds: dict[str, str],
                  report: dict[str, Any]) -> bool:
    """The coupons acknowledged equal what SQL took, and all the stock when draws
    aiming at it outnumber it (a grant still pending settles within the hold TTL)."""
    deadline = time.monotonic() + 60
    while True:
        rows = asyncio.run(_get(f"{base}/v1/admin/games/{GAME}/stock",
                                {"Authorization": f"Bearer {creds['api_key']}"}))["stock"]
        row = next(r for r in rows if r["ref"] == "prize:coupon_x")
        if row["reserved"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    report.update(stock=a.stock, coupons_acknowledged=coupons["acknowledged"],
                  sql_granted=row["granted"], sql_reserved=row["reserved"])
    got = coupons["acknowledged"]
    aimed = got == a.stock or (row["left"] > 0 and got < a.stock)
    return bool(aimed and row["reserved"] == 0 and row["granted"] == coupons["acknowledged"])


async def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        return await r.json()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
