"""A persister process whose ledger drain pauses right after the SQL commit, before
XACK, and says so in a marker file: the parent SIGKILLs it inside that window.

Run as ``python -m tests.reliability.persister_child <marker-dir>`` with the
server's ``PETBOX_*`` environment; the consumer name is the standalone
persister's, so the next persister re-reads the unacknowledged entries at once.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from gameserver.clock import SystemClock
from gameserver.db.database import Database
from gameserver.ops.metrics import Metrics
from gameserver.ops.settings import load_settings
from gameserver.persister import Persister
from gameserver.state.keys import Keys


class PausesBeforeAck(Persister):
    marker_dir: Path

    async def _write_ledger(self, rows: Any, events: Any = None) -> None:
        await super()._write_ledger(rows, events)
        commits = sorted({r.commit_id for r in rows})
        (self.marker_dir / "committed").write_text("\n".join(commits))
        await asyncio.sleep(60)  # the parent kills us here


async def main(marker_dir: Path) -> None:
    settings = load_settings()
    assert settings.redis_url is not None
    redis = aioredis.from_url(settings.redis_url)
    db = Database(settings.effective_database_url)
    persister = PausesBeforeAck(redis, Keys(), db, Metrics(), SystemClock(),
                                shards=settings.shards,
                                consumer=f"{socket.gethostname()}-persister")
    persister.marker_dir = marker_dir
    await persister.run(0.05, asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
