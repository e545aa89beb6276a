"""What every ``petbox`` command module shares: settings, running a coroutine with
clean CLI errors, and a database session. ``main.py`` and the command groups
(``admin.py``, ``experiments.py`` …) import this module and never each other's internals."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from economy.errors import DomainError
from gameserver.db.database import Database, MigrationBlocked, SchemaMismatch
from gameserver.db.migrating import MigrationBounds
from gameserver.ops.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def cli_settings() -> Settings:
    """The ``PETBOX_*`` settings; a bad one is a clean CLI error.

    The data directory is the ``petbox`` group's ``--data-dir``, else
    ``PETBOX_DATA_DIR``, else ``./petbox-data``."""
    env = dict(os.environ)
    ctx = click.get_current_context(silent=True)
    data_dir = ctx.find_root().params.get("data_dir") if ctx is not None else None
    if data_dir is not None:
        env["PETBOX_DATA_DIR"] = str(Path(data_dir).resolve())
    try:
        return load_settings(env)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def state_data_dir(settings: Settings) -> None:
    """Say which data directory a command uses (on stderr: ``--json`` output stays
    clean), so a command run from another folder cannot silently use another one."""
    click.echo(f"petbox data directory: {settings.data_dir.resolve()}", err=True)


def _detail_lines(details: dict[str, Any]) -> list[str]:
    """A refusal's facts as indented lines: one per problem (``path: message``), else
    one per fact (``key: value``); never a raw JSON blob."""
    lines = []
    for problem in details.get("problems") or []:
        if isinstance(problem, dict):
            lines.append(f"  {problem.get('path', '$')}: {problem.get('message', '')}")
    for key, value in details.items():
        if key != "problems":
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"  {key}: {shown}")
    return lines


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning petbox's own refusals into clean CLI errors."""
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except DomainError as exc:
        lines = _detail_lines(exc.details) if isinstance(exc.details, dict) else []
        raise click.ClickException("\n".join([exc.message, *lines])) from exc


class SchemaMissing(click.ClickException):
    """The database has no petbox schema, or an older one: ``petbox migrate`` first."""


async def require_schema(db: Database, url: str) -> None:
    """Refuse (with what to run) a database that is not at the schema this petbox needs,
    instead of failing later on a missing table with a SQL traceback."""
    try:
        current = await db.schema_revision()
    except (SQLAlchemyError, OSError) as exc:  # OSError: SqlConnectionLost, a refusal
        raise click.ClickException(f"cannot reach the database {_shown(url)}: "
                                   f"{type(exc).__name__}") from exc
    if current != db.head_revision():
        raise SchemaMissing(db.mismatch(current))


def _shown(url: str) -> str:
    """A database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    """The first line of what a driver said (its own error, not SQLAlchemy's wrapper)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


async def _reach(db: Database, url: str) -> None:
    """Open one connection, so a database out of reach is one line saying which (a
    driver's OSError or timeout was a traceback), before any work starts."""
    try:
        async with db.engine.connect():
            pass
    except (OSError, SQLAlchemyError) as exc:
        raise click.ClickException(f"cannot reach the database {_shown(url)}: "
                                   f"{_reason(exc)}") from exc


def _shown_redis(url: str) -> str:
    """A Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


@contextlib.contextmanager
def reaching_redis(url: str | None) -> Iterator[None]:
    """Redis out of reach (refused, unknown host, timed out) as one CLI error line."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        where = _shown_redis(url) if url else "the embedded Redis"
        raise click.ClickException(f"cannot reach Redis at {where}: {_reason(exc)}") from exc


async def with_db(settings: Settings, work: Callable[[Database], Awaitable[T]],
                  migrate: bool = True, check: bool = True) -> T:
    """``work`` against the configured database: the embedded SQLite (in the data
    directory, said on stderr) is migrated first; a configured one must already be at
    the newest schema (``check``; off for ``petbox migrate`` itself)."""
    url = settings.effective_database_url
    try:
        db = Database(url)  # SQLite: makes the file's folder
    except OSError as exc:
        raise click.ClickException(f"cannot open the database {_shown(url)}: "
                                   f"{_reason(exc)}") from exc
    try:
        await _reach(db, url)
        if migrate and settings.database_url is None:
            state_data_dir(settings)
            await db.migrate(MigrationBounds.of(settings))
        elif check:
            await require_schema(db, url)
        return await work(db)
    # A schema newer than this petbox, or a migration that gave up on one of its bounds:
    # one line, no traceback.
    except (SchemaMismatch, MigrationBlocked) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        await db.close()
