"""Alembic environment for petbox: async engines for SQLite and PostgreSQL.

The URL comes from the Alembic config (``gameserver.db.database.alembic_config``
sets it from ``PETBOX_DATABASE_URL`` or the embedded SQLite path).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gameserver.db.database import make_engine
from gameserver.db.models import metadata

config = context.config

MIGRATION_LOCK = 0x7065_7462_6F78
"""PostgreSQL advisory lock key ("petbox") that one migration holds at a time."""


def _lock(connection: Connection) -> None:
    """Take the database's migration lock for this transaction, before Alembic reads
    the current revision: two `petbox migrate` at once (two hosts of a roll) both read
    an old revision and both ran its migrations, so one died on "already exists" with
    a traceback. Now the second waits, then finds the schema current and does nothing.
    PostgreSQL: an advisory lock, released at commit. SQLite: the write lock
    (``BEGIN IMMEDIATE``), which also makes its DDL one transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _run(connection: Connection) -> None:
    _lock(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(_run_async())
