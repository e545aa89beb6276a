"""Shared pieces of the fault tests: a ``petbox serve`` child process, a bounded
shopper driver that records what was acknowledged, and the SQL invariant checks.

Everything runs against real processes on 127.0.0.1: redis-server children
(:class:`gameserver.ops.embedded.RedisProcess`), ``petbox serve`` children, SQLite
files or the test PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.http.auth import TokenSigner, session_signature
from tests.conftest import wait_ready
from tests.integration.test_boxes_http import BOX_CONFIG

ROOT = Path(__file__).resolve().parents[2]
REL_CONFIG: dict[str, Any] = copy.deepcopy(BOX_CONFIG)
REL_CONFIG["currencies"]["acorn"] = {"name": "Acorns", "initial": 50_000, "max": 1_000_000}
"""The blind-box game of the HTTP tests (a coupon with stock 100 that nine draws in ten
aim at), with enough acorns that shoppers never run dry during a run."""
INITIAL_ACORN = 50_000
COUPON_STOCK = REL_CONFIG["boxes"]["series"]["forest"]["prizes"]["coupon_x"]["stock"]
GAME = "squirrel"
MERCHANT = "relshop"


def scaled(name: str, default: float) -> float:
    """A duration or count from ``PETBOX_RELIABILITY_<name>`` (default otherwise)."""
    raw = os.environ.get(f"PETBOX_RELIABILITY_{name}", "")
    return float(raw) if raw else default


TOKEN_SECRET = "reliability-secret-0123"


def base_env(tmp_path: Path, redis_url: str, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
    env.update({"PETBOX_DATA_DIR": str(tmp_path / "data"), "PETBOX_FLUSH_INTERVAL": "0.2",
                "PETBOX_ACCESS_LOG": "0", "PETBOX_TOKEN_SECRET": TOKEN_SECRET,
                "PETBOX_REDIS_URL": redis_url, "PETBOX_DATABASE_URL": db_url,
                "PETBOX_SHARDS": "4", "PETBOX_LOG_LEVEL": "WARNING",
                # The fault tests measure durability, not the limiter: one IP drives all.
                "PETBOX_RATE_IP": "off", "PETBOX_RATE_PLAYER": "off", "PETBOX_RATE_DRAW": "off",
                "PETBOX_RATE_MERCHANT": "off", "PETBOX_RATE_MERCHANT_AUTH": "off",
                "PETBOX_RATE_EVENTS": "off"})
    env.update(extra)
    return env


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """A ``python -m <args>`` child in the repository, output discarded."""
    return subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def petbox(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "gameserver.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def provision(env: dict[str, str], tmp_path: Path, merchant: str = MERCHANT,
              config: dict[str, Any] = REL_CONFIG) -> dict[str, str]:
    """``merchant`` created and its game ``squirrel`` published with ``config`` (by default
    the blind-box game, a coupon limited to ``COUPON_STOCK``) through the CLI; the
    merchant's credentials."""
    creds: dict[str, str] = json.loads(petbox(env, "merchant", "create", merchant, "--json"))
    game_file = tmp_path / "game.json"
    game_file.write_text(json.dumps(config))
    petbox(env, "game", "publish", merchant, GAME, str(game_file))
    return creds


class ServerProc:
    """``petbox serve`` in a child process; stderr goes to a file (never a full pipe)."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env, self.port, self.log_path = env, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait for /readyz; returns the seconds it took."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gameserver.cli", "serve", "--port", str(self.port)],
                env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        self.starts += 1
        wait_ready(self.base, self.proc, lambda: self.log_path.read_text()[-3000:],
                   timeout - (time.monotonic() - started), pause=0.05)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(60)


async def token(http: aiohttp.ClientSession, base: str, creds: dict[str, str],
                user: str) -> str:
    ts = int(time.time())
    async with http.post(f"{base}/v1/sessions", json={
        "merchant": creds["merchant"], "user": user, "ts": ts,
        "sign": session_signature(creds["signing_secret"], creds["merchant"], user, ts),
    }) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["token"])


class Sessions:
    """A crash test's shoppers against whichever ``petbox serve`` is up: a session token
    each (signed in once) and their ``getPlayer``."""

    def __init__(self, http: aiohttp.ClientSession, server: ServerProc,
                 creds: dict[str, str]) -> None:
        self.http, self.server, self.creds = http, server, creds
        self.tokens: dict[str, str] = {}

    async def tok(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = await token(self.http, self.server.base, self.creds, user)
        return self.tokens[user]

    async def player(self, user: str) -> dict[str, Any]:
        """``user``'s player from ``GET /v1/games/squirrel/me`` (which must answer 200)."""
        status, body = await call(self.http, "GET", f"{self.server.base}/v1/games/{GAME}/me",
                                  await self.tok(user))
        assert status == 200, body
        return dict(body["player"])


def minted(merchant: str, user: str) -> str:
    """A player token signed as the servers of :func:`base_env` sign them, without a
    request: a burst's shoppers are logged in before it starts (their logins are not
    what it measures)."""
    return TokenSigner(TOKEN_SECRET, 7200).mint(merchant, user, int(time.time()))[0]


@dataclass
class Book:
    """What the driver was told: acknowledged responses and outcomes it never learned."""

    acked: dict[str, list[tuple[str, str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list))
    """user → [(idempotency key, op, response body)] of 2xx answers."""
    unknown: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """user → keys whose request died with the connection (may or may not have applied)."""
    statuses: Counter[int | str] = field(default_factory=Counter)

    def coupons(self, user: str) -> dict[str, int]:
        """Idempotency key → coupons the acknowledged draw reported."""
        return {key: [d["item"] for d in body["draws"]].count("coupon_x")
                for key, op, body in self.acked[user] if op == "draw"}


async def call(http: aiohttp.ClientSession, method: str, url: str, tok: str, body: Any = None,
               key: str | None = None, limit_s: float = 10.0) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tok}"}
    if key:
        headers["Idempotency-Key"] = key
    async with http.request(method, url, json=body, headers=headers,
                            timeout=aiohttp.ClientTimeout(total=limit_s)) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


class Driver:
    """Bounded mixed load: each shopper adopts, then feeds and draws in a loop.

    One request at a time per shopper (so versions are predictable), ``users``
    shoppers at once. A connection error makes the key's outcome *unknown*: it is
    not retried during the load (the dead server's in-flight marker would hold it
    for 30 s) and counted as such.
    """

    def __init__(self, base: str, creds: dict[str, str], users: list[str], book: Book,
                 pause: float = 0.02) -> None:
        self.base, self.creds, self.users, self.book = base, creds, users, book
        self.pause = pause
        self.stop = asyncio.Event()
        self.tokens: dict[str, str] = {}
        self._n = 0

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=len(self.users) + 4, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*[self._shopper(http, u) for u in self.users])

    async def _ensure_token(self, http: aiohttp.ClientSession, user: str) -> str:
        while user not in self.tokens:
            try:
                self.tokens[user] = await token(http, self.base, self.creds, user)
            except (TimeoutError, aiohttp.ClientError, AssertionError):
                await asyncio.sleep(0.2)
        return self.tokens[user]

    async def _shopper(self, http: aiohttp.ClientSession, user: str) -> None:
        rng = random.Random(user)
        adopted = False
        game = f"{self.base}/v1/games/{GAME}"
        while not self.stop.is_set():
            tok = await self._ensure_token(http, user)
            self._n += 1
            key = f"{user}-{self._n}"
            body: dict[str, Any]
            if not adopted:
                op, method, url, body = "adopt", "POST", f"{game}/pet", {
                    "species": "squirrel", "name": "Nut"}
            elif rng.random() < 0.5:
                op, method, url, body = "feed", "POST", f"{game}/pet/feed", {"food": "snack"}
            else:
                op, method, url, body = "draw", "POST", f"{game}/boxes/forest/draw", {
                    "count": 1}
            try:
                status, reply = await call(http, method, url, tok, body, key)
            except (TimeoutError, aiohttp.ClientError):
                self.book.unknown[user].append(key)
                self.book.statuses["conn"] += 1
                await asyncio.sleep(0.1)
                continue
            self.book.statuses[status] += 1
            if status < 300:
                self.book.acked[user].append((key, op, reply))
                adopted = True
            elif op == "adopt" and status == 409:
                adopted = True  # adopted by an earlier request whose answer was lost
            await asyncio.sleep(self.pause)


@dataclass
class SqlFacts:
    """What SQL holds for one merchant's game after recovery."""

    versions: dict[str, int]
    acorn: dict[str, int]
    ledger_sum: dict[str, int]
    draws: list[tuple[str, int, str]]
    grants: list[tuple[str, str, int, str, str]]
    """(user, idem_key, position, status, code)"""
    versions_per_commit: list[tuple[str, int, str]]

    @property
    def live_grants(self) -> list[tuple[str, str, int, str, str]]:
        return [g for g in self.grants if g[3] != "void"]


async def sql_facts(db: Database, merchant: str = MERCHANT) -> SqlFacts:
    from gameserver.state.store import decode_state

    p, ledger, d, g = m.players, m.ledger, m.draws, m.grants
    async with db.engine.connect() as conn:
        players = (await conn.execute(select(p.c.user_id, p.c.version, p.c.state).where(
            p.c.merchant_id == merchant))).all()
        sums = (await conn.execute(
            select(ledger.c.user_id, func.sum(ledger.c.delta))
            .where(ledger.c.merchant_id == merchant, ledger.c.name == "acorn")
            .group_by(ledger.c.user_id))).all()
        commits = (await conn.execute(
            select(ledger.c.user_id, ledger.c.player_version, ledger.c.commit_id)
            .where(ledger.c.merchant_id == merchant).distinct())).all()
        draws = (await conn.execute(select(d.c.user_id, d.c.nonce, d.c.item).where(
            d.c.merchant_id == merchant))).all()
        grants = (await conn.execute(select(g.c.user_id, g.c.idem_key, g.c.position,
                                            g.c.status, g.c.code).where(
            g.c.merchant_id == merchant))).all()
    acorn = {u: int(decode_state(bytes(s)).wallet.get("acorn", 0)) for u, _, s in players}
    return SqlFacts({u: int(v) for u, v, _ in players}, acorn,
                    {u: int(s) for u, s in sums}, [tuple(r) for r in draws],
                    [tuple(r) for r in grants],
                    [tuple(r) for r in commits])


def check_invariants(facts: SqlFacts, book: Book) -> dict[str, Any]:
    """Assert the pass criteria of faults 1, 3-6 and return the figures checked."""
    problems: list[str] = []
    # Σ ledger deltas = balance, for every player SQL holds.
    for user, acorn in facts.acorn.items():
        if INITIAL_ACORN + facts.ledger_sum.get(user, 0) != acorn:
            problems.append(f"{user}: balance {acorn} != {INITIAL_ACORN} + "
                            f"Σ ledger {facts.ledger_sum.get(user, 0)}")
    # Every acknowledged op is in SQL: versions, draws, coupons.
    sql_draws = Counter(facts.draws)
    dup_draws = [k for k, n in Counter((u, nonce) for u, nonce, _ in facts.draws).items()
                 if n > 1]
    live = facts.live_grants
    dup_grants = [k for k, n in Counter((u, k, p) for u, k, p, _, _ in live).items() if n > 1]
    missing_draws = missing_grants = 0
    for user, ops in book.acked.items():
        version = facts.versions.get(user, 0)
        if not len(ops) <= version <= len(ops) + len(book.unknown[user]):
            problems.append(f"{user}: version {version}, {len(ops)} acknowledged, "
                            f"{len(book.unknown[user])} unknown")
        for _, op, body in ops:
            if op == "draw":
                for rec in body["draws"]:
                    if sql_draws[(user, rec["nonce"], rec["item"])] != 1:
                        missing_draws += 1
        confirmed = Counter(k for u, k, _, status, _ in live if u == user and
                            status == "confirmed")
        for key, n in book.coupons(user).items():
            if confirmed[key] != n:
                missing_grants += 1
                problems.append(f"{user}/{key}: {n} coupons acknowledged, "
                                f"{confirmed[key]} confirmed in SQL")
    per_version = Counter((u, v) for u, v, _ in facts.versions_per_commit)
    dup_commits = [k for k, n in per_version.items() if n > 1]
    if missing_draws:
        problems.append(f"{missing_draws} acknowledged draws missing from SQL")
    if dup_draws or dup_grants or dup_commits:
        problems.append(f"duplicates: draws {dup_draws[:5]}, grants {dup_grants[:5]}, "
                        f"commits {dup_commits[:5]}")
    pending = [g for g in live if g[3] == "pending"]
    if pending:
        problems.append(f"{len(pending)} grants still pending after reconciliation")
    if len(live) > COUPON_STOCK:
        problems.append(f"{len(live)} coupons granted, stock {COUPON_STOCK}")
    if len({g[4] for g in facts.grants}) != len(facts.grants):
        problems.append("a coupon code was issued twice")
    assert not problems, "\n".join(problems[:20])
    return {"players": len(facts.acorn), "acked_ops": sum(len(v) for v in book.acked.values()),
            "unknown_ops": sum(len(v) for v in book.unknown.values()),
            "acked_draws": sum(1 for v in book.acked.values() for _, op, _ in v if op == "draw"),
            "sql_draws": len(facts.draws), "coupons_confirmed": len(live),
            "missing": missing_draws + missing_grants, "duplicates": 0}


async def reconcile_all(redis_url: str, db_url: str, shards: int = 4) -> tuple[int, int]:
    """Settle every pending grant now (all servers are stopped, nothing is in flight)."""
    import redis.asyncio as aioredis

    from gameserver.clock import SystemClock
    from gameserver.state.keys import Keys
    from gameserver.state.value import ValueTier

    client = aioredis.from_url(redis_url)
    db = Database(db_url)
    try:
        return await ValueTier(client, Keys(), db, SystemClock(), shards).reconcile(
            older_than_s=-1)
    finally:
        await client.aclose()
        await db.close()


def write_figures(name: str, figures: dict[str, Any]) -> None:
    """Print the measured figures and keep them for docs/reliability.md."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"\nRELIABILITY {line}")
    out = os.environ.get("PETBOX_RELIABILITY_FIGURES")
    if out:
        with contextlib.suppress(OSError), open(out, "a") as fh:
            fh.write(line + "\n")
