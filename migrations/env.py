"""Alembic environment for petbox: async engines for SQLite and PostgreSQL.

The URL comes from the Alembic config (``gameserver.db.database.alembic_config``
sets it from ``PETBOX_DATABASE_URL`` or the embedded SQLite path).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from gameserver.db.migrating import (
    BOUNDS,
    MigrationBounds,
    migration_engine,
    running_steps,
    take_migration_lock,
)
from gameserver.db.models import metadata

config = context.config
bounds: MigrationBounds = config.attributes.get(BOUNDS) or MigrationBounds()
"""Set by ``Database.migrate`` (gameserver/db/migrating.py says why migrations have
bounds of their own); the defaults when Alembic is run otherwise."""


def _run(connection: Connection) -> None:
    take_migration_lock(connection, bounds)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with running_steps(connection, bounds), context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = migration_engine(config.get_main_option("sqlalchemy.url") or "", bounds)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
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
