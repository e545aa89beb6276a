"""``petbox erase-player``: ``erasePlayer`` from the command line (docs/privacy.md).

The same work as the merchant route (:class:`gameserver.state.erasure.Eraser`), run
against the servers' Redis and SQL with the ``PETBOX_*`` settings, for an operator
handling a shopper's request by ticket:

    petbox erase-player --merchant M --game G --user U [--key K] [--json]

It needs the servers running: their persister writes what it owes SQL of the shopper
before the erasure goes on. Redis is ``PETBOX_REDIS_URL``, else the embedded one of a
running ``petbox serve`` on the same data directory. ``--key`` keys the erasure like
the route's Idempotency-Key (the same record in SQL: a retry answers the first result,
and a key the route used with a ``{}`` body replays here too).

Exit codes: 0 erased (or replayed), 1 bad input or out of reach, 3 refused for now
(``erase_unsettled``, ``erase_pending``: nothing was erased; retry later).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gameserver.cli.common import cli_settings, reaching_redis, run, with_db
from gameserver.db.database import Database
from gameserver.ops.settings import Settings

OPERATION = "erasePlayer"
RETRY_LATER = 3
"""Exit code of a refusal that a later retry may pass (unsettled, pending)."""


class ErasureRefused(click.ClickException):
    """The erasure was refused for now (nothing erased): exit :data:`RETRY_LATER`."""

    exit_code = RETRY_LATER


def _redis_url(settings: Settings) -> str:
    """``PETBOX_REDIS_URL``, else the running server's embedded Redis."""
    if settings.redis_url is not None:
        return settings.redis_url
    from gameserver.ops.embedded import running_embedded_redis

    url = running_embedded_redis(settings.data_dir / "redis")
    if url is None:
        raise click.ClickException(
            "no Redis to erase in: set PETBOX_REDIS_URL, or start petbox serve on this "
            "data directory (erasing needs the servers' persister running)")
    return url


async def _erase(settings: Settings, url: str, db: Database, merchant: str, game: str,
                 user: str, key: str | None) -> tuple[dict[str, Any], bool]:
    """Erase ``user`` (keyed by ``key`` if given); the result and whether it is a replay."""
    from gameserver.api.common import route_hash
    from gameserver.clock import SystemClock
    from gameserver.db.admin_requests import AdminRequests, Stored
    from gameserver.games import GameRegistry
    from gameserver.ops.metrics import Metrics
    from gameserver.ops.shardcount import ShardCountMismatch, check_shard_count
    from gameserver.state.erasure import ErasePending, Eraser, EraseUnsettled
    from gameserver.state.keys import Keys, PlayerRef, shard_of
    from gameserver.state.redisclient import open_redis
    from gameserver.state.store import Store, encode_json

    try:  # the data's own count, as the servers run with
        shards = await check_shard_count(db, settings.shards, settings.shards_explicit)
    except ShardCountMismatch as exc:
        raise click.ClickException(str(exc)) from exc
    settings = settings.with_overrides(shards=shards)
    live = await GameRegistry(db).get(merchant, game)
    ref = PlayerRef(merchant, game, user, shard_of(merchant, user, shards))
    clock = SystemClock()
    requests = AdminRequests(db, clock)
    claim = None
    if key is not None:
        path = f"/v1/admin/games/{game}/players/{user}/erase"
        got = await requests.begin(merchant, key, OPERATION, route_hash("POST", path, b"{}"))
        if isinstance(got, Stored):
            return json.loads(got.body), True
        claim = got
    redis = await open_redis(url, settings)
    try:
        keys = Keys()
        store = Store(redis, keys, db, Metrics(), clock,
                      idempotency_ttl=settings.idempotency_ttl)
        done = await Eraser.of(settings, redis, keys, db, store, clock).erase(ref, live)
        if claim is not None:
            await requests.finish(claim, 200, encode_json(done))
    except BaseException as exc:
        if claim is not None:  # refused or failed: nothing kept, the key is free again
            await requests.abandon(claim)
        if isinstance(exc, EraseUnsettled | ErasePending):
            details = exc.details if isinstance(exc.details, dict) else {}
            held = ", ".join(map(str, details.get("holding") or []))
            raise ErasureRefused(f"{exc.code}: {exc.message}"
                                 + (f"\n  holding: {held}" if held else "")) from exc
        raise
    finally:
        await redis.aclose()
    return done, False


def _table(merchant: str, game: str, user: str, done: dict[str, Any]) -> Table:
    """What the erasure did, table by table (its rows), and the Redis keys it deleted."""
    table = Table(title=f"{merchant}/{game}: {user} erased")
    table.add_column("what")
    table.add_column("done")
    table.add_column("rows", justify="right")
    for name, rows in done["deleted"].items():
        table.add_row(name, "deleted", str(rows))
    for name, rows in done["pseudonymised"].items():
        table.add_row(name, "pseudonymised", str(rows))
    table.add_row("redis keys", "deleted", str(done["redis_keys_deleted"]))
    return table


@click.command("erase-player")
@click.option("--merchant", required=True, help="the merchant id")
@click.option("--game", required=True, help="the game id (an erasure covers one game)")
@click.option("--user", required=True, help="the shopper's user id")
@click.option("--key", default=None,
              help="an Idempotency-Key: a retry with it answers the first result")
@click.option("--json", "as_json", is_flag=True, help="print the erasePlayer answer as JSON")
def erase_player_cmd(merchant: str, game: str, user: str, key: str | None,
                     as_json: bool) -> None:
    """Erase a shopper's personal data of one game (docs/privacy.md). Exit 3: refused
    for now (an open group, a held sale unit, SQL behind), nothing erased; retry."""
    from gameserver.state.keys import IDEMPOTENCY_RE, USER_RE

    if not USER_RE.fullmatch(user):
        raise click.BadParameter(f"must match {USER_RE.pattern}", param_hint="--user")
    if key is not None and not IDEMPOTENCY_RE.fullmatch(key):
        raise click.BadParameter(f"must match {IDEMPOTENCY_RE.pattern}", param_hint="--key")
    settings = cli_settings()
    url = _redis_url(settings)
    with reaching_redis(url):
        done, replayed = run(lambda: with_db(
            settings, lambda db: _erase(settings, url, db, merchant, game, user, key)))
    if as_json:
        click.echo(json.dumps(done, indent=2))
        return
    out = Console()
    out.print(_table(merchant, game, user, done))
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(done["refused_until"]))
    out.print(f"kept rows now name {done['pseudonym']}")
    out.print(f"{user}'s actions are refused until {until} UTC")
    if replayed:
        out.print(f"(replayed: key {key} erased this shopper before; nothing done now)")

