"""The foundation over HTTP against real Redis and SQL: sessions, credentials,
adopt/feed/getPlayer, idempotency, concurrency and bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gameserver.appkeys import SERVICES, SETTINGS
from gameserver.http.auth import session_signature

GAME = "/v1/games/squirrel"


async def adopt(world: Any, token: str, key: str = "adopt-1") -> Any:
    return await world.post(f"{GAME}/pet", token, {"species": "squirrel", "name": "Nutty"}, key)


async def player(world: Any, token: str) -> dict[str, Any]:
    resp = await world.get(f"{GAME}/me", token)
    assert resp.status == 200
    return dict(await resp.json())


# -- sessions and credentials --------------------------------------------------------------


async def test_session_token_and_expiry(world: Any) -> None:
    token = await world.token("alice")
    assert (await world.get(f"{GAME}/me", token)).status == 200
    world.clock.advance(7200)  # token TTL
    resp = await world.get(f"{GAME}/me", token)
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["details"] == {"expired_at": int(world.clock.now())}


@pytest.mark.parametrize(("skew", "status"), [(-600, 201), (600, 201), (-601, 401), (601, 401)])
async def test_session_ts_window(world: Any, skew: int, status: int) -> None:
    creds = world.merchants["shop"]
    ts = int(world.clock.now()) + skew
    resp = await world.client.post("/v1/sessions", json={
        "merchant": "shop", "user": "u1", "ts": ts,
        "sign": session_signature(creds.signing_secret, "shop", "u1", ts)})
    assert resp.status == status


async def test_session_bad_signature_and_unknown_merchant_look_alike(world: Any) -> None:
    ts = int(world.clock.now())
    bad = await world.client.post("/v1/sessions", json={
        "merchant": "shop", "user": "u1", "ts": ts,
        "sign": session_signature("wrong-secret", "shop", "u1", ts)})
    ghost = await world.client.post("/v1/sessions", json={
        "merchant": "ghost", "user": "u1", "ts": ts,
        "sign": session_signature("wrong-secret", "ghost", "u1", ts)})
    assert bad.status == ghost.status == 401
    assert (await bad.json())["error"] == (await ghost.json())["error"]


async def test_tampered_and_missing_tokens(world: Any) -> None:
    token = await world.token("alice")
    payload = token.split(".")[1]
    forged = token.replace(payload, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"))
    for credential in (forged, token[:-3], "pbt1.x.y", "garbage"):
        resp = await world.get(f"{GAME}/me", credential)
        assert resp.status == 401, credential
    resp = await world.client.get(f"{GAME}/me")
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "missing Authorization header"


async def test_wrong_kind_of_credential_is_403(world: Any) -> None:
    token = await world.token("alice")
    api_key = world.merchants["shop"].api_key
    assert (await world.get(f"{GAME}/me", api_key)).status == 403
    assert (await world.get("/v1/admin/games/squirrel/versions", token)).status == 403
    assert (await world.get("/v1/admin/games/squirrel/versions", api_key)).status == 200


async def test_other_merchants_game_is_404(world: Any) -> None:
    await world.merchant("rival", game="rival-game")
    token = await world.token("alice", merchant_id="rival")
    resp = await world.get(f"{GAME}/me", token)  # 'squirrel' belongs to 'shop'
    assert resp.status == 404
    rival_key = world.merchants["rival"].api_key
    assert (await world.get("/v1/admin/games/squirrel/versions", rival_key)).status == 404
    shop_token = await world.token("alice")
    await adopt(world, shop_token)
    resp = await world.get("/v1/admin/games/squirrel/players/alice", rival_key)
    assert resp.status == 404


# -- the first vertical slice --------------------------------------------------------------


async def test_adopt_feed_and_lazy_decay(world: Any) -> None:
    token = await world.token("alice")
    fresh = await player(world, token)
    assert fresh["player"]["wallet"] == {"acorn": 100}
    assert fresh["player"]["pet"] is None and fresh["version"] == 0

    resp = await adopt(world, token)
    assert resp.status == 201
    assert (await resp.json())["player"]["pet"]["stats"]["satiety"] == {"value": 50.0,
                                                                         "max": 100}
    world.clock.advance(3600 * 2 + 1800)  # 2.5 h at 10/h
    token = await world.token("alice")  # the first one expired after 2 h
    me = await player(world, token)
    assert me["player"]["pet"]["stats"]["satiety"]["value"] == 25.0
    assert me["player"]["pet"]["states"] == ["hungry"]

    resp = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "feed-1")
    assert resp.status == 200
    fed = (await resp.json())["player"]
    assert fed["wallet"] == {"acorn": 90}
    assert fed["pet"]["stats"]["satiety"]["value"] == 45.0
    assert fed["pet"]["states"] == []
    assert fed["pet"]["xp"] == 5
    assert (await player(world, token))["version"] == 2


async def test_decay_floors_at_zero(world: Any) -> None:
    token = await world.token("alice")
    await adopt(world, token)
    world.clock.advance(3600 * 100)
    token = await world.token("alice")
    stats = (await player(world, token))["player"]["pet"]["stats"]
    assert stats["satiety"]["value"] == 0.0
    assert stats["mood"]["value"] == 80.0  # decay 0


async def test_cooldown_and_funds_errors_change_nothing(world: Any) -> None:
    token = await world.token("alice")
    await adopt(world, token)
    ok = await world.post(f"{GAME}/pet/feed", token, {"food": "cake"}, "k1")
    assert ok.status == 200
    cooling = await world.post(f"{GAME}/pet/feed", token, {"food": "cake"}, "k2")
    assert cooling.status == 429
    body = await cooling.json()
    assert body["error"]["code"] == "cooldown"
    assert body["error"]["details"]["retry_after"] == 600
    assert cooling.headers["Retry-After"] == "600"
    world.clock.advance(600)
    poor = await world.post(f"{GAME}/pet/feed", token, {"food": "cake"}, "k3")
    assert poor.status == 409
    assert (await poor.json())["error"] == {
        "code": "insufficient_funds", "message": "not enough acorn: have 40, need 60",
        "details": {"currency": "acorn", "have": 40, "need": 60}}
    me = await player(world, token)
    assert me["version"] == 2 and me["player"]["wallet"] == {"acorn": 40}


async def test_unknown_food_and_no_pet(world: Any) -> None:
    token = await world.token("alice")
    no_pet = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "k1")
    assert no_pet.status == 409 and (await no_pet.json())["error"]["code"] == "no_pet"
    await adopt(world, token)
    unknown = await world.post(f"{GAME}/pet/feed", token, {"food": "pizza"}, "k2")
    assert unknown.status == 404
    assert (await unknown.json())["error"]["details"] == {
        "kind": "food", "id": "pizza", "known": ["cake", "snack"]}
    again = await adopt(world, token, key="adopt-2")
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "pet_already_adopted"


# -- concurrency and idempotency -----------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
async def test_two_concurrent_feeds_both_apply(world: Any, pipelining: bool) -> None:
    token = await world.token("alice")
    await adopt(world, token)
    r1, r2 = await asyncio.gather(
        world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "a"),
        world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "b"))
    assert (r1.status, r2.status) == (200, 200)
    me = await player(world, token)
    assert me["version"] == 3
    assert me["player"]["wallet"] == {"acorn": 80}
    assert me["player"]["pet"]["xp"] == 10


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
async def test_fifty_concurrent_requests_one_key(world: Any, pipelining: bool) -> None:
    token = await world.token("alice")
    await adopt(world, token)
    responses = await asyncio.gather(*[
        world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "same-key")
        for _ in range(50)])
    statuses = [r.status for r in responses]
    bodies = [await r.read() for r in responses]
    assert statuses == [200] * 50
    assert len(set(bodies)) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert replayed.count("true") == 49
    me = await player(world, token)
    assert me["version"] == 2 and me["player"]["wallet"] == {"acorn": 90}

    other = await world.post(f"{GAME}/pet/feed", token, {"food": "cake"}, "same-key")
    assert other.status == 422
    assert (await other.json())["error"]["code"] == "idempotency_mismatch"
    other_route = await world.post(f"{GAME}/pet", token, {"food": "snack"}, "same-key")
    assert other_route.status in (422,)


async def _script_commands(redis_url: str, action: Any) -> tuple[list[str], list[str]]:
    """What ``action`` makes Redis run, watched with MONITOR: (commands sent by the
    server, commands run inside its scripts), names only."""
    import redis.asyncio as aioredis

    watcher, marker = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    await marker.ping()  # its connection hand-shake happens before we watch
    sent: list[str] = []
    by_scripts: list[str] = []
    try:
        async with watcher.monitor() as monitor:
            await action()
            await marker.echo("end-of-action")
            while "end-of-action" not in (cmd := await monitor.next_command())["command"]:
                name = cmd["command"].split(" ", 1)[0]
                (by_scripts if cmd["client_type"] == "lua" else sent).append(name)
    finally:
        await watcher.aclose()
        await marker.aclose()
    return sent, by_scripts


async def test_an_action_is_one_read_only_load_and_one_commit(world: Any,
                                                               redis_url: str) -> None:
    """A player this process did not commit last: one read-only load, one commit."""
    token = await world.token("alice")
    await adopt(world, token)
    world.client.app[SERVICES].store.cache.clear()  # as if another process adopted
    statuses: list[int] = []

    async def feed(food: str, key: str) -> None:
        statuses.append((await world.post(f"{GAME}/pet/feed", token, {"food": food}, key)).status)

    sent, scripts = await _script_commands(redis_url, lambda: feed("snack", "f1"))
    assert statuses == [200] and sent == ["EVALSHA", "EVALSHA"]
    # load.lua reads the key's record and the player; commit.lua checks, then writes
    # (the response goes into the ledger entry, which the player hash and the key's
    # record both name: the flush holds a state back until its entry is drained).
    assert scripts == ["HMGET", "HMGET",
                       "HMGET", "HMGET", "XADD", "HSET", "HSET", "PEXPIRE", "ZADD", "ZADD"]
    # A refused action costs one read-only load and writes nothing at all.
    world.client.app[SERVICES].store.cache.clear()
    sent, scripts = await _script_commands(redis_url, lambda: feed("pizza", "f2"))
    assert statuses[1] == 404 and sent == ["EVALSHA"] and scripts == ["HMGET", "HMGET"]


async def test_an_action_on_a_player_this_process_committed_is_one_commit(
        world: Any, redis_url: str) -> None:
    """The process keeps the state it committed: the next action skips the load, and
    the commit alone checks version, ledger entry and key (gameserver/state/statecache.py).
    A refusal on the cached copy is not final: it loads, and refuses from there."""
    token = await world.token("alice")
    await adopt(world, token)
    metrics = world.client.app[SERVICES].store.metrics
    statuses: list[int] = []

    async def feed(food: str, key: str) -> None:
        statuses.append((await world.post(f"{GAME}/pet/feed", token, {"food": food}, key)).status)

    hits = metrics.state_cache_hits._value.get()
    sent, scripts = await _script_commands(redis_url, lambda: feed("snack", "f1"))
    assert statuses == [200] and sent == ["EVALSHA"]
    assert scripts == ["HMGET", "HMGET", "XADD", "HSET", "HSET", "PEXPIRE", "ZADD", "ZADD"]
    assert metrics.state_cache_hits._value.get() == hits + 1
    sent, scripts = await _script_commands(redis_url, lambda: feed("pizza", "f2"))
    assert statuses[1] == 404 and sent == ["EVALSHA"] and scripts == ["HMGET", "HMGET"]
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["version"] == 2 and me["player"]["wallet"] == {"acorn": 90}


async def test_refused_action_does_not_spend_its_key(world: Any) -> None:
    token = await world.token("alice")
    first = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "retry-me")
    assert first.status == 409  # no pet yet: nothing happened, key not spent
    await adopt(world, token)
    second = await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "retry-me")
    assert second.status == 200


@pytest.mark.parametrize("key", [None, "", "has space", "x" * 65, "ünï"])
async def test_idempotency_key_required_and_well_formed(world: Any, key: str | None) -> None:
    token = await world.token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = await world.client.post(f"{GAME}/pet", json={"species": "squirrel", "name": "N"},
                                   headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "idempotency_key_required"
    assert (await player(world, token))["version"] == 0


# -- bad input -----------------------------------------------------------------------------

BAD_BODIES: list[tuple[bytes, int, str]] = [
    (b"not json", 400, "malformed_json"),
    (b"[1,2]", 422, "invalid_input"),
    (b'{"species": "squirrel"}', 422, "invalid_input"),
    (b'{"species": "squirrel", "name": "N", "wallet": {"acorn": 1000000}}', 422,
     "invalid_input"),
    (b'{"species": 5, "name": "N"}', 422, "invalid_input"),
    (b'{"species": "squirrel", "name": "N", "x": ' + b"[" * 100 + b"]" * 100 + b"}", 400,
     "malformed_json"),
    (b'{"species": "squirrel", "name": 1' + b"0" * 40 + b"}", 400, "malformed_json"),
    (b'{"species": "squirrel", "name": NaN}', 400, "malformed_json"),
    (b"\xff\xfe", 400, "malformed_json"),
    (b'{"species": "dragon", "name": "N"}', 404, "unknown_item"),
    (b'{"species": "squirrel", "name": "' + b"n" * 30 + b'"}', 422, "invalid_input"),
]


@pytest.mark.parametrize(("raw", "status", "code"), BAD_BODIES)
async def test_bad_bodies_are_4xx_json_and_change_nothing(world: Any, raw: bytes, status: int,
                                                          code: str) -> None:
    token = await world.token("alice")
    resp = await world.client.post(f"{GAME}/pet", data=raw, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "bad-1",
        "Content-Type": "application/json"})
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"}
    assert (await player(world, token))["version"] == 0


async def test_mass_assignment_lists_the_unknown_field(world: Any) -> None:
    token = await world.token("alice")
    resp = await world.post(f"{GAME}/pet", token,
                            {"species": "squirrel", "name": "N", "xp": 999}, "k")
    assert resp.status == 422
    assert (await resp.json())["error"]["details"]["problems"] == [
        {"path": "$.xp", "message": "is not a known field"}]


async def test_body_over_limit_is_413(world: Any) -> None:
    token = await world.token("alice")
    big = {"species": "squirrel", "name": "N", "pad": "x" * (70 * 1024)}
    resp = await world.post(f"{GAME}/pet", token, big, "big")
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_unknown_route_and_method(world: Any) -> None:
    resp = await world.client.get("/v1/nothing")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await world.client.delete("/v1/sessions")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_the_operations_endpoints_answer_head(world: Any) -> None:
    """Load balancers and uptime checks often probe with HEAD: the operations endpoints
    answer it as GET, without a body (a shopper route still refuses it)."""
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        resp = await world.client.head(path)
        assert (resp.status, await resp.read()) == (200, b""), path
    resp = await world.client.head("/v1/games/squirrel/me")
    assert resp.status == 405


async def test_an_error_echoes_at_most_256_characters_of_what_was_sent(world: Any) -> None:
    """A 404 names the id it did not find, but a 5,000-character id comes back cut."""
    token = await world.token()
    resp = await world.get(f"/v1/games/{'g' * 5000}/me", token)
    assert resp.status == 404
    details = (await resp.json())["error"]["details"]
    assert details["game"] == "g" * 256 + "…"


async def test_request_id_is_echoed_or_made(world: Any) -> None:
    resp = await world.client.get("/healthz", headers={"X-Request-Id": "trace-12345678"})
    assert resp.headers["X-Request-Id"] == "trace-12345678"
    resp = await world.client.get("/healthz", headers={"X-Request-Id": "bad id!"})
    assert len(resp.headers["X-Request-Id"]) == 16


# -- operations ----------------------------------------------------------------------------


async def test_ready_metrics_openapi(world: Any) -> None:
    ready = await world.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"redis": "ok", "sql": "ok"}
    token = await world.token("alice")
    await adopt(world, token)
    text = await (await world.client.get("/metrics")).text()
    assert 'petbox_request_seconds_count{operation="adoptPet",status="2xx"} 1.0' in text
    assert "petbox_commit_conflicts_total" in text
    doc = await (await world.client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {"createSession", "getPlayer", "adoptPet", "feedPet", "getPlayerAdmin",
            "listGameVersions", "healthz", "readyz", "metrics", "openapi"} <= ids
    routes = {(r.method, r.resource.canonical) for r in world.client.app.router.routes()
              if r.method != "HEAD"}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented


async def test_metrics_show_the_backlog_of_a_persister_running_elsewhere(world: Any) -> None:
    """``serve --workers N`` and ``PETBOX_RUN_PERSISTER=0`` (with ``petbox persister``)
    run the persister in a process nobody scrapes: the servers' ``/metrics`` had no
    ``petbox_persister_backlog`` and a lag of 0 however far SQL fell behind, so the
    outage runbook's gauge was never there. A server without a persister reads the
    backlog of every shard from Redis on each scrape."""
    assert not world.client.app[SETTINGS].run_persister
    for user in ("alice", "bob"):
        await adopt(world, await world.token(user))
    world.clock.advance(7)
    text = await (await world.client.get("/metrics")).text()
    assert 'petbox_persister_backlog{kind="dirty"} 2.0' in text
    assert 'petbox_persister_backlog{kind="ledger"} 2.0' in text
    assert "petbox_persister_lag_seconds 7.0" in text


async def test_admin_player_view_has_ledger_after_flush(world: Any) -> None:
    token = await world.token("alice")
    await adopt(world, token)
    await world.post(f"{GAME}/pet/feed", token, {"food": "snack"}, "f1")
    resp = await world.get("/v1/admin/games/squirrel/players/alice",
                           world.merchants["shop"].api_key)
    assert resp.status == 200
    body = await resp.json()
    assert body["version"] == 2 and body["player"]["wallet"] == {"acorn": 90}


async def test_a_merchant_lookup_of_a_long_user_id_echoes_it_as_every_error_does(
        world: Any) -> None:
    """A player id that is no id is 404 naming it, cut at the error middleware's 256
    characters like every other echo (the admin routes cut it at 128 of their own)."""
    user = "u" * 300
    resp = await world.get(f"/v1/admin/games/squirrel/players/{user}",
                           world.merchants["shop"].api_key)
    assert resp.status == 404
    assert (await resp.json())["error"]["details"] == {"user": "u" * 256 + "…"}
