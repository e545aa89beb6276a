"""A server with no shadow database (PostgreSQL without ``PETBOX_SHADOW_DATABASE_URL``)
cannot serve load-test traffic: it says so when the load-test session is asked for."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from gameserver.app import create_app
from gameserver.db.database import Database
from gameserver.http.signing import session_signature
from gameserver.ops.provision import create_merchant
from gameserver.ops.settings import Settings
from loadtests.replay import ReplayConfig, ReplayError, probe_merchant
from tests.conftest import ManualClock


async def test_load_test_session_refused_without_shadow_data(
        aiohttp_client: Any, settings: Settings, sqlite_template: Path, tmp_path: Path,
        clock: ManualClock) -> None:
    """``createSession`` with ``shadow: true`` used to answer 201 with a token every
    shopper route then refused (403), so a load test's probe passed and the whole replay
    was refused request by request. Now the session itself is refused, 403 with the
    reason, and only once the merchant's mark and signature were checked; a real
    session of the same merchant is still 201."""
    clock.set(time.time())  # the load tester's probe signs with the real time
    real = tmp_path / "real.sqlite"  # not *.db: no shadow database is derived beside it
    shutil.copy(sqlite_template, real)
    cfg = settings.with_overrides(database_url=f"sqlite+aiosqlite:///{real}",
                                  shadow_database_url=None)
    assert cfg.effective_shadow_database_url is None
    db = Database(cfg.database_url)
    try:
        now = int(clock.now())
        loadshop = await create_merchant(db, "lt", now, load_test=True)
        plain = await create_merchant(db, "plain", now)
    finally:
        await db.close()
    client = await aiohttp_client(create_app(cfg, clock=clock))

    def login(creds: Any, user: str, shadow: bool) -> dict[str, Any]:
        sign = session_signature(creds.signing_secret, creds.merchant, user, now,
                                 shadow=shadow)
        return {"merchant": creds.merchant, "user": user, "ts": now, "sign": sign,
                **({"shadow": True} if shadow else {})}

    refused = await client.post("/v1/sessions", json=login(loadshop, "u1", True))
    assert refused.status == 403
    assert await refused.json() == {"error": {
        "code": "forbidden", "details": {},
        "message": "shadow traffic is not configured on this server "
                   "(set PETBOX_SHADOW_DATABASE_URL)"}}
    real_session = await client.post("/v1/sessions", json=login(loadshop, "u1", False))
    assert real_session.status == 201
    not_marked = await client.post("/v1/sessions", json=login(plain, "u1", True))
    assert not_marked.status == 403
    assert (await not_marked.json())["error"]["message"] == (
        "this merchant is not approved for load testing")
    forged = login(loadshop, "u1", True)
    forged["sign"] = "0" * 64
    assert (await client.post("/v1/sessions", json=forged)).status == 401

    # The load tester's probe stops a shadow replay there, saying why; a --real-data one
    # needs no shadow data and goes ahead (the refusal came after the merchant's mark).
    base = str(client.make_url("/")).rstrip("/")
    cfg = ReplayConfig(traces=(), base_url=base, merchant="lt",
                       signing_secret=loadshop.signing_secret)
    with pytest.raises(ReplayError) as refused_probe:
        await asyncio.to_thread(probe_merchant, cfg)
    assert str(refused_probe.value) == (
        "the target refuses load-test sessions: shadow traffic is not configured on this "
        "server (set PETBOX_SHADOW_DATABASE_URL): nothing was sent")
    await asyncio.to_thread(probe_merchant, dataclasses.replace(cfg, shadow=False))
