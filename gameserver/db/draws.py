"""Reading a player's blind-box draws from SQL (``listDraws``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.state.keys import PlayerRef


async def draw_page(db: Database, ref: PlayerRef, before: int | None,
                    limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` of the player's draws with ids below ``before``, newest first,
    each with its server seed once that seed was revealed (rotated), else None."""
    d, s = m.draws, m.revealed_seeds
    join = d.outerjoin(s, and_(s.c.merchant_id == d.c.merchant_id, s.c.game_id == d.c.game_id,
                               s.c.user_id == d.c.user_id, s.c.seed_hash == d.c.seed_hash))
    q = (select(d.c.id, d.c.record, d.c.ts_ms, s.c.seed).select_from(join)
         .where(d.c.merchant_id == ref.merchant, d.c.game_id == ref.game,
                d.c.user_id == ref.user)
         .order_by(d.c.id.desc()).limit(limit))
    if before is not None:
        q = q.where(d.c.id < before)
    async with db.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [{"id": r[0], **r[1], "server_seed": r[3]} for r in rows]
