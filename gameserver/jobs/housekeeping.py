"""Retention: draw records are kept for the game's ``boxes.draw_records_days`` (≥ 90),
stored responses of Idempotency-Keys for ``PETBOX_IDEMPOTENCY_TTL`` (their keys expire
from Redis then, so nothing can ask for them again), and merchant writes' keys
(``admin_requests``) for as long.

Runs in the server process that runs the background jobs, once per ``interval`` (an
hour by default); deletes in small batches so a large purge never holds a long
lock on a table.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select

from gameserver.clock import Clock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.jobs.periodic import PeriodicTask

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
    return await _delete_in_batches(db, d, d.c.merchant_id == merchant, d.c.game_id == game,
                                    d.c.ts_ms < cutoff_ms)


async def purge_old_responses(db: Database, cutoff_ms: int) -> int:
    """Delete stored responses written before ``cutoff_ms``; returns rows deleted. Ids
    grow with insertion, so the batches walk the primary key from the oldest rows: no
    index on time is kept for it (the table takes a row per action)."""
    r = m.responses
    return await _delete_in_batches(db, r, r.c.ts_ms < cutoff_ms)


async def _delete_in_batches(db: Database, table: Any, *where: Any) -> int:
    """Delete the rows of ``table`` matching ``where``, oldest id first and ``BATCH``
    rows a transaction (a large purge never holds a long lock); returns rows deleted."""
    deleted = 0
    while True:
        async with db.begin() as conn:
            ids = (await conn.execute(select(table.c.id).where(*where)
                                      .order_by(table.c.id).limit(BATCH))).scalars().all()
            if ids:
                await conn.execute(delete(table).where(table.c.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted


async def purge_old_admin_requests(db: Database, cutoff_ms: int) -> int:
    """Delete merchant writes' keys created before ``cutoff_ms`` (their key may then be
    used again); a key whose follow-up is still owed is kept until it is settled."""
    a = m.admin_requests
    return await _delete_in_batches(db, a, a.c.created_ms < cutoff_ms, a.c.followup.is_(None))


class Housekeeper(PeriodicTask):
    """Runs :func:`purge_old_draws` at start and every ``interval`` seconds until stopped."""

    name = "petbox-housekeeping"
    run_first = True

    def __init__(self, db: Database, games: GameRegistry, clock: Clock,
                 interval: float = 3600.0, response_ttl: float = 86400.0) -> None:
        super().__init__(interval)
        self.db, self.games, self.clock = db, games, clock
        self.response_ttl = response_ttl
        """Seconds stored responses are kept (the Idempotency-Keys' lifetime)."""

    async def run_once(self) -> int:
        now_ms = int(self.clock.now() * 1000)
        n = await purge_old_draws(self.db, self.games, now_ms)
        if n:
            log.info("deleted %d draw records past their retention", n)
        r = await purge_old_responses(self.db, now_ms - int(self.response_ttl * 1000))
        if r:
            log.info("deleted %d stored responses past the Idempotency-Key lifetime", r)
        a = await purge_old_admin_requests(self.db, now_ms - int(self.response_ttl * 1000))
        if a:
            log.info("deleted %d merchant Idempotency-Keys past their lifetime", a)
        return n + r + a
