"""Merchant webhooks: a durable, signed outbox of events for the merchant's backend.

A play that must tell the merchant something (a refund owed, a reservation released,
a winner to ship to, a coupon redeemed) calls :meth:`Outbox.emit` with a **stable
key**: the event is one SQL row (table ``webhook_outbox``), unique per (merchant, key),
so emitting the same event twice (a retried sweep, a pass that overlapped another
host's) stores it once. SQL is where it lives, so an emitted event survives restarts
and Redis loss.

:class:`WebhookDeliverer` (one host at a time, under a lease) posts due events to the
game's ``webhook_url`` (core config field), signed as every merchant event petbox sends:

- ``X-Petbox-Timestamp``: unix seconds;
- ``X-Petbox-Signature``: hex HMAC-SHA256 with the merchant's signing secret (its text
  as is) over ``"{timestamp}\\n{body}"``;
- ``X-Petbox-Event``: the event name; ``X-Petbox-Delivery``: the event's key.

The body is ``{"event", "key", "merchant", "game", "created_at", "data"}``. Delivery is
**at least once**: a 2xx marks the row delivered; anything else (timeout, refused,
non-2xx) retries with exponential backoff (2 s doubling, at most an hour apart) up to
``MAX_TRIES``, then the row is marked failed and stays listable. A receiver dedupes by
``X-Petbox-Delivery``. A game without ``webhook_url`` keeps its events pending
(checked again every ``NO_ENDPOINT_RETRY_S``) until one is configured, so nothing
emitted before the merchant set an endpoint is lost.

``listWebhookEvents`` shows a game's events with their state (pending, delivered,
failed) for the merchant.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.http.auth import body_signature
from gameserver.jobs.periodic import PeriodicTask
from gameserver.merchants import MerchantDirectory
from gameserver.state.store import encode_json

log = logging.getLogger("petbox.webhooks")

MAX_TRIES = 12
"""Attempts before an event is marked failed (2 + 4 + … + 2048 = 4,094 s of backoff
between the first and the last: about 70 minutes)."""
BACKOFF_FIRST_S = 2
BACKOFF_MAX_S = 3600
NO_ENDPOINT_RETRY_S = 60
"""A game with no ``webhook_url``: its events are looked at again this often."""
BATCH = 100
"""Events posted per pass (oldest due first)."""
POST_TIMEOUT_S = 5.0
ENDPOINTS_AT_ONCE = 16
"""Merchant endpoints a pass posts to at the same time (each game's events in order)."""
KEY_MAX = 128
KEY_DIGEST = 40
"""Hex digits of a too-long key's digest in its stored form (:func:`stored_key`)."""
EVENT_MAX = 64


@dataclass(frozen=True)
class Event:
    """One outbox row as the merchant sees it."""

    key: str
    event: str
    game: str
    data: dict[str, Any]
    created_at: int
    state: str
    tries: int
    delivered_at: int | None

    def public(self) -> dict[str, Any]:
        """The ``listWebhookEvents`` row."""
        return {"key": self.key, "event": self.event, "game": self.game, "data": self.data,
                "created_at": self.created_at, "state": self.state, "tries": self.tries,
                "delivered_at": self.delivered_at}


def stored_key(key: str) -> str:
    """``key`` as the outbox keeps it: as it is up to :data:`KEY_MAX` characters; a
    longer one (a play's key names ids of up to 64 and users of up to 128 characters)
    keeps its start and ends in ``~`` and 40 hex digits of its SHA-256, so it is still
    one stable key per event."""
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:KEY_DIGEST]
    return f"{key[:KEY_MAX - KEY_DIGEST - 1]}~{digest}"


def backoff_s(tries: int) -> int:
    """Seconds to wait after the ``tries``-th failed attempt: 2, 4, 8 … capped at an hour."""
    return int(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, tries - 1)))


class Outbox:
    """Emits events (idempotently, by key) and reads them back; no delivery here."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock

    async def emit(self, *, merchant: str, game: str, event: str, key: str,
                   data: dict[str, Any]) -> bool:
        """Store ``event`` for delivery unless ``key`` was emitted before; True when new."""
        try:
            async with self.db.begin() as conn:
                await self.emit_in(conn, merchant=merchant, game=game, event=event, key=key,
                                   data=data)
        except IntegrityError:
            return False  # emitted before: the first row stands
        return True

    async def emit_in(self, conn: AsyncConnection, *, merchant: str, game: str, event: str,
                      key: str, data: dict[str, Any]) -> None:
        """Store ``event`` in the caller's transaction, so it commits with the change it
        reports (or not at all). A key emitted before raises ``IntegrityError``, which
        fails that transaction: use it where the change itself happens once (a
        conditional update), and :meth:`emit` elsewhere. A key longer than
        :data:`KEY_MAX` is stored as :func:`stored_key` bounds it."""
        key = stored_key(key)
        if not key or not 0 < len(event) <= EVENT_MAX:
            raise ValueError("webhook key and event name must be non-empty and the event "
                             "name at most 64 characters")
        now = int(self.clock.now() * 1000)
        row = {"merchant_id": merchant, "game_id": game, "event": event, "event_key": key,
               "data": encode_json(data).decode(), "state": "pending", "tries": 0,
               "created_ms": now, "next_ms": now, "delivered_ms": None}
        await conn.execute(insert(m.webhook_outbox).values(**row))

    async def list(self, merchant: str, game: str, *, state: str | None = None,
                   limit: int = 100) -> list[Event]:
        """A game's events, newest first, optionally of one state."""
        w = m.webhook_outbox
        where = [w.c.merchant_id == merchant, w.c.game_id == game]
        if state is not None:
            where.append(w.c.state == state)
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(w).where(*where).order_by(w.c.id.desc())
                                       .limit(limit))).mappings().all()
        return [_event(r) for r in rows]


def _event(r: Any) -> Event:
    delivered = r["delivered_ms"]
    return Event(key=r["event_key"], event=r["event"], game=r["game_id"],
                 data=json.loads(r["data"]), created_at=r["created_ms"] // 1000,
                 state=r["state"], tries=r["tries"],
                 delivered_at=None if delivered is None else delivered // 1000)


class WebhookDeliverer(PeriodicTask):
    """Posts due outbox events, signed; run under a lease (one host at a time).

    Two overlapping passes (a stalled lease holder and its successor) may post one
    event twice; the receiver's dedupe by ``X-Petbox-Delivery`` absorbs that, as it
    must for any at-least-once delivery.
    """

    name = "petbox-webhooks"
    run_first = True

    def __init__(self, db: Database, games: GameRegistry, merchants: MerchantDirectory,
                 clock: Clock, interval: float = 1.0) -> None:
        super().__init__(interval)
        self.db, self.games, self.merchants, self.clock = db, games, merchants, clock
        self._http: aiohttp.ClientSession | None = None

    async def run_once(self) -> int:
        """Post every due event (up to ``BATCH``); returns how many were delivered.

        Each game's events go to its endpoint in order, and up to
        :data:`ENDPOINTS_AT_ONCE` endpoints are posted to at the same time: posted one
        after another, one merchant's hanging endpoint (``POST_TIMEOUT_S`` an event, a
        hundred events) held every other merchant's webhooks back for minutes."""
        now = int(self.clock.now() * 1000)
        w = m.webhook_outbox
        async with self.db.connect() as conn:
            rows = (await conn.execute(
                select(w).where(and_(w.c.state == "pending", w.c.next_ms <= now))
                .order_by(w.c.next_ms, w.c.id).limit(BATCH))).mappings().all()
        games: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            games.setdefault((row["merchant_id"], row["game_id"]), []).append(row)
        turns = asyncio.Semaphore(ENDPOINTS_AT_ONCE)

        async def deliver(events: list[Any]) -> int:
            async with turns:
                return await self._deliver_in_order(events, now)

        results = await asyncio.gather(*(deliver(e) for e in games.values()),
                                       return_exceptions=True)
        for result in results:  # every game had its turn; then the first fault is told
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def _deliver_in_order(self, events: list[Any], now: int) -> int:
        """One game's due events, oldest first. The first its endpoint does not take ends
        the game's share of this pass: the endpoint is down or slow, and each further
        post would wait for it too. The rest stay due for the next pass, untried."""
        delivered = 0
        for row in events:
            outcome = await self._attempt(row, now)
            if outcome == "failed":
                break
            delivered += outcome == "delivered"
        return delivered

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _attempt(self, row: Any, now: int) -> str:
        """Post one event: ``delivered``, ``failed`` (to be retried after its backoff) or
        ``no_endpoint`` (the game has none now: looked at again later)."""
        url, secret = await self._endpoint(row["merchant_id"], row["game_id"])
        if not url or secret is None:
            await self._settle(row["id"], next_ms=now + NO_ENDPOINT_RETRY_S * 1000)
            return "no_endpoint"
        ok = await self._post(url, secret, row)
        # Timed from the answer, not from the pass's start: a pass posts its events one
        # after another, and each slow endpoint (up to POST_TIMEOUT_S) delays the rest, so
        # a backoff counted from the start would be used up before the pass ended (a
        # hanging endpoint was retried back to back instead of 2, 4, 8 ... s apart).
        done = int(self.clock.now() * 1000)
        if ok:
            await self._settle(row["id"], state="delivered", delivered_ms=done,
                               tries=row["tries"] + 1)
            return "delivered"
        tries = row["tries"] + 1
        await self._settle(row["id"], tries=tries,
                           state="failed" if tries >= MAX_TRIES else "pending",
                           next_ms=done + backoff_s(tries) * 1000)
        return "failed"

    async def _endpoint(self, merchant: str, game: str) -> tuple[str, str | None]:
        try:
            live = await self.games.get(merchant, game)
        except Exception:  # game unpublished or gone: keep the event pending
            return "", None
        found = await self.merchants.by_id(merchant)
        return live.config.webhook_url, None if found is None else found.signing_secret

    async def _settle(self, row_id: int, **values: Any) -> None:
        w = m.webhook_outbox
        async with self.db.begin() as conn:
            await conn.execute(update(w).where(w.c.id == row_id).values(**values))

    async def _post(self, url: str, secret: str, row: Any) -> bool:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S))
        body = encode_json({"event": row["event"], "key": row["event_key"],
                            "merchant": row["merchant_id"], "game": row["game_id"],
                            "created_at": row["created_ms"] // 1000,
                            "data": json.loads(row["data"])})
        ts = str(int(self.clock.now()))
        headers = {"Content-Type": "application/json", "X-Petbox-Timestamp": ts,
                   "X-Petbox-Signature": body_signature(secret, ts, body),
                   "X-Petbox-Event": row["event"], "X-Petbox-Delivery": row["event_key"]}
        try:
            # A redirect is an answer like any other non-2xx: followed, a 302 to a login
            # page (POST turned GET, body dropped) answered 200 and marked an event the
            # merchant's handler never got delivered.
            async with self._http.post(url, data=body, headers=headers,
                                       allow_redirects=False) as resp:
                return 200 <= resp.status < 300
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("webhook %s to %s failed: %r", row["event_key"], url, exc)
            return False


OUTBOX = web.AppKey("webhook_outbox", Outbox)
"""The app's outbox: plays emit through ``request.app[OUTBOX]``."""
