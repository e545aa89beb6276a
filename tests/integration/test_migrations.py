"""Schema migrations as an operator meets them: `petbox migrate` run twice at once, under
its own bounds (a long step, another transaction's lock, another migrate's lock), and
commands and servers on a database (or shadow database) behind or ahead of this
petbox's schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from gameserver.db.database import Database, alembic_config
from gameserver.db.migrating import MIGRATION_LOCK
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
        # The holder blocks the first migrate's version update on purpose: its lock bound
        # must outlast the holder (the default, 1 s, would give up, as it should).
        procs = [petbox(env_for(fresh_url, tmp_path / str(i), PETBOX_MIGRATE_LOCK_TIMEOUT="10"),
                        "migrate") for i in range(2)]
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


async def serve_and_persister_refuse_behind(env: dict[str, str], url: str, down: str) -> None:
    """`petbox serve` and `petbox persister` stop before serving, in one line: ``url``
    is at schema ``down``, behind this petbox."""
    for args in (["serve", "--port", "0"], ["persister"]):
        code, out = await asyncio.to_thread(finished, petbox(env, *args))
        assert code == 1, (args, out)
        assert (f"Error: the database {url} is at schema {down}, this petbox needs "
                f"{HEAD}: run `petbox migrate` first") in out, (args, out)
        assert "Traceback" not in out and "petbox serving" not in out, (args, out)


async def test_serve_on_an_older_schema_says_run_migrate_in_one_line(
        fresh_url: str, tmp_path: Path, redis_url: str) -> None:
    """`petbox serve` and `petbox persister` on a database one migration behind refuse
    before serving, in one line (serve printed "petbox serving" and a traceback; the
    persister started and ran)."""
    down = before_head(fresh_url)
    await at_revision(fresh_url, down)
    env = env_for(fresh_url, tmp_path, PETBOX_REDIS_URL=redis_url)
    await serve_and_persister_refuse_behind(env, fresh_url, down)


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


async def test_a_configured_shadow_database_at_another_schema_is_refused_in_one_line(
        fresh_url: str, tmp_path: Path, redis_url: str) -> None:
    """The main database is current, the separately configured shadow (load-test) one a
    migration behind: serve and persister refuse in one line, as for the main one (serve
    printed "petbox serving", then every worker died with the app's traceback)."""
    main = f"sqlite+aiosqlite:///{tmp_path / 'main.db'}"
    await at_revision(main, "head")
    down = before_head(fresh_url)
    await at_revision(fresh_url, down)
    env = env_for(main, tmp_path, PETBOX_REDIS_URL=redis_url,
                  PETBOX_SHADOW_DATABASE_URL=fresh_url)
    await serve_and_persister_refuse_behind(env, fresh_url, down)


@pytest.fixture
async def pg_behind(fresh_url: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A PostgreSQL database one migration behind, and an admin connection to it."""
    if not fresh_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's lock and statement bounds")
    await at_revision(fresh_url, before_head(fresh_url))
    conn = await asyncpg.connect(_asyncpg_dsn(fresh_url.replace("+asyncpg", "")))
    try:
        yield fresh_url, conn
    finally:
        await conn.close()


def refused_in_one_line(code: int, out: str, line: str) -> None:
    """`petbox migrate` gave up as an operator should see it: exit 1, the one line."""
    assert code == 1, out
    assert line in out
    assert "Traceback" not in out


async def revision_of(url: str) -> str | None:
    db = Database(url)
    try:
        return await db.schema_revision()
    finally:
        await db.close()


async def migrate_timed(env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    code, out = await asyncio.to_thread(finished, petbox(env, "migrate"))
    return code, out, time.monotonic() - started


@pytest.mark.postgres
async def test_a_long_migration_step_runs_under_the_migration_bound_not_the_serving_ones(
        pg_behind: tuple[str, asyncpg.Connection], tmp_path: Path) -> None:
    """Each DDL statement made slow (an event trigger sleeping 0.4 s, as an index build
    on a large table is slow): with serving bounds of 0.2 s the migration still
    succeeds, as migrations have no statement bound by default (they ran on the 10 s
    background engine, so a large table's index build failed half-way). A statement
    bound of their own, PETBOX_MIGRATE_TIMEOUT, refuses in one line and rolls back."""
    url, admin = pg_behind
    down = await revision_of(url)
    await admin.execute("CREATE FUNCTION slow_ddl() RETURNS event_trigger LANGUAGE plpgsql "
                        "AS $$ BEGIN PERFORM pg_sleep(0.4); END $$")
    await admin.execute("CREATE EVENT TRIGGER slow_ddl ON ddl_command_end "
                        "EXECUTE FUNCTION slow_ddl()")
    bounded = env_for(url, tmp_path, PETBOX_MIGRATE_TIMEOUT="0.2")
    code, out, _ = await migrate_timed(bounded)
    refused_in_one_line(code, out, (
        f"Error: the migration of the database {url} ran a statement longer than 0.2 s "
        "(PETBOX_MIGRATE_TIMEOUT): raise or unset it; it rolled back, nothing changed"))
    assert await revision_of(url) == down
    serving = env_for(url, tmp_path, PETBOX_SQL_TIMEOUT="0.2",
                      PETBOX_SQL_BACKGROUND_TIMEOUT="0.2")
    code, out, _ = await migrate_timed(serving)
    assert code == 0, out
    assert f"database at revision {HEAD}" in out
    assert await revision_of(url) == HEAD


@pytest.mark.postgres
async def test_a_migration_behind_another_transactions_lock_gives_up_in_its_lock_bound(
        pg_behind: tuple[str, asyncpg.Connection], tmp_path: Path) -> None:
    """A long transaction holds a lock `petbox migrate` needs (here: SHARE on
    ``alembic_version``, which every migration step updates; a reader of a table the
    migration alters does the same to its ALTER): the migration waits for that
    transaction, and every request touching the table would queue behind it. The
    migration gives up after PETBOX_MIGRATE_LOCK_TIMEOUT (PostgreSQL
    lock_timeout) in one line and rolls back (it waited the 10 s driver bound, then died
    with a TimeoutError traceback); once the reader is gone, it succeeds."""
    url, admin = pg_behind
    down = await revision_of(url)
    reader = admin.transaction()
    await reader.start()
    # held until rollback; conflicts with the version row's UPDATE, whatever the
    # newest migration alters (0013 only creates a table)
    await admin.execute("LOCK TABLE alembic_version IN SHARE MODE")
    env = env_for(url, tmp_path, PETBOX_MIGRATE_LOCK_TIMEOUT="0.5")
    code, out, took = await migrate_timed(env)
    await reader.rollback()
    refused_in_one_line(code, out, (f"Error: the migration of the database {url} waited 0.5 s "
            "(PETBOX_MIGRATE_LOCK_TIMEOUT) for a lock another transaction holds, rather "
            "than stall every request queued behind it: run it again when that transaction "
            "ends (pg_stat_activity shows it), or at a quieter time; it rolled back, "
            "nothing changed"))
    assert took < 8, took
    assert await revision_of(url) == down
    code, out, _ = await migrate_timed(env)
    assert code == 0, out
    assert await revision_of(url) == HEAD


@pytest.mark.postgres
async def test_waiting_for_another_migrate_has_its_own_bound(
        pg_behind: tuple[str, asyncpg.Connection], tmp_path: Path) -> None:
    """Another `petbox migrate` holds the migration lock (here: its advisory lock, held
    by hand). Waiting for it is bounded by PETBOX_MIGRATE_WAIT alone: past it, one line
    (it was the 10 s driver bound and a traceback); within it, the wait outlasts the
    statement and lock bounds of the migration's steps and succeeds."""
    url, admin = pg_behind
    await admin.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    env = env_for(url, tmp_path, PETBOX_MIGRATE_WAIT="1")
    code, out, took = await migrate_timed(env)
    refused_in_one_line(code, out, (
        f"Error: the migration of the database {url} waited 1 s (PETBOX_MIGRATE_WAIT) "
        "for the migration lock another `petbox migrate` holds: run it again once "
        "that one has finished; it rolled back, nothing changed"))
    assert took < 8, took
    env = env_for(url, tmp_path, PETBOX_MIGRATE_WAIT="30", PETBOX_MIGRATE_TIMEOUT="0.5",
                  PETBOX_MIGRATE_LOCK_TIMEOUT="0.5")
    proc = petbox(env, "migrate")
    await asyncio.sleep(2.5)  # the other migrate works on, past both step bounds
    assert proc.poll() is None
    await admin.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    code, out = await asyncio.to_thread(finished, proc)
    assert code == 0, out
    assert await revision_of(url) == HEAD


async def test_rows_from_before_0012_count_as_the_shoppers_own(fresh_url: str) -> None:
    """Rows written before migration 0012 cannot tell who made them: every ledger row is
    taken as the shopper's, and no player row is rewritten (``first_played_at`` NULL,
    which analytics read as playing since creation: test_analytics' eve)."""
    from gameserver.db import models as m

    await at_revision(fresh_url, "0011")
    db = Database(fresh_url)
    try:
        async with db.begin() as conn:
            await conn.execute(text(
                "INSERT INTO players (merchant_id, game_id, user_id, version, state, "
                "created_at, last_seen, flushed_at) VALUES ('shop', 'g', 'u1', 1, :s, 100, "
                "200, 300)"), {"s": b"x"})
            await conn.execute(text(
                "INSERT INTO ledger (commit_id, seq, merchant_id, game_id, user_id, "
                "player_version, kind, name, delta, before, after, reason, ts_ms) VALUES "
                "('c1', 0, 'shop', 'g', 'u1', 1, 'currency', 'acorn', 5, 0, 5, 'r', 1000)"))
        await at_revision(fresh_url, "0012")
        async with db.connect() as conn:
            played = (await conn.execute(select(m.players.c.first_played_at))).all()
            ledger = (await conn.execute(select(m.ledger.c.by_shopper))).all()
    finally:
        await db.close()
    assert ([tuple(r) for r in played], [tuple(r) for r in ledger]) == ([(None,)], [(True,)])


async def test_partial_refund_rows_migrate_both_ways(fresh_url: str) -> None:
    """0013 adds order_refunds (a row per partial refund) and leaves order_events as it
    was: its rows from before stay, and a paid row is still inserted as the release
    before it does. Going back to 0012, an order's partial refunds are folded into its
    one refund row in order_events (added when it had none), so GMV keeps them."""
    await at_revision(fresh_url, "0012")
    db = Database(fresh_url)
    cols = "merchant_id, game_id, user_id, order_id, kind, amount_fen, commit_id, seq, ts_ms"
    rcols = ("merchant_id, game_id, user_id, order_id, refund_id, amount_fen, commit_id, "
             "seq, ts_ms")

    def row(order: str, kind: str, fen: int) -> str:
        return f"('shop', 'g', 'u1', '{order}', '{kind}', {fen}, 'c', 0, 1000)"

    try:
        async with db.begin() as conn:
            await conn.execute(text(f"INSERT INTO order_events ({cols}) VALUES "
                                    f"{row('o1', 'paid', 300)}, {row('o1', 'refunded', 100)}"))
        await at_revision(fresh_url, "0013")
        async with db.begin() as conn:
            # the release before 0013's statement: same columns, same conflict target
            await conn.execute(text(
                f"INSERT INTO order_events ({cols}) VALUES {row('o2', 'paid', 500)} "
                "ON CONFLICT (merchant_id, game_id, user_id, order_id, kind) DO NOTHING"))
            await conn.execute(text(
                f"INSERT INTO order_refunds ({rcols}) VALUES "
                "('shop', 'g', 'u1', 'o1', 'r1', 50, 'c', 0, 1000), "
                "('shop', 'g', 'u1', 'o2', 'r1', 20, 'c', 0, 1000), "
                "('shop', 'g', 'u1', 'o2', 'r2', 30, 'c', 0, 1000)"))
            after = (await conn.execute(text(
                "SELECT order_id, kind, amount_fen FROM order_events "
                "ORDER BY order_id, kind"))).all()
        await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "0012")
        async with db.connect() as conn:
            back = (await conn.execute(text(
                "SELECT order_id, kind, amount_fen FROM order_events "
                "ORDER BY order_id, kind"))).all()
    finally:
        await db.close()
    assert [tuple(r) for r in after] == [("o1", "paid", 300), ("o1", "refunded", 100),
                                         ("o2", "paid", 500)]
    assert [tuple(r) for r in back] == [("o1", "paid", 300), ("o1", "refunded", 150),
                                        ("o2", "paid", 500), ("o2", "refunded", 50)]
