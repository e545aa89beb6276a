"""SQL side of aggregates: read-through of a state and of a gate's stored key, and the
write-behind transaction (ledger rows and states together)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.state.keys import AggregateRef


@dataclass(frozen=True)
class GateKey:
    """A gate commit SQL holds for one shopper's Idempotency-Key."""

    request_hash: str
    status: int
    body: bytes


def _where(table: Any, ref: AggregateRef) -> list[Any]:
    c = table.c
    return [c.merchant_id == ref.merchant, c.game_id == ref.game, c.kind == ref.kind,
            c.aggregate_id == ref.id]


class AggregateArchive:
    """What the aggregate store reads from SQL, and what the persister writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def fetch(self, ref: AggregateRef) -> tuple[int, bytes] | None:
        """The last flushed (version, state), or None if never flushed."""
        t = m.aggregates
        async with self.db.connect() as conn:
            row = (await conn.execute(
                select(t.c.version, t.c.state).where(*_where(t, ref)))).first()
        return (int(row[0]), bytes(row[1])) if row else None

    async def states_with_prefix(self, merchant: str, game: str, kind: str, prefix: str,
                                 id_length: int, limit: int) -> list[bytes]:
        """Flushed states of a game's aggregates of ``kind`` whose id starts with
        ``prefix`` and is ``id_length`` long (e.g. one campaign's assists), the most
        recently flushed first, at most ``limit``."""
        t = m.aggregates
        query = (select(t.c.state).where(
            t.c.merchant_id == merchant, t.c.game_id == game, t.c.kind == kind,
            t.c.aggregate_id.startswith(prefix, autoescape=True),
            func.length(t.c.aggregate_id) == id_length)
            .order_by(t.c.flushed_ms.desc()).limit(limit))
        async with self.db.connect() as conn:
            return [bytes(r[0]) for r in (await conn.execute(query)).all()]

    async def fetch_many(self, refs: list[AggregateRef]) -> dict[str, tuple[int, bytes]]:
        """:meth:`fetch` of several aggregates of one game and kind in one query
        (aggregate id → (version, state); absent ids were never flushed)."""
        if not refs:
            return {}
        t, first = m.aggregates, refs[0]
        async with self.db.connect() as conn:
            rows = (await conn.execute(
                select(t.c.aggregate_id, t.c.version, t.c.state).where(
                    t.c.merchant_id == first.merchant, t.c.game_id == first.game,
                    t.c.kind == first.kind,
                    t.c.aggregate_id.in_([r.id for r in refs])))).all()
        return {row[0]: (int(row[1]), bytes(row[2])) for row in rows}

    async def of_kind(self, kind: str) -> list[tuple[str, str, str, bytes]]:
        """Every flushed aggregate of ``kind``: (merchant, game, id, state). A full scan,
        for rebuilding a lost index after Redis lost its data, never on a request."""
        t = m.aggregates
        async with self.db.background.connect() as conn:
            rows = (await conn.execute(
                select(t.c.merchant_id, t.c.game_id, t.c.aggregate_id, t.c.state)
                .where(t.c.kind == kind))).all()
        return [(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    async def fetch_with_newest_key(self, ref: AggregateRef
                                    ) -> tuple[tuple[int, bytes] | None, int | None]:
        """:meth:`fetch`, and the unix ms of the newest commit SQL holds for ``ref``
        (None: none), on one connection: the read-through after Redis lost it."""
        t, lg = m.aggregates, m.aggregate_ledger
        async with self.db.connect() as conn:
            row = (await conn.execute(
                select(t.c.version, t.c.state).where(*_where(t, ref)))).first()
            newest = (await conn.execute(
                select(func.max(lg.c.ts_ms)).where(*_where(lg, ref)))).scalar()
        return (int(row[0]), bytes(row[1])) if row else None, newest

    async def gate_key(self, ref: AggregateRef, user: str, key: str) -> GateKey | None:
        """The gate commit of ``user``'s ``key`` at ``ref``, if SQL has it."""
        t = m.aggregate_ledger
        async with self.db.connect() as conn:
            row = (await conn.execute(
                select(t.c.request_hash, t.c.status, t.c.body)
                .where(*_where(t, ref), t.c.user_id == user, t.c.idem_key == key)
                .limit(1))).first()
        return GateKey(row[0], int(row[1]), bytes(row[2])) if row else None

    async def write(self, ledger_rows: list[dict[str, Any]],
                    state_rows: list[dict[str, Any]]) -> None:
        """Ledger rows (a redelivered one is skipped) and states (only over an older
        version) in one transaction: SQL never holds a state without the entries that
        led to it."""
        async with self.db.begin() as conn:
            if ledger_rows:
                await conn.execute(
                    self.db.dialect_insert(m.aggregate_ledger).on_conflict_do_nothing(
                        index_elements=["commit_id"]), ledger_rows)
            if state_rows:
                stmt = self.db.dialect_insert(m.aggregates)
                new = stmt.excluded
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=["merchant_id", "game_id", "kind", "aggregate_id"],
                    set_={"version": new.version, "state": new.state,
                          "flushed_ms": new.flushed_ms},
                    where=m.aggregates.c.version < new.version), state_rows)
