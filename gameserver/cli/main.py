"""The ``petbox`` command line.

``petbox serve`` runs the server (embedded Redis and SQLite unless configured),
``petbox demo`` runs it with a ready demo merchant and game, and the other
commands administer merchants, games and the schema. Every command reads the
same ``PETBOX_*`` settings as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from aiohttp import web

from gameserver.cli.common import cli_settings as _settings
from gameserver.cli.common import reaching_redis
from gameserver.cli.common import run as _run
from gameserver.cli.common import with_db as _with_db
from gameserver.cli.demo import DEMO_GAME, DEMO_GAME_FILE, demo_banner, demo_setup
from gameserver.db.database import Database
from gameserver.db.migrating import MigrationBounds
from gameserver.ops.embedded import DataDirInUse, RedisProcess
from gameserver.ops.settings import Settings
from gameserver.ops.supervise import Spawn, supervise
from gameserver.ops.workerboard import WORKER_BOARD, WorkerBoard


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


@click.group()
@click.version_option(package_name="petbox")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the embedded SQLite, Redis, token secret and demo credentials "
                   "live (default: PETBOX_DATA_DIR, else ./petbox-data); every command "
                   "that uses it says which on stderr")
def main(data_dir: Path | None) -> None:
    """petbox: backend for gamified in-shop mini-games (pets, check-ins, blind boxes).

    Every command reads the same PETBOX_* settings as the server. Human output by
    default; --json where a command has data to print."""
    # cli.common.cli_settings reads --data-dir from this group's parameters.


# -- serving -------------------------------------------------------------------------


def _name_process() -> None:
    """Show this process in ps and top by its multiprocessing name (``petbox-wrk-N``,
    ``petbox-persist``: Linux keeps 15 characters; elsewhere nothing changes)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(multiprocessing.current_process().name[:15])


def _use_event_loop(settings: Settings) -> None:
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.install()


def _freeze_heap() -> None:
    """Put everything alive now out of the cyclic collector's reach.

    What exists once a process has started (imported modules, parsed game configs,
    pools, registries) lives as long as the process, yet every full collection
    walked all of it: under load that was a 57–134 ms stall of the event loop every
    few seconds in each worker and in the persister (docs/benchmarks.md, run 4),
    and it set the p99. Frozen objects are still freed normally by reference
    counting; only cycles among them would stay, and start-up state has none that
    die.
    """
    gc.collect()
    gc.freeze()


async def _freeze_after_startup(_app: web.Application) -> None:
    _freeze_heap()


def _serve_one(settings: Settings, host: str, port: int, reuse_port: bool,
               board: WorkerBoard | None = None) -> None:
    from gameserver.app import create_app
    from gameserver.http.accesslog import AccessLogger

    if reuse_port:
        _name_process()
    _logging(settings)
    _use_event_loop(settings)
    app = create_app(settings)
    app.on_startup.append(_freeze_after_startup)  # after cleanup_ctx: resources are open
    if board is not None:
        app[WORKER_BOARD] = board
        app.on_startup.append(board.on_startup)
    web.run_app(app, host=host, port=port, reuse_port=reuse_port,
                access_log=logging.getLogger("petbox.access") if settings.access_log else None,
                access_log_class=AccessLogger, print=None, shutdown_timeout=10)


def _prepare_shared(settings: Settings) -> tuple[Settings, RedisProcess | None]:
    """Start what all workers share (embedded Redis, migrated SQLite) once, in the parent."""
    embedded = None
    if settings.redis_url is None:
        embedded = RedisProcess(settings.data_dir / "redis", exclusive=True,
                                appendfsync=settings.redis_appendfsync,
                                aof_rewrite_percentage=settings.redis_aof_rewrite_percentage)
        try:
            embedded.start()
        except DataDirInUse as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"embedded redis-server on {embedded.url} (AOF in {embedded.data_dir})")
        settings = settings.with_overrides(redis_url=embedded.url)
    try:
        return _prepare_sql(settings), embedded
    except BaseException:  # SQL out of reach: the redis-server started here must not outlive us
        if embedded is not None:
            embedded.stop()
        raise


def _prepare_sql(settings: Settings) -> Settings:
    explicit_shadow = settings.shadow_database_url
    if settings.database_url is not None:
        # Out of reach or at another schema: one line now, not a traceback after
        # "petbox serving" (the app's own check would raise in every worker).
        _run(lambda: _with_db(settings, _noop, migrate=False))
    else:
        _run(lambda: _with_db(settings, _noop))
        settings = settings.with_overrides(database_url=settings.effective_database_url)
        shadow = settings.effective_shadow_database_url
        if settings.shadow_database_url is None and shadow is not None:
            # The shadow SQLite beside the embedded one: migrated here, once, too. Left to
            # the workers, N of them migrated one file at once and the persister process
            # met it unmigrated: a worker could die at start-up ("table already exists").
            bounds = MigrationBounds.of(settings)
            _run(lambda: _with_db(settings.with_overrides(database_url=shadow),
                                  lambda db: db.migrate(bounds), migrate=False, check=False))
            settings = settings.with_overrides(shadow_database_url=shadow)
    _require_shadow_schema(settings, explicit_shadow)
    return settings


def _require_shadow_schema(settings: Settings, url: str | None) -> None:
    """A configured shadow (load-test) database is checked as the main one is: out of
    reach or at another schema, one line now. Only the main one was, so a shadow
    database behind the release passed, and every worker died with the app's own
    check's traceback after "petbox serving"."""
    if url is not None:
        _run(lambda: _with_db(settings.with_overrides(database_url=url), _noop,
                              migrate=False))


async def _noop(db: Database) -> None:
    return None


@contextlib.contextmanager
def _serving(settings: Settings, host: str, port: int) -> Iterator[None]:
    """What stops a server at start-up (Redis out of reach, the port taken) as one
    CLI error line instead of a traceback."""
    with reaching_redis(settings.redis_url):
        try:
            yield
        except OSError as exc:
            raise click.ClickException(f"cannot serve on {host}:{port}: "
                                       f"{exc.strerror or exc}") from exc


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    settings, embedded = _prepare_shared(settings)
    click.echo(f"petbox serving on http://{host}:{port} with {workers} worker(s)")
    try:
        if workers == 1:
            with _serving(settings, host, port):
                _serve_one(settings, host, port, reuse_port=False)
        else:
            _serve_many(settings, host, port, workers)
    finally:
        if embedded is not None:
            embedded.stop()


def _persister_process(settings: Settings) -> None:
    from gameserver.persister import run_standalone

    _name_process()
    _logging(settings)
    _freeze_heap()
    with contextlib.suppress(OSError):  # a platform without nice: equal priority
        os.nice(settings.persister_nice)
    _use_event_loop(settings)
    asyncio.run(run_standalone(settings))


def _serve_many(settings: Settings, host: str, port: int, workers: int) -> None:
    """N HTTP workers sharing the port, and the persister in a process of its own: its
    batch work then never stalls a worker's event loop (measured: p99 spikes of
    200-400 ms when it ran inside worker 0). Background jobs run in worker 0."""
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.RawArray("b", workers)  # which workers serve: /readyz tells (degraded)
    spawns: list[Spawn] = []
    for index in range(workers):
        worker_settings = settings.with_overrides(
            run_persister=False, run_background=settings.run_background and index == 0,
            # workers share the shoppers: each one's cached copies go stale (settings.py)
            state_cache=0 if settings.state_cache is None else settings.state_cache)
        spawns.append(functools.partial(
            ctx.Process, target=_serve_one,
            args=(worker_settings, host, port, True, WorkerBoard(slots, index)),
            name=f"petbox-wrk-{index}"))
    if settings.run_persister:
        spawns.append(functools.partial(ctx.Process, target=_persister_process,
                                        args=(settings,), name="petbox-persist"))
    parent = WorkerBoard(slots)

    def worker_exited(index: int) -> None:
        if index < workers:
            parent.mark(index, False)

    supervise(spawns, on_exit=worker_exited)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="server processes sharing the port (SO_REUSEPORT)")
def serve(host: str, port: int, workers: int) -> None:
    """Run the HTTP server (embedded Redis and SQLite unless PETBOX_* say otherwise)."""
    _serve(_settings(), host, port, workers)


@main.command()
def persister() -> None:
    """Run the persister alone (when servers run with PETBOX_RUN_PERSISTER=0)."""
    settings = _settings()
    if settings.redis_url is None:
        raise click.ClickException("set PETBOX_REDIS_URL: the embedded Redis belongs to serve")
    # A database at another schema is refused as serve refuses it: a persister on an
    # older one started and ran passes on a database without the tables it writes.
    _run(lambda: _with_db(settings, _noop))
    _require_shadow_schema(settings, settings.shadow_database_url)
    _logging(settings)
    from gameserver.persister import run_standalone

    with reaching_redis(settings.redis_url):
        asyncio.run(run_standalone(settings))


@main.command()
def migrate() -> None:
    """Create or upgrade the SQL schema to the newest version."""
    settings = _settings()

    async def work(db: Database) -> str | None:
        await db.migrate(MigrationBounds.of(settings))
        return await db.schema_revision()

    revision = _run(lambda: _with_db(settings, work, migrate=False, check=False))
    click.echo(f"database at revision {revision}")
    shadow_url = settings.effective_shadow_database_url
    if shadow_url is not None:
        shadow = settings.with_overrides(database_url=shadow_url)
        revision = _run(lambda: _with_db(shadow, work, migrate=False, check=False))
        click.echo(f"shadow (load-test) database at revision {revision}")


@main.group()
def shadow() -> None:
    """Load-test (shadow) data: kept apart from real data, removable at once."""


@shadow.command("purge")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def shadow_purge(yes: bool) -> None:
    """Delete every shadow key from Redis and every row from the shadow database."""
    settings = _settings()
    shadow_url = settings.effective_shadow_database_url
    where = settings.redis_url or f"the embedded Redis in {settings.data_dir / 'redis'}"
    if not yes:
        click.confirm(f"purge shadow data in {where} and {shadow_url}?", abort=True)
    from gameserver.ops.shadow import purge_embedded, purge_shadow

    with reaching_redis(settings.redis_url):
        keys, rows = (asyncio.run(purge_shadow(settings.redis_url, shadow_url,
                                               settings=settings))
                      if settings.redis_url else purge_embedded(settings.data_dir, shadow_url))
    click.echo(f"purged {keys} shadow keys and {rows} shadow rows")


# -- demo ----------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--history", type=click.IntRange(1, 366), is_flag=False, flag_value=30,
              default=None, metavar="[DAYS]", help="first play DAYS (30 if not given) past "
              "days of simulated shoppers of the demo game, for analytics to show; a fresh "
              "data directory only")
def demo(host: str, port: int, history: int | None) -> None:
    """Serve with a demo merchant and game; prints credentials and ready curl lines."""
    settings = _settings()
    settings, embedded = _prepare_shared(settings)
    try:
        creds_file = settings.data_dir / "demo-credentials.json"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        saved = json.loads(creds_file.read_text()) if creds_file.exists() else None
        creds = _run(lambda: _with_db(settings, lambda db: demo_setup(db, saved)))
        creds_file.write_text(json.dumps(creds))
        creds_file.chmod(0o600)
        if history:
            from gameserver.cli.demo_history import fill_demo

            fill_demo(settings, creds, DEMO_GAME, DEMO_GAME_FILE, history)
        click.echo(demo_banner(creds, host, port, settings.data_dir))
        with _serving(settings, host, port):
            _serve_one(settings, host, port, reuse_port=False)
    finally:
        if embedded is not None:
            embedded.stop()


def _register_merchants() -> None:
    from gameserver.cli.admin import register
    from gameserver.cli.merchants import game, merchant, session

    main.add_command(merchant)
    main.add_command(session)
    main.add_command(game)
    register(main, game)


_register_merchants()


def _register_boxes() -> None:
    from gameserver.cli.boxes import simulate, verify_draw_command

    main.add_command(simulate)
    main.add_command(verify_draw_command)


_register_boxes()


def _register_experiments() -> None:
    from gameserver.cli.experiments import experiment

    main.add_command(experiment)


_register_experiments()


def _register_privacy() -> None:
    from gameserver.cli.privacy import erase_player_cmd

    main.add_command(erase_player_cmd)


_register_privacy()


from loadtests.cli import loadtest  # noqa: E402 - its own package; talks to servers over HTTP

main.add_command(loadtest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
