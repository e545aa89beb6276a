"""OWASP API Security Top 10 (2023), as issue 7 lists it, against a real app on real
Redis and SQL: object-level authorization (BOLA) on every route with an id, the kind
of credential per route, mass assignment, tampered and expired credentials, webhook
replay, oversized and hostile bodies, rate limits, and coupon codes."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from typing import Any

import pytest
from sqlalchemy import select

from gameserver.db import models as m
from gameserver.http.auth import TokenSigner, body_signature
from gameserver.http.rates import RateLimit
from tests.conftest import World
from tests.integration.test_boxes_http import BOX_CONFIG

GAME = "/v1/games/squirrel"
RIVAL_GAME = "rivalgame"
IDS = {"game": RIVAL_GAME, "series": "forest", "task": "t1", "prize": "coupon_x",
       "user": "rival-user", "version": "1", "board": "b1"}


@pytest.fixture
async def two(world: World) -> World:
    """Merchant ``shop`` (game squirrel) and merchant ``rival`` (game rivalgame, played
    by ``rival-user``)."""
    await world.merchant("rival", game=RIVAL_GAME, config=BOX_CONFIG)
    rival = await world.token("rival-user", merchant_id="rival")
    resp = await world.post(f"/v1/games/{RIVAL_GAME}/pet", rival,
                            {"species": "squirrel", "name": "R"}, "adopt")
    assert resp.status == 201
    return world


BODIES: dict[str, Any] = {"rollbackGame": {"version": 1}, "simulateGame": {"series": "forest"},
                          "setStock": {"add": 1}, "grantPlayer": {"reason": "x"}}
"""Valid bodies where a handler checks the body before the game (422 for any game)."""
CREATES = {"putGameDraft"}
"""Game ids are per merchant: a draft under the rival's game id is a new game of the
caller's own (checked below not to touch the rival's)."""


def _operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    doc = world.client.app.router  # the routes the app really serves
    from gameserver.api import ops as ops_api

    spec = world.client.app[ops_api.OPENAPI]
    assert doc is not None
    return [(method.upper(), path, op) for path, item in spec["paths"].items()
            for method, op in item.items()]


def _fill(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda mt: IDS.get(mt.group(1), "x1"), path)


async def _call(world: World, method: str, path: str, credential: str | None,
                body: Any = None) -> Any:
    headers = {"Idempotency-Key": "sec-1"}
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    return await world.client.request(method, path, json=body if method != "GET" else None,
                                      headers=headers)


async def test_bola_another_merchants_ids_are_404(two: World) -> None:
    """Every route that takes a game (and user, prize, version...) id: the rival's → 404."""
    key = two.merchants["shop"].api_key
    token = await two.token("alice")
    checked, wrong = [], []
    for method, path, op in _operations(two):
        if "{game}" not in path or op["operationId"] in CREATES:
            continue
        security = op.get("security") or []
        credential = key if {"merchantKey": []} in security else token
        resp = await _call(two, method, _fill(path), credential, BODIES.get(op["operationId"], {}))
        if resp.status != 404:
            wrong.append((method, path, resp.status, (await resp.text())[:200]))
        checked.append(op["operationId"])
    assert not wrong, wrong
    # the rival's player, by a merchant key of shop, on shop's own game
    resp = await _call(two, "GET", "/v1/admin/games/squirrel/players/rival-user", key)
    assert resp.status == 404
    assert len(checked) >= 15, checked


async def test_wrong_kind_of_credential_is_403(two: World) -> None:
    key = two.merchants["shop"].api_key
    token = await two.token("alice")
    for method, path, op in _operations(two):
        security = op.get("security") or []
        if {"merchantKey": []} in security:
            resp = await _call(two, method, _fill(path).replace(RIVAL_GAME, "squirrel"), token,
                               {})
        elif {"playerToken": []} in security:
            resp = await _call(two, method, _fill(path).replace(RIVAL_GAME, "squirrel"), key,
                               {})
        else:
            continue
        assert resp.status == 403, (method, path, resp.status, await resp.text())


@pytest.mark.parametrize(("path", "body"), [
    (f"{GAME}/pet", {"species": "squirrel", "name": "N", "wallet": {"acorn": 10**6}}),
    (f"{GAME}/pet", {"species": "squirrel", "name": "N", "level": 99, "xp": 10**6}),
    (f"{GAME}/pet/feed", {"food": "snack", "price": {"acorn": 0}}),
    (f"{GAME}/checkin", {"streak": 30}),
])
async def test_mass_assignment_is_refused_and_changes_nothing(world: World, path: str,
                                                              body: dict[str, Any]) -> None:
    token = await world.token("alice")
    before = await (await world.get(f"{GAME}/me", token)).json()
    resp = await world.post(path, token, body, "mass-1")
    assert resp.status in (404, 422), await resp.text()  # 404: route not in this build
    after = await (await world.get(f"{GAME}/me", token)).json()
    assert after == before


async def test_draw_body_cannot_choose_the_prize(world: World) -> None:
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    token = await world.token("alice", merchant_id="boxshop")
    resp = await world.post(f"{GAME}/boxes/forest/draw", token,
                            {"count": 1, "item": "coupon_x", "prize": "coupon_x"}, "d1")
    assert resp.status == 422
    assert "item" in json.dumps(await resp.json())


def _tamper(token: str) -> list[str]:
    prefix, payload, mac = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    other = TokenSigner("another-secret-0123456789", 3600).mint("shop", "alice", 0)[0]
    return [f"{prefix}.{flipped}.{mac}", f"{prefix}.{payload}.{mac[:-1]}x",
            f"{prefix}.{payload}", token + "x", other, "pbt1..", "garbage"]


async def test_tampered_expired_and_foreign_tokens_are_401(world: World) -> None:
    token = await world.token("alice")
    for bad in _tamper(token):
        resp = await world.get(f"{GAME}/me", bad)
        assert resp.status == 401, (bad, resp.status)
    world.clock.advance(7200 + 1)
    resp = await world.get(f"{GAME}/me", token)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_bad_session_signatures_are_401(world: World) -> None:
    from gameserver.http.auth import session_signature

    ts = int(world.clock.now())
    secret = world.merchants["shop"].signing_secret
    good = session_signature(secret, "shop", "alice", ts)
    for body in ({"merchant": "shop", "user": "alice", "ts": ts, "sign": good[::-1]},
                 {"merchant": "shop", "user": "mallory", "ts": ts, "sign": good},
                 {"merchant": "shop", "user": "alice", "ts": ts - 601,
                  "sign": session_signature(secret, "shop", "alice", ts - 601)}):
        resp = await world.client.post("/v1/sessions", json=body)
        assert resp.status == 401, body


def _order(ts: int, secret: str, order_id: str = "o1") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"merchant": "shop", "game": "squirrel", "user": "alice",
                       "order_id": order_id, "status": "paid", "amount_fen": 100}).encode()
    return body, {"Content-Type": "application/json", "X-Petbox-Timestamp": str(ts),
                  "X-Petbox-Signature": body_signature(secret, str(ts), body)}


async def test_webhook_replays_are_rejected(world: World) -> None:
    secret = world.merchants["shop"].signing_secret
    now = int(world.clock.now())
    body, headers = _order(now, secret)
    first = await world.client.post("/v1/events/orders", data=body, headers=headers)
    assert first.status == 200, await first.text()
    token = await world.token("alice")
    version = (await (await world.get(f"{GAME}/me", token)).json())["version"]
    # the same delivery again: the first answer (flagged a duplicate), applied once
    again = await world.client.post("/v1/events/orders", data=body, headers=headers)
    assert await again.json() == {**(await first.json()), "duplicate": True}
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await (await world.get(f"{GAME}/me", token)).json())["version"] == version
    # outside the window, either side, even with a valid signature: 401
    for ts in (now - 301, now + 301):
        stale_body, stale = _order(ts, secret, "o2")
        resp = await world.client.post("/v1/events/orders", data=stale_body, headers=stale)
        assert resp.status == 401
    # a captured signature on another body: 401
    other, _ = _order(now, secret, "o3")
    resp = await world.client.post("/v1/events/orders", data=other, headers=headers)
    assert resp.status == 401


async def test_body_over_limit_is_413(world: World) -> None:
    token = await world.token("alice")
    big = {"species": "squirrel", "name": "x" * (70 * 1024)}
    resp = await world.post(f"{GAME}/pet", token, big, "big")
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("raw", [
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 40 + b"1" + b"}" * 40,
    b'{"food": 1' + b"0" * 5000 + b"}",
    b'{"food": "snack", "n": 123456789012345678901234567890}',
    b'{"food": NaN}',
])
async def test_deep_json_and_huge_integers_are_400(world: World, raw: bytes) -> None:
    token = await world.token("alice")
    resp = await world.client.post(f"{GAME}/pet/feed", data=raw, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "deep",
        "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "malformed_json"


async def _limited_client(aiohttp_client: Any, settings: Any, clock: Any, **rates: Any) -> Any:
    from gameserver.app import create_app

    return await aiohttp_client(create_app(settings.with_overrides(**rates), clock=clock))


async def test_per_player_limit_429_with_retry_after(aiohttp_client: Any, settings: Any,
                                                     clock: Any, db: Any) -> None:
    client = await _limited_client(aiohttp_client, settings, clock,
                                   rate_player=RateLimit(2, 5))
    world = World(client, db, clock, BOX_CONFIG)
    await world.merchant()
    alice, bob = await world.token("alice"), await world.token("bob")
    statuses = [(await world.get(f"{GAME}/me", alice)).status for _ in range(8)]
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
    resp = await world.get(f"{GAME}/me", alice)
    body = await resp.json()
    assert resp.status == 429 and body["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) == math.ceil(body["error"]["details"][
        "retry_after_ms"] / 1000) >= 1
    assert (await world.get(f"{GAME}/me", bob)).status == 200  # budgets are per player
    await asyncio.sleep(0.6)  # 2/s: one more request after 0.5 s
    assert (await world.get(f"{GAME}/me", alice)).status == 200


async def test_per_ip_limit_429(aiohttp_client: Any, settings: Any, clock: Any,
                                db: Any) -> None:
    # One request per 10 s after a burst of 10: the 12 requests below get the same two
    # 429s however slowly a busy machine serves them (at 1/s one refilled in a full run).
    client = await _limited_client(aiohttp_client, settings, clock,
                                   rate_ip=RateLimit(0.1, 10))
    world = World(client, db, clock, BOX_CONFIG)
    await world.merchant()
    statuses = [(await client.get(f"{GAME}/boxes/forest?merchant=shop")).status
                for _ in range(12)]
    assert statuses.count(429) >= 2 and 429 not in statuses[:10]
    # operations and merchant routes are not limited per IP
    assert (await client.get("/healthz")).status == 200
    key = world.merchants["shop"].api_key
    resp = await client.get("/v1/admin/games/squirrel/stock",
                            headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200


async def test_bot_speed_draw_bursts_are_capped(aiohttp_client: Any, settings: Any,
                                                clock: Any, db: Any) -> None:
    client = await _limited_client(aiohttp_client, settings, clock,
                                   rate_draw=RateLimit(5, 10), rate_player=RateLimit(20, 40))
    world = World(client, db, clock, BOX_CONFIG)
    await world.merchant()
    token = await world.token("bot")
    burst = await asyncio.gather(*[world.post(f"{GAME}/boxes/forest/draw", token,
                                              {"count": 1}, f"b{i}") for i in range(40)])
    statuses = [r.status for r in burst]
    assert statuses.count(200) <= 10 + 1  # the burst, plus what 5/s refills meanwhile
    assert statuses.count(429) >= 25
    assert all(r.headers.get("Retry-After") for r in burst if r.status == 429)
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["version"] == statuses.count(200)  # a refused draw changed nothing


async def test_coupon_codes_are_unguessable_and_never_logged(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    caplog.set_level(logging.DEBUG)
    tokens = [await world.token(f"s{i}", merchant_id="boxshop") for i in range(5)]
    bodies = []
    for i, token in enumerate(tokens):
        resp = await world.post(f"{GAME}/boxes/forest/draw", token, {"count": 10}, f"k{i}")
        assert resp.status == 200
        bodies.append(await resp.text())
    g = m.grants
    async with world.db.engine.connect() as conn:
        codes = [r[0] for r in await conn.execute(select(g.c.code))]
    assert len(codes) >= 20 and len(set(codes)) == len(codes)
    for code in codes:
        alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        body = code[1:]
        assert set(body) <= alphabet and len(body) * 6 >= 128, code
    logged = caplog.text + "\n".join(bodies)
    assert not [c for c in codes if c in logged]


@pytest.mark.parametrize(("shared", "second_app_status"), [(True, 429), (False, 200)])
async def test_budgets_shared_across_processes_only_in_redis_mode(
        aiohttp_client: Any, settings: Any, clock: Any, db: Any, shared: bool,
        second_app_status: int) -> None:
    """Two apps stand for two server processes on one Redis."""
    rates = {"rate_player": RateLimit(1, 3), "rate_shared": shared}
    first = await _limited_client(aiohttp_client, settings, clock, **rates)
    second = await _limited_client(aiohttp_client, settings, clock, **rates)
    world = World(first, db, clock, BOX_CONFIG)
    await world.merchant()
    alice = await world.token("alice")
    assert [(await world.get(f"{GAME}/me", alice)).status for _ in range(3)] == [200] * 3
    resp = await second.get(f"{GAME}/me", headers={"Authorization": f"Bearer {alice}"})
    assert resp.status == second_app_status
