"""Connections to SQL: the engine for SQLite or PostgreSQL, and the bounded call.

:func:`make_engine` sets a dialect's driver-level timeouts (the backstop).
:func:`bounded_connection` gives one call a connection it must be done with within its
bound, checkout and commit included, and never waits on a hung server past it: a
connection interrupted mid-statement is dropped (closed in the background) rather than
rolled back over a hung socket, and a COMMIT cut off by the bound raises
:class:`CommitUnknown`. A connection that breaks mid-call raises
:class:`SqlConnectionLost` (or :class:`CommitUnknown` during COMMIT).
:class:`gameserver.db.database.Database` makes every call through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# aiosqlite logs every statement with its parameters at DEBUG: coupon codes, player
# state, signing secrets. Keep it at INFO even when petbox runs with PETBOX_LOG_LEVEL=DEBUG.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

REQUEST_TIMEOUT = 1.5
"""Default bound (seconds) of one SQL call made while a client waits (``PETBOX_SQL_TIMEOUT``)."""
BACKGROUND_TIMEOUT = 10.0
"""Default bound of one SQL call of a background job (``PETBOX_SQL_BACKGROUND_TIMEOUT``);
also the driver-level backstop: connect, pool checkout, statement, SQLite busy wait."""
REPORT_TIMEOUT = 5.0
"""Default bound of one merchant report's SQL (``PETBOX_SQL_REPORT_TIMEOUT``)."""


def _sqlite_pragmas(busy_ms: int) -> Any:
    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()

    return pragmas


def make_engine(url: str, timeout: float = BACKGROUND_TIMEOUT, **kwargs: Any) -> AsyncEngine:
    """An async engine with petbox's settings for the URL's dialect.

    ``timeout`` bounds every step at the driver: connecting, waiting for a pooled
    connection, each statement (asyncpg ``timeout``/``command_timeout``), SQLite's wait
    for a lock. It is the backstop; :meth:`Database.connect` bounds each call tighter.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:  # one shared in-memory connection: no pool to size
            for name in ("pool_size", "max_overflow", "pool_timeout"):
                kwargs.pop(name, None)
        kwargs.setdefault("connect_args", {"timeout": timeout})
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(int(timeout * 1000)))
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", timeout)
    if url.startswith("postgresql+asyncpg"):
        kwargs.setdefault("connect_args", {"timeout": timeout, "command_timeout": timeout})
    return create_async_engine(url, **kwargs)


_CLEANUPS: set[asyncio.Task[Any]] = set()
"""Connection clean-ups left to finish after their call gave up (kept referenced)."""


def _in_background(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _CLEANUPS.add(task)
    task.add_done_callback(_CLEANUPS.discard)
    task.add_done_callback(_ignore_result)


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed clean-up of a dead connection is expected


async def _close_late(task: asyncio.Task[AsyncConnection]) -> None:
    """Close a connection whose checkout finished after its caller gave up."""
    with contextlib.suppress(BaseException):
        conn = await task
        await conn.close()


async def _acquire(engine: AsyncEngine) -> AsyncConnection:
    """A pooled connection. If the caller is cancelled (its bound ran out) while the pool
    waits, connects or pings, the checkout is left to end by itself (the driver's own
    timeouts bound it) instead of being waited for: the caller answers on time."""
    task = asyncio.ensure_future(engine.connect().start())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        _in_background(_close_late(task))
        raise


async def _driver(conn: AsyncConnection) -> Any:
    """The driver's connection, taken while SQLAlchemy still hands it out (after an
    interrupted statement it may refuse to: "invalid transaction")."""
    return (await conn.get_raw_connection()).driver_connection


async def _commit(transaction: Any, raw: Any) -> None:
    """COMMIT, given up at once when the caller's bound runs out: cancelling the commit
    itself waited inside the driver (a hung server held the answer 2 s past a 0.5 s
    bound). The commit ends soon on the terminated connection, in the background; the
    caller discards the connection."""
    await _finish_or_drop(asyncio.ensure_future(transaction.commit()), raw)


async def _finish_or_drop(task: asyncio.Future[Any], raw: Any) -> None:
    """Wait for ``task``; if the caller's bound runs out meanwhile, drop the connection
    and let ``task`` end in the background."""
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        _terminate(raw)
        _in_background(task)
        raise


def _terminate(raw: Any) -> None:
    """Drop a connection interrupted mid-statement at once: its state is unknown, and a
    hung server would never answer the rollback (asyncpg closes its socket; SQLite has
    no equivalent and waits out its statement, bounded by the busy timeout)."""
    terminate = getattr(raw, "terminate", None)
    if callable(terminate):
        with contextlib.suppress(Exception):
            terminate()


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(BaseException):
        await conn.invalidate()
    with contextlib.suppress(BaseException):
        await conn.close()


async def _release(conn: AsyncConnection, raw: Any) -> None:
    """Close (roll back, return to the pool); if the caller's bound runs out meanwhile,
    the connection is dropped and the pool's clean-up goes on without the caller."""
    await _finish_or_drop(asyncio.ensure_future(conn.close()), raw)


async def _close_committed(conn: AsyncConnection, seconds: float) -> None:
    """Return a connection whose work is done; never turns that success into an error
    (a close still running after ``seconds`` finishes in the background)."""
    task = asyncio.ensure_future(conn.close())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        task.exception()  # retrieved; a failed return to the pool is the pool's business
    else:
        _in_background(task)


BUSY_MS = "petbox_busy_ms"
"""``conn.info`` key: the busy timeout (ms) a pooled SQLite connection has now."""


async def _bound_lock_wait(conn: AsyncConnection, raw: Any, seconds: float) -> None:
    """SQLite: wait for another process' lock at most this call's bound. The wait runs in
    the driver's thread, which the caller's bound cannot stop; cancelling it made
    SQLAlchemy close the connection gracefully, queued behind the waiting statement, so
    a request bounded to 1.5 s took the connection's busy timeout (the background bound,
    10 s) when the file was locked. Set per call (pooled connections serve requests and
    background jobs alike), only when it changes."""
    if conn.dialect.name != "sqlite":
        return
    busy_ms = max(1, int(seconds * 1000))
    if conn.info.get(BUSY_MS) == busy_ms:
        return
    cursor = await raw.execute(f"PRAGMA busy_timeout={busy_ms}")
    await cursor.close()
    conn.info[BUSY_MS] = busy_ms


@contextlib.asynccontextmanager
async def bounded_connection(engine: AsyncEngine, seconds: float,
                             begin: bool) -> AsyncIterator[AsyncConnection]:
    """A connection (in a transaction committed at the end if ``begin``) that the block
    must be done with within ``seconds``, checkout and commit included; else
    :class:`TimeoutError`, with the transaction rolled back or its connection dropped,
    and nothing waited on past the bound (so a hung server costs a caller ``seconds``,
    not the driver's timeouts). Cancellation mid-statement drops the connection rather
    than reusing it. Once committed, the block has succeeded whatever the close does.
    Out of time while COMMIT was under way: :class:`CommitUnknown`."""
    committing = False
    try:
        async with asyncio.timeout(seconds):
            conn = await _acquire(engine)
            try:
                raw = await _driver(conn)
                await _bound_lock_wait(conn, raw, seconds)
            except BaseException:
                _in_background(_discard(conn))
                raise
            try:
                transaction = await conn.begin() if begin else None
                yield conn
                if transaction is not None:
                    committing = True
                    await _commit(transaction, raw)
            except asyncio.CancelledError:
                _terminate(raw)
                _in_background(_discard(conn))
                raise
            except BaseException as exc:
                await _release(conn, raw)
                if _connection_lost(exc):
                    if committing:  # the server may have applied it before the break
                        raise CommitUnknown(f"connection lost during COMMIT: {exc}") from exc
                    raise SqlConnectionLost(str(exc)) from exc
                raise
    except TimeoutError as exc:
        if committing and not isinstance(exc, CommitUnknown):
            raise CommitUnknown(f"no answer to COMMIT within {seconds} s") from exc
        raise
    await _close_committed(conn, seconds)


class CommitUnknown(TimeoutError):
    """The bound ran out while COMMIT was on its way, or the connection broke before its
    answer came: the transaction may or may not have committed, so the caller must
    assume neither (a reconciler decides later)."""


class SqlConnectionLost(ConnectionError):
    """The connection broke mid-call (reset, the server restarted or failed over), before
    any COMMIT: nothing was committed, and a later call on a new connection may succeed.
    A :class:`ConnectionError` so that every handler of an unreachable database takes
    it (503 with Retry-After): asyncpg's ``ConnectionDoesNotExistError`` and
    ``AdminShutdownError`` reach SQLAlchemy as a plain ``DBAPIError``, which a request
    answered with 500."""


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the connection breaking, not the SQL failing: SQLAlchemy flags
    a driver error after which the connection is closed ``connection_invalidated``."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


CLEANUP_WAIT_S = 3.0
"""How long closing a :class:`Database` waits for the connections given up on."""


async def settle_cleanups() -> None:
    """Let the connections given up on finish closing (bounded), before an engine goes."""
    if _CLEANUPS:
        await asyncio.wait(set(_CLEANUPS), timeout=CLEANUP_WAIT_S)


PROBE_CONNECTIONS = 1
"""Connections a pool keeps beyond what its lines hand out (``sql_lines``: requests and
background jobs take every configured one): readiness's probe
(:meth:`gameserver.db.database.Database.probe`), so it never waits behind a burst."""


class SqlLine:
    """The line in front of one SQL pool: at most ``size`` calls (the pool's connections)
    at work, the rest waiting their turn in order for up to ``wait`` seconds, then
    :class:`TimeoutError` (503 with Retry-After).

    Why: a request's SQL call is bounded (``PETBOX_SQL_TIMEOUT``) so that a hung
    database costs a shopper that bound and no more. Waiting for a pooled connection
    used to count against it, so a burst of admitted requests (256 in flight, 30
    connections) spent its bound in the pool's queue and was refused although SQL
    answered every call in milliseconds. In the line, waiting is bounded separately
    (``PETBOX_SQL_POOL_TIMEOUT``) and a call's own bound starts when it has a
    connection to itself.

    The price: while SQL hangs, a crowd's calls wait their turn before their bound, so
    one may take up to ``wait`` + the call's bound. (An earlier version turned the line
    away at once when a call timed out with nothing finished meanwhile; on a starved
    2-core machine a congested event loop looked exactly like that, and a 1,000-draw
    burst was refused whole.)
    """

    def __init__(self, size: int, wait: float) -> None:
        self.size, self.wait = size, wait
        self._slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn (:class:`TimeoutError` past ``wait``), hold it for the block."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise TimeoutError(f"no SQL connection free within {self.wait} s") from None
        else:
            await self._slots.acquire()  # a free turn, nobody waiting: never suspends
        try:
            yield
        finally:
            self._slots.release()
