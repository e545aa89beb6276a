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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from aiohttp import web

from economy.config import game_config_json_schema
from economy.errors import DomainError
from gameserver.auth import session_signature
from gameserver.db.database import Database
from gameserver.embedded import RedisProcess
from gameserver.settings import Settings, SettingsError, load_settings
from gameserver.supervise import Spawn, supervise
from gameserver.workerboard import WORKER_BOARD, WorkerBoard

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_GAME_FILE = REPO_ROOT / "examples" / "squirrel-omg.json"
DEMO_MERCHANT = "demo"
DEMO_GAME = "squirrel-omg"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning petbox's own refusals into clean CLI errors."""
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except DomainError as exc:
        detail = json.dumps(exc.details, indent=2, ensure_ascii=False) if exc.details else ""
        raise click.ClickException(f"{exc.message}\n{detail}".rstrip()) from exc


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]],
                   migrate: bool = True) -> T:
    db = Database(settings.effective_database_url)
    try:
        if migrate and settings.database_url is None:
            await db.migrate()
        return await work(db)
    finally:
        await db.close()


@click.group()
@click.version_option(package_name="petbox")
def main() -> None:
    """petbox: backend for gamified in-shop mini-games (pets, check-ins, blind boxes)."""


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
    from gameserver.accesslog import AccessLogger
    from gameserver.app import create_app

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
        embedded = RedisProcess(settings.data_dir / "redis",
                                appendfsync=settings.redis_appendfsync,
                                aof_rewrite_percentage=settings.redis_aof_rewrite_percentage)
        embedded.start()
        click.echo(f"embedded redis-server on {embedded.url} (AOF in {embedded.data_dir})")
        settings = settings.with_overrides(redis_url=embedded.url)
    if settings.database_url is None:
        _run(lambda: _with_db(settings, _noop))
        settings = settings.with_overrides(database_url=settings.effective_database_url)
        shadow = settings.effective_shadow_database_url
        if settings.shadow_database_url is None and shadow is not None:
            # The shadow SQLite beside the embedded one: migrated here, once, too. Left to
            # the workers, N of them migrated one file at once and the persister process
            # met it unmigrated: a worker could die at start-up ("table already exists").
            _run(lambda: _with_db(settings.with_overrides(database_url=shadow),
                                  Database.migrate, migrate=False))
            settings = settings.with_overrides(shadow_database_url=shadow)
    return settings, embedded


async def _noop(db: Database) -> None:
    return None


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    settings, embedded = _prepare_shared(settings)
    click.echo(f"petbox serving on http://{host}:{port} with {workers} worker(s)")
    try:
        if workers == 1:
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
            run_persister=False, run_background=settings.run_background and index == 0)
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
    _logging(settings)
    from gameserver.persister import run_standalone

    asyncio.run(run_standalone(settings))


@main.command()
def migrate() -> None:
    """Create or upgrade the SQL schema to the newest version."""
    settings = _settings()

    async def work(db: Database) -> str | None:
        await db.migrate()
        return await db.schema_revision()

    revision = _run(lambda: _with_db(settings, work, migrate=False))
    click.echo(f"database at revision {revision}")
    shadow_url = settings.effective_shadow_database_url
    if shadow_url is not None:
        shadow = settings.with_overrides(database_url=shadow_url)
        revision = _run(lambda: _with_db(shadow, work, migrate=False))
        click.echo(f"shadow (load-test) database at revision {revision}")


@main.group()
def shadow() -> None:
    """Load-test (shadow) data: kept apart from real data, removable at once."""


@shadow.command("purge")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def shadow_purge(yes: bool) -> None:
    """Delete every shadow key from Redis and every row from the shadow database."""
    settings = _settings()
    if settings.redis_url is None:
        raise click.ClickException("set PETBOX_REDIS_URL to the Redis the servers use")
    shadow_url = settings.effective_shadow_database_url
    if not yes:
        click.confirm(f"purge shadow data in {settings.redis_url} and {shadow_url}?", abort=True)
    from gameserver.shadow import purge_shadow

    keys, rows = asyncio.run(purge_shadow(settings.redis_url, shadow_url))
    click.echo(f"purged {keys} shadow keys and {rows} shadow rows")


# -- merchants and games -------------------------------------------------------------


@main.group()
def merchant() -> None:
    """Manage merchants."""


@merchant.command("create")
@click.argument("merchant_id")
@click.option("--name", default="", help="display name")
@click.option("--load-test", is_flag=True, help="a merchant for load testing (shadow data)")
@click.option("--json", "as_json", is_flag=True, help="print credentials as JSON")
def merchant_create(merchant_id: str, name: str, load_test: bool, as_json: bool) -> None:
    """Create MERCHANT_ID and print its API key and signing secret (shown only once)."""
    from gameserver.provision import create_merchant

    settings = _settings()
    creds = _run(lambda: _with_db(settings, lambda db: create_merchant(
        db, merchant_id, int(time.time()), name, load_test)))
    if as_json:
        click.echo(json.dumps(creds.to_json()))
    else:
        click.echo(f"merchant:       {creds.merchant}\napi key:        {creds.api_key}\n"
                   f"signing secret: {creds.signing_secret}\n(store them now: shown once)")


@main.group()
def game() -> None:
    """Manage game configs."""


@game.command("publish")
@click.argument("merchant_id")
@click.argument("game_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="why this version (shown in the version list)")
def game_publish(merchant_id: str, game_id: str, file: Path, note: str) -> None:
    """Validate FILE and publish it as GAME_ID's next version."""
    from gameserver.provision import load_config_file, publish_config

    settings = _settings()
    config = _run(lambda: _async_value(load_config_file(file)))
    version = _run(lambda: _with_db(settings, lambda db: publish_config(
        db, merchant_id, game_id, config, int(time.time()), note)))
    click.echo(f"published {merchant_id}/{game_id} version {version}")


async def _async_value(value: T) -> T:
    return value


@game.command("schema")
def game_schema() -> None:
    """Print the JSON Schema of a game config."""
    click.echo(json.dumps(game_config_json_schema(), indent=2, ensure_ascii=False))


@game.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def game_validate(file: Path) -> None:
    """Check FILE and list every problem with its JSON path."""
    from gameserver.games import parse_config
    from gameserver.provision import load_config_file

    _run(lambda: _async_value(parse_config(load_config_file(file))))
    click.echo(f"{file}: valid")


# -- demo ----------------------------------------------------------------------------


async def _demo_setup(db: Database, saved: dict[str, str] | None) -> dict[str, str]:
    """The demo merchant (``saved`` credentials if still valid) with the demo game live."""
    from gameserver.provision import create_merchant, load_config_file, publish_config

    now = int(time.time())
    if saved is not None and await db.merchant(saved["merchant"]) is not None:
        creds = saved
    else:
        merchant_id = DEMO_MERCHANT
        if await db.merchant(merchant_id) is not None:  # credentials file lost: new id
            merchant_id = f"{DEMO_MERCHANT}-{now}"
        creds = (await create_merchant(db, merchant_id, now, "Demo shop")).to_json()
    config = load_config_file(DEMO_GAME_FILE)
    live = await db.live_version(creds["merchant"], DEMO_GAME)
    current = await db.game_version(creds["merchant"], DEMO_GAME, live) if live else None
    if current is None or current.config != config:
        await publish_config(db, creds["merchant"], DEMO_GAME, config, now, "demo")
    return dict(creds)


def _demo_banner(creds: dict[str, str], host: str, port: int) -> str:
    ts = int(time.time())
    user = "shopper-1"
    sign = session_signature(creds["signing_secret"], creds["merchant"], user, ts)
    body = json.dumps({"merchant": creds["merchant"], "user": user, "ts": ts, "sign": sign})
    base = f"http://{host}:{port}"
    game_url = f"{base}/v1/games/{DEMO_GAME}"
    return f"""
petbox demo
  merchant        {creds['merchant']}
  api key         {creds['api_key']}
  signing secret  {creds['signing_secret']}
  game            {DEMO_GAME}  (examples/squirrel-omg.json)

Try it (the signed login is valid for 10 minutes):
  TOKEN=$(curl -s -X POST {base}/v1/sessions -H 'Content-Type: application/json' \\
    -d '{body}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s -X POST {game_url}/pet -H "Authorization: Bearer $TOKEN" \\
    -H 'Idempotency-Key: adopt-1' -d '{{"species": "squirrel", "name": "Nutty"}}'
  curl -s -X POST {game_url}/pet/feed -H "Authorization: Bearer $TOKEN" \\
    -H 'Idempotency-Key: feed-1' -d '{{"food": "acorn_snack"}}'
  curl -s {game_url}/me -H "Authorization: Bearer $TOKEN"
"""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def demo(host: str, port: int) -> None:
    """Serve with a demo merchant and game; prints credentials and ready curl lines."""
    settings = _settings()
    settings, embedded = _prepare_shared(settings)
    try:
        creds_file = settings.data_dir / "demo-credentials.json"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        saved = json.loads(creds_file.read_text()) if creds_file.exists() else None
        creds = _run(lambda: _with_db(settings, lambda db: _demo_setup(db, saved)))
        creds_file.write_text(json.dumps(creds))
        creds_file.chmod(0o600)
        click.echo(_demo_banner(creds, host, port))
        _serve_one(settings, host, port, reuse_port=False)
    finally:
        if embedded is not None:
            embedded.stop()


def _register_admin() -> None:
    from gameserver.cli_admin import register

    register(main, game)


_register_admin()


def _register_boxes() -> None:
    from gameserver.cli_boxes import simulate, verify_draw_command

    main.add_command(simulate)
    main.add_command(verify_draw_command)


_register_boxes()


from loadtests.cli import loadtest  # noqa: E402 - its own package; talks to servers over HTTP

main.add_command(loadtest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
