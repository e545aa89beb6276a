"""The per-keyspace services an action runs on: real data, or load-test shadow data.

Shadow traffic (``X-Petbox-Shadow: 1`` with a load-test session) runs the very same
handlers and rules, on a :class:`Services` whose Redis keys live under ``pbs:`` and
whose SQL is a separate shadow database with the same schema. So shadow writes
cannot reach real players, real stock, analytics or exports, and purging them is
dropping one keyspace and emptying one database.
"""

from __future__ import annotations

from dataclasses import dataclass

from gameserver.db.database import Database
from gameserver.keys import Keys
from gameserver.store import Store
from gameserver.value import ValueTier

SHADOW_PREFIX = "pbs"


@dataclass(frozen=True)
class Services:
    """Keys, store, value tier and SQL of one keyspace."""

    keys: Keys
    store: Store
    value: ValueTier
    db: Database
    shadow: bool = False


def shadow_database_url(database_url: str | None, explicit: str | None,
                        default_sqlite: str) -> str | None:
    """Where shadow rows go: the explicit URL; beside a SQLite database; else nowhere.

    PostgreSQL deployments name a shadow database explicitly (a second database on
    the same server is the usual choice) — petbox never guesses one.
    """
    if explicit:
        return explicit
    if database_url is None:
        return default_sqlite
    if database_url.startswith("sqlite") and database_url.endswith(".db"):
        return database_url[:-3] + "-shadow.db"
    return None
