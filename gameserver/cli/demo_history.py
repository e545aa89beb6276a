"""Past days of simulated shoppers for the demo (``petbox demo --history``).

A fresh demo has no history: its analytics, retention cohorts and leaderboards are
empty. This plays ``days`` past days of shoppers through the real action path — a
petbox app in this process, on the demo's Redis and SQL, answering HTTP on a loopback
port — with a :class:`~gameserver.clock.ManualClock` set to each request's simulated
time. What a shopper does in a visit is the load-test player model's
(:mod:`loadtests.model`); who comes back on which day is decided here. All choices
come from one seed: the same seed plays the same history.

Commits are dated by that clock, ledger entries included (the store's
``entry_time_from_clock``), so SQL holds them on their simulated days: this is the
demo's real data, not shadow data. Days are calendar days in the game's time zone;
the last one played is yesterday, so every day shown is complete.

Who comes back: shopper *i* first visits on day ``i * days // shoppers`` (an even
flow of new shoppers), and on each later day returns with probability
``loyalty × RETURN_D1 / √(days since the first visit)``, capped at 0.95, where
``loyalty`` is the shopper's own, drawn once in [0.4, 1.6]: about 40 % come back the
next day, 15 % a week later, 7 % a month later, as a pet game's shoppers do.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.resources.abc import Traversable
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from gameserver.appkeys import DB, REDIS, STORE
from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.http.auth import session_signature
from gameserver.ops.settings import Settings
from loadtests.model import Behaviour, GameProfile, PlayerModel, Shopper, Step
from loadtests.ops import OPERATIONS

RETURN_D1 = 0.4
LOYALTY = (0.4, 1.6)
HOUR_WEIGHTS = (1, 0, 0, 0, 0, 0, 1, 3, 4, 3, 2, 3, 6, 5, 3, 2, 2, 3, 4, 6, 8, 8, 5, 0)
"""Visits started per hour of the local day (lunch and evening peaks); none after
22:59, so that a visit (a few minutes) ends on the day it started."""
ACTIONS = frozenset({"createSession", "adoptPet", "checkIn", "feedPet", "collectProduce",
                     "playWithPet", "cleanPet", "startTask", "completeTask", "drawBox",
                     "exchange"})
"""What history sends: the model's actions (reads leave no trace in SQL: left out)."""
LEDGERED = ACTIONS - {"createSession", "startTask"}
"""The actions that change a balance (a ledger row: analytics' activity) or, adoptPet,
create the player."""


@dataclass
class HistoryReport:
    """What was played: days, shoppers, visits, requests by status, and how long."""

    days: int
    shoppers: int
    first_day: date
    visits: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refused: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(operation, status) of the requests petbox refused."""
    active: dict[date, set[str]] = field(default_factory=dict)
    """Per day, the shoppers an action of whom was applied (analytics' *active*)."""
    draws: Counter[date] = field(default_factory=Counter)
    """Per day, the draws applied (a 10-draw is ten)."""
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        refused = ", ".join(f"{op} {status} ×{n}" for (op, status), n in
                            self.refused.most_common(4))
        return (f"{self.days} days of history from {self.first_day}: {self.shoppers} shoppers, "
                f"{self.visits} visits, {self.requests} requests in {self.seconds:.1f} s"
                + (f" (refused: {refused})" if refused else ""))


@dataclass
class _Shopper:
    user: str
    first_day: int
    loyalty: float
    model: Shopper


def returns(rng: random.Random, loyalty: float, age_days: int) -> bool:
    """Whether a shopper first seen ``age_days`` ago visits today (module doc)."""
    return rng.random() < min(0.95, loyalty * RETURN_D1 / math.sqrt(age_days))


def _new_day(me: Shopper, daily_tasks: frozenset[str]) -> None:
    """What the model counts per visit and the game allows again each day: reset."""
    me.checked_in = me.played = me.cleaned = False
    me.fed_once.clear()
    me.draws.clear()
    me.votes.clear()
    for task in daily_tasks:
        me.tasks.pop(task, None)


def _local_midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


async def play_history(settings: Settings, merchant: str, signing_secret: str, game: str,
                       config: Mapping[str, Any], *, days: int, shoppers: int, seed: int = 0,
                       now: float | None = None,
                       progress: Callable[[int], None] | None = None) -> HistoryReport:
    """Play ``days`` past days (up to yesterday, in the game's zone, as of ``now``) of
    ``shoppers`` shoppers of ``merchant``'s live ``game`` (whose ``config`` it is)
    through a petbox app on ``settings``' Redis and SQL; ``progress(day_index)`` after
    each day. Everything played is flushed to SQL when this returns."""
    if days < 1 or shoppers < 1:
        raise ValueError("days and shoppers must be at least 1")
    from gameserver.app import create_app

    started = time.monotonic()
    tz = ZoneInfo(str(config.get("timezone") or "UTC"))
    today = datetime.fromtimestamp(time.time() if now is None else now, tz).date()
    first = today - timedelta(days=days)
    clock = ManualClock(_local_midnight(first, tz))
    report = HistoryReport(days, shoppers, first)
    rng = random.Random(seed)
    model = PlayerModel(GameProfile.from_config(game, config), Behaviour(ops=ACTIONS))
    daily_tasks = frozenset(t for t, spec in (config.get("tasks") or {}).items()
                            if spec.get("period", "daily") == "daily")
    crowd = [_Shopper(f"h{seed}-{i:04d}", i * days // shoppers, rng.uniform(*LOYALTY),
                      model.new_shopper()) for i in range(shoppers)]
    origin = clock.now()

    # No rate limits: one loopback client sends in seconds what a crowd did over days.
    app = create_app(settings.with_overrides(run_background=False, run_persister=True,
                                             rate_player=None,
                                             rate_ip=None, rate_draw=None), clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await _require_entry_ids(app)
        await _require_fresh(app, merchant, game)
        app[STORE].entry_time_from_clock = True
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            player = _Player(http, clock, merchant, signing_secret, game, report)
            for index in range(days):
                day = first + timedelta(days=index)
                midnight = _local_midnight(day, tz)
                timeline: list[tuple[float, int, Step]] = []
                for k, s in enumerate(crowd):
                    age = index - s.first_day
                    if age < 0 or (age > 0 and not returns(rng, s.loyalty, age)):
                        continue
                    _new_day(s.model, daily_tasks)
                    hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
                    start = midnight + hour * 3600 + rng.uniform(0, 3000)
                    for step in model.session(rng, s.model, at=start - origin):
                        timeline.append((start + step[0], k, step))
                    report.visits += 1
                report.active[day] = set()
                timeline.sort(key=lambda t: (t[0], t[1]))
                for at, k, step in timeline:
                    clock.set(at)
                    await player.send(crowd[k].user, step, day)
                if progress is not None:
                    progress(index)
        clock.set(max(clock.now(), _local_midnight(today, tz)))
    finally:
        await runner.cleanup()  # stops the app: its persister flushes everything to SQL
    report.seconds = time.monotonic() - started
    return report


class HistoryRefused(RuntimeError):
    """History cannot be played here (a game that has shoppers, an old Redis)."""


async def _require_fresh(app: web.Application, merchant: str, game: str) -> None:
    """Past days go before any real day: a game that already has players is refused
    (its ledger streams hold newer entries, and its history would be mixed with theirs)."""
    players = m.players
    async with app[DB].engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(players).where(
            players.c.merchant_id == merchant, players.c.game_id == game))).scalar_one()
    if n:
        raise HistoryRefused(f"{merchant}/{game} already has {n} players: history fills a "
                             "fresh demo only (start one with another --data-dir)")


async def _require_entry_ids(app: web.Application) -> None:
    """Entries dated by the clock are ``ms-*`` stream ids: Redis 7 or newer."""
    info = await app[REDIS].info("server")
    major = int(str(info.get("redis_version", "0")).split(".")[0])
    if major < 7:
        raise HistoryRefused(f"demo history needs Redis 7 or newer (this is "
                           f"{info.get('redis_version')}): set PETBOX_REDIS_SERVER or "
                           "PETBOX_REDIS_URL")


class _Player:
    """Sends the model's steps as HTTP requests, one shopper's token per visit."""

    def __init__(self, http: aiohttp.ClientSession, clock: ManualClock, merchant: str,
                 secret: str, game: str, report: HistoryReport) -> None:
        self.http, self.clock, self.report = http, clock, report
        self.merchant, self.secret, self.game = merchant, secret, game
        self.tokens: dict[str, str] = {}
        self.tickets: dict[tuple[str, str], str] = {}
        """(user, task) → the ticket startTask gave, for completeTask."""
        self.keys = 0

    async def send(self, user: str, step: Step, day: date) -> None:
        _, op_id, body, params = step
        op = OPERATIONS[op_id]
        headers = {"Content-Type": "application/json"}
        if op_id == "createSession":
            ts = int(self.clock.now())
            body = {"merchant": self.merchant, "user": user, "ts": ts,
                    "sign": session_signature(self.secret, self.merchant, user, ts)}
        else:
            token = self.tokens.get(user)
            if token is None:
                return  # its session was refused: the visit stops
            headers["Authorization"] = f"Bearer {token}"
            self.keys += 1
            headers["Idempotency-Key"] = f"history-{self.keys}"
        if op_id == "completeTask":
            ticket = self.tickets.pop((user, (params or {}).get("task", "")), None)
            body = {**(body or {}), **({"ticket": ticket} if ticket else {})}
        path = op.url_path({"game": self.game, **(params or {})})
        async with self.http.request(op.method, path, headers=headers,
                                     data=json.dumps(body)) as resp:
            self.report.statuses[resp.status] += 1
            if resp.status >= 400:
                self.report.refused[op_id, resp.status] += 1
            if op_id == "createSession":
                answer = await resp.json() if resp.status == 201 else {}
                self.tokens.pop(user, None)
                if "token" in answer:
                    self.tokens[user] = str(answer["token"])
                return
            if resp.status < 300 and op_id in LEDGERED:
                self.report.active[day].add(user)
                if op_id == "drawBox":
                    self.report.draws[day] += int(body["count"])
            if op_id == "startTask" and resp.status < 300:
                ticket = (await resp.json()).get("ticket")
                if isinstance(ticket, str):
                    self.tickets[user, (params or {}).get("task", "")] = ticket
            else:
                await resp.read()


def fill_demo(settings: Settings, creds: Mapping[str, str], game: str,
              config_file: Traversable,
              days: int, shoppers: int | None = None, seed: int = 0) -> None:
    """``petbox demo --history DAYS``: play the history with a progress bar, then say
    what was played (``shoppers``: 10 a day by default, at most 400)."""
    import click

    config = json.loads(config_file.read_text())
    crowd = shoppers or min(400, 10 * days)
    with click.progressbar(length=days, label=f"playing {days} days of {crowd} shoppers",
                           file=sys.stderr) as bar:
        try:
            report = asyncio.run(play_history(
                settings, creds["merchant"], creds["signing_secret"], game, config,
                days=days, shoppers=crowd, seed=seed, progress=lambda _day: bar.update(1)))
        except HistoryRefused as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(report.summary())
