"""Retention: draw records are kept for the game's ``boxes.draw_records_days`` (≥ 90).

Runs in the server process that runs the persister, once per ``interval`` (an
hour by default); deletes in small batches so a large purge never holds a long
lock on the draws table.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.periodic import PeriodicTask

log = logging.getLogger("petbox.housekeeping")

BATCH = 5000
DAY_MS = 86_400_000


async def purge_old_draws(db: Database, games: GameRegistry, now_ms: int) -> int:
    """Delete draws older than each live game's retention; returns rows deleted."""
    await games.refresh()
    deleted = 0
    for (merchant, game), version in sorted((await db.live_versions()).items()):
        live = await games.version(merchant, game, version)
        cutoff = now_ms - live.config.boxes.draw_records_days * DAY_MS
        deleted += await _purge_game(db, merchant, game, cutoff)
    return deleted


async def _purge_game(db: Database, merchant: str, game: str, cutoff_ms: int) -> int:
    d = m.draws
    deleted = 0
    while True:
        ids = select(d.c.id).where(d.c.merchant_id == merchant, d.c.game_id == game,
                                   d.c.ts_ms < cutoff_ms).limit(BATCH)
        async with db.engine.begin() as conn:
            rows = (await conn.execute(ids)).scalars().all()
            if rows:
                await conn.execute(delete(d).where(d.c.id.in_(rows)))
        deleted += len(rows)
        if len(rows) < BATCH:
            return deleted


class Housekeeper(PeriodicTask):
    """Runs :func:`purge_old_draws` at start and every ``interval`` seconds until stopped."""

    name = "petbox-housekeeping"
    run_first = True

    def __init__(self, db: Database, games: GameRegistry, clock: Clock,
                 interval: float = 3600.0) -> None:
        super().__init__(interval)
        self.db, self.games, self.clock = db, games, clock

    async def run_once(self) -> int:
        n = await purge_old_draws(self.db, self.games, int(self.clock.now() * 1000))
        if n:
            log.info("deleted %d draw records past their retention", n)
        return n
