"""The value tier: limited prizes that cost the merchant money (DESIGN.md, durability tiers).

Try–confirm–cancel, with SQL as the truth:

1. **gate** (Redis, ``stock_reserve.lua``): an atomic all-or-nothing decrement in the
   game's stock hash. It keeps the midnight crowd off SQL once a prize is gone.
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
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from economy.errors import DomainError
from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.errors import Busy
from gameserver.keys import Keys, PlayerRef, shard_of
from gameserver.scripts import load_script, reply_text
from mechanics.outcome import Outcome

log = logging.getLogger("petbox.value")

HOLD_TTL_MS = 30_000
"""A gate reservation not settled against SQL by then belongs to a dead attempt: the
reconciler gives its units back if SQL never took them. Longer than any SQL try can run
(its calls are bounded by the SQL timeouts, 1.5 s for a request, 10 s in background)."""

CODE_BYTES = 18
"""Coupon codes carry 144 random bits: unguessable, and never logged."""


STOCK_CHANGE_MARK_TTL_MS = 7 * 86_400_000
"""How long a ``setStock``'s applied-mark stays beside the gate: far longer than its
follow-up can be owed (the reconciler settles one within minutes)."""


def stock_change_followup(game: str, epoch: str, ref: str, add: int) -> dict[str, Any]:
    """The follow-up a ``setStock`` records with its key: the gate adjust it owes."""
    return {"kind": "stock_change", "game": game, "epoch": epoch, "ref": ref, "add": add}


class StockBelowTaken(DomainError):
    code = "stock_below_taken"
    status = 409

    def __init__(self, ref: str, add: int) -> None:
        super().__init__("stock cannot go below what is already reserved or granted",
                         ref=ref, add=add)


class GrantAlreadyMade(DomainError):
    """A retry whose first attempt granted a prize, after Redis lost the stored reply."""

    code = "idempotency_already_applied"
    status = 409

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key already won a prize; its reply was lost in a "
                         "storage failure, see listDraws for the result")


class StockShort(Exception):
    """A ref has fewer units than the outcome needs; ``left`` is what there is."""

    def __init__(self, ref: str, left: int) -> None:
        super().__init__(ref)
        self.ref, self.left = ref, left


@dataclass
class StockView:
    """Units left per ref as a rule sees them; lowered when a reservation comes up short."""

    left: dict[str, int] = field(default_factory=dict)

    def out(self, prefix: str) -> frozenset[str]:
        """Ids under ``prefix`` with nothing left, e.g. coupons a reward must skip."""
        return frozenset(r[len(prefix):] for r, n in self.left.items()
                         if r.startswith(prefix) and n <= 0)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        """``{"prize:a": 3}`` → ``{"a": 3}`` for ``prefix="prize:"``."""
        return {ref[len(prefix):]: n for ref, n in self.left.items() if ref.startswith(prefix)}


@dataclass(frozen=True)
class Hold:
    """Units reserved in Redis and SQL, and the pending grant rows, for one attempt."""

    ref: PlayerRef
    commit_id: str
    epoch: str
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


def value_grants(outcome: Outcome) -> list[tuple[str, dict[str, Any]]]:
    """One ``(ref, detail)`` per unit of value the outcome grants, in order.

    Blind-box prizes come as ``value_grant`` events (one per unit); coupons from
    rewards as ``coupon_granted`` events with a count.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for event in outcome.events:
        detail = {k: v for k, v in event.items() if k != "type"}
        if event.get("type") == "value_grant":
            out.append((str(event["reservation"]), detail))
        elif event.get("type") == "coupon_granted":
            out += [(f"coupon:{event['coupon']}", detail)] * int(event.get("count", 1))
    return out


class ValueTier:
    """Stock gates in Redis, stock truth and grant rows in SQL."""

    def __init__(self, redis: Redis, keys: Keys, db: Database, clock: Clock, shards: int,
                 shadow: bool = False) -> None:
        self.redis, self.keys, self.db, self.clock = redis, keys, db, clock
        self.shards, self.shadow = shards, shadow
        self._init: AsyncScript = redis.register_script(load_script("stock_init"))
        self._reserve: AsyncScript = redis.register_script(load_script("stock_reserve"))
        self._adjust: AsyncScript = redis.register_script(load_script("stock_adjust"))
        self._change: AsyncScript = redis.register_script(load_script("stock_change"))
        self._unhold: AsyncScript = redis.register_script(load_script("stock_unhold"))
        self.hold_ttl_ms = HOLD_TTL_MS
        self._building: dict[tuple[str, str, tuple[tuple[str, int], ...]],
                             asyncio.Future[str]] = {}

    # -- stock gates ---------------------------------------------------------------------

    async def ensure_stock(self, merchant: str, game: str, totals: Mapping[str, int]) -> str:
        """Make sure SQL knows each ref (with its configured total) and Redis has a gate;
        returns the gate's epoch (its generation).

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
        """Fill missing gate fields from SQL (units left = total − taken); the epoch."""
        s = m.prize_stock
        async with self.db.connect() as conn:
            rows = await conn.execute(select(s.c.ref, s.c.total - s.c.taken).where(
                s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref.in_(refs)))
            pairs = [v for r in rows for v in (r[0], max(0, int(r[1])))]
        epoch = await self._init(keys=[self.keys.stock(merchant, game)],
                                 args=[secrets.token_hex(8), *pairs])
        return reply_text(epoch)

    async def stock_left(self, merchant: str, game: str,
                         totals: Mapping[str, int]) -> StockView:
        """Units left per ref, building the gate from SQL first if Redis lacks it."""
        if not totals:
            return StockView()
        refs = sorted(totals)
        values = await self.redis.hmget(self.keys.stock(merchant, game), ["_epoch", *refs])
        if any(v is None for v in values):
            await self.ensure_stock(merchant, game, totals)
            values = await self.redis.hmget(self.keys.stock(merchant, game), ["_epoch", *refs])
        return StockView({ref: int(v or 0) for ref, v in zip(refs, values[1:], strict=True)})

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
        async with self.db.begin() as conn:
            row = await self.change_stock_in(conn, merchant, game, ref, add)
        await self._adjust(keys=[self.keys.stock(merchant, game)], args=["", ref, add])
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
        at most once (a mark beside the gate, written by the same script), and only to
        gate generation ``epoch``, the one in force before the SQL change (a gate
        rebuilt since read SQL after it). Returns 1 applied, 0 already, -1 no gate of
        that generation (nothing to do)."""
        res = await self._change(keys=[self.keys.stock(merchant, game),
                                       self.keys.stock_change(merchant, game, key)],
                                 args=[epoch, mark_ttl_ms, ref, add])
        return int(res)

    async def settle_stock_change(self, merchant: str, key: str,
                                  followup: Mapping[str, Any]) -> None:
        """Do the Redis step a committed ``setStock`` owes (its ``admin_requests``
        follow-up, see :func:`stock_change_followup`), at most once."""
        await self.apply_stock_change(merchant, str(followup["game"]), key,
                                      str(followup["epoch"]), str(followup["ref"]),
                                      int(followup["add"]))

    # -- try / confirm / cancel ----------------------------------------------------------

    async def hold(self, ref: PlayerRef, idempotency_key: str, commit_id: str,
                   outcome: Outcome, view: StockView, totals: Mapping[str, int]) -> Hold:
        """Reserve the outcome's units in Redis, then in SQL with pending grant rows.

        Raises :class:`StockShort` (nothing held; ``view`` lowered) when a ref ran out,
        and :class:`Busy` (nothing held) when SQL cannot be reached: value grants fail
        closed.
        """
        units = dict(outcome.reservations)
        epoch, member = await self._gate(ref, commit_id, units, view, totals)
        try:
            grant_ids, codes = await self._try_sql(ref, idempotency_key, commit_id, outcome,
                                                   units)
        except BaseException as exc:
            # Whatever went wrong (a short, SQL down or hanging, a cancelled request),
            # the Redis units go back: a leaked unit would shrink the gate for good.
            await asyncio.shield(self._end_hold(ref.merchant, ref.game, member, True))
            refusal = self._refusal(exc, view)
            if refusal is exc:
                raise
            raise refusal from exc
        # SQL counts the units now (its pending rows): the hold's record has done its job.
        # If this is lost, the reconciler finds the rows and drops the record.
        with contextlib.suppress(Exception):
            await self._end_hold(ref.merchant, ref.game, member, False)
        return Hold(ref, commit_id, epoch, units, grant_ids, codes)

    async def _end_hold(self, merchant: str, game: str, member: str, give_back: bool) -> int:
        return int(await self._unhold(
            keys=[self.keys.stock(merchant, game), self.keys.holds(merchant, game)],
            args=[member, "1" if give_back else "0"]))

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
                    view: StockView, totals: Mapping[str, int]) -> tuple[str, str]:
        """Reserve ``units`` in the gate with a hold record; (epoch, hold member)."""
        keys = [self.keys.stock(ref.merchant, ref.game), self.keys.holds(ref.merchant, ref.game)]
        deadline = int(self.clock.now() * 1000) + self.hold_ttl_ms
        args = [commit_id, deadline, *[v for r, n in sorted(units.items()) for v in (r, n)]]
        res = await self._reserve(keys=keys, args=args)
        if res[0] == b"not_ready" and set(units) <= set(totals):
            await self.ensure_stock(ref.merchant, ref.game, totals)  # first use, or rebuilt
            res = await self._reserve(keys=keys, args=args)
        if res[0] == b"ok":
            return res[1].decode(), res[2].decode()
        if res[0] == b"short":
            short_ref, left = res[1].decode(), int(res[2])
            view.left[short_ref] = left
            raise StockShort(short_ref, left)
        raise Busy("prize stock is being rebuilt; retry shortly", retry_after=1)

    async def _try_sql(self, ref: PlayerRef, idempotency_key: str, commit_id: str,
                       outcome: Outcome, units: Mapping[str, int]) -> tuple[list[int], list[str]]:
        s = m.prize_stock
        now_ms = int(self.clock.now() * 1000)
        rows = [self._grant_row(ref, idempotency_key, commit_id, unit_ref, detail, pos, now_ms)
                for pos, (unit_ref, detail) in enumerate(value_grants(outcome))]
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

    def _grant_row(self, ref: PlayerRef, idempotency_key: str, commit_id: str, unit_ref: str,
                   detail: Mapping[str, Any], position: int, now_ms: int) -> dict[str, Any]:
        value = dict(detail.get("value") or {})
        reason = (f"draw:{detail['series']}" if "series" in detail
                  else str(detail.get("reason", unit_ref)))
        return {
            "merchant_id": ref.merchant, "game_id": ref.game, "user_id": ref.user,
            "ref": unit_ref, "kind": str(value.get("type", unit_ref.split(":", 1)[0])),
            "idem_key": idempotency_key, "position": position, "commit_id": commit_id,
            "status": "pending", "code": "C" + secrets.token_urlsafe(CODE_BYTES),
            "detail": dict(detail), "reason": reason[:120], "shadow": self.shadow,
            "created_ms": now_ms,
        }

    async def confirm(self, hold: Hold) -> None:
        """Mark the hold's grants confirmed (after the player commit succeeded)."""
        await self._settle([hold.commit_id], "confirmed")

    async def cancel(self, hold: Hold) -> None:
        """Void the hold's grants and give its units back (the player commit did not happen)."""
        await self._settle([hold.commit_id], "void")
        await self._release(hold.ref, hold.epoch, hold.units)

    async def _release(self, ref: PlayerRef, epoch: str, units: Mapping[str, int]) -> None:
        args = [epoch, *[v for r, n in sorted(units.items()) for v in (r, n)]]
        await self._adjust(keys=[self.keys.stock(ref.merchant, ref.game)], args=args)

    async def _settle(self, commit_ids: Iterable[str], status: str,
                      db: Database | None = None) -> dict[tuple[str, str, str], int]:
        """Move pending grants of ``commit_ids`` to ``status``; keep ``prize_stock`` in step.

        Returns units per (merchant, game, ref) that were voided (to release in Redis).
        ``db``: the database bound to use (default: the request one).
        """
        g, s = m.grants, m.prize_stock
        now_ms = int(self.clock.now() * 1000)
        released: dict[tuple[str, str, str], int] = {}
        async with (db or self.db).begin() as conn:
            rows = (await conn.execute(
                select(g.c.id, g.c.merchant_id, g.c.game_id, g.c.ref)
                .where(g.c.commit_id.in_(list(commit_ids)), g.c.status == "pending")
                .order_by(g.c.id))).all()
            if not rows:
                return released
            await conn.execute(update(g).where(g.c.id.in_([r[0] for r in rows]),
                                               g.c.status == "pending")
                               .values(status=status, settled_ms=now_ms))
            counts: dict[tuple[str, str, str], int] = {}
            for _, merchant, game, ref in rows:
                counts[(merchant, game, ref)] = counts.get((merchant, game, ref), 0) + 1
            for (merchant, game, ref), n in sorted(counts.items()):
                where = and_(s.c.merchant_id == merchant, s.c.game_id == game, s.c.ref == ref)
                change = ({"granted": s.c.granted + n} if status == "confirmed"
                          else {"taken": s.c.taken - n})
                await conn.execute(update(s).where(where).values(**change))
            if status == "void":
                released = counts
        return released

    # -- reconciliation ------------------------------------------------------------------

    async def reconcile_holds(self, limit: int = 1000) -> tuple[int, int]:
        """End the gate holds past their deadline (attempts that died between the gate
        and SQL, e.g. a server killed while SQL hung): units SQL never took go back to
        the gate, holds SQL has rows for are dropped. Returns (given back, dropped)."""
        s = m.prize_stock
        async with self.db.connect() as conn:
            games = (await conn.execute(select(s.c.merchant_id, s.c.game_id).distinct())).all()
        now_ms = int(self.clock.now() * 1000)
        given = dropped = 0
        for merchant, game in games:
            replies: Any = await self.redis.zrangebyscore(
                self.keys.holds(merchant, game), "-inf", now_ms, start=0, num=limit)
            expired = [reply_text(v) for v in replies]
            if not expired:
                continue
            in_sql = await self._commits_in_sql([h.split("|", 1)[0] for h in expired])
            for member in expired:
                take_back = member.split("|", 1)[0] not in in_sql
                if await self._end_hold(merchant, game, member, take_back):
                    given += 1
                else:
                    dropped += 1
        if given or dropped:
            log.warning("expired gate holds: %d given back, %d dropped (SQL had them)",
                        given, dropped)
        return given, dropped

    async def _commits_in_sql(self, commit_ids: list[str]) -> set[str]:
        """The commit ids that have grant rows in SQL, whatever their status."""
        g = m.grants
        async with self.db.connect() as conn:
            return {r[0] for r in await conn.execute(
                select(g.c.commit_id).where(g.c.commit_id.in_(commit_ids)).distinct())}

    async def reconcile(self, older_than_s: float = 60.0, limit: int = 1000) -> tuple[int, int]:
        """Settle pending grants left by crashes; returns (confirmed, voided) counts.

        Only grants older than the in-flight marker's lifetime are looked at, so an
        action still running is never decided for.
        """
        g = m.grants
        cutoff = int((self.clock.now() - older_than_s) * 1000)
        db = self.db.background  # a background job: the longer bound
        async with db.connect() as conn:
            rows = (await conn.execute(
                select(g.c.commit_id, g.c.merchant_id, g.c.game_id, g.c.user_id, g.c.idem_key)
                .where(g.c.status == "pending", g.c.created_ms < cutoff)
                .group_by(g.c.commit_id, g.c.merchant_id, g.c.game_id, g.c.user_id,
                          g.c.idem_key)
                .limit(limit))).all()
        committed: list[str] = []
        dead: list[str] = []
        for commit_id, merchant, game, user, idem in rows:
            ok = await self._was_committed(commit_id, merchant, game, user, idem)
            (committed if ok else dead).append(commit_id)
        if committed:
            await self._settle(committed, "confirmed", db)
        if dead:
            released = await self._settle(dead, "void", db)
            for (merchant, game, ref), n in released.items():
                await self._adjust(keys=[self.keys.stock(merchant, game)], args=["", ref, n])
        return len(committed), len(dead)

    async def _was_committed(self, commit_id: str, merchant: str, game: str, user: str,
                             idem: str) -> bool:
        async with self.db.background.connect() as conn:
            in_ledger = (await conn.execute(select(m.ledger.c.id).where(
                m.ledger.c.commit_id == commit_id).limit(1))).first()
        if in_ledger is not None:
            return True
        ref = PlayerRef(merchant, game, user, shard_of(merchant, user, self.shards))
        stored = await self.redis.hget(self.keys.idempotency(ref, idem), "x")
        return stored is not None and reply_text(stored) == commit_id
