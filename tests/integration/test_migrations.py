"""Schema migrations as an operator meets them: `petbox migrate` run twice at once, and
commands and servers on a database behind or ahead of this petbox's schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from gameserver.db.database import Database, alembic_config
from tests.conftest import PG_ADMIN_URL, _asyncpg_dsn

ROOT = Path(__file__).resolve().parents[2]
HEAD = Database("sqlite+aiosqlite://").head_revision()
AHEAD = "9999_from_a_newer_release"


def petbox(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``petbox ARGS`` in a child process of this checkout (its real output and exit)."""
    return subprocess.Popen([sys.executable, "-m", "gameserver.cli", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=90)
    return proc.returncode, out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own (no schema): SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'petbox.db'}"
        return
    if not PG_ADMIN_URL:
        pytest.skip("PETBOX_TEST_POSTGRES_URL is not set")
    name = f"petbox_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def env_for(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PETBOX_DATABASE_URL": url,
            "PETBOX_DATA_DIR": str(tmp_path / "data"), **extra}


def before_head(url: str) -> str:
    """The revision just before this petbox's newest."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_revision(HEAD)
    assert head is not None and isinstance(head.down_revision, str)
    return head.down_revision


async def at_revision(url: str, revision: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


async def stamp(url: str, revision: str) -> None:
    db = Database(url)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    await db.close()


async def test_two_migrates_at_once_both_succeed_and_migrate_once(
        fresh_url: str, tmp_path: Path) -> None:
    """Two hosts run `petbox migrate` at the same moment on a database one migration
    behind. Both read the old revision while a reader holds the version table; once it
    lets go, both used to run the migration and one died on "duplicate column"
    (exit 1, a traceback). Now the second waits for the first and finds nothing to do."""
    down = before_head(fresh_url)
    await at_revision(fresh_url, down)
    db = Database(fresh_url)
    async with db.engine.connect() as holder:  # a long reader of the version table
        if db.dialect == "sqlite":
            await holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await holder.execute(text("LOCK TABLE alembic_version IN SHARE MODE"))
        procs = [petbox(env_for(fresh_url, tmp_path / str(i)), "migrate") for i in range(2)]
        await asyncio.sleep(4)  # both started and read the revision before the holder lets go
        await holder.rollback()
    results = [await asyncio.to_thread(finished, proc) for proc in procs]
    for code, out in results:
        assert code == 0, out
        assert f"database at revision {HEAD}" in out
        assert "Traceback" not in out
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    await db.close()
    assert rows == [(HEAD,)]


async def test_a_schema_newer_than_petbox_is_refused_in_one_line(
        fresh_url: str, tmp_path: Path, redis_url: str) -> None:
    """A database a newer release migrated: migrate, a command and serve each say so in
    one line (they said "run `petbox migrate` first", and migrate then failed with
    Alembic's "Can't locate revision" traceback; serve printed "petbox serving" and died
    with a traceback)."""
    await at_revision(fresh_url, "head")
    await stamp(fresh_url, AHEAD)
    said = (f"is at schema {AHEAD}, newer than this petbox knows (its newest is {HEAD}): "
            "run the petbox release that migrated it")
    env = env_for(fresh_url, tmp_path, PETBOX_REDIS_URL=redis_url)
    for args in (["migrate"], ["merchant", "create", "shop"], ["serve", "--port", "0"],
                 ["persister"]):
        code, out = await asyncio.to_thread(finished, petbox(env, *args))
        assert code == 1, (args, out)
        assert f"Error: the database {fresh_url} {said}" in out, (args, out)
        assert "Traceback" not in out and "petbox serving" not in out, (args, out)
    db = Database(fresh_url)
    assert await db.schema_revision() == AHEAD  # left as it was
    await db.close()


async def test_serve_on_an_older_schema_says_run_migrate_in_one_line(
        fresh_url: str, tmp_path: Path, redis_url: str) -> None:
    """`petbox serve` and `petbox persister` on a database one migration behind refuse
    before serving, in one line (serve printed "petbox serving" and a traceback; the
    persister started and ran)."""
    down = before_head(fresh_url)
    await at_revision(fresh_url, down)
    env = env_for(fresh_url, tmp_path, PETBOX_REDIS_URL=redis_url)
    for args in (["serve", "--port", "0"], ["persister"]):
        code, out = await asyncio.to_thread(finished, petbox(env, *args))
        assert code == 1, (args, out)
        assert (f"Error: the database {fresh_url} is at schema {down}, this petbox needs "
                f"{HEAD}: run `petbox migrate` first") in out, (args, out)
        assert "Traceback" not in out and "petbox serving" not in out, (args, out)


async def test_embedded_sqlite_newer_than_petbox_is_refused_in_one_line(
        tmp_path: Path) -> None:
    """The embedded SQLite (migrated on start) at a newer release's schema: serve stops
    in one line and stops the Redis it started (it was Alembic's traceback)."""
    data = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{data / 'petbox.db'}"
    data.mkdir()
    await at_revision(url, "head")
    await stamp(url, AHEAD)
    env = {"PATH": "/usr/bin:/bin", "PETBOX_DATA_DIR": str(data)}
    code, out = await asyncio.to_thread(finished, petbox(env, "serve", "--port", "0"))
    assert code == 1, out
    assert f"Error: the database {url} is at schema {AHEAD}, newer than this petbox" in out
    assert "Traceback" not in out and "petbox serving" not in out
