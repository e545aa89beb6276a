"""Idempotency-Keys of merchant writes, kept in SQL (table ``admin_requests``).

Merchant writes are rare and mostly SQL writes, so their keys live where their
effects live, not in Redis: a key survives server restarts and Redis data loss.

A write with a key runs in three steps:

1. :meth:`AdminRequests.begin` inserts the row as *running* (its own transaction,
   so a concurrent duplicate sees it and gets 409). If the row exists: a different
   request hash is 422 ``idempotency_mismatch``, *done* replays the first response,
   *running* is 409 unless its claim is older than the lease (the process that held it
   died), in which case this request takes the row over with a new token.
2. the write's SQL effect and :meth:`AdminRequests.finish_in` (row → *done* with the
   response) commit in **one transaction**. ``finish_in`` matches the claim's token,
   so a request whose claim was taken over rolls its effect back instead of applying
   twice; a crash before the commit leaves the row *running* with no effect, and the
   retry after the lease runs it once.
3. a refusal (any error) gives the key up (:meth:`AdminRequests.abandon`): nothing
   was applied, so a corrected retry may use the same key, as with shopper keys.

``followup`` carries a non-SQL step owed after the commit (``setStock``'s Redis gate
adjust); it is cleared when that step is done, and a replay or the reconciler redoes
it idempotently until then.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.http.errors import IdempotencyInProgress, IdempotencyMismatch

LEASE_S = 30.0
"""How long a *running* claim holds its key before a retry may take it over (as the
shopper keys' in-flight marker, ``keys.PENDING_TTL_MS``)."""


@dataclass(frozen=True)
class Claim:
    """This request owns ``key`` of ``merchant`` until it finishes or abandons it."""

    merchant: str
    key: str
    token: str


@dataclass(frozen=True)
class Stored:
    """The first response of a finished key, and the follow-up it may still owe."""

    merchant: str
    key: str
    status: int
    body: bytes
    followup: dict[str, Any] | None


class AdminRequests:
    """The ``admin_requests`` table as the merchant routes use it."""

    def __init__(self, db: Database, clock: Clock, lease_s: float = LEASE_S) -> None:
        self.db, self.clock, self.lease_s = db, clock, lease_s

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def begin(self, merchant: str, key: str, operation: str,
                    request_hash: str) -> Claim | Stored:
        """Claim ``key`` for this request, or the stored response of its first use.

        Raises :class:`IdempotencyMismatch` (another request used the key) or
        :class:`IdempotencyInProgress` (the first is still running)."""
        token, now = secrets.token_hex(16), self._now_ms()
        try:
            async with self.db.begin() as conn:
                await conn.execute(insert(m.admin_requests).values(
                    merchant_id=merchant, idem_key=key, operation=operation,
                    request_hash=request_hash, status="running", token=token,
                    created_ms=now, claimed_ms=now))
            return Claim(merchant, key, token)
        except IntegrityError:
            pass
        return await self._existing(merchant, key, request_hash, token, now)

    async def _existing(self, merchant: str, key: str, request_hash: str, token: str,
                        now: int) -> Claim | Stored:
        a = m.admin_requests
        async with self.db.connect() as conn:
            row = (await conn.execute(select(
                a.c.request_hash, a.c.status, a.c.response_status, a.c.response_body,
                a.c.followup).where(a.c.merchant_id == merchant, a.c.idem_key == key))).first()
        if row is None:  # abandoned meanwhile: one more try, or let the client retry
            raise IdempotencyInProgress()
        if row[0] != request_hash:
            raise IdempotencyMismatch()
        if row[1] == "done":
            return Stored(merchant, key, int(row[2]), bytes(row[3]), row[4])
        return await self._take_over(merchant, key, token, now)

    async def _take_over(self, merchant: str, key: str, token: str, now: int) -> Claim:
        """Take a *running* claim whose lease ran out (its process died before commit)."""
        a = m.admin_requests
        stale = now - int(self.lease_s * 1000)
        async with self.db.begin() as conn:
            done = await conn.execute(update(a).where(
                a.c.merchant_id == merchant, a.c.idem_key == key, a.c.status == "running",
                a.c.claimed_ms < stale).values(token=token, claimed_ms=now))
        if done.rowcount != 1:
            raise IdempotencyInProgress()
        return Claim(merchant, key, token)

    async def finish_in(self, conn: AsyncConnection, claim: Claim, status: int, body: bytes,
                        followup: dict[str, Any] | None = None) -> None:
        """Record the response in ``conn``'s transaction (the one holding the effect).

        Raises :class:`IdempotencyInProgress` if the claim was taken over meanwhile: the
        caller's transaction then rolls back, so the effect is applied by one request."""
        a = m.admin_requests
        done = await conn.execute(update(a).where(
            a.c.merchant_id == claim.merchant, a.c.idem_key == claim.key,
            a.c.token == claim.token, a.c.status == "running",
        ).values(status="done", response_status=status, response_body=body,
                 followup=followup))
        if done.rowcount != 1:
            raise IdempotencyInProgress()

    async def finish(self, claim: Claim, status: int, body: bytes) -> None:
        """:meth:`finish_in` in a transaction of its own (an effect outside SQL)."""
        async with self.db.begin() as conn:
            await self.finish_in(conn, claim, status, body)

    async def abandon(self, claim: Claim) -> None:
        """Give the key up: the request was refused or failed before its effect."""
        a = m.admin_requests
        async with self.db.begin() as conn:
            await conn.execute(delete(a).where(
                a.c.merchant_id == claim.merchant, a.c.idem_key == claim.key,
                a.c.token == claim.token, a.c.status == "running"))

    async def clear_followup(self, merchant: str, key: str) -> None:
        """The follow-up of a finished key is done."""
        a = m.admin_requests
        async with self.db.begin() as conn:
            await conn.execute(update(a).where(
                a.c.merchant_id == merchant, a.c.idem_key == key, a.c.status == "done",
            ).values(followup=None))

    async def owed_followups(self, older_than_s: float, limit: int = 100,
                             after: int = 0) -> list[tuple[int, Stored]]:
        """Finished keys whose follow-up is still owed after ``older_than_s`` (their
        process died between the commit and the follow-up, and no retry came): up to
        ``limit`` rows whose id is greater than ``after``, by id, each with its id (the
        cursor of the next page). A row whose follow-up is empty (JSON null) comes back
        with ``followup`` None, so a full page always has ``limit`` rows."""
        a = m.admin_requests
        cutoff = self._now_ms() - int(older_than_s * 1000)
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(
                a.c.id, a.c.merchant_id, a.c.idem_key, a.c.response_status,
                a.c.response_body, a.c.followup).where(
                    a.c.status == "done", a.c.followup.is_not(None), a.c.claimed_ms < cutoff,
                    a.c.id > after)
                .order_by(a.c.id).limit(limit))).all()
        # JSON null and SQL NULL differ on PostgreSQL; only a real follow-up counts (the
        # others are kept, as None: dropped, a full page would look like the last one).
        return [(int(r[0]), Stored(r[1], r[2], int(r[3]), bytes(r[4]), r[5] or None))
                for r in rows]
