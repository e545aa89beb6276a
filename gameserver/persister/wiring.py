"""A persister as petbox runs one: the boards' updater and the mechanics' flush hooks
after every flush, and the merchant's webhook outbox on the real keyspace only.

``petbox serve`` (its in-process persisters), ``petbox persister`` (the process of its
own) and the tests build theirs here, so all three flush with the same hooks.
"""

from __future__ import annotations

from redis.asyncio import Redis

from gameserver.clock import Clock
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.jobs.flushhooks import FlushContext, flush_hooks
from gameserver.jobs.leaderboards import LeaderboardUpdater
from gameserver.jobs.lease import ShardLeases
from gameserver.jobs.webhooks import Outbox
from gameserver.ops.metrics import Metrics
from gameserver.ops.settings import Settings
from gameserver.persister.passes import Persister
from gameserver.state.keys import Keys


def wired_persister(redis: Redis, keys: Keys, db: Database, games: GameRegistry,
                    clock: Clock, settings: Settings, metrics: Metrics, *, consumer: str,
                    shadow: bool, assignment: ShardLeases | None = None) -> Persister:
    """One keyspace's persister: SQL writes on ``db``'s background bound; ``shadow``
    (load-test data) gets no outbox, so it never reaches a merchant's backend."""
    persister = Persister(redis, keys, db.background, metrics, clock, shards=settings.shards,
                          batch=settings.persister_batch,
                          idle_evict_after=settings.idle_evict_after, consumer=consumer,
                          assignment=assignment)
    # Boards follow the flushed states: no action pays a Redis write for them.
    persister.on_flushed.append(LeaderboardUpdater(redis, keys, games, metrics))
    outbox = None if shadow else Outbox(db, clock)
    persister.on_flushed.extend(flush_hooks(FlushContext(redis, keys, db, games, clock,
                                                         settings, outbox, metrics)))
    return persister
