"""Reminder delivery: the "leave and come back" loop, server side.

When a shopper's action commits, the commit itself (``commit.lua``, given the
schedule by the handler) puts the player's next reminders
(:func:`mechanics.reminders.reminder_schedule`: pet hungry, produce full, after
quiet hours and frequency caps) into the shard's reminder ZSET: member
``<kind>:<player member>``, score = unix second due. One member per kind and
player, so at most one reminder of a kind is pending; a later action just moves it.

:class:`ReminderWorker` (started with the persister) delivers due reminders:

1. **claim**: ``ZREM`` of a due member; only the process whose ``ZREM`` removed it
   goes on, so two workers never deliver the same entry.
2. **re-check** against the stored state: the shopper may have fed the pet since.
3. **record** with the rule :func:`mechanics.reminders.mark`, bound and committed
   like any action (:func:`gameserver.services.bind`, :meth:`Services.run`), with
   the idempotency key ``rem:<kind>-<event_at>`` (:func:`gameserver.state.keys.system_key`:
   never one the shopper sends). A replayed reply means this
   reminder was recorded (so sent) before: it is not sent again. Recording
   *before* sending makes delivery at most once: a crash between the two loses a
   reminder rather than sending it twice.
4. **deliver**: a signed POST (``X-Petbox-Timestamp``, ``X-Petbox-Signature`` =
   HMAC-SHA256 with the merchant's signing secret over ``"{ts}\\n{body}"``) to the
   game's ``reminders.webhook_url``. A failure keeps the payload in the retry hash
   and re-queues the member with exponential backoff, up to ``max_tries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from economy.config import GameConfig
from economy.errors import DomainError
from gameserver.appkeys import CLOCK, GAMES, MERCHANTS, REDIS, SERVICES, SETTINGS
from gameserver.clock import Clock
from gameserver.games import GameRegistry, LiveGame
from gameserver.http.auth import body_signature
from gameserver.merchants import MerchantDirectory
from gameserver.services import RuleContext, Services, bind
from gameserver.state.keys import Keys, PlayerRef, system_key
from gameserver.state.store import encode_json
from gameserver.state.value import StockView
from mechanics.reminders import MarkReminded, Reminder, mark, reminder_schedule
from mechanics.state import PlayerState

log = logging.getLogger("petbox.reminders")


def member_of(kind: str, ref: PlayerRef) -> str:
    return f"{kind}:{ref.member}"


def parse_member(member: str, shard: int) -> tuple[str, PlayerRef]:
    kind, merchant, game, user = member.split(":", 3)
    return kind, PlayerRef(merchant, game, user, shard)


def upcoming(state: PlayerState, config: GameConfig, now: int, tz: tzinfo) -> list[Reminder]:
    """Reminders worth queueing for ``state``: only when the game has a webhook."""
    rem = config.reminders
    if rem is None or not rem.webhook_url:
        return []
    return reminder_schedule(state, config, now, tz=tz)


async def enqueue(redis: Redis, keys: Keys, ref: PlayerRef, reminders: list[Reminder]) -> None:
    """Queue (or move) the player's reminders: one ZADD."""
    if reminders:
        await redis.zadd(keys.reminders(ref.shard),
                         {member_of(r.kind, ref): r.due_at for r in reminders})


@dataclass
class Stats:
    """What the worker did since it started (for tests and logs)."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    duplicates: int = 0


class ReminderWorker:
    """Delivers due reminders of every shard; safe to run in several processes.

    It works on the real keyspace's ``services`` only: shadow players are never
    scheduled (:meth:`Services.run` drops their schedule)."""

    def __init__(self, redis: Redis, services: Services, games: GameRegistry,
                 merchants: MerchantDirectory, clock: Clock, shards: int, *,
                 batch: int = 100, concurrency: int = 16, timeout: float = 5.0,
                 backoff_s: float = 30.0, max_backoff_s: float = 3600.0,
                 max_tries: int = 6) -> None:
        self.redis, self.services, self.games = redis, services, games
        self.keys, self.store = services.keys, services.store
        self.merchants, self.clock, self.shards = merchants, clock, shards
        self.batch, self.timeout, self.max_tries = batch, timeout, max_tries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._sem = asyncio.Semaphore(concurrency)
        self._http: aiohttp.ClientSession | None = None
        self.stats = Stats()

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:  # Redis down: try again next tick
                    log.warning("reminder pass failed", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def tick(self) -> int:
        """One pass over every shard; returns how many reminders were claimed."""
        claimed = 0
        failed: list[tuple[int, Exception]] = []
        for shard in range(self.shards):
            try:
                members = await self._claim(shard)
            except Exception as exc:  # this shard's node is down: the others still deliver
                failed.append((shard, exc))
                continue
            claimed += len(members)
            await asyncio.gather(*(self._guarded(shard, m) for m in members))
        if len(failed) == self.shards:
            raise failed[-1][1]
        if failed:
            log.warning("reminder pass failed on shards %s: %r", [f[0] for f in failed],
                        failed[-1][1])
        return claimed

    async def _claim(self, shard: int) -> list[str]:
        """Due members this process removed from the ZSET (and so owns)."""
        key = self.keys.reminders(shard)
        due = await self.redis.zrangebyscore(key, "-inf", int(self.clock.now()), start=0,
                                             num=self.batch)
        owned = []
        for raw in due:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            if await self.redis.zrem(key, member) == 1:
                owned.append(member)
        return owned

    async def _guarded(self, shard: int, member: str) -> None:
        async with self._sem:
            try:
                await self._handle(shard, member)
            except Exception:
                self.stats.failed += 1
                log.warning("reminder %s could not be handled", member, exc_info=True)
                await self._requeue(shard, member)

    async def _requeue(self, shard: int, member: str) -> None:
        """Put a claimed reminder whose handling failed (Redis or SQL slow) back, due at
        once: the next tick tries again. Delivery stays at most once: a reminder that
        was recorded before the failure replays its record and is not sent again."""
        try:
            await self.redis.zadd(self.keys.reminders(shard),
                                  {member: int(self.clock.now())}, nx=True)
        except Exception:  # Redis down: the reminder is lost, as a crash would lose it
            log.warning("reminder %s dropped: could not be queued again", member)

    async def _handle(self, shard: int, member: str) -> None:
        retry = await self.redis.hget(self.keys.reminder_retries(shard), member)
        if retry is not None:
            await self._deliver(shard, member, json.loads(retry))
            return
        job = await self._prepare(shard, member)
        if job is not None:
            await self._deliver(shard, member, job)

    async def _prepare(self, shard: int, member: str) -> dict[str, Any] | None:
        """Re-check the reminder against the stored player and record it; the job to send."""
        kind, ref = parse_member(member, shard)
        try:
            live = await self.games.get(ref.merchant, ref.game)
        except DomainError:
            return self._drop()
        url = live.config.reminders.webhook_url if live.config.reminders else ""
        loaded = await self.store.read(ref)
        now = int(self.clock.now())
        if not url or loaded.state is None:
            return self._drop()
        due = [r for r in reminder_schedule(loaded.state, live.config, now, tz=live.tz)
               if r.kind == kind]
        if not due:
            return self._drop()  # fed, collected or reminded meanwhile
        if due[0].due_at > now:  # moved by quiet hours or the cap: queue it again
            await enqueue(self.redis, self.keys, ref, due)
            return None
        return await self._record(ref, live, due[0], url)

    async def _record(self, ref: PlayerRef, live: LiveGame, reminder: Reminder,
                      url: str) -> dict[str, Any] | None:
        rid = f"{reminder.kind}-{reminder.event_at}"
        rule = bind(mark, MarkReminded(reminder.kind, reminder.event_at),
                    RuleContext(live, StockView(), ref))
        reply = await self.services.run(ref, system_key("rem", rid), rid, rule)
        if reply.replayed:
            self.stats.duplicates += 1
            return None
        sent_at = json.loads(reply.body)["sent_at"]
        loaded = await self.store.read(ref)
        if loaded.state is not None:  # the other kind may move with the new history
            await enqueue(self.redis, self.keys, ref,
                          upcoming(loaded.state, live.config, sent_at, live.tz))
        body = {"id": f"{ref.member}:{rid}", "type": "reminder", "kind": reminder.kind,
                "merchant": ref.merchant, "game": ref.game, "user": ref.user,
                "event_at": reminder.event_at, "sent_at": sent_at}
        return {"url": url, "body": body, "tries": 0}

    def _drop(self) -> dict[str, Any] | None:
        self.stats.dropped += 1
        return None

    async def _deliver(self, shard: int, member: str, job: dict[str, Any]) -> None:
        merchant = await self.merchants.by_id(job["body"]["merchant"])
        ok = merchant is not None and await self._post(job, merchant.signing_secret)
        retries = self.keys.reminder_retries(shard)
        if ok:
            self.stats.delivered += 1
            await self.redis.hdel(retries, member)
            return
        self.stats.failed += 1
        job["tries"] += 1
        if job["tries"] >= self.max_tries:
            log.warning("reminder %s given up after %d tries", job["body"]["id"], job["tries"])
            await self.redis.hdel(retries, member)
            return
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (job["tries"] - 1))
        await self.redis.hset(retries, member, json.dumps(job))
        await self.redis.zadd(self.keys.reminders(shard),
                              {member: int(self.clock.now() + delay)}, nx=True)

    async def _post(self, job: dict[str, Any], secret: str) -> bool:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = encode_json(job["body"])
        ts = str(int(self.clock.now()))
        headers = {"Content-Type": "application/json", "X-Petbox-Timestamp": ts,
                   "X-Petbox-Signature": body_signature(secret, ts, body)}
        try:
            # not followed: a redirect did not deliver (see gameserver.jobs.webhooks)
            async with self._http.post(job["url"], data=body, headers=headers,
                                       allow_redirects=False) as resp:
                return 200 <= resp.status < 300
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False


REMINDER_WORKER = web.AppKey("reminder_worker", ReminderWorker)


@contextlib.asynccontextmanager
async def reminder_service(app: web.Application, *, enabled: bool,
                           interval: float = 1.0) -> AsyncIterator[None]:
    """Run a :class:`ReminderWorker` for the app's lifetime (with the persister)."""
    if not enabled:
        yield
        return
    worker = ReminderWorker(app[REDIS], app[SERVICES], app[GAMES], app[MERCHANTS],
                            app[CLOCK], app[SETTINGS].shards)
    app[REMINDER_WORKER] = worker
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(interval, stop), name="petbox-reminders")
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
