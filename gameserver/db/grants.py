"""Reading value grants from SQL for the background passes that end them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from gameserver.db import models as m
from gameserver.db.database import Database


async def confirmed_page(db: Database, kinds: Sequence[str], after: int,
                         limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` confirmed grants of these kinds with ids above ``after``, oldest
    first (a keyset page): id, merchant, game, user, ref, kind, code and detail."""
    g = m.grants
    async with db.connect() as conn:
        rows = (await conn.execute(
            select(g.c.id, g.c.merchant_id, g.c.game_id, g.c.user_id, g.c.ref,
                   g.c.kind, g.c.code, g.c.detail)
            .where(g.c.status == "confirmed", g.c.kind.in_(kinds), g.c.id > after)
            .order_by(g.c.id).limit(limit))).all()
    return [dict(r._mapping) for r in rows]
