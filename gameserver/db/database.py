"""The SQL side: migrations and queries.

One :class:`Database` per process wraps an async SQLAlchemy engine
(gameserver/db/connections.py: its set-up and the bound of every call). SQLite runs
in WAL mode with a busy timeout so the persister and request handlers can share
the file; PostgreSQL uses asyncpg. Queries are small methods so handlers and the
persister never build SQL themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import migrations
from gameserver.db import models as m
from gameserver.db.connections import (
    BACKGROUND_TIMEOUT,
    REPORT_TIMEOUT,
    SqlLine,
    bounded_connection,
    settle_cleanups,
)
from gameserver.db.connections import CommitUnknown as CommitUnknown  # re-exported
from gameserver.db.connections import make_engine as make_engine  # re-exported
from gameserver.db.migrating import BOUNDS, MigrationBounds
from gameserver.db.migrating import MigrationBlocked as MigrationBlocked  # re-exported
from gameserver.state.keys import PlayerRef


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    api_key_hash: str
    signing_secret: str
    load_test: bool


KEYS_RESTORED = 1000
"""At most this many of a player's newest keys come back with a read-through."""
EPOCH_META = "epoch:"
"""The ``meta`` key prefix of a shard's persister epoch (``epoch:<shard>``)."""


@dataclass(frozen=True)
class StoredKey:
    """An Idempotency-Key whose response is in SQL (table ``responses``)."""

    key: str
    request_hash: str
    status: int
    commit_id: str
    ts_ms: int


@dataclass(frozen=True)
class GameVersion:
    merchant: str
    game: str
    version: int
    config: dict[str, Any]
    checksum: str
    published_at: int


def config_checksum(config: dict[str, Any]) -> str:
    """Stable SHA-256 of a config (sorted keys), to show and compare versions."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` using the migrations shipped in the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class SchemaMismatch(RuntimeError):
    """The database is not at the schema this petbox runs on; the message says what to do."""


def schema_problem(current: str | None, head: str | None, known: bool) -> str | None:
    """What is wrong with a database at revision ``current`` for a petbox whose newest
    migration is ``head`` (None: nothing). ``known``: ``current`` is one of this petbox's
    migrations. An unknown one was written by a newer release: `petbox migrate` cannot
    help there (it said "run `petbox migrate` first", which then failed on Alembic's
    "Can't locate revision")."""
    if current == head:
        return None
    if current is None:
        return "has no petbox schema yet: run `petbox migrate` first"
    if not known:
        return (f"is at schema {current}, newer than this petbox knows (its newest is "
                f"{head}): run the petbox release that migrated it")
    return f"is at schema {current}, this petbox needs {head}: run `petbox migrate` first"


class Database:
    """Queries petbox runs against SQL; one instance per process."""

    def __init__(self, url: str, engine: AsyncEngine | None = None, *,
                 timeout: float = BACKGROUND_TIMEOUT,
                 background_timeout: float = BACKGROUND_TIMEOUT,
                 report_timeout: float = REPORT_TIMEOUT,
                 line: SqlLine | None = None, writers: SqlLine | None = None,
                 background_line: SqlLine | None = None) -> None:
        self.url = url
        self.line = line
        """Where calls wait for a connection, outside their bound (None: in the pool)."""
        self.background_line = background_line
        """Where background jobs' calls wait instead (None: in :attr:`line`). Their
        bound is the longer background one: while SQL hangs, sharing the requests' line
        let them hold its every turn, and requests waited for one before their own
        bound began (seen: createSession 2.6 s against a 1.5 s bound)."""
        self.writers = writers
        """Where write transactions (:meth:`begin`) wait their turn first, outside their
        bound (None: no such line). SQLite takes one writer at a time; left to its own
        lock, a crowd of writers sleeps and polls in the busy handler, each in a thread
        of its own that its caller's bound cannot stop, so a burst of 2,000 grants once
        kept every connection waiting on the lock for over 45 s. In this line they wait
        in order, in the event loop, and a caller that gives up leaves nothing behind."""
        self.timeout = timeout
        """Bound of each call through :meth:`connect` / :meth:`begin`, seconds."""
        self.background_timeout = max(timeout, background_timeout)
        self.report_timeout = min(max(timeout, report_timeout), self.background_timeout)
        self.engine = engine or make_engine(url, self.background_timeout)
        self.dialect = self.engine.dialect.name
        self._probing = asyncio.Lock()
        """One :meth:`probe` at a time: the pool keeps one connection for it, and
        readiness probes (a load balancer's and an orchestrator's) are not admitted."""

    def dialect_insert(self, table: Any) -> Any:
        """``INSERT`` into ``table`` with the dialect's ``ON CONFLICT`` clauses (SQLite or
        PostgreSQL): the idempotent writes (ledgers, upserts) need them, and SQLAlchemy's
        generic ``insert`` has none."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"petbox does not support the {self.dialect} dialect")

    def bounded(self, timeout: float) -> Database:
        """The same database (one engine, one pool) with another bound per call."""
        view = copy.copy(self)
        view.timeout = timeout
        return view

    @property
    def background(self) -> Database:
        """This database for background jobs (persister, reconciler, housekeeping): their
        bound, and their own line when there is one."""
        view = self.bounded(self.background_timeout)
        if self.background_line is not None:
            view.line = self.background_line
        return view

    @property
    def report(self) -> Database:
        """This database for a merchant report (analytics, experiment results): its
        aggregate queries get ``PETBOX_SQL_REPORT_TIMEOUT``, between the request bound
        and the background one."""
        return self.bounded(self.report_timeout)

    def connect(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one call, bounded by :attr:`timeout` (checkout included;
        the wait in :attr:`line` before it is bounded by the line)."""
        return self._call(begin=False)

    def begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a transaction (committed at the end), bounded like
        :meth:`connect`."""
        return self._call(begin=True)

    @contextlib.asynccontextmanager
    async def _call(self, begin: bool) -> AsyncIterator[AsyncConnection]:
        async with contextlib.AsyncExitStack() as stack:
            if begin and self.writers is not None:  # first: a writer in line holds no slot
                await stack.enter_async_context(self.writers.turn())
            if self.line is not None:
                await stack.enter_async_context(self.line.turn())
            yield await stack.enter_async_context(
                bounded_connection(self.engine, self.timeout, begin))

    async def close(self) -> None:
        await settle_cleanups()  # connections given up on: let them finish closing
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def probe(self, bound: float) -> None:
        """``SELECT 1`` for ``/readyz``, within ``bound`` seconds, past the lines: on the
        pool's connection no line hands out (``PROBE_CONNECTIONS``). A burst that keeps
        every request's call waiting its turn is load, not an outage: SQL still answers.
        Were the probe to wait in the requests' line, the host would read as not ready
        at the peak, and a load balancer would move its shoppers onto the other hosts,
        which share the same SQL. A hung or unreachable SQL still fails it. Probes run one
        at a time, so overlapping ones never take connections the lines hand out."""
        async with self._probing, bounded_connection(self.engine, bound, False) as conn:
            await conn.execute(text("SELECT 1"))

    # -- migrations ----------------------------------------------------------------

    async def migrate(self, bounds: MigrationBounds | None = None) -> None:
        """Upgrade the schema to the newest migration (Alembic runs in a thread), under
        the migration's own ``bounds`` (gameserver/db/migrating.py), not the serving ones.
        Raises :class:`SchemaMismatch` for a schema newer than this petbox knows, and
        :class:`MigrationBlocked` (rolled back) when a bound runs out."""
        current = await self.schema_revision()
        if current is not None and not self.knows_revision(current):
            raise SchemaMismatch(self.mismatch(current))
        cfg = alembic_config(self.url)
        cfg.attributes[BOUNDS] = bounds or MigrationBounds()
        await asyncio.to_thread(command.upgrade, cfg, "head")

    async def schema_problem(self) -> str | None:
        """Why this petbox cannot run on the database's schema, as a sentence starting
        with the database's URL (None: it is at the newest one)."""
        current = await self.schema_revision()
        return None if current == self.head_revision() else self.mismatch(current)

    def mismatch(self, current: str | None) -> str:
        """Why this petbox cannot run on a database at ``current``, naming the database."""
        known = current is None or self.knows_revision(current)
        problem = schema_problem(current, self.head_revision(), known)
        shown = make_url(self.url).render_as_string(hide_password=True)
        return f"the database {shown} {problem}"

    def knows_revision(self, revision: str) -> bool:
        """Whether ``revision`` is one of this petbox's migrations."""
        try:
            script = ScriptDirectory.from_config(alembic_config(self.url))
            return script.get_revision(revision) is not None
        except CommandError:  # Alembic: "Can't locate revision"
            return False

    async def schema_revision(self) -> str | None:
        def current(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        async with self.connect() as conn:
            return await conn.run_sync(current)

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()

    # -- merchants -----------------------------------------------------------------

    async def create_merchant(self, merchant_id: str, name: str, api_key_hash: str,
                              signing_secret: str, now: int, load_test: bool = False) -> None:
        async with self.begin() as conn:
            await conn.execute(insert(m.merchants).values(
                id=merchant_id, name=name, api_key_hash=api_key_hash,
                signing_secret=signing_secret, load_test=load_test, created_at=now))

    async def merchant(self, merchant_id: str) -> Merchant | None:
        return await self._one_merchant(m.merchants.c.id == merchant_id)

    async def merchant_by_key_hash(self, key_hash: str) -> Merchant | None:
        return await self._one_merchant(m.merchants.c.api_key_hash == key_hash)

    async def _one_merchant(self, where: Any) -> Merchant | None:
        t = m.merchants
        async with self.connect() as conn:
            row = (await conn.execute(
                select(t.c.id, t.c.name, t.c.api_key_hash, t.c.signing_secret,
                       t.c.load_test).where(where))).first()
        return Merchant(*row) if row else None

    # -- games and versions --------------------------------------------------------

    async def publish_version(self, merchant: str, game: str, config: dict[str, Any],
                              now: int, note: str = "") -> int:
        """Store ``config`` as the game's next immutable version and make it live."""
        async with self.begin() as conn:
            current = await self._lock_game(conn, merchant, game, now)
            last = (await conn.execute(
                select(m.game_versions.c.version)
                .where(m.game_versions.c.merchant_id == merchant,
                       m.game_versions.c.game_id == game)
                .order_by(m.game_versions.c.version.desc()).limit(1))).scalar()
            version = (last or 0) + 1
            await conn.execute(insert(m.game_versions).values(
                merchant_id=merchant, game_id=game, version=version, config=config,
                checksum=config_checksum(config), published_at=now, note=note))
            await conn.execute(update(m.games).where(*current).values(
                live_version=version, updated_at=now))
        return version

    async def _lock_game(self, conn: AsyncConnection, merchant: str, game: str,
                         now: int) -> tuple[Any, Any]:
        """Make sure the game row exists and lock it (PostgreSQL) for this transaction."""
        where = (m.games.c.merchant_id == merchant, m.games.c.game_id == game)
        q = select(m.games.c.game_id).where(*where)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        if (await conn.execute(q)).first() is None:
            await conn.execute(insert(m.games).values(
                merchant_id=merchant, game_id=game, created_at=now, updated_at=now))
        return where

    async def live_versions(self) -> dict[tuple[str, str], int]:
        """(merchant, game) → live version, for every game: polled to pick up publishes."""
        g = m.games
        async with self.connect() as conn:
            rows = await conn.execute(
                select(g.c.merchant_id, g.c.game_id, g.c.live_version)
                .where(g.c.live_version.is_not(None)))
            return {(r[0], r[1]): r[2] for r in rows}

    async def game_version(self, merchant: str, game: str, version: int) -> GameVersion | None:
        v = m.game_versions
        async with self.connect() as conn:
            row = (await conn.execute(
                select(v.c.config, v.c.checksum, v.c.published_at)
                .where(v.c.merchant_id == merchant, v.c.game_id == game,
                       v.c.version == version))).first()
        if row is None:
            return None
        return GameVersion(merchant, game, version, row[0], row[1], row[2])

    async def live_version(self, merchant: str, game: str) -> int | None:
        g = m.games
        async with self.connect() as conn:
            return (await conn.execute(
                select(g.c.live_version)
                .where(g.c.merchant_id == merchant, g.c.game_id == game))).scalar()

    # -- players -------------------------------------------------------------------

    async def fetch_player(self, ref: PlayerRef) -> tuple[int, bytes] | None:
        """The last flushed (version, state) of a player, or None if never flushed."""
        async with self.connect() as conn:
            return await _player_row(conn, ref)

    async def fetch_archived(self, ref: PlayerRef, since_ms: int
                             ) -> tuple[tuple[int, bytes] | None, list[StoredKey]]:
        """:meth:`fetch_player` and the player's Idempotency-Keys whose responses SQL
        holds, stored since ``since_ms`` (newest :data:`KEYS_RESTORED`), on one connection:
        the read-through of an action (one pool checkout per new shopper, not two)."""
        async with self.connect() as conn:
            return await _player_row(conn, ref), await _stored_keys(conn, ref, since_ms)


    async def fetch_response(self, commit_id: str) -> tuple[int, bytes] | None:
        """The stored (status, body) of the action committed as ``commit_id``, or None."""
        r = m.responses
        async with self.connect() as conn:
            row = (await conn.execute(
                select(r.c.status, r.c.body).where(r.c.commit_id == commit_id))).first()
        return (int(row[0]), bytes(row[1])) if row else None

    async def recent_ledger(self, ref: PlayerRef, limit: int = 50) -> list[dict[str, Any]]:
        """The player's newest ledger rows in SQL, newest first."""
        t = m.ledger
        async with self.connect() as conn:
            rows = await conn.execute(
                select(t.c.id, t.c.kind, t.c.name, t.c.delta, t.c.before, t.c.after,
                       t.c.reason, t.c.ts_ms, t.c.player_version)
                .where(t.c.merchant_id == ref.merchant, t.c.game_id == ref.game,
                       t.c.user_id == ref.user)
                .order_by(t.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    async def list_versions(self, merchant: str, game: str) -> list[dict[str, Any]]:
        """Published versions of a game (without their configs), newest first."""
        v = m.game_versions
        async with self.connect() as conn:
            rows = await conn.execute(
                select(v.c.version, v.c.checksum, v.c.published_at, v.c.note)
                .where(v.c.merchant_id == merchant, v.c.game_id == game)
                .order_by(v.c.version.desc()))
            return [dict(r._mapping) for r in rows]

    # -- meta ----------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self.connect() as conn:
            return (await conn.execute(
                select(m.meta.c.value).where(m.meta.c.key == key))).scalar()

    async def set_meta(self, key: str, value: str) -> None:
        await self.set_metas({key: value})

    async def set_metas(self, values: Mapping[str, str]) -> None:
        """Write ``meta`` rows (each updated, or inserted when new) in one transaction."""
        async with self.begin() as conn:
            for key, value in values.items():
                done = await conn.execute(
                    update(m.meta).where(m.meta.c.key == key).values(value=value))
                if done.rowcount == 0:
                    await conn.execute(insert(m.meta).values(key=key, value=value))

    async def shard_epochs(self) -> dict[int, str]:
        """The persister's per-shard epochs SQL holds (``meta`` rows ``epoch:<shard>``),
        by shard."""
        async with self.connect() as conn:
            rows = (await conn.execute(select(m.meta.c.key, m.meta.c.value).where(
                m.meta.c.key.like(f"{EPOCH_META}%")))).all()
        found = {key.split(":", 1)[1]: value for key, value in rows}
        return {int(shard): value for shard, value in found.items() if shard.isdigit()}

    async def set_shard_epochs(self, epochs: Mapping[int, str]) -> None:
        """Record shards' epochs (:meth:`shard_epochs` reads them), one transaction."""
        await self.set_metas({f"{EPOCH_META}{shard}": value for shard, value in epochs.items()})


async def _player_row(conn: AsyncConnection, ref: PlayerRef) -> tuple[int, bytes] | None:
    p = m.players
    row = (await conn.execute(
        select(p.c.version, p.c.state)
        .where(p.c.merchant_id == ref.merchant, p.c.game_id == ref.game,
               p.c.user_id == ref.user))).first()
    return (int(row[0]), bytes(row[1])) if row else None


async def _stored_keys(conn: AsyncConnection, ref: PlayerRef, since_ms: int) -> list[StoredKey]:
    r = m.responses
    rows = await conn.execute(
        select(r.c.idem_key, r.c.request_hash, r.c.status, r.c.commit_id, r.c.ts_ms)
        .where(r.c.merchant_id == ref.merchant, r.c.game_id == ref.game,
               r.c.user_id == ref.user, r.c.ts_ms >= since_ms)
        .order_by(r.c.ts_ms.desc()).limit(KEYS_RESTORED))
    return [StoredKey(str(k), str(h), int(st), str(c), int(ts)) for k, h, st, c, ts in rows]
