"""SQL writes of the persister: ledger rows (with the records and stored responses of
the same commits) and player states, in batched transactions.

Both writes are idempotent, so a batch that is written twice (the persister died
between the SQL commit and marking the work done in Redis) changes nothing the
second time:

- ledger rows are unique by ``(commit_id, seq)``, stored responses by commit, records
  by their table's unique key, and all are inserted with ``ON CONFLICT DO NOTHING``;
- player rows are upserted only when the stored version is older, so an old
  state can never overwrite a newer one.

Each call is one transaction. Rows are plain tuples (:class:`LedgerRow`,
:class:`PlayerRow`) in the column order of their statement, which is compiled once
per dialect and sent with the driver's own ``executemany`` (``exec_driver_sql``):
SQLAlchemy's per-row parameter processing is skipped, sqlite3 and asyncpg batch
the rows themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Insert, Table, UniqueConstraint, func, select

from gameserver.db import models as m
from gameserver.db.database import Database
from mechanics.outcome import Record

PLAYER_KEY = ("merchant_id", "game_id", "user_id")
LEDGER_KEY = ("commit_id", "seq")


class PlayerRow(NamedTuple):
    """One player's state as the persister writes it to ``players`` (column order)."""

    merchant_id: str
    game_id: str
    user_id: str
    version: int
    state: bytes
    created_at: int
    last_seen: int
    flushed_at: int
    first_played_at: int


class LedgerRow(NamedTuple):
    """One ledger entry as the persister writes it to ``ledger`` (column order)."""

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
    by_shopper: bool


class ResponseRow(NamedTuple):
    """The stored response of one action, as the persister writes it to ``responses``."""

    commit_id: str
    merchant_id: str
    game_id: str
    user_id: str
    idem_key: str
    status: int
    body: bytes
    ts_ms: int
    request_hash: str


@dataclass(frozen=True)
class CommitRows:
    """SQL rows that commits carry besides the ledger: their records, by table, the
    stored responses of their Idempotency-Keys, and the states they left (one row per
    player, its newest commit's: written over an older version only)."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    responses: list[ResponseRow] = field(default_factory=list)
    players: list[PlayerRow] = field(default_factory=list)

    def extend(self, other: CommitRows) -> None:
        for table, rows in other.records.items():
            self.records.setdefault(table, []).extend(rows)
        self.responses.extend(other.responses)
        self.players.extend(other.players)

    def sort(self) -> None:
        """Every table's rows in one order for every persister, so concurrent batches
        cannot deadlock: by commit time (``ts_ms``, where the table has it), then its
        unique key. Time first keeps a player's rows in the order they happened, so
        ids (which lists page by) follow commits within a pass too, not the order of
        random commit ids."""
        for table, rows in self.records.items():
            key = record_table(table).key
            rows.sort(key=lambda row: (row.get("ts_ms", 0), *(row[c] for c in key)))
        self.responses.sort()  # by commit id, the unique index's order
        self.players.sort()  # by (merchant_id, game_id, user_id), as a flush locks them

    def __bool__(self) -> bool:
        return bool(self.records or self.responses or self.players)


@dataclass(frozen=True)
class RecordTable:
    """How records reach one table: the columns the server fills, and the unique key
    that makes a redelivered commit add nothing."""

    table: Table
    filled: frozenset[str]
    key: tuple[str, ...]
    columns: frozenset[str]


FILLED = frozenset({"commit_id", "seq", "merchant_id", "game_id", "user_id"})
"""Columns the server fills in a record's row when its table has them."""


@cache
def record_table(name: str) -> RecordTable:
    """The table a record names (ValueError when there is none): its first unique
    constraint is its key, else its primary key."""
    table = m.metadata.tables.get(name)
    if table is None:
        raise ValueError(f"a record names an unknown table {name!r}")
    uniques = sorted(tuple(c.name for c in u.columns) for u in table.constraints
                     if isinstance(u, UniqueConstraint))
    key = uniques[0] if uniques else tuple(c.name for c in table.primary_key.columns)
    columns = frozenset(table.c.keys())
    return RecordTable(table, FILLED & columns, key, columns)


def record_rows(commit_id: str, merchant: str, game: str, user: str, ts_ms: int,
                records: Iterable[tuple[int, Record]]) -> CommitRows:
    """Rows for the records of one commit, each with its position ``seq`` in it; a
    record naming a column its table lacks is refused here (ValueError), where its entry
    is parked (gameserver/persister/parked.py), rather than in SQL, where it would hold
    up its shard."""
    out = CommitRows()
    for seq, record in records:
        target = record_table(record.table)
        common = {"commit_id": commit_id, "seq": seq, "merchant_id": merchant,
                  "game_id": game, "user_id": user}
        row = {c: common[c] for c in target.filled}
        row.update(record.fields)
        row[record.at] = ts_ms
        if not row.keys() <= target.columns:
            raise ValueError(f"{record.table} has no column {sorted(row.keys() - target.columns)}")
        out.records.setdefault(record.table, []).append(row)
    return out


def ledger_insert(db: Database) -> Insert:
    """Insert ledger rows, skipping any ``(commit_id, seq)`` already stored."""
    return db.dialect_insert(m.ledger).on_conflict_do_nothing(  # type: ignore[no-any-return]
        index_elements=list(LEDGER_KEY))


def response_insert(db: Database) -> Insert:
    """Insert stored responses, skipping a commit already stored (a redelivered entry)."""
    return db.dialect_insert(m.responses).on_conflict_do_nothing(  # type: ignore[no-any-return]
        index_elements=["commit_id"])


def player_upsert(db: Database) -> Insert:
    """Insert players, or update them only where the stored version is older."""
    stmt = db.dialect_insert(m.players)
    new = stmt.excluded
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(PLAYER_KEY),
        set_={"version": new.version, "state": new.state, "last_seen": new.last_seen,
              "first_played_at": new.first_played_at, "flushed_at": new.flushed_at},
        where=m.players.c.version < new.version)


_driver_sql: dict[tuple[str, str, str], str] = {}


def _compiled(db: Database, what: str, build: Callable[[Database], Insert],
              columns: Sequence[str]) -> str:
    """``build(db)`` as the driver's SQL text with positional parameters in ``columns``
    order, compiled once per dialect, driver and statement."""
    dialect = db.engine.dialect
    key = (what, dialect.name, dialect.driver)
    sql = _driver_sql.get(key)
    if sql is None:
        compiled = build(db).compile(dialect=dialect, column_keys=list(columns),
                                     for_executemany=True)
        if list(compiled.positiontup or ()) != list(columns):
            raise RuntimeError(f"unexpected parameter order for {what}: "
                               f"{compiled.positiontup}")
        sql = _driver_sql[key] = str(compiled)
    return sql


def ledger_sql(db: Database) -> str:
    """:func:`ledger_insert` as driver SQL taking :class:`LedgerRow` tuples."""
    return _compiled(db, "ledger", ledger_insert, LedgerRow._fields)


def response_sql(db: Database) -> str:
    """:func:`response_insert` as driver SQL taking :class:`ResponseRow` tuples."""
    return _compiled(db, "responses", response_insert, ResponseRow._fields)


def player_sql(db: Database) -> str:
    """:func:`player_upsert` as driver SQL taking :class:`PlayerRow` tuples."""
    return _compiled(db, "players", player_upsert, PlayerRow._fields)


async def insert_ledger(db: Database, rows: Sequence[LedgerRow],
                        events: CommitRows | None = None) -> None:
    """Write ledger rows (and the records, stored responses and states of the same
    commits) in one transaction; rows already stored are left alone, so a redelivery
    adds nothing, and a state only replaces an older version."""
    if not rows and not events:
        return
    async with db.begin() as conn:
        if rows:
            await conn.exec_driver_sql(ledger_sql(db), list(rows))
        if events and events.responses:
            await conn.exec_driver_sql(response_sql(db), list(events.responses))
        for name, records in sorted(events.records.items()) if events else ():
            target = record_table(name)
            await conn.execute(db.dialect_insert(target.table).on_conflict_do_nothing(
                index_elements=list(target.key)), records)
        if events and events.players:  # last: the players' locks, in a flush's order
            await conn.exec_driver_sql(player_sql(db), list(events.players))


async def upsert_players(db: Database, rows: Sequence[PlayerRow]) -> None:
    """Write player states in one transaction, never replacing a newer stored version."""
    if not rows:
        return
    async with db.begin() as conn:
        await conn.exec_driver_sql(player_sql(db), list(rows))


async def count_rows(db: Database, table: Any) -> int:
    """Rows in ``table`` (tests and operators' sanity checks)."""
    async with db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
