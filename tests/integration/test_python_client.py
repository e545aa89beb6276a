"""The Python client for merchants' backends (``clients/python/petbox_client.py``)
against a real petbox server (real Redis and SQL): signing, the admin API, typed
errors, and retries that reuse one Idempotency-Key per logical action.

The client is synchronous (urllib), so each call runs in a worker thread while the
test server answers on the event loop."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gameserver.http.signing import session_signature
from gameserver.ops.settings import Settings
from tests.conftest import World, app_persister
from tests.integration.test_coupon_wallet import WALLET_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "petbox_client", ROOT / "clients" / "python" / "petbox_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["petbox_client"] = module  # dataclasses resolve names through it
    spec.loader.exec_module(module)
    return module


pc = _load()


class Recorder:
    """A transport around the real one: records every attempt; ``script`` may turn
    attempt n into a lost reply ("lost": sent, then no answer) or a canned 503."""

    def __init__(self, script: dict[int, str] | None = None) -> None:
        self.script = script or {}
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                 timeout: float) -> Any:
        self.calls.append((method, url, dict(headers)))
        what = self.script.get(len(self.calls))
        if what == "busy":
            return pc.Response(503, {"retry-after": "1"},
                               b'{"error": {"code": "busy", "message": "m", "details": {}}}')
        if what in ("unavailable", "limited"):  # Retry-After 5 s, and 60 s
            status, wait = (503, "5") if what == "unavailable" else (429, "60")
            return pc.Response(status, {"retry-after": wait},
                               b'{"error": {"code": "%s", "message": "m", "details": {}}}'
                               % what.encode())
        resp = pc.urllib_transport(method, url, headers, body, timeout)
        if what == "lost":
            raise TimeoutError("the reply was lost")  # after the server applied it
        return resp


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Partial refunds on (the client sends ``refund_id``)."""
    return settings.with_overrides(partial_refunds=True)


@pytest.fixture
async def shop(world: World) -> World:
    world.clock.set(time.time())  # the client signs with the real clock
    await world.merchant("boxshop", game="squirrel", config=WALLET_CONFIG)
    return world


def client(world: World, transport: Any = None, sleeps: list[float] | None = None) -> Any:
    creds = world.merchants["boxshop"]
    return pc.PetboxClient(str(world.client.make_url("")), creds.api_key, merchant="boxshop",
                           signing_secret=creds.signing_secret,
                           transport=transport or pc.urllib_transport,
                           sleep=(sleeps.append if sleeps is not None else lambda _: None))


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_signed_login_is_accepted(shop: World) -> None:
    c = client(shop)
    session = await call(c.create_session, "alice")
    assert set(session) == {"token", "expires_at"}
    me = await shop.get("/v1/games/squirrel/me", session["token"])
    assert me.status == 200
    login = pc.sign_login("boxshop", "alice", shop.merchants["boxshop"].signing_secret,
                          now=1_700_000_000)
    assert login["sign"] == pc.session_sign(shop.merchants["boxshop"].signing_secret,
                                            "boxshop", "alice", 1_700_000_000)
    assert len(login["sign"]) == 64  # hex HMAC-SHA256 keyed with the secret's text


@pytest.mark.parametrize("extra", [{"age_band": "8_17", "guardian_consent": True},
                                   {"age_band": "under_8"}])
async def test_sign_login_signs_an_age_band_petbox_accepts(shop: World,
                                                           extra: dict[str, Any]) -> None:
    """An age band (with guardian consent) is signed as petbox signs it, and accepted;
    the same band sent without being signed is refused (a client cannot claim one)."""
    secret = shop.merchants["boxshop"].signing_secret
    now = int(time.time())
    login = pc.sign_login("boxshop", "kid", secret, now=now, **extra)
    assert login["sign"] == session_signature(
        secret, "boxshop", "kid", now, extra["age_band"], extra.get("guardian_consent", False))
    created = await shop.client.post("/v1/sessions", json=login)
    assert created.status == 201, await created.text()
    unsigned = {**pc.sign_login("boxshop", "kid", secret, now=now), "age_band": "18_plus"}
    assert (await shop.client.post("/v1/sessions", json=unsigned)).status == 401
    shadow = pc.sign_login("boxshop", "bot", secret, now=now, shadow=True)
    assert shadow["shadow"] is True
    assert shadow["sign"] == session_signature(secret, "boxshop", "bot", now, shadow=True)


async def test_a_lost_reply_is_retried_with_the_same_key_and_applied_once(
        shop: World) -> None:
    sleeps: list[float] = []
    recorder = Recorder({1: "lost"})
    c = client(shop, recorder, sleeps)
    out = await call(c.set_stock, "squirrel", "coupon_x", 10)
    assert out["stock"]["total"] == 110  # the replayed first answer
    keys = [h["Idempotency-Key"] for _, _, h in recorder.calls]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(sleeps) == 1
    stock = {r["ref"]: r for r in (await call(c.get_stock, "squirrel"))["stock"]}
    assert stock["prize:coupon_x"]["total"] == 110  # added once, not twice
    again = await call(c.set_stock, "squirrel", "coupon_x", 10)  # a new action: new key
    assert again["stock"]["total"] == 120


async def test_busy_is_retried_after_retry_after(shop: World) -> None:
    sleeps: list[float] = []
    recorder = Recorder({1: "busy"})
    c = client(shop, recorder, sleeps)
    out = await call(c.grant_player, "squirrel", "carol", "welcome", wallet={"acorn": 5},
                     create=True)
    assert out["wallet"] == {"acorn": 1005}
    assert sleeps == [1.0]
    assert recorder.calls[0][2]["Idempotency-Key"] == recorder.calls[1][2]["Idempotency-Key"]


async def test_retry_after_is_waited_in_full_and_a_longer_one_is_not_retried(
        shop: World) -> None:
    """Retry-After 5 s (max_backoff 5 s): the retry waits all of it. Retry-After 60 s:
    raised at once with its wait, not sent again before the server said."""
    sleeps: list[float] = []
    recorder = Recorder({1: "unavailable"})
    out = await call(client(shop, recorder, sleeps).set_stock, "squirrel", "coupon_x", 1)
    assert out["stock"]["total"] == 101
    assert sleeps == [5.0]

    sleeps.clear()
    recorder = Recorder({1: "limited", 2: "limited", 3: "limited"})
    with pytest.raises(pc.PetboxError) as limited:
        await call(client(shop, recorder, sleeps).set_stock, "squirrel", "coupon_x", 1)
    assert (len(recorder.calls), sleeps) == (1, [])
    assert (limited.value.code, limited.value.retry_after) == ("limited", 60.0)


async def test_refusals_are_typed_errors_and_not_retried(shop: World) -> None:
    recorder = Recorder()
    c = client(shop, recorder)
    with pytest.raises(pc.PetboxError) as missing:
        await call(c.grant_player, "squirrel", "nobody", "typo", wallet={"acorn": 5})
    assert (missing.value.status, missing.value.code) == (404, "player_not_found")
    await call(c.grant_player, "squirrel", "dan", "welcome", create=True)
    with pytest.raises(pc.PetboxError) as short:
        await call(c.grant_player, "squirrel", "dan", "fix", deduct={"wallet": {"acorn": 5000}})
    assert (short.value.status, short.value.code) == (409, "insufficient_funds")
    assert len(recorder.calls) == 3  # one attempt each


async def test_orders_and_coupon_redemption(shop: World) -> None:
    c = client(shop)
    first = await call(c.send_order, "squirrel", "erin", "o-1", amount_fen=100)
    again = await call(c.send_order, "squirrel", "erin", "o-1", amount_fen=100)
    assert first["duplicate"] is False and again["duplicate"] is True
    part = await call(c.send_order, "squirrel", "erin", "o-1", "refunded", amount_fen=40,
                      refund_id="R-1")
    assert (part["refund"], part["amount_fen"], part["remaining_fen"]) == ("R-1", 40, 60)
    token = (await call(c.create_session, "erin"))["token"]
    drawn = await shop.post("/v1/games/squirrel/boxes/forest/draw", token, {"count": 1}, "d")
    assert drawn.status == 200
    code = (await (await shop.get("/v1/games/squirrel/coupons", token)).json())[
        "coupons"][0]["code"]
    used = await call(c.redeem_coupon, "squirrel", code, "order-9")
    assert used["coupon"]["state"] == "redeemed"
    with pytest.raises(pc.PetboxError) as twice:
        await call(c.redeem_coupon, "squirrel", code, "order-10")
    assert twice.value.code == "coupon_already_redeemed"


async def test_export_events_reads_the_ndjson_stream_page_by_page(shop: World) -> None:
    """exportEvents answers NDJSON, not one JSON document: the client reads it line by
    line, follows ``more`` page after page, and resumes an interrupted stream (an
    ``error`` line) from its cursor."""
    c = client(shop)
    for n, user in enumerate(("fay", "gil", "hal")):
        await call(c.grant_player, "squirrel", user, "welcome", wallet={"acorn": n + 1},
                   create=True)
    await app_persister(shop.client.app, consumer="c1").run_once()
    whole = await call(c.request, "GET", "/v1/admin/games/squirrel/export")
    assert isinstance(whole, list) and whole[-1]["type"] == "end"
    events = whole[:-1]
    assert len(events) >= 3 and all(e["type"] != "end" for e in events)

    paged = await call(lambda: list(c.export_events("squirrel", page=2)))
    assert paged == events

    cut = {"n": 0}

    def cut_once(method: str, url: str, headers: dict[str, str], body: bytes | None,
                 timeout: float) -> Any:
        resp = pc.urllib_transport(method, url, headers, body, timeout)
        cut["n"] += 1
        if cut["n"] == 1:  # SQL failed after the first line: an error line ends it
            first = resp.body.splitlines()[0]
            error = {"type": "error", "cursor": json.loads(first)["cursor"],
                     "message": "export interrupted; resume from cursor"}
            return pc.Response(200, resp.headers, first + b"\n" + json.dumps(error).encode())
        return resp

    resumed = await call(lambda: list(client(shop, cut_once).export_events("squirrel")))
    assert resumed == events and cut["n"] == 2
