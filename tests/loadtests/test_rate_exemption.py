"""The rate limits' load-test exemption: bound to a merchant marked for load tests,
proven by a server-signed token or the merchant's own signature, never by a header.

A real app on real Redis and SQL, with limits tight enough that one client hits them.
"""

from __future__ import annotations

from typing import Any

from gameserver.http.auth import session_signature
from gameserver.http.rates import RateLimit
from gameserver.ops.provision import create_merchant, publish_config
from tests.conftest import BASIC_CONFIG

GAME = "/v1/games/squirrel"


async def _app(aiohttp_client: Any, settings: Any, clock: Any, db: Any) -> tuple[Any, dict]:
    from gameserver.app import create_app

    client = await aiohttp_client(create_app(settings.with_overrides(
        rate_ip=RateLimit(0.01, 6), rate_player=RateLimit(0.01, 3)), clock=clock))
    now = int(clock.now())
    creds = {"shop": await create_merchant(db, "shop", now),
             "loadshop": await create_merchant(db, "loadshop", now, load_test=True)}
    for merchant in creds:
        await publish_config(db, merchant, "squirrel", BASIC_CONFIG, now)
    return client, creds


def _session(creds: Any, user: str, ts: int, shadow: bool, sign: str | None = None) -> dict:
    body: dict[str, Any] = {"merchant": creds.merchant, "user": user, "ts": ts,
                            "sign": sign or session_signature(creds.signing_secret,
                                                              creds.merchant, user, ts,
                                                              shadow=shadow)}
    if shadow:
        body["shadow"] = True
    return body


async def test_load_test_merchant_is_exempt_and_nobody_else(aiohttp_client: Any, settings: Any,
                                                            clock: Any, db: Any) -> None:
    client, creds = await _app(aiohttp_client, settings, clock, db)
    ts = int(clock.now())
    shop = []
    for i in range(8):  # an ordinary merchant's shoppers behind one IP: 6, then 429
        resp = await client.post("/v1/sessions", json=_session(creds["shop"], f"s{i}", ts,
                                                                False))
        shop.append(resp.status)
        if resp.status == 201:
            token = (await resp.json())["token"]
    assert shop == [201] * 6 + [429] * 2
    # The IP budget is spent: a load-test merchant's signed sessions still go through,
    shadow_tokens, real_tokens = [], []
    for i in range(5):
        for shadow, into in ((True, shadow_tokens), (False, real_tokens)):
            resp = await client.post("/v1/sessions", json=_session(
                creds["loadshop"], f"lt{i}", ts, shadow))
            assert resp.status == 201, await resp.text()
            into.append((await resp.json())["token"])
    # ... and so do its shoppers' requests, on shadow data and on real data, past the
    # per-player budget too.
    for _ in range(5):
        resp = await client.get(f"{GAME}/me", headers={
            "Authorization": f"Bearer {shadow_tokens[0]}", "X-Petbox-Shadow": "1"})
        assert resp.status == 200, await resp.text()
        resp = await client.get(f"{GAME}/me",
                                headers={"Authorization": f"Bearer {real_tokens[0]}"})
        assert resp.status == 200, await resp.text()
    # The shadow header proves nothing: the ordinary merchant's shopper stays limited.
    resp = await client.get(f"{GAME}/me", headers={"Authorization": f"Bearer {token}",
                                                   "X-Petbox-Shadow": "1"})
    assert resp.status == 429
    # Neither does naming the load-test merchant without its secret (the load-test
    # budget of this IP, which such a login spends, is spent by now too),
    forged = _session(creds["loadshop"], "intruder", ts, True, sign="ab" * 32)
    resp = await client.post("/v1/sessions", json=forged)
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
    # nor its secret with another merchant's name.
    resp = await client.post("/v1/sessions", json={**_session(
        creds["loadshop"], "intruder", ts, False), "merchant": "shop"})
    assert resp.status == 429


async def test_load_test_logins_leave_the_real_ip_budget_alone(aiohttp_client: Any,
                                                                settings: Any, clock: Any,
                                                                db: Any) -> None:
    """A rehearsal's logins from one address spend the load-test budget of that
    address: a real shopper behind it still logs in (it was 429: the rehearsal had
    spent the real budget before its exemption was looked at)."""
    client, creds = await _app(aiohttp_client, settings, clock, db)
    ts = int(clock.now())
    for i in range(8):
        resp = await client.post("/v1/sessions", json=_session(creds["loadshop"], f"lt{i}",
                                                                ts, True))
        assert resp.status == 201, await resp.text()
    resp = await client.post("/v1/sessions", json=_session(creds["shop"], "s0", ts, False))
    assert resp.status == 201, await resp.text()
