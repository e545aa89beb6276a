"""Exporting a game's events as NDJSON, resumable from a cursor, in constant memory.

Seven sources, each in id order, one after the other: **ledger** rows (every
balance change with its reason), **draw** records (what is needed to verify
each draw), confirmed value **grants** (coupons and goods with their codes;
shadow and voided grants are left out), **play** rows (every commit on state that
shoppers share: a vote on a poll bucket, a join of a group, a grab from a pool, with
the shopper, the aggregate and the play's response), **order** rows (an order paid,
or refunded whole, with its amount), **refund** rows (a partial refund and what it
returned) and coupon **redemptions** (``redeemCoupon``: the grant, its code, when
and under which reference). A position is the last id delivered from each source
(a redemption's id is its grant's ``redeemed_id``, numbered when it was redeemed);
the cursor that carries it is opaque and bound to its game
(:mod:`gameserver.db.export_cursor`).

Ledger lines come in id order, which is the order the persister wrote them, not the
order they happened in: a shopper's balances chain in ``(player_version, seq)``
order (each line's ``before`` is the ``after`` of the shopper's previous line of that
``kind`` and ``name``). Sorting would cost the keyset that makes the export
resumable, so the order is documented instead (docs/api.md).

**No gaps, no duplicates.** Rows are read in pages by keyset (``id > last``),
never by offset. The catch is that on PostgreSQL ids are drawn from a sequence
when a row is inserted, so a row with a smaller id can commit *after* a row with
a larger one; a reader that had already moved past it would skip it forever.
Before streaming, :func:`high_water` therefore takes ``LOCK TABLE ... IN SHARE
MODE`` for the ``max(id)`` queries: the lock waits for every transaction that
is writing those tables to finish (and holds new writes off for those
milliseconds), so every id up to the high-water mark is final: committed or
never to appear (a redemption's number is drawn in the UPDATE of its grant row,
so the lock on ``grants`` covers it too). The export stops there. On SQLite writers
are serialized by the database lock and ids commit in order, so ``max(id)`` is the
mark. Grants change after insertion (pending → confirmed or void), so their mark also
stops below the oldest grant still pending: only settled grants are exported, and a
grant left pending by a crash holds the grant stream back until reconciliation
settles it.

A cursor ahead of a mark (a database restored from an older backup, a v1 cursor
made up) is refused (422) rather than silently skipping what comes.

Each line carries the cursor that resumes right after it; the last line is
``{"type": "end", "cursor", "count", "more"}``; ``more`` is true when the
export stopped at its limit before the high-water mark (there may be more).
A stream cut short has no end line: resume from the last complete line's cursor.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.db.export_cursor import CursorCodec, Position, refused
from gameserver.http.errors import Busy

PAGE = 1000
ID_WINDOW = 20_000
MAX_LIMIT = 10_000_000
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Source:
    """One exported table: its line type, columns (as named in lines; the first is the
    id it is paged by) and extra filter."""

    kind: str
    table: Any
    columns: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = (("user_id", "user"),)
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """What a line shows of a row's values, when not the columns as they are."""
    steer: bool = True
    """Page through the id's own index: the (merchant, game, user, id) index cannot seek
    on id and would read every row of the game for each page (grants have a (merchant,
    game, id) index, the right one for their query)."""

    @property
    def key(self) -> Any:
        return self.table.c[self.columns[0]]

    def where(self) -> tuple[Any, ...]:
        t = self.table
        if self.kind == "grant":
            # sold: a confirmed grant that was held for a while and then paid for
            return (t.c.status.in_(("confirmed", "sold")), t.c.shadow.is_(False))
        if self.kind == "redemption":
            return (t.c.shadow.is_(False),)
        return ()


def _play_response(values: dict[str, Any]) -> dict[str, Any]:
    """A play row's gate body (``{"response", "owed"}``) as its ``response`` alone: what
    the shopper's action did on the shared state (what is owed them is in their ledger)."""
    body = values.pop("body")
    values["response"] = json.loads(body).get("response") if body else None
    return values


SOURCES = (
    Source("ledger", m.ledger, ("id", "user_id", "kind", "name", "delta", "before", "after",
                                "reason", "ts_ms", "commit_id", "seq", "player_version",
                                "by_shopper")),
    Source("draw", m.draws, ("id", "user_id", "series_id", "item", "rarity", "nonce",
                             "seed_hash", "ts_ms", "commit_id", "seq", "record"),
           (("user_id", "user"), ("series_id", "series"))),
    Source("grant", m.grants, ("id", "user_id", "ref", "kind", "code", "status", "reason",
                               "detail", "created_ms", "settled_ms", "commit_id"),
           steer=False),
    Source("play", m.aggregate_ledger, ("id", "user_id", "kind", "aggregate_id", "version",
                                        "status", "ts_ms", "commit_id", "body"),
           (("user_id", "user"), ("aggregate_id", "aggregate")), _play_response),
    Source("order", m.order_events, ("id", "user_id", "order_id", "kind", "amount_fen",
                                     "ts_ms", "commit_id", "seq"),
           (("user_id", "user"), ("order_id", "order"))),
    Source("refund", m.order_refunds, ("id", "user_id", "order_id", "refund_id",
                                       "amount_fen", "ts_ms", "commit_id", "seq"),
           (("user_id", "user"), ("order_id", "order"), ("refund_id", "refund"))),
    Source("redemption", m.grants, ("redeemed_id", "id", "user_id", "code", "ref",
                                    "redeemed_ms", "redeemed_ref"),
           (("id", "grant"), ("redeemed_id", "id"), ("user_id", "user"),
            ("redeemed_ref", "reference"))),
)
GRANTS = 2
"""Index of the grants in :data:`SOURCES` (their mark also stops below a pending one)."""
LOCKED = tuple(dict.fromkeys(s.table.name for s in SOURCES))
"""The tables :func:`high_water` locks on PostgreSQL, each once."""


def codec(secret: str, merchant: str, game: str) -> CursorCodec:
    """The cursors of ``merchant``'s ``game`` under the server's ``secret``."""
    return CursorCodec(secret, merchant, game, len(SOURCES))


@dataclass(frozen=True)
class Plan:
    """One export: each source's rows of ``merchant``/``game`` with ``after < id <= upto``."""

    merchant: str
    game: str
    after: Position
    upto: Position
    limit: int | None
    cursors: CursorCodec


async def high_water(db: Database) -> Position:
    """Per source, the largest id below which no row can still appear or change (module doc)."""
    async with db.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            try:
                await conn.execute(text(f"LOCK TABLE {', '.join(LOCKED)} IN SHARE MODE"))
            except DBAPIError as exc:  # lock_timeout: a long write holds a table
                raise Busy("the event tables are busy; retry the export shortly") from exc
        marks = [int((await conn.execute(select(func.max(s.key)))).scalar() or 0)
                 for s in SOURCES]
        g = m.grants
        pending = (await conn.execute(
            select(func.min(g.c.id)).where(g.c.status == "pending"))).scalar()
    if pending is not None:
        marks[GRANTS] = min(marks[GRANTS], int(pending) - 1)
    return tuple(marks)


async def plan(db: Database, cursors: CursorCodec, cursor: str | None,
               limit: int | None) -> Plan:
    """The export after ``cursor`` (422 for one this game's export never reached)."""
    after = cursors.decode(cursor)
    marks = await high_water(db)
    if any(a > h for a, h in zip(after, marks, strict=True)):
        raise refused("the cursor is past the end of this game's export (not one this "
                      "deployment issued, or its database was restored from an older "
                      "backup)")
    return Plan(cursors.merchant, cursors.game, after, marks, limit, cursors)


async def _page(db: Database, p: Plan, i: int, after: int, size: int) -> tuple[list[Any], int]:
    """Up to ``size`` rows of source ``i`` after ``after``, and the position after them.

    Each query looks at one window of at most :data:`ID_WINDOW` ids, so its cost
    is bounded whatever plan the database picks; when the window holds fewer than
    ``size`` rows the position jumps to its end (other games' rows are skipped).
    """
    source = SOURCES[i]
    t, key = source.table, source.key
    hi = min(p.upto[i], after + ID_WINDOW)
    merchant_col = t.c.merchant_id
    if source.steer:
        # With an expression on merchant_id both planners walk the id's own index
        # (the primary key, or the index on the id) through the window.
        merchant_col = merchant_col.concat("")
    async with db.connect() as conn:
        rows = list(await conn.execute(
            select(*(t.c[c] for c in source.columns))
            .where(merchant_col == p.merchant, t.c.game_id == p.game,
                   key > after, key <= hi, *source.where())
            .order_by(key).limit(size)))
    return rows, (int(rows[-1][0]) if len(rows) == size else hi)


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def event_line(source: Source, row: Any, cursor: str) -> bytes:
    """One exported row with the cursor that resumes after it."""
    values = dict(zip(source.columns, row, strict=True))
    renamed = {new: values.pop(old) for old, new in source.renames}
    values.update(renamed)
    if source.shape is not None:
        values = source.shape(values)
    return _line({"type": source.kind, "cursor": cursor, **values})


def _advance(position: Position, i: int, row_id: int) -> Position:
    return (*position[:i], row_id, *position[i + 1:])


async def chunks(db: Database, p: Plan) -> AsyncIterator[bytes]:
    """The NDJSON stream of ``p``, one chunk per page of at most :data:`PAGE` rows."""
    position, count = p.after, 0
    for i, source in enumerate(SOURCES):
        while position[i] < p.upto[i] and (p.limit is None or count < p.limit):
            size = PAGE if p.limit is None else min(PAGE, p.limit - count)
            rows, end = await _page(db, p, i, position[i], size)
            lines = []
            for row in rows:
                position = _advance(position, i, int(row[0]))
                lines.append(event_line(source, row, p.cursors.encode(position)))
            position = _advance(position, i, end)
            if lines:
                yield b"".join(lines)
                count += len(lines)
    more = position != p.upto
    yield _line({"type": "end", "cursor": p.cursors.encode(position), "count": count,
                 "more": more})
