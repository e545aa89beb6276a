"""Prize stock: each limited ref's total and what is taken, in SQL (the truth), and the
Redis gate built from it (:mod:`gameserver.state.stockgate`) that keeps the midnight crowd off
SQL. The value tier (:mod:`gameserver.state.value`) reserves and grants against this stock;
here is what reads it and what changes it (``getStock``, ``setStock``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.errors import DomainError, Refusal
from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.http.errors import REDIS_UNAVAILABLE
from gameserver.ops.settings import Settings
from gameserver.state.keys import Keys
from gameserver.state.scripts import reply_text
from gameserver.state.stockgate import STOCK_BUCKETS, StockGate

log = logging.getLogger("petbox.value")

HOLD_TTL_MS = 30_000
"""A gate reservation not settled against SQL by then belongs to a dead attempt: the
reconciler gives its units back if SQL never took them. Longer than any SQL try can run
(its calls are bounded by the SQL timeouts, 1.5 s for a request, 10 s in background)."""
LIVE_HOLD_MS = int((Settings.sql_timeout + Settings.sql_pool_timeout) * 1000)
"""How long an attempt may hold units and still settle either way: a grant's longest SQL
try (``sql_timeout`` + ``sql_pool_timeout``, set from the settings). An older hold is
stuck (its process died, or its commit's answer was lost) and waits for the reconciler."""

STOCK_CHANGE_MARK_TTL_MS = 7 * 86_400_000
"""How long a ``setStock``'s applied-mark stays beside the gate: far longer than its
follow-up can be owed (the reconciler settles one within minutes)."""


def stock_change_followup(game: str, epoch: str, ref: str, add: int) -> dict[str, Any]:
    """The follow-up a ``setStock`` records with its key: the gate adjust it owes."""
    return {"kind": "stock_change", "game": game, "epoch": epoch, "ref": ref, "add": add}


class StockBelowTaken(DomainError):
    code = "stock_below_taken"
    kind = Refusal.CONFLICT

    def __init__(self, ref: str, add: int) -> None:
        super().__init__("stock cannot go below what is already reserved or granted",
                         ref=ref, add=add)


@dataclass
class StockView:
    """Units left per ref as a rule sees them; lowered when a reservation comes up short."""

    left: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    """Units left per ref and gate bucket, as last read (orders a reservation's asks)."""
    pending: dict[str, int] = field(default_factory=dict)
    """Units of a ref with nothing left that attempts in flight hold: they may come back
    (read only where asked for, see :meth:`PrizeStock.stock_left`)."""
    tell_pending: bool = False
    """The rule tells "sold out" from "all units in flight": a ref that comes up short
    in a reservation gets its ``pending`` read too."""

    def out(self, prefix: str) -> frozenset[str]:
        """Ids under ``prefix`` with nothing left, e.g. coupons a reward must skip."""
        return frozenset(r[len(prefix):] for r, n in self.left.items()
                         if r.startswith(prefix) and n <= 0)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        """``{"prize:a": 3}`` → ``{"a": 3}`` for ``prefix="prize:"``."""
        return {ref[len(prefix):]: n for ref, n in self.left.items() if ref.startswith(prefix)}


class PrizeStock:
    """Stock totals in SQL and the Redis gate that mirrors what is left of them."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, clock: Clock,
                 buckets: int = STOCK_BUCKETS) -> None:
        self.redis, self.keys, self.db, self.clock = redis, keys, db, clock
        # A move between buckets is held as long as an attempt (read at each move).
        self.gate = StockGate(redis, keys, buckets, deadline=lambda: int(
            self.clock.now() * 1000) + self.hold_ttl_ms)
        self.hold_ttl_ms = HOLD_TTL_MS
        self.live_hold_ms = LIVE_HOLD_MS
        self._building: dict[tuple[str, str, tuple[tuple[str, int], ...]],
                             asyncio.Future[str]] = {}

    async def ensure_stock(self, merchant: str, game: str, totals: Mapping[str, int]) -> str:
        """Make sure SQL knows each ref (with its configured total) and Redis has a gate;
        returns the gate's epochs (its buckets' generations).

        One build per game and process at a time: the midnight crowd that finds the gate
        missing (first use, Redis lost it) waits for one SQL read instead of sending a
        thousand, which a single SQLite writer could not answer within the SQL timeout."""
        flight_key = (merchant, game, tuple(sorted(totals.items())))
        flight = self._building.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(self._ensure_stock(merchant, game, totals))
            self._building[flight_key] = flight
            flight.add_done_callback(lambda _: self._building.pop(flight_key, None))
        return await asyncio.shield(flight)

    async def _ensure_stock(self, merchant: str, game: str, totals: Mapping[str, int]) -> str:
        now = int(self.clock.now())
        s = m.prize_stock
        async with self.db.connect() as conn:
            known = {r[0] for r in await conn.execute(
                select(s.c.ref).where(s.c.merchant_id == merchant, s.c.game_id == game))}
        missing = [{"merchant_id": merchant, "game_id": game, "ref": ref, "total": total,
                    "taken": 0, "granted": 0, "updated_at": now}
                   for ref, total in sorted(totals.items()) if ref not in known]
        if missing:
            try:
                async with self.db.begin() as conn:
                    await conn.execute(insert(s), missing)
            except IntegrityError:  # another process inserted them first: theirs stand
                pass
        return await self._rebuild_gate(merchant, game, list(totals))

    async def _rebuild_gate(self, merchant: str, game: str, refs: list[str]) -> str:
        """Fill missing gate buckets from SQL (units left = total − taken); the epochs."""
        s = m.prize_stock
        async with self.db.connect() as conn:
            rows = await conn.execute(select(s.c.ref, s.c.total - s.c.taken).where(
                s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref.in_(refs)))
            sql_left = {r[0]: max(0, int(r[1])) for r in rows}
        return await self.gate.build(merchant, game, sql_left)

    async def stock_left(self, merchant: str, game: str, totals: Mapping[str, int],
                         pending: bool = False) -> StockView:
        """Units left per ref, building the gate from SQL first if Redis lacks it.

        With ``pending``, a ref with nothing left also gets the units attempts in flight
        hold (one more round trip, only then): a play that answers "sold out" to a crowd
        must not say so while units may still come back."""
        if not totals:
            return StockView()
        refs = sorted(totals)
        per_bucket = await self.gate.left(merchant, game, refs)
        if per_bucket is None:
            await self.ensure_stock(merchant, game, totals)
            per_bucket = await self.gate.left(merchant, game, refs) or {}
        view = StockView({ref: max(0, sum(n)) for ref, n in per_bucket.items()}, per_bucket,
                         tell_pending=pending)
        if pending:
            await self.read_pending(merchant, game, view)
        return view

    async def read_pending(self, merchant: str, game: str, view: StockView,
                           refs: list[str] | None = None) -> None:
        """Fill ``view.pending`` for ``refs`` (default: every ref with nothing left):
        the units of holds young enough to settle either way any moment. A stuck hold
        is left out: telling a crowd to retry for the reconciler's half minute costs
        more than the unit it may give back (it comes back on sale then)."""
        out = refs if refs is not None else [r for r, n in view.left.items() if n <= 0]
        if out:
            # A hold's score is its deadline, made at deadline − hold TTL: live while
            # made less than the live window ago.
            since_ms = int(self.clock.now() * 1000) - self.live_hold_ms + self.hold_ttl_ms
            view.pending.update(await self.gate.in_flight(merchant, game, out, since_ms))

    async def stock_report(self, merchant: str, game: str,
                           refs: list[str]) -> list[dict[str, Any]]:
        """``getStock`` rows: total, reserved (pending), granted (confirmed), left."""
        s = m.prize_stock
        async with self.db.connect() as conn:
            rows = (await conn.execute(
                select(s.c.ref, s.c.total, s.c.taken, s.c.granted)
                .where(s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref.in_(refs))
                .order_by(s.c.ref))).all()
        return [{"ref": r[0], "total": int(r[1]), "reserved": int(r[2] - r[3]),
                 "granted": int(r[3]), "left": int(r[1] - r[2])} for r in rows]

    async def add_stock(self, merchant: str, game: str, ref: str, add: int) -> dict[str, Any]:
        """Change a ref's total in SQL (never below what is taken), then the Redis gate.

        Without an Idempotency-Key (the CLI, tests): each call applies once more."""
        epochs = await self.gate.epochs(merchant, game)
        async with self.db.begin() as conn:
            row = await self.change_stock_in(conn, merchant, game, ref, add)
        await self.gate.change(merchant, game, secrets.token_hex(8), epochs, ref, add,
                               STOCK_CHANGE_MARK_TTL_MS)
        return row

    async def change_stock_in(self, conn: AsyncConnection, merchant: str, game: str,
                              ref: str, add: int) -> dict[str, Any]:
        """``setStock``'s SQL side in the caller's transaction: the ref's total moves by
        ``add`` (:class:`StockBelowTaken` if that goes below what is taken); returns its
        ``getStock`` row as of this transaction. The Redis gate is the caller's next
        step (:meth:`apply_stock_change`), after the commit."""
        s = m.prize_stock
        done = await conn.execute(update(s).where(
            s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref == ref,
            s.c.total + add >= s.c.taken,
        ).values(total=s.c.total + add, updated_at=int(self.clock.now())))
        if done.rowcount != 1:
            raise StockBelowTaken(ref, add)
        r = (await conn.execute(select(s.c.total, s.c.taken, s.c.granted).where(
            s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref == ref))).one()
        return {"ref": ref, "total": int(r[0]), "reserved": int(r[1] - r[2]),
                "granted": int(r[2]), "left": int(r[0] - r[1])}

    async def apply_stock_change(self, merchant: str, game: str, key: str, epoch: str,
                                 ref: str, add: int,
                                 mark_ttl_ms: int = STOCK_CHANGE_MARK_TTL_MS) -> int:
        """The gate side of a committed ``setStock`` with Idempotency-Key ``key``: applied
        at most once (a mark beside each bucket, written by the same script), and only
        to bucket generations ``epoch`` (:meth:`ensure_stock`'s, in force before the SQL
        change: a bucket rebuilt since read SQL after it). Returns 1 applied, 0 already,
        -1 no gate of that generation (nothing to do)."""
        return await self.gate.change(merchant, game, key, epoch, ref, add, mark_ttl_ms)

    async def settle_stock_change(self, merchant: str, key: str,
                                  followup: Mapping[str, Any]) -> None:
        """Do the Redis step a committed ``setStock`` owes (its ``admin_requests``
        follow-up, see :func:`stock_change_followup`), at most once."""
        await self.apply_stock_change(merchant, str(followup["game"]), key,
                                      str(followup["epoch"]), str(followup["ref"]),
                                      int(followup["add"]))

    async def reconcile_holds(self, limit: int = 1000,
                              unreached: list[str] | None = None) -> tuple[int, int]:
        """End the gate holds past their deadline (attempts that died between the gate
        and SQL, e.g. a server killed while SQL hung; moves between buckets whose mover
        died): units SQL never took go back to the gate, holds SQL has rows for are
        dropped. Then each game's buckets below 0 are paid by the others (what a crash
        or a previous release's host left, :meth:`StockGate.pay_debts`), unless a bucket
        of the game did not answer. Returns (given back, dropped).

        A bucket whose Redis node does not answer (a cluster master down) is skipped,
        its key appended to ``unreached``: its holds wait for a later pass, and the
        buckets on the other nodes are not held up by it."""
        s = m.prize_stock
        async with self.db.connect() as conn:
            games = (await conn.execute(select(s.c.merchant_id, s.c.game_id).distinct())).all()
        now_ms = int(self.clock.now() * 1000)
        given = dropped = 0
        for merchant, game in games:
            silent = False
            for bucket in range(self.gate.buckets):
                try:
                    g, d = await self._end_expired_holds(merchant, game, bucket, now_ms, limit)
                except REDIS_UNAVAILABLE as exc:
                    note_unreached(unreached, self.gate.holds_key(merchant, game, bucket), exc)
                    silent = True
                    continue
                given, dropped = given + g, dropped + d
            if silent:
                continue  # its debts wait for a pass that reaches every bucket
            try:  # after the holds: what a crash or a previous release left owed
                await self.gate.pay_debts(merchant, game)
            except REDIS_UNAVAILABLE as exc:
                note_unreached(unreached, f"stock gate {merchant}/{game}", exc)
        if given or dropped:
            log.warning("expired gate holds: %d given back, %d dropped (SQL had them)",
                        given, dropped)
        return given, dropped

    async def _end_expired_holds(self, merchant: str, game: str, bucket: int, now_ms: int,
                                 limit: int) -> tuple[int, int]:
        """:meth:`reconcile_holds` on one bucket: (given back, dropped)."""
        replies: Any = await self.redis.zrangebyscore(
            self.gate.holds_key(merchant, game, bucket), "-inf", now_ms, start=0, num=limit)
        expired = [reply_text(v) for v in replies]
        if not expired:
            return 0, 0
        in_sql = await self._commits_in_sql([h.split("|", 1)[0] for h in expired])
        given = dropped = 0
        for member in expired:
            take_back = member.split("|", 1)[0] not in in_sql
            if await self.gate.end_expired(merchant, game, bucket, member, take_back):
                given += 1
            else:
                dropped += 1
        return given, dropped

    async def _commits_in_sql(self, commit_ids: list[str]) -> set[str]:
        """The commit ids that have grant rows in SQL, whatever their status."""
        g = m.grants
        async with self.db.connect() as conn:
            return {r[0] for r in await conn.execute(
                select(g.c.commit_id).where(g.c.commit_id.in_(commit_ids)).distinct())}


def note_unreached(unreached: list[str] | None, what: str, exc: BaseException) -> None:
    """Note (once) and log what a pass skipped because its Redis node did not answer."""
    log.warning("reconcile: %s unreachable, left for the next pass: %r", what, exc)
    if unreached is not None and what not in unreached:
        unreached.append(what)
