"""Admission control: beyond ``max_inflight`` + ``max_queued`` a request is refused at
once with ``503 overloaded`` and ``Retry-After``, a queued one after ``queue_wait``; the
operations endpoints are never refused; ``/metrics`` counts it all."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from economy.errors import DomainError
from gameserver.admission import Admission
from gameserver.app import create_app
from gameserver.metrics import Metrics
from gameserver.settings import Settings
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
    assert full.value.status == 503 and full.value.code == "overloaded"
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
    from gameserver.rates import parse_rate

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
            if path.startswith("/v1/") and not path.startswith(("/v1/admin/", "/v1/events/")):
                assert "Retry-After" in codes["429"]["headers"], (method, path)
