"""What a mechanic does after the persister flushed player states.

Some mechanics follow players' committed state without adding work to the action
path: the leaderboards rank flushed states, and a mechanic whose shared state sums
its members' progress (teams) pushes the flushed progress to its aggregates. A
mechanic's API module registers a maker with :func:`register_flush_hook`; every
persister (inside ``petbox serve``, or the process of its own that ``petbox persister``
and ``serve --workers N`` run) adds one callback per keyspace from a
:class:`FlushContext`. The callback gets the rows of every flush round, and an empty
list on a pass that flushed nothing (return at once then, unless work is kept for a
retry). A failing callback is logged and counted by the persister; the next flush of
the same players repairs what it missed. A hook that can tell a transient failure
(a Redis master down) from a bug keeps what failed and retries it on its next call,
as the teams' :class:`~gameserver.api.teams_sync.TeamSync` does.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from gameserver.clock import Clock
from gameserver.db.database import Database
from gameserver.db.persist import PlayerRow
from gameserver.games import GameRegistry
from gameserver.jobs.webhooks import Outbox
from gameserver.ops.metrics import Metrics
from gameserver.ops.settings import Settings
from gameserver.state.keys import Keys
from mechanics.registry import API_ROOMS


@dataclass(frozen=True)
class FlushContext:
    """What a flush hook may use: one keyspace's Redis keys and SQL, the live games,
    and (real keyspace only) the merchant's webhook outbox."""

    redis: Redis
    keys: Keys
    db: Database
    games: GameRegistry
    clock: Clock
    settings: Settings
    outbox: Outbox | None
    """None for the shadow keyspace: load-test data never reaches a merchant's backend."""
    metrics: Metrics | None = None
    """The persister's: a hook that keeps work for its next call reports it here."""


FlushedCallback = Callable[[list[PlayerRow]], Awaitable[None]]
"""As ``gameserver.persister.flush.FlushedCallback`` (not imported: the persister
package imports this module)."""
FlushHookMaker = Callable[[FlushContext], FlushedCallback]
_MAKERS: list[FlushHookMaker] = []


def register_flush_hook(make: FlushHookMaker) -> None:
    """Run ``make``'s callback after every flush of player states (once per maker)."""
    if make not in _MAKERS:
        _MAKERS.append(make)


def flush_hooks(ctx: FlushContext) -> list[FlushedCallback]:
    """The registered callbacks for one keyspace's persister. The mechanics' API modules
    register theirs when imported: a persister process of its own imports them here."""
    for room in API_ROOMS:
        importlib.import_module(f"gameserver.api.{room}")
    return [make(ctx) for make in _MAKERS]
