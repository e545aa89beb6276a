"""The SQL half of ``erasePlayer`` (docs/privacy.md): one shopper's rows of one game,
deleted or re-keyed to a pseudonym, in one transaction.

What the shopper did for themselves goes: the play state (``players.state``), the
stored responses, the experiment exposures and active days. What the merchant must keep
(accounting, stock truth, fairness verification, analytics) stays with the user id
replaced by :func:`pseudonym`: the ledger, grants (coupons among them), draws and
revealed seeds, orders and refunds, the shared plays' ledger, and a players row with no
state (its times only, which analytics count). So the totals a merchant reads before
and after an erasure are the same; no row names the shopper.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Table, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.db import models as m
from gameserver.state.keys import PlayerRef

PSEUDONYM_PREFIX = "erased:"
"""No shopper id has a ``:`` (``keys.USER_RE``): a pseudonym is never a shopper's id, so
no session, order or grant can reach it."""


def pseudonym(secret: str, merchant: str, user: str) -> str:
    """The stable stand-in for ``user`` of ``merchant``: HMAC-SHA256 under ``secret`` (the
    servers' token secret), so one shopper always gets the same one (their rows still
    add up across games and erasures) and it cannot be turned back into the id without
    the secret."""
    mac = hmac.new(secret.encode(), f"petbox-erasure\n{merchant}\n{user}".encode(),
                   hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + mac[:32]


RE_KEYED = (m.ledger, m.grants, m.draws, m.revealed_seeds, m.order_events, m.order_refunds,
            m.aggregate_ledger)
"""Tables whose rows of the shopper stay, under the pseudonym."""
DELETED = (m.responses, m.experiment_exposures, m.experiment_days)
"""Tables whose rows of the shopper go."""


@dataclass
class Erased:
    """What one erasure did in SQL, table by table (rows), and the Redis keys it found."""

    deleted: dict[str, int] = field(default_factory=dict)
    pseudonymised: dict[str, int] = field(default_factory=dict)
    player_keys: list[str] = field(default_factory=list)
    """Idempotency-Keys of the shopper's commits SQL knew (their Redis records go too)."""
    shared_keys: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, aggregate, key) of their recent shared plays (the gates' records go too)."""


async def pending_grants(conn: AsyncConnection, ref: PlayerRef) -> int:
    """The shopper's value grants not settled yet (held stock: the reconciler decides)."""
    g = m.grants
    return int((await conn.execute(select(func.count()).select_from(g).where(
        g.c.merchant_id == ref.merchant, g.c.game_id == ref.game, g.c.user_id == ref.user,
        g.c.status == "pending"))).scalar_one())


async def touched_aggregates(conn: AsyncConnection, ref: PlayerRef,
                             alias: str) -> list[tuple[str, str]]:
    """(kind, aggregate id) of every aggregate of the game the shopper's shared plays
    committed on, under their id or (an erasure interrupted after its SQL step, or an
    earlier one) the pseudonym: the aggregates whose state may name them."""
    a = m.aggregate_ledger
    rows = await conn.execute(select(a.c.kind, a.c.aggregate_id).where(
        a.c.merchant_id == ref.merchant, a.c.game_id == ref.game,
        a.c.user_id.in_([ref.user, alias])).distinct().order_by(a.c.kind, a.c.aggregate_id))
    return [(str(row[0]), str(row[1])) for row in rows]


def _mine(table: Table, ref: PlayerRef) -> ColumnElement[bool]:
    """The rows of ``table`` that are the shopper's in this game."""
    return and_(table.c.merchant_id == ref.merchant, table.c.game_id == ref.game,
                table.c.user_id == ref.user)


async def erase_rows(conn: AsyncConnection, ref: PlayerRef, alias: str,
                     shared_since_ms: int) -> Erased:
    """Delete and re-key the shopper's rows in ``conn``'s transaction (idempotent: a second
    run finds nothing). ``shared_since_ms``: the shared plays younger than this give the
    gate keys whose Redis records the caller deletes."""
    out = Erased()
    r, a = m.responses, m.aggregate_ledger
    out.player_keys = list((await conn.execute(
        select(r.c.idem_key).where(_mine(r, ref)))).scalars())
    out.shared_keys = [(row[0], row[1], row[2]) for row in await conn.execute(
        select(a.c.kind, a.c.aggregate_id, a.c.idem_key)
        .where(_mine(a, ref), a.c.ts_ms >= shared_since_ms))]
    await _player_row(conn, ref, alias, out)
    for table in DELETED:
        done = await conn.execute(delete(table).where(_mine(table, ref)))
        out.deleted[table.name] = int(done.rowcount)
    for table in RE_KEYED:
        values: dict[str, object] = {"user_id": alias}
        if table is a:  # the gate's reply and entry may name the shopper: not kept
            values.update(body=b"", entry=b"")
        if table is m.grants:
            # A grant is unique by (user, key, position) while live, and a shopper who
            # came back and was erased again may have used their keys again (the
            # erasure deleted the records that refused a reuse): under the pseudonym a
            # grant is its commit's (one per key, random), so the lives never collide.
            # Nothing looks a settled grant up by key (the value tier asks for pending
            # ones, which an erasure waits for).
            values["idem_key"] = table.c.commit_id
        done = await conn.execute(update(table).where(_mine(table, ref)).values(values))
        out.pseudonymised[table.name] = int(done.rowcount)
    return out


async def _player_row(conn: AsyncConnection, ref: PlayerRef, alias: str, out: Erased) -> None:
    """The players row loses its state and takes the pseudonym; its times stay (analytics'
    first activity). A shopper erased before (the same pseudonym) keeps one row with the
    earliest times of both."""
    p = m.players
    cols = (p.c.created_at, p.c.last_seen, p.c.first_played_at)
    row = (await conn.execute(select(*cols).where(_mine(p, ref)))).first()
    out.deleted["players.state"] = 0 if row is None else 1
    if row is None:
        return
    alias_ref = PlayerRef(ref.merchant, ref.game, alias, ref.shard)
    old = (await conn.execute(select(*cols).where(_mine(p, alias_ref)))).first()
    if old is None:
        await conn.execute(update(p).where(_mine(p, ref)).values(user_id=alias, state=b""))
        return
    await conn.execute(delete(p).where(_mine(p, ref)))
    await conn.execute(update(p).where(_mine(p, alias_ref)).values(
        created_at=min(row[0], old[0]), last_seen=max(row[1], old[1]),
        first_played_at=_first_played(row[2], old[2])))


def _first_played(a: int | None, b: int | None) -> int | None:
    """The earlier first activity of two rows (0: never played; None: unknown)."""
    known = [x for x in (a, b) if x]
    if known:
        return min(known)
    return None if a is None and b is None else 0
