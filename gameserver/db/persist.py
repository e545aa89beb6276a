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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class EventRows:
    """SQL rows that commit events carry besides the ledger: draws and revealed seeds."""

    draws: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: EventRows) -> None:
        self.draws.extend(other.draws)
        self.seeds.extend(other.seeds)


def event_rows(commit_id: str, merchant: str, game: str, user: str, ts_ms: int,
               events: Sequence[dict[str, Any]]) -> EventRows:
    """Rows for the events of one commit (``box_draw`` → draws, seed reveals → seeds)."""
    out = EventRows()
    for seq, event in enumerate(events):
        if event.get("type") == "box_draw":
            out.draws.append({
                "commit_id": commit_id, "seq": seq, "merchant_id": merchant, "game_id": game,
                "user_id": user, "series_id": str(event["series"]), "item": str(event["item"]),
                "rarity": str(event["rarity"]), "nonce": int(event["nonce"]),
                "seed_hash": str(event["seed_hash"]),
                "record": {k: v for k, v in event.items() if k != "type"}, "ts_ms": ts_ms})
        elif event.get("type") == "box_seed_revealed":
            out.seeds.append({
                "merchant_id": merchant, "game_id": game, "user_id": user,
                "seed_hash": str(event["seed_hash"]), "seed": str(event["server_seed"]),
                "revealed_ms": ts_ms})
    return out


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


async def insert_ledger(db: Database, rows: Sequence[LedgerRow],
                        events: EventRows | None = None) -> None:
    """Write ledger rows (and the draws and seeds of the same commits) in one
    transaction; rows already stored are left alone, so a redelivery adds nothing."""
    events = events or EventRows()
    if not rows and not events.draws and not events.seeds:
        return
    async with db.engine.begin() as conn:
        if rows:
            await conn.execute(ledger_insert(db), [r.__dict__ for r in rows])
        if events.draws:
            await conn.execute(_dialect_insert(db, m.draws).on_conflict_do_nothing(
                index_elements=list(LEDGER_KEY)), events.draws)
        if events.seeds:
            await conn.execute(_dialect_insert(db, m.revealed_seeds).on_conflict_do_nothing(
                index_elements=["merchant_id", "game_id", "user_id", "seed_hash"]),
                events.seeds)


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
