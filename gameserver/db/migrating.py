"""The bounds a schema migration runs under, apart from those of serving.

Serving bounds every SQL call tightly (``PETBOX_SQL_TIMEOUT``, and 10 s for background
jobs, which is also the driver's statement backstop). Migrations ran on that engine, so
building an index or rewriting a table of a large ledger took longer than 10 s and
`petbox migrate` failed half-way, and a second `petbox migrate` waiting its turn for
the migration lock gave up after 10 s. A migration has three bounds of its own instead:

- ``statement``: how long one migration statement may run (``PETBOX_MIGRATE_TIMEOUT``;
  None, the default: no bound).
- ``lock``: how long one statement may wait for a lock another transaction holds
  (``PETBOX_MIGRATE_LOCK_TIMEOUT``, PostgreSQL ``lock_timeout``). Short on purpose:
  a migration's ``ALTER TABLE`` queued behind a long transaction makes every request
  touching that table queue behind the migration; giving up is better than stalling
  the service.
- ``wait``: how long to wait for the migration lock that another `petbox migrate`
  holds while it works (``PETBOX_MIGRATE_WAIT``; SQLite: the wait for its write lock).

A bound that runs out raises :class:`MigrationBlocked` with one line saying what to do;
the migration's transaction is rolled back, so nothing is half-done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gameserver.db.connections import BACKGROUND_TIMEOUT, make_engine
from gameserver.ops.settings import Settings

MIGRATION_LOCK = 0x7065_7462_6F78
"""PostgreSQL advisory lock key ("petbox") that one migration holds at a time."""
BOUNDS = "petbox_migration_bounds"
"""Key of the :class:`MigrationBounds` in an Alembic config's ``attributes``."""
LOCK_NOT_AVAILABLE, QUERY_CANCELED = "55P03", "57014"
"""PostgreSQL SQLSTATEs: ``lock_timeout`` and ``statement_timeout`` ran out."""


@dataclass(frozen=True)
class MigrationBounds:
    """Bounds of one migration run, in seconds (see the module's docstring)."""

    statement: float | None = None
    lock: float = 1.0
    wait: float = 600.0

    @classmethod
    def of(cls, settings: Settings) -> MigrationBounds:
        """The bounds the ``PETBOX_MIGRATE_*`` settings give."""
        return cls(statement=settings.migrate_timeout, lock=settings.migrate_lock_timeout,
                   wait=settings.migrate_wait)


class MigrationBlocked(RuntimeError):
    """A migration gave up on one of its bounds and rolled back; the message says which
    and what to do."""


def _ms(seconds: float | None) -> int:
    """A PostgreSQL duration setting in ms (0: no bound)."""
    return 0 if seconds is None else max(1, int(seconds * 1000))


def migration_engine(url: str, bounds: MigrationBounds) -> AsyncEngine:
    """An engine for one migration: the driver's statement backstop follows the
    migration's statement bound (none by default) rather than the serving one, and
    SQLite waits for its write lock up to ``bounds.wait``."""
    if url.startswith("sqlite"):
        return make_engine(url, bounds.wait)
    command = None if bounds.statement is None else bounds.statement + BACKGROUND_TIMEOUT
    connect_args = {"timeout": BACKGROUND_TIMEOUT, "command_timeout": command}
    return make_engine(url, connect_args=connect_args, pool_size=1, max_overflow=0)


def take_migration_lock(connection: Connection, bounds: MigrationBounds) -> None:
    """Take the database's migration lock for this transaction, before Alembic reads
    the current revision: two `petbox migrate` at once (two hosts of a roll) both read
    an old revision and both ran its migrations, so one died on "already exists" with
    a traceback. Now the second waits (up to ``bounds.wait``), then finds the schema
    current and does nothing. PostgreSQL: an advisory lock, released at commit, then
    the statement and lock bounds for the steps. SQLite: the write lock
    (``BEGIN IMMEDIATE``), which also makes its DDL one transaction."""
    if connection.dialect.name == "postgresql":
        _set(connection, statement=None, lock=bounds.wait)
        with _refused(connection, bounds, waiting=True):
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
        _set(connection, statement=bounds.statement, lock=bounds.lock)
    elif connection.dialect.name == "sqlite":
        with _refused(connection, bounds, waiting=True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _set(connection: Connection, statement: float | None, lock: float) -> None:
    """PostgreSQL's own bounds for what follows on this connection (the server cancels a
    statement cleanly; set explicitly so a role's default does not apply either)."""
    connection.exec_driver_sql(f"SET statement_timeout = {_ms(statement)}")
    connection.exec_driver_sql(f"SET lock_timeout = {_ms(lock)}")


@contextlib.contextmanager
def running_steps(connection: Connection, bounds: MigrationBounds) -> Iterator[None]:
    """Turn a migration step's bound running out into :class:`MigrationBlocked`."""
    with _refused(connection, bounds, waiting=False):
        yield


@contextlib.contextmanager
def _refused(connection: Connection, bounds: MigrationBounds, waiting: bool) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        reason = _reason(exc, bounds, waiting)
        if reason is None:
            raise
        shown = make_url(connection.engine.url).render_as_string(hide_password=True)
        raise MigrationBlocked(f"the migration of the database {shown} {reason}; it rolled "
                               "back, nothing changed") from exc


def _reason(exc: DBAPIError, bounds: MigrationBounds, waiting: bool) -> str | None:
    """Which bound ran out, said for an operator (None: another error)."""
    state = getattr(exc.orig, "sqlstate", None)
    locked = state == LOCK_NOT_AVAILABLE or "database is locked" in str(exc.orig)
    if waiting and locked:
        return (f"waited {bounds.wait:g} s (PETBOX_MIGRATE_WAIT) for the migration lock "
                "another `petbox migrate` holds: run it again once that one has finished")
    if locked:
        return (f"waited {bounds.lock:g} s (PETBOX_MIGRATE_LOCK_TIMEOUT) for a lock another "
                "transaction holds, rather than stall every request queued behind it: run "
                "it again when that transaction ends (pg_stat_activity shows it), or at a "
                "quieter time")
    if state == QUERY_CANCELED and bounds.statement is not None:
        return (f"ran a statement longer than {bounds.statement:g} s "
                "(PETBOX_MIGRATE_TIMEOUT): raise or unset it")
    return None
