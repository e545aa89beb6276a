"""Credentials with bytes no real one has (non-ASCII: a latin-1 header byte, an ``é``):
a hostile client's garbage is refused like any other bad credential, 401 (403 for a
browse ticket), never a 500 from comparing or hashing text that is not ASCII."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from gameserver.http.auth import body_signature, session_signature
from tests.conftest import World

GAME = "/v1/games/squirrel"
HOSTILE = ("\u00e9\u00e9", "abc\u00ff", "\u4e2d\u6587")


async def _error(resp: object) -> tuple[int, str]:
    body = await resp.json()  # type: ignore[attr-defined]
    return resp.status, body["error"]["code"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("tail", HOSTILE)
async def test_non_ascii_player_token_is_401(world: World, tail: str) -> None:
    token = await world.token("alice")
    prefix, payload, _ = token.split(".")
    for bad in (f"{prefix}.{payload}.{tail}", f"{prefix}.{tail}.x", token + tail):
        resp = await world.get(f"{GAME}/me", bad)
        assert await _error(resp) == (401, "unauthorized"), bad


async def _raw_get(world: World, path: str, authorization: bytes) -> tuple[int, str]:
    """A GET whose Authorization header carries raw bytes (the test client only sends
    text): a latin-1 byte that is not UTF-8 reaches the server as it would off the wire."""
    reader, writer = await asyncio.open_connection(world.client.host, world.client.port)
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Authorization: Bearer " + authorization + b"\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]["code"]


@pytest.mark.parametrize("tail", [t.encode() for t in HOSTILE] + [b"\xe9\xe9"])
async def test_non_ascii_credentials_on_the_wire_are_401(world: World, tail: bytes) -> None:
    token = (await world.token("alice")).encode()
    for path, credential in (("/v1/admin/games", b"pbk_" + tail),
                             (f"{GAME}/me", token[:-2] + tail),
                             (f"{GAME}/me", b"pbt1." + tail + b".x")):
        assert await _raw_get(world, path, credential) == (401, "unauthorized"), credential


@pytest.mark.parametrize("tail", HOSTILE)
async def test_non_ascii_order_signature_is_401(world: World, tail: str) -> None:
    secret = world.merchants["shop"].signing_secret
    ts = str(int(world.clock.now()))
    body = json.dumps({"merchant": "shop", "game": "squirrel", "user": "alice",
                       "order_id": "o1", "status": "paid"}).encode()
    good = body_signature(secret, ts, body)
    for sign in (tail, good[:-len(tail)] + tail):
        resp = await world.client.post("/v1/events/orders", data=body, headers={
            "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
            "X-Petbox-Signature": sign})
        assert await _error(resp) == (401, "unauthorized"), sign
    # the genuine signature still works
    resp = await world.client.post("/v1/events/orders", data=body, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": good})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("tail", HOSTILE)
async def test_non_ascii_browse_ticket_is_403(world: World, tail: str) -> None:
    token = await world.token("alice")
    resp = await world.post(f"{GAME}/tasks/t1/complete", token,
                            {"ticket": f"tk1.e30.{tail}"}, "complete-1")
    assert await _error(resp) == (403, "ticket_invalid")


async def test_session_signature_check_takes_non_ascii_as_a_mismatch() -> None:
    """The rate limiter checks a load-test merchant's sign-in signature on its own,
    before the body's schema: a non-ASCII ``sign`` there is no match, not an error."""
    from gameserver.http.auth import verify_session_signature

    ts = int(time.time())
    good = session_signature("secret", "shop", "alice", ts)
    assert verify_session_signature("secret", "shop", "alice", ts, good)
    for tail in HOSTILE:
        assert not verify_session_signature("secret", "shop", "alice", ts, tail)
        assert not verify_session_signature("secret", "shop", "alice", ts,
                                            good[:-len(tail)] + tail)
