"""The value tier: limited prizes that cost the merchant money (DESIGN.md, durability tiers).

Try–confirm–cancel, with SQL as the truth:

1. **gate** (Redis, :mod:`gameserver.state.stockgate`): the game's units left, split into
   buckets across slots; an attempt takes its units from its home bucket, then the
   others. It keeps the midnight crowd off SQL once a prize is gone.
2. **try** (SQL, one transaction): ``UPDATE prize_stock SET taken = taken + n WHERE
   taken + n <= total`` for each ref, then the grant rows as *pending*. The
   conditional update makes ``granted ≤ stock`` hold in SQL whatever Redis says.
3. the player commit (Lua, in the store);
4. **confirm** (SQL) the grants, then reply. A conflict or error before the commit
   **cancels**: rows voided, ``taken`` given back, the Redis units released.

A pending row left by a crash is settled by :meth:`ValueTier.reconcile`: confirmed
if the player's commit happened (its commit id is in the idempotency record or in
the SQL ledger), voided otherwise. The Redis gate is rebuilt from SQL
(``total − taken``) whenever it is missing, e.g. after Redis lost its data, and
units released into a gate of another generation are dropped, not double-counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from economy.errors import DomainError, Refusal
from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import CommitUnknown, Database
from gameserver.db.keyset import KeysetPages
from gameserver.http.errors import REDIS_UNAVAILABLE, Busy
from gameserver.state.keys import Keys, PlayerRef, shard_of
from gameserver.state.scripts import reply_text
from gameserver.state.stockgate import STOCK_BUCKETS, NotReady, Piece
from gameserver.state.value_stock import HOLD_TTL_MS as HOLD_TTL_MS
from gameserver.state.value_stock import (  # re-exported: the value tier's public surface
    STOCK_CHANGE_MARK_TTL_MS as STOCK_CHANGE_MARK_TTL_MS,
)
from gameserver.state.value_stock import PrizeStock, note_unreached
from gameserver.state.value_stock import StockBelowTaken as StockBelowTaken
from gameserver.state.value_stock import StockView as StockView
from gameserver.state.value_stock import stock_change_followup as stock_change_followup
from mechanics.outcome import Outcome, ValueGrant

log = logging.getLogger("petbox.value")


PENDING_SETTLE_AFTER_S = 60.0
"""Age from which the reconciler settles a pending grant row (younger ones may belong
to an action still running): twice the in-flight idempotency marker's lifetime."""

RECONCILE_PAGES = 50
"""Pages one :meth:`ValueTier.reconcile` call reads at most, however many rows wait."""

CODE_BYTES = 18
"""Coupon codes carry 144 random bits: unguessable, and never logged."""


class GrantAlreadyMade(DomainError):
    """A retry whose first attempt granted a prize, after Redis lost the stored reply."""

    code = "idempotency_already_applied"
    kind = Refusal.CONFLICT

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key already won a prize; its reply was lost in a "
                         "storage failure, see listDraws for the result")


class StockShort(Exception):
    """A ref has fewer units than the outcome needs; ``left`` is what there is."""

    def __init__(self, ref: str, left: int) -> None:
        super().__init__(ref)
        self.ref, self.left = ref, left


@dataclass(frozen=True)
class Hold:
    """Units reserved in Redis and SQL, and the pending grant rows, for one attempt."""

    ref: PlayerRef
    commit_id: str
    pieces: list[Piece]
    """What was taken from which gate bucket (and its generation)."""
    units: dict[str, int]
    grant_ids: list[int]
    codes: list[str]


@dataclass(frozen=True)
class ValueBinding:
    """What an action that may hit limited stock brings to the store: the tier, the
    view its rule reads, and the game's configured totals (to build a missing gate)."""

    tier: ValueTier
    view: StockView
    totals: Mapping[str, int]


def value_grants(outcome: Outcome) -> list[ValueGrant]:
    """One grant per unit of value the outcome grants, in order (a grant of several
    units comes that many times: each unit is a grant row of its own)."""
    return [grant for grant in outcome.grants for _ in range(grant.units)]


class ValueTier(PrizeStock):
    """Stock gates in Redis, stock truth (:class:`PrizeStock`) and grant rows in SQL."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, clock: Clock, shards: int,
                 shadow: bool = False, buckets: int = STOCK_BUCKETS) -> None:
        super().__init__(redis, keys, db, clock, buckets)
        self.shards, self.shadow = shards, shadow
        self._pending: KeysetPages[str] = KeysetPages("")  # by commit id (:meth:`reconcile`)

    # -- try / confirm / cancel ----------------------------------------------------------

    async def hold(self, ref: PlayerRef, idempotency_key: str, commit_id: str,
                   outcome: Outcome, view: StockView, totals: Mapping[str, int]) -> Hold:
        """Reserve the outcome's units in Redis, then in SQL with pending grant rows.

        Raises :class:`StockShort` (nothing held; ``view`` lowered) when a ref ran out,
        and :class:`Busy` (nothing held) when SQL cannot be reached: value grants fail
        closed.
        """
        units = outcome.held_units()
        pieces = await self._gate(ref, commit_id, units, view, totals)
        try:
            grant_ids, codes = await self._try_sql(ref, idempotency_key, commit_id, outcome,
                                                   units)
        except BaseException as exc:
            # Units go back now (a leaked unit would shrink the gate for good), unless SQL
            # may have taken them: then the hold stays for reconcile_holds to decide.
            if not isinstance(exc, CommitUnknown):
                await asyncio.shield(self.gate.give_back(ref.merchant, ref.game, pieces))
            else:
                await asyncio.shield(self._stuck(ref, pieces))
            refusal = self._refusal(exc, view)
            if isinstance(refusal, GrantAlreadyMade):
                refusal = await self._unsettled(ref, idempotency_key) or refusal
            if refusal is exc:
                raise
            raise refusal from exc
        # SQL counts the units now (its pending rows): the holds' records have done their
        # job. If this is lost, the reconciler finds the rows and drops the records.
        with contextlib.suppress(Exception):
            await self.gate.drop_holds(ref.merchant, ref.game, pieces)
        return Hold(ref, commit_id, pieces, units, grant_ids, codes)

    async def _unsettled(self, ref: PlayerRef, idempotency_key: str) -> Busy | None:
        """The refusal for a retry whose key's grant rows are still *pending*, or None.

        Such rows belong to an attempt whose outcome nobody knows yet (its COMMIT went
        unanswered, or its server died): the reconciler confirms them if the player's
        commit happened and voids them otherwise, and a retry after a void grants anew.
        So this is "retry later", never "already won" (a shopper told that looked for
        a prize that did not exist and gave up on a flash-sale unit that came back).
        """
        g = m.grants
        try:
            async with self.db.connect() as conn:
                created = (await conn.execute(select(g.c.created_ms).where(
                    g.c.merchant_id == ref.merchant, g.c.game_id == ref.game,
                    g.c.user_id == ref.user, g.c.idem_key == idempotency_key,
                    g.c.status == "pending").limit(1))).scalar_one_or_none()
        except (SQLAlchemyError, OSError, TimeoutError):
            return Busy("prizes cannot be granted right now; retry shortly", retry_after=2)
        if created is None:
            return None
        settles_at = created / 1000 + PENDING_SETTLE_AFTER_S
        return Busy("the first attempt with this Idempotency-Key is still being settled; "
                    "retry with the same key", retry_after=max(1, math.ceil(
                        settles_at - self.clock.now())))

    async def _stuck(self, ref: PlayerRef, pieces: list[Piece]) -> None:
        """A hold this attempt leaves to the reconciler is no longer in flight: it is
        aged past the live window at once (its deadline moved that much earlier, never
        later), so claims are not told to wait for it (``read_pending``)."""
        deadline_ms = int(self.clock.now() * 1000) + self.hold_ttl_ms - self.live_hold_ms
        with contextlib.suppress(Exception):  # else it ages out of the window by itself
            await self.gate.age_holds(ref.merchant, ref.game, pieces, deadline_ms)

    @staticmethod
    def _refusal(exc: BaseException, view: StockView) -> BaseException:
        """What a failed SQL try becomes for the caller."""
        if isinstance(exc, StockShort):
            view.left[exc.ref] = 0
            return exc
        if isinstance(exc, IntegrityError):
            # The unique (player, key, position) index: this key already holds a live
            # grant. Its response was lost with Redis' data; applying it again is wrong.
            return GrantAlreadyMade()
        if isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
            log.warning("value grant refused, SQL unavailable: %r", exc)
            return Busy("prizes cannot be granted right now; retry shortly", retry_after=2)
        return exc

    async def _gate(self, ref: PlayerRef, commit_id: str, units: Mapping[str, int],
                    view: StockView, totals: Mapping[str, int]) -> list[Piece]:
        """Reserve ``units`` in the gate's buckets with hold records; the pieces taken.
        Short only when every bucket was asked (what was taken then goes back)."""
        deadline = int(self.clock.now() * 1000) + self.hold_ttl_ms
        args = (ref.merchant, ref.game, commit_id, deadline, units, view.buckets)
        try:
            try:
                taken = await self.gate.reserve(*args)
            except NotReady:
                if not set(units) <= set(totals):
                    raise
                await self.ensure_stock(ref.merchant, ref.game, totals)  # first use, rebuilt
                taken = await self.gate.reserve(*args)
        except NotReady:
            raise Busy("prize stock is being rebuilt; retry shortly", retry_after=1) from None
        if taken.missing:
            await self.gate.give_back(ref.merchant, ref.game, taken.pieces)
            short_ref = min(taken.missing)
            left = max(0, taken.seen.get(short_ref, 0))  # a bucket may owe a removal
            view.left[short_ref] = left
            if view.tell_pending:
                await self.read_pending(ref.merchant, ref.game, view, [short_ref])
            raise StockShort(short_ref, left)
        return taken.pieces

    async def _try_sql(self, ref: PlayerRef, idempotency_key: str, commit_id: str,
                       outcome: Outcome, units: Mapping[str, int]) -> tuple[list[int], list[str]]:
        s = m.prize_stock
        now_ms = int(self.clock.now() * 1000)
        rows = [self._grant_row(ref, idempotency_key, commit_id, grant, pos, now_ms)
                for pos, grant in enumerate(value_grants(outcome))]
        async with self.db.begin() as conn:
            for unit_ref, n in sorted(units.items()):
                done = await conn.execute(update(s).where(
                    s.c.merchant_id == ref.merchant, s.c.game_id == ref.game,
                    s.c.ref == unit_ref, s.c.taken + n <= s.c.total,
                ).values(taken=s.c.taken + n, updated_at=now_ms // 1000))
                if done.rowcount != 1:
                    raise StockShort(unit_ref, 0)
            ids = []
            for row in rows:
                ids.append(int((await conn.execute(
                    insert(m.grants).values(**row).returning(m.grants.c.id))).scalar_one()))
        return ids, [r["code"] for r in rows]

    def _grant_row(self, ref: PlayerRef, idempotency_key: str, commit_id: str,
                   grant: ValueGrant, position: int, now_ms: int) -> dict[str, Any]:
        return {
            "merchant_id": ref.merchant, "game_id": ref.game, "user_id": ref.user,
            "ref": grant.ref, "kind": grant.kind, "idem_key": idempotency_key,
            "position": position, "commit_id": commit_id, "status": "pending",
            "code": "C" + secrets.token_urlsafe(CODE_BYTES), "detail": dict(grant.detail),
            "reason": grant.reason[:120], "shadow": self.shadow, "created_ms": now_ms,
        }

    async def confirm(self, hold: Hold) -> None:
        """Mark the hold's grants confirmed (after the player commit succeeded)."""
        await self._settle([hold.commit_id], "confirmed")

    async def cancel(self, hold: Hold) -> None:
        """Void the hold's grants and give its units back (the player commit did not happen)."""
        # Only the settler that voided the rows gives the units back (the reconciler
        # may have voided them already, after a long stall).
        at_ms = int(self.clock.now() * 1000)
        try:
            voided = bool(await self._settle([hold.commit_id], "void", at_ms=at_ms))
        except CommitUnknown:
            # The void may have committed. If it did, nobody else gives the units back
            # (the reconciler releases only rows it voids itself), so the gate would stay
            # short of SQL for good: a midnight flash sale kept a unit it never sold. Our
            # own settled_ms on the rows says it did; still pending, the reconciler will.
            if not await self._voided_at(hold.commit_id, at_ms):
                raise
            voided = True
        if voided:
            await self.gate.release(hold.ref.merchant, hold.ref.game, hold.pieces)

    async def _voided_at(self, commit_id: str, at_ms: int) -> bool:
        """Whether ``commit_id``'s grant rows were voided by a settle stamped ``at_ms``."""
        g = m.grants
        async with self.db.connect() as conn:
            return (await conn.execute(select(g.c.id).where(
                g.c.commit_id == commit_id, g.c.status == "void",
                g.c.settled_ms == at_ms).limit(1))).first() is not None

    async def _settle(self, commit_ids: Iterable[str], status: str,
                      db: Database | None = None, at_ms: int | None = None,
                      ) -> dict[tuple[str, str, str], int]:
        """Move pending grants of ``commit_ids`` to ``status``; keep ``prize_stock`` in step.

        Returns units per (merchant, game, ref) that this call settled (a void's units
        are to be released in Redis). ``db``: the database bound to use (default: the
        request one). ``at_ms``: the ``settled_ms`` to stamp (default: now).
        """
        g, s = m.grants, m.prize_stock
        now_ms = int(self.clock.now() * 1000) if at_ms is None else at_ms
        async with (db or self.db).begin() as conn:
            # Stock moves by the rows *this* UPDATE changed (RETURNING), never by rows
            # read before it: a second settler (another host's reconciler) racing for
            # the same pending rows matches none once the first commits (PostgreSQL
            # re-checks the WHERE after the row lock; SQLite serialises writers), so it
            # moves no stock. Selecting first and counting those rows voided twice.
            rows = (await conn.execute(
                update(g).where(g.c.commit_id.in_(list(commit_ids)), g.c.status == "pending")
                .values(status=status, settled_ms=now_ms)
                .returning(g.c.merchant_id, g.c.game_id, g.c.ref))).all()
            counts: dict[tuple[str, str, str], int] = {}
            for merchant, game, ref in rows:
                counts[(merchant, game, ref)] = counts.get((merchant, game, ref), 0) + 1
            for (merchant, game, ref), n in sorted(counts.items()):
                where = and_(s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref == ref)
                change = ({"granted": s.c.granted + n} if status == "confirmed"
                          else {"taken": s.c.taken - n})
                await conn.execute(update(s).where(where).values(**change))
        return counts

    async def end_grants(self, grant_ids: Iterable[int], status: str,
                         give_back: bool) -> dict[tuple[str, str, str], int]:
        """Move *confirmed* grants past confirmation, to ``status``: a unit held for a
        while and then sold (``give_back`` False: it stays granted), or given up, e.g.
        a hold unpaid by its deadline (``give_back`` True: ``taken`` and ``granted``
        drop by it in SQL, then it goes back into the Redis gate).

        Only rows still confirmed move (``UPDATE … RETURNING``), so two hosts ending one
        grant move its stock once. Returns units per (merchant, game, ref) this call
        ended. A process dying between the SQL commit and the gate leaves the gate
        that many units short of SQL (never over) until it is rebuilt."""
        ids = list(grant_ids)
        if not ids:
            return {}
        g, s = m.grants, m.prize_stock
        now_ms = int(self.clock.now() * 1000)
        counts: dict[tuple[str, str, str], int] = {}
        async with self.db.background.begin() as conn:
            rows = (await conn.execute(
                update(g).where(g.c.id.in_(ids), g.c.status == "confirmed")
                .values(status=status, settled_ms=now_ms)
                .returning(g.c.merchant_id, g.c.game_id, g.c.ref))).all()
            for merchant, game, ref in rows:
                counts[(merchant, game, ref)] = counts.get((merchant, game, ref), 0) + 1
            if give_back:
                for (merchant, game, ref), n in sorted(counts.items()):
                    await conn.execute(update(s).where(
                        s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref == ref,
                    ).values(taken=s.c.taken - n, granted=s.c.granted - n))
        if give_back:
            for (merchant, game, ref), n in counts.items():
                await self.gate.add(merchant, game, ref, n, attempt=ref)
        return counts

    # -- reconciliation ------------------------------------------------------------------

    async def reconcile(self, older_than_s: float = PENDING_SETTLE_AFTER_S,
                        limit: int = 1000, unreached: list[str] | None = None,
                        pages: int = RECONCILE_PAGES) -> tuple[int, int]:
        """Settle pending grants left by crashes; returns the (confirmed, voided) grant
        rows this call settled (another host's reconciler may have settled the rest).

        Only grants older than the in-flight marker's lifetime are looked at, so an
        action still running is never decided for. A grant whose player's Redis node
        does not answer stays pending (``shard <n>`` appended to ``unreached``): it is
        decided by a later pass, the others now. Pending commits are read by commit id,
        ``limit`` a page after a cursor, so rows skipped never hide the rows behind them;
        at most ``pages`` pages a call (the next call goes on where a capped one stopped).
        """
        cutoff = int((self.clock.now() - older_than_s) * 1000)
        # Shards found silent (this call or earlier in the pass): a shard's keys share one
        # hash tag, so one node; its other rows wait without a bounded try each.
        silent = set(unreached or ())
        confirmed = voided = 0
        async for rows in self._pending.walk(
                lambda after, n: self._pending_page(cutoff, after, n), lambda row: row[0],
                limit, pages):
            c, v = await self._decide(rows, silent, unreached)
            confirmed, voided = confirmed + c, voided + v
        return confirmed, voided

    async def _pending_page(self, cutoff: int, after: str, limit: int) -> list[Any]:
        """Up to ``limit`` pending commits created before ``cutoff`` whose id sorts
        after ``after``: (commit id, merchant, game, user, idempotency key), by id."""
        g = m.grants
        async with self.db.background.connect() as conn:  # a background job: longer bound
            return list((await conn.execute(
                select(g.c.commit_id, g.c.merchant_id, g.c.game_id, g.c.user_id, g.c.idem_key)
                .where(g.c.status == "pending", g.c.created_ms < cutoff, g.c.commit_id > after)
                .group_by(g.c.commit_id, g.c.merchant_id, g.c.game_id, g.c.user_id,
                          g.c.idem_key)
                .order_by(g.c.commit_id).limit(limit))).all())

    async def _decide(self, rows: Sequence[Any], silent: set[str],
                      unreached: list[str] | None) -> tuple[int, int]:
        """Settle one page of pending commits (:meth:`reconcile`): (confirmed, voided)."""
        if not rows:
            return 0, 0
        db, lg = self.db.background, m.ledger
        async with db.connect() as conn:  # SQL's ledger has it: it happened, whatever Redis says
            in_ledger = {r[0] for r in await conn.execute(select(lg.c.commit_id).where(
                lg.c.commit_id.in_([r[0] for r in rows])).distinct())}
        committed: list[str] = []
        dead: list[str] = []
        for commit_id, merchant, game, user, idem in rows:
            ref = PlayerRef(merchant, game, user, shard_of(merchant, user, self.shards))
            if commit_id in in_ledger:
                committed.append(commit_id)
                continue
            shard = f"shard {ref.shard}"
            if shard in silent:
                continue
            try:
                ok = await self._idempotency_says(commit_id, ref, idem)
            except REDIS_UNAVAILABLE as exc:  # undecidable now: it stays pending
                note_unreached(unreached, shard, exc)
                silent.add(shard)
                continue
            (committed if ok else dead).append(commit_id)
        confirmed = await self._settle(committed, "confirmed", db) if committed else {}
        released = await self._settle(dead, "void", db) if dead else {}
        for (merchant, game, ref_id), n in released.items():
            try:
                await self.gate.add(merchant, game, ref_id, n, attempt=ref_id)
            except REDIS_UNAVAILABLE as exc:  # SQL has them: short until a gate rebuild
                note_unreached(unreached, self.gate.stock_key(
                    merchant, game, self.gate.home(ref_id)), exc)
        return sum(confirmed.values()), sum(released.values())

    async def _idempotency_says(self, commit_id: str, ref: PlayerRef, idem: str) -> bool:
        """Whether the player's idempotency record names the commit (it happened)."""
        stored = await self.redis.hget(self.keys.idempotency(ref, idem), "x")
        return stored is not None and reply_text(stored) == commit_id

