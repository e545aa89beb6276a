"""The logical shard count a deployment's data was written with, kept in SQL.

A player's shard is ``crc32(merchant, user) % shards`` and every Redis key of a
shard carries its hash tag, so the count is part of every key: servers or
persisters running with another count than the data's would look for players,
dirty sets and ledger streams under the wrong tags (and leave unflushed work
behind). The first start records the count (``meta`` row ``shards``); a start with
another count set in ``PETBOX_SHARDS`` is refused with a message saying how to change
it (docs/deployment.md, "Changing the shard count"); with ``PETBOX_SHARDS`` unset, the
data's own count is used, so a new default never strands an existing deployment. A
deployment older than this record is recognised by its per-shard epoch rows
(``epoch:<shard>``, written by the persister since the first pass).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from gameserver.db.database import Database

log = logging.getLogger(__name__)

META_KEY = "shards"


class ShardCountMismatch(RuntimeError):
    """Configured ``PETBOX_SHARDS`` differs from the count the data was written with."""


async def recorded_shards(db: Database) -> int | None:
    """The recorded count, else the one the epoch rows show, else None (new data)."""
    recorded = await db.get_meta(META_KEY)
    if recorded is not None:
        return int(recorded)
    epochs = await db.shard_epochs()
    return max(epochs) + 1 if epochs else None


async def check_shard_count(db: Database, configured: int, explicit: bool = True) -> int:
    """The shard count to run with: ``configured`` on first use (then recorded); the
    data's count when ``PETBOX_SHARDS`` was not set (``explicit`` False: an existing
    deployment keeps its count when petbox's default changes); and
    :class:`ShardCountMismatch` when it was set to another count than the data's."""
    found = await recorded_shards(db)
    if found is None:
        try:
            await db.set_meta(META_KEY, str(configured))
            return configured
        except IntegrityError:  # another process recorded it at the same moment
            found = await recorded_shards(db)
            assert found is not None
    if found != configured and explicit:
        raise ShardCountMismatch(
            f"this deployment's data is split into {found} logical shards, but "
            f"PETBOX_SHARDS is {configured}: set PETBOX_SHARDS={found}, or change the "
            "count as docs/deployment.md says (drain, then re-shard)")
    if found != configured:
        log.info("running with this deployment's %d logical shards (PETBOX_SHARDS unset; "
                 "the default for new data is %d)", found, configured)
    if await db.get_meta(META_KEY) is None:
        await db.set_meta(META_KEY, str(found))
    return found
