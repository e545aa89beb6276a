"""Aggregates in the app: one aggregate store and two-commit runner per keyspace
(real, and shadow when configured), and the owed reconciler, every ``owed_after``
seconds (safe on many hosts). Write-behind is a stage of each keyspace's persister
(``gameserver/persister/aggregates.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from gameserver.appkeys import (
    BATCHER,
    CLOCK,
    GAMES,
    METRICS,
    REDIS,
    SERVICES,
    SETTINGS,
    SHADOW,
)
from gameserver.db.aggregates import AggregateArchive
from gameserver.jobs.webhooks import OUTBOX
from gameserver.services import Services
from gameserver.state.aggregates import AggregateStore
from gameserver.state.aggregates_gate import OwedReconciler, SharedActions

log = logging.getLogger("petbox.aggregates")


@dataclass(frozen=True)
class Aggregates:
    """The aggregate services of one keyspace."""

    store: AggregateStore
    actions: SharedActions


AGGREGATES = web.AppKey("aggregates", dict[str, Aggregates])
"""Keyspace prefix (``pb``, ``pbs``) → its aggregate services."""


def aggregates_of(app: web.Application, services: Services) -> Aggregates:
    return app[AGGREGATES][services.keys.prefix]


def _build(app: web.Application, services: Services) -> Aggregates:
    settings = app[SETTINGS]
    archive = AggregateArchive(services.db)
    store = AggregateStore(app[REDIS], services.keys, archive, app[CLOCK],
                           idempotency_ttl=settings.idempotency_ttl,
                           batcher=app[BATCHER] if settings.redis_pipelining else None,
                           shards=settings.shards)
    outbox = None if services.shadow else app.get(OUTBOX)  # load tests notify nobody
    return Aggregates(store, SharedActions(services, store, outbox))


async def aggregates_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` after the services: build, start the owed reconciler."""
    settings = app[SETTINGS]
    keyspaces = [app[SERVICES]] + ([app[SHADOW]] if SHADOW in app else [])
    built = {s.keys.prefix: _build(app, s) for s in keyspaces}
    app[AGGREGATES] = built
    owed = (OwedReconciler([a.actions for a in built.values()], app[GAMES], app[CLOCK],
                           settings.shards, min(settings.owed_after, settings.reconcile_interval),
                           older_than_s=settings.owed_after, metrics=app[METRICS]).start()
            if settings.run_background else None)
    try:
        yield
    finally:
        if owed is not None:
            await owed.stop()
