"""SQL writes of the persister: ledger rows and player states, in batched transactions.

Both writes are idempotent, so a batch that is written twice (the persister died
between the SQL commit and marking the work done in Redis) changes nothing the
second time:

- ledger rows are unique by ``(commit_id, seq)`` and inserted with
  ``ON CONFLICT DO NOTHING``;
- player rows are upserted only when the stored version is older, so an old
  state can never overwrite a newer one.

Each call is one transaction; the rows go out as an executemany of one prepared
statement (asyncpg and sqlite3 both batch it), which keeps a 2,000-row batch to
a single transaction and a handful of round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite

from gameserver.db import models as m
from gameserver.db.database import Database

PLAYER_KEY = ("merchant_id", "game_id", "user_id")
LEDGER_KEY = ("commit_id", "seq")


@dataclass(frozen=True)
class PlayerRow:
    """One player's state as the persister writes it to ``players``."""

    merchant_id: str
    game_id: str
    user_id: str
    version: int
    state: bytes
    created_at: int
    last_seen: int
    flushed_at: int


@dataclass(frozen=True)
class LedgerRow:
    """One ledger entry as the persister writes it to ``ledger``."""

    commit_id: str
    seq: int
    merchant_id: str
    game_id: str
    user_id: str
    player_version: int
    kind: str
    name: str
    delta: int
    before: int
    after: int
    reason: str
    ts_ms: int


def _dialect_insert(db: Database, table: Any) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (SQLite or PostgreSQL)."""
    if db.dialect == "postgresql":
        return postgresql.insert(table)
    if db.dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the persister does not support the {db.dialect} dialect")


def ledger_insert(db: Database) -> Insert:
    """Insert ledger rows, skipping any ``(commit_id, seq)`` already stored."""
    return _dialect_insert(db, m.ledger).on_conflict_do_nothing(  # type: ignore[no-any-return]
        index_elements=list(LEDGER_KEY))


def player_upsert(db: Database) -> Insert:
    """Insert players, or update them only where the stored version is older."""
    stmt = _dialect_insert(db, m.players)
    new = stmt.excluded
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(PLAYER_KEY),
        set_={"version": new.version, "state": new.state, "last_seen": new.last_seen,
              "flushed_at": new.flushed_at},
        where=m.players.c.version < new.version)


async def insert_ledger(db: Database, rows: Sequence[LedgerRow]) -> None:
    """Write ledger rows in one transaction; rows already stored are left alone."""
    if not rows:
        return
    async with db.engine.begin() as conn:
        await conn.execute(ledger_insert(db), [r.__dict__ for r in rows])


async def upsert_players(db: Database, rows: Sequence[PlayerRow]) -> None:
    """Write player states in one transaction, never replacing a newer stored version."""
    if not rows:
        return
    async with db.engine.begin() as conn:
        await conn.execute(player_upsert(db), [r.__dict__ for r in rows])


async def count_rows(db: Database, table: Any) -> int:
    """Rows in ``table`` (tests and operators' sanity checks)."""
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
