"""Admission control: beyond ``max_inflight`` + ``max_queued`` a request is refused at
once with ``503 overloaded`` and ``Retry-After``, a queued one after ``queue_wait``; the
operations endpoints are never refused; ``/metrics`` counts it all."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from economy.errors import DomainError
from gameserver.app import create_app
from gameserver.db.connections import SqlLine
from gameserver.db.database import Database, make_engine
from gameserver.http.admission import Admission
from gameserver.http.errors import http_status
from gameserver.ops.metrics import Metrics
from gameserver.ops.settings import Settings
from tests.conftest import World
from tests.integration.test_boxes_http import BOX_CONFIG, SERIES


async def test_bound_queue_and_refusals() -> None:
    metrics = Metrics()
    adm = Admission(max_inflight=2, max_queued=1, queue_wait=0.2, metrics=metrics)
    await adm.acquire()
    await adm.acquire()
    queued = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0.01)
    assert (adm.in_flight, adm.queued) == (2, 1)
    with pytest.raises(DomainError) as full:
        await adm.acquire()  # the queue is full: refused at once
    assert http_status(full.value) == 503 and full.value.code == "overloaded"
    assert full.value.details == {"retry_after": 1, "reason": "queue_full"}
    adm.release()
    await queued  # the queued request got the slot given back
    assert (adm.in_flight, adm.queued) == (2, 0)
    with pytest.raises(DomainError) as late:
        await adm.acquire()  # waits queue_wait, then refused
    assert late.value.details["reason"] == "queue_timeout"
    assert (adm.in_flight, adm.queued) == (2, 0)
    rejected = {s.labels["reason"]: s.value for s in metrics.admission_rejected.collect()[0]
                .samples if s.name.endswith("_total")}
    assert rejected == {"queue_full": 1.0, "queue_timeout": 1.0}


async def test_http_overload_is_503_with_retry_after(aiohttp_client: Any, settings: Settings,
                                                     db: Any, clock: Any) -> None:
    tight = settings.with_overrides(max_inflight=1, max_queued=0, queue_wait=0.0)
    client = await aiohttp_client(create_app(tight, clock=clock))
    world = World(client, db, clock, BOX_CONFIG)
    await world.merchant("shop", config=BOX_CONFIG)
    token = await world.token("u1")
    url = str(client.make_url(f"{SERIES}/draw"))
    ops = [str(client.make_url(p)) for p in ("/healthz", "/readyz", "/metrics")]

    async def draw(http: aiohttp.ClientSession, i: int) -> tuple[int, str | None, Any]:
        async with http.post(url, json={"count": 1}, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": f"k{i}"}) as resp:
            return resp.status, resp.headers.get("Retry-After"), await resp.json()

    async def probe(http: aiohttp.ClientSession, u: str) -> int:
        async with http.get(u) as resp:
            return resp.status

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        results = await asyncio.gather(*[draw(http, i) for i in range(40)])
        probes = await asyncio.gather(*[probe(http, u) for u in ops * 5])
        metrics = await (await http.get(ops[2])).text()
    refused = [(ra, body) for status, ra, body in results if status == 503]
    assert refused, [s for s, _, _ in results]
    assert all(ra == "1" and body["error"]["code"] == "overloaded" and
               set(body["error"]) == {"code", "message", "details"} for ra, body in refused)
    assert {s for s, _, _ in results} <= {200, 503}
    assert probes == [200] * len(probes)  # operations endpoints are not admitted
    assert f'petbox_admission_rejected_total{{reason="queue_full"}} {len(refused)}.0' in metrics
    assert "petbox_admission_in_flight 0.0" in metrics
    assert "petbox_admission_queued 0.0" in metrics


async def test_missing_idempotency_key_is_400_before_429(aiohttp_client: Any,
                                                         settings: Settings, db: Any,
                                                         clock: Any) -> None:
    from gameserver.http.rates import parse_rate

    limited = settings.with_overrides(rate_player=parse_rate("PETBOX_RATE_PLAYER", "0.1,1",
                                                             None))
    client = await aiohttp_client(create_app(limited, clock=clock))
    world = World(client, db, clock, BOX_CONFIG)
    await world.merchant("shop", config=BOX_CONFIG)
    token = await world.token("u1")
    assert (await world.post(f"{SERIES}/draw", token, {"count": 1}, "k1")).status == 200
    missing = await world.post(f"{SERIES}/draw", token, {"count": 1})
    assert missing.status == 400  # was 429: the limiter ran first
    assert (await missing.json())["error"]["code"] == "idempotency_key_required"
    limited_resp = await world.post(f"{SERIES}/draw", token, {"count": 1}, "k2")
    assert limited_resp.status == 429 and int(limited_resp.headers["Retry-After"]) >= 1
    doc = await (await client.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = op["responses"]
            if path not in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                assert "Retry-After" in codes["503"]["headers"], (method, path)
            if path.startswith("/v1/"):  # merchant routes and events are limited too
                assert "Retry-After" in codes["429"]["headers"], (method, path)


def _sqlite(path: Any, timeout: float, line: SqlLine | None) -> Database:
    """A SQLite database with one pooled connection, each call bounded by ``timeout``."""
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url, 10.0, pool_size=1, max_overflow=0, pool_timeout=10.0)
    return Database(url, engine, timeout=timeout, line=line)


async def _select_after(db: Database, seconds: float) -> float:
    """One call that holds its connection ``seconds`` (work, or SQL not answering)
    before a real statement; how long the call took end to end."""
    started = time.monotonic()
    async with db.connect() as conn:
        await asyncio.sleep(seconds)
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    return time.monotonic() - started


async def test_waiting_for_a_connection_does_not_count_against_the_call_bound(
        tmp_path: Any) -> None:
    """Four calls of 0.15 s each on one connection, bound 0.3 s per call: in the pool's
    queue the last ones spend their bound waiting and fail; in the line they wait
    their turn (bounded by the line's wait) and all succeed."""
    pooled = _sqlite(tmp_path / "a.db", 0.3, None)
    lined = _sqlite(tmp_path / "b.db", 0.3, SqlLine(1, wait=5.0))
    try:
        before = await asyncio.gather(*[_select_after(pooled, 0.15) for _ in range(4)],
                                      return_exceptions=True)
        assert sum(isinstance(r, TimeoutError) for r in before) >= 2, before
        after = await asyncio.gather(*[_select_after(lined, 0.15) for _ in range(4)])
        assert sorted(after)[-1] >= 0.6 - 0.01  # the last waited three turns, and made it
    finally:
        await pooled.close()
        await lined.close()


async def test_line_bounds_a_crowd_while_sql_hangs(tmp_path: Any) -> None:
    """SQL not answering (each call would take 1 s): the first call fails at its 0.3 s
    bound, the one behind it after its turn and bound (0.6 s), the rest at the line's
    0.5 s wait; nobody waits longer than the line's wait + the bound."""
    db = _sqlite(tmp_path / "c.db", 0.3, SqlLine(1, wait=0.5))
    try:
        started = time.monotonic()
        results = await asyncio.gather(*[_select_after(db, 1.0) for _ in range(4)],
                                       return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert [str(r) for r in results].count("no SQL connection free within 0.5 s") == 2
        assert 0.6 - 0.01 <= elapsed < 0.5 + 0.3 + 0.2
        assert await _select_after(db, 0.0) < 0.3  # SQL answers again: turns at once
    finally:
        await db.close()


async def test_a_body_sent_slowly_holds_no_slot_and_times_out(
        aiohttp_client: Any, settings: Settings, clock: Any) -> None:
    """A client that sends a request's headers and then its body a byte at a time (no
    token needed: ``createSession``) held one of the process's slots for as long as it
    liked, so ``max_inflight`` such connections refused every merchant's shoppers. The
    request is admitted once its body is in; one still incomplete after ``body_wait``
    is 400 ``body_timeout``, answered at once."""
    tight = settings.with_overrides(max_inflight=1, max_queued=0, queue_wait=0.0,
                                    body_wait=0.3)
    client = await aiohttp_client(create_app(tight, clock=clock))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /v1/sessions HTTP/1.1\r\nHost: petbox\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(0.05)  # the slow request has reached the server
    try:
        other = await client.get("/console")  # another request, while the body trickles
        assert other.status == 200  # was 503 overloaded: the slow request held the slot
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head
    assert json.loads(body)["error"] == {
        "code": "body_timeout", "message": "the request body did not arrive within 0.3 s; "
        "send it again whole", "details": {"wait_s": 0.3}}


async def test_waiting_is_fair_between_games() -> None:
    """One game's crowd fills the queue; another game's request is still queued (the
    crowd's newest waiter is refused instead) and gets the second slot given back,
    not the fifth."""
    metrics = Metrics()
    adm = Admission(max_inflight=1, max_queued=4, queue_wait=5.0, metrics=metrics)
    await adm.acquire("crowd")
    crowd = [asyncio.create_task(adm.acquire("crowd")) for _ in range(4)]
    await asyncio.sleep(0)
    assert (adm.in_flight, adm.queued) == (1, 4)
    other = asyncio.create_task(adm.acquire("other"))
    await asyncio.sleep(0)
    assert (adm.in_flight, adm.queued) == (1, 4)
    with pytest.raises(DomainError) as refused:
        await crowd[3]  # the crowd's newest waiter made room
    assert refused.value.details == {"retry_after": 1, "reason": "queue_full"}
    tasks = {"other": other, **{f"crowd{i}": t for i, t in enumerate(crowd[:3])}}
    served = []
    for _ in range(4):
        adm.release()
        await asyncio.sleep(0)
        served += [name for name, t in tasks.items() if t.done() and name not in served]
    assert served == ["crowd0", "other", "crowd1", "crowd2"]
    assert (adm.in_flight, adm.queued) == (1, 0)
    alone = [asyncio.create_task(adm.acquire("crowd")) for _ in range(4)]
    await asyncio.sleep(0)
    with pytest.raises(DomainError):  # a lone game gets no room from itself
        await adm.acquire("crowd")
    for t in alone:  # their clients go away: they leave the queue
        t.cancel()
    await asyncio.gather(*alone, return_exceptions=True)
    assert (adm.in_flight, adm.queued) == (1, 0)
    rejected = {s.labels["reason"]: s.value for s in metrics.admission_rejected.collect()[0]
                .samples if s.name.endswith("_total")}
    assert rejected == {"queue_full": 2.0}


async def test_load_test_traffic_waits_behind_real_shoppers() -> None:
    """A rehearsal's crowd fills the queue: a real shopper's request takes the place of
    its newest waiter, and slots given back go to real shoppers before any of it."""
    adm = Admission(max_inflight=1, max_queued=3, queue_wait=5.0)
    await adm.acquire("shop/d11", shadow=True)
    rehearsal = [asyncio.create_task(adm.acquire("shop/d11", shadow=True)) for _ in range(3)]
    await asyncio.sleep(0)
    real = [asyncio.create_task(adm.acquire(t)) for t in ("shop/d11", "other/d11")]
    await asyncio.sleep(0)
    assert (adm.in_flight, adm.queued) == (1, 3)
    refused = await asyncio.gather(*rehearsal[1:], return_exceptions=True)
    assert [getattr(e, "code", None) for e in refused] == ["overloaded", "overloaded"]
    adm.release()
    await asyncio.sleep(0)
    assert [t.done() for t in real] == [True, False] and not rehearsal[0].done()
    adm.release()
    await asyncio.sleep(0)
    assert real[1].done() and not rehearsal[0].done()
    adm.release()
    await asyncio.sleep(0)
    assert rehearsal[0].done() and (adm.in_flight, adm.queued) == (1, 0)


async def test_made_up_games_buy_no_queue_of_their_own(aiohttp_client: Any,
                                                       settings: Settings, clock: Any) -> None:
    """A crowd holds the slot and fills the queue; a client naming a new game in each
    request (without a token: nothing it can make up is a tenant) takes no queued
    shopper's place: it is refused, the crowd is served (made-up games were tenants of
    their own, and each one pushed a queued shopper out)."""
    from aiohttp import web

    app = create_app(settings.with_overrides(max_inflight=1, max_queued=4, queue_wait=5.0),
                     clock=clock)
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app.router.add_get("/v1/games/{game}/hold", hold)
    client = await aiohttp_client(app)

    async def get(path: str) -> tuple[int, str]:
        async with client.session.get(client.make_url(path)) as resp:
            body = await resp.json()
            return resp.status, body.get("error", {}).get("details", {}).get("reason", "")

    crowd = [asyncio.create_task(get("/v1/games/squirrel/hold")) for _ in range(5)]
    await asyncio.sleep(0.2)
    made_up = await asyncio.gather(*[get(f"/v1/games/fake{i}/me") for i in range(3)])
    release.set()
    assert made_up == [(503, "queue_full")] * 3
    assert [status for status, _ in await asyncio.gather(*crowd)] == [200] * 5
