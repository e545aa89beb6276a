"""Blind boxes over HTTP against real Redis and SQL: disclosure, draws, verification,
the value tier (no oversell under 1,000 concurrent shoppers), idempotent 10-draws,
merchant stock and grants."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from economy.fairness import seed_hash, verify_record
from gameserver.appkeys import SERVICES
from gameserver.db import models as m
from gameserver.games import parse_config
from gameserver.persister import Persister
from tests.conftest import BASIC_CONFIG, app_persister

GAME = "/v1/games/squirrel"
SERIES = f"{GAME}/boxes/forest"

BOX_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
BOX_CONFIG["currencies"]["acorn"] = {"name": "Acorns", "initial": 1000, "max": 100000}
BOX_CONFIG["items"] = {"fig_a": {"name": "A"}, "fig_b": {"name": "B"}}
BOX_CONFIG["boxes"] = {"series": {"forest": {
    "name": "Forest",
    "price": {"currency": "acorn", "amount": 10},
    "tiers": {"common": {"name": "Common", "rank": 0}, "rare": {"name": "Rare", "rank": 1}},
    "items": {"fig_a": {"tier": "common", "weight": 50}, "fig_b": {"tier": "rare", "weight": 50}},
    "pity": {},
    "prizes": {"coupon_x": {"name": "¥5 coupon", "kind": "coupon", "tier": "rare",
                            "weight": 900, "stock": 100, "fallback": "fig_a",
                            "template": "T-5", "face_value_fen": 500, "max_copies": 0}},
}}}
"""A series where nine draws in ten aim at a limited coupon with stock 100."""


@pytest.fixture
async def boxes(world: Any) -> Any:
    await world.merchant("boxshop", game="squirrel", config=BOX_CONFIG)
    return world


async def draw(world: Any, token: str, key: str, count: int = 1, seed: str = "") -> Any:
    body: dict[str, Any] = {"count": count}
    if seed:
        body["client_seed"] = seed
    return await world.post(f"{SERIES}/draw", token, body, key)


async def test_draws_flushed_together_are_listed_newest_first(boxes: Any) -> None:
    """Single draws that reach SQL in one persister pass keep their order in listDraws
    (the pass sorts rows for one lock order: by time first, not by random commit id)."""
    token = await boxes.token("alice", merchant_id="boxshop")
    for i in range(8):
        assert (await draw(boxes, token, f"one-{i}")).status == 200
        boxes.clock.advance(1)
    await persister(boxes).run_once()
    page = await (await boxes.get(f"{GAME}/draws?limit=100", token)).json()
    assert [d["nonce"] for d in page["draws"]] == [7, 6, 5, 4, 3, 2, 1, 0]


async def sql_count(world: Any, query: Any) -> int:
    async with world.db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def persister(world: Any) -> Persister:
    return app_persister(world.client.app)


def test_box_config_is_valid() -> None:
    parse_config(BOX_CONFIG)


async def test_disclosure_is_public_and_names_stock(boxes: Any) -> None:
    resp = await boxes.client.get(f"{SERIES}?merchant=boxshop")
    assert resp.status == 200
    body = await resp.json()
    assert body["game_version"] == 1
    text = str(body)
    assert "coupon_x" in text and "fig_a" in text
    missing = await boxes.client.get(SERIES)
    assert missing.status == 422
    other = await boxes.client.get(f"{SERIES}?merchant=shop")  # 'shop' has no such series
    assert other.status == 404


async def test_seed_hash_published_before_first_draw_and_verifiable(boxes: Any) -> None:
    token = await boxes.token("alice", merchant_id="boxshop")
    resp = await boxes.get(SERIES, token)
    committed = (await resp.json())["player"]["seed_hash"]
    assert len(committed) == 64

    drawn = await draw(boxes, token, "d1", count=10, seed="my-seed")
    assert drawn.status == 200
    records = (await drawn.json())["draws"]
    assert [r["nonce"] for r in records] == list(range(10))
    assert {r["seed_hash"] for r in records} == {committed}
    assert {r["version"] for r in records} == {1}

    rotated = await boxes.post(f"{GAME}/boxes/seed/rotate", token, {}, "rot-1")
    assert rotated.status == 200
    revealed = (await rotated.json())["revealed"]
    assert seed_hash(revealed["server_seed"]) == committed
    series = parse_config(BOX_CONFIG).boxes.series["forest"]
    assert all(verify_record(series, r, revealed["server_seed"]) for r in records)

    await persister(boxes).run_once()
    listed = await boxes.get(f"{GAME}/draws?limit=5", token)
    page = await listed.json()
    assert [d["nonce"] for d in page["draws"]] == [9, 8, 7, 6, 5]
    assert {d["server_seed"] for d in page["draws"]} == {revealed["server_seed"]}
    rest = await (await boxes.get(f"{GAME}/draws?limit=5&cursor={page['next_cursor']}",
                                  token)).json()
    assert [d["nonce"] for d in rest["draws"]] == [4, 3, 2, 1, 0]
    for query in ("limit=0", "limit=101", "limit=x", "limit=%D9%A3", "cursor=-1",
                  "cursor=1" + "0" * 30, "cursor=%D9%A3"):  # ٣: a digit to int(), not ASCII
        bad = await boxes.get(f"{GAME}/draws?{query}", token)
        assert bad.status == 422, query
        assert (await bad.json())["error"]["code"] == "invalid_input"


async def test_thousand_concurrent_shoppers_never_oversell(boxes: Any) -> None:
    tokens = await asyncio.gather(*[boxes.token(f"s{i}", merchant_id="boxshop")
                                    for i in range(1000)])
    responses = await asyncio.gather(*[draw(boxes, t, f"k{i}") for i, t in enumerate(tokens)])
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 1000, {s: statuses.count(s) for s in set(statuses)}
    items = [(await r.json())["draws"][0]["item"] for r in responses]
    assert items.count("coupon_x") == 100
    # A confirmation SQL could not take in time (a thousand first draws fill the SQL
    # line on a loaded machine) stays pending until the reconciler confirms it from the
    # commit: settle those as it does, then every coupon acknowledged is confirmed.
    await boxes.client.app[SERVICES].value.reconcile(older_than_s=-1)
    g = m.grants
    assert await sql_count(boxes, select(func.count()).select_from(g).where(
        g.c.status == "confirmed")) == 100
    assert await sql_count(boxes, select(func.count()).select_from(g).where(
        g.c.status != "confirmed")) == 0
    stock = await (await boxes.client.get(
        "/v1/admin/games/squirrel/stock",
        headers={"Authorization": f"Bearer {boxes.merchants['boxshop'].api_key}"})).json()
    assert stock.get("stock") == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0,
                               "granted": 100, "left": 0}]


async def test_ten_draw_exhausting_stock_midway_falls_back(boxes: Any) -> None:
    key = f"Bearer {boxes.merchants['boxshop'].api_key}"
    resp = await boxes.client.post("/v1/admin/games/squirrel/stock/coupon_x", json={"add": -97},
                                   headers={"Authorization": key, "Idempotency-Key": "st-1"})
    assert resp.status == 200
    assert (await resp.json())["stock"]["total"] == 3
    token = await boxes.token("alice", merchant_id="boxshop")
    drawn = await draw(boxes, token, "ten", count=10)
    assert drawn.status == 200
    items = [r["item"] for r in (await drawn.json())["draws"]]
    assert items.count("coupon_x") == 3  # 90% aim at it: all three go, then fallback
    assert len(items) == 10
    assert await sql_count(boxes, select(func.count()).select_from(m.grants)) == 3


async def test_ten_draw_retries_grant_once(boxes: Any) -> None:
    token = await boxes.token("alice", merchant_id="boxshop")
    first, *again = await asyncio.gather(*[draw(boxes, token, "same", count=10)
                                           for _ in range(5)])
    bodies = {await r.read() for r in [first, *again]}
    assert len(bodies) == 1 and first.status == 200
    later = await draw(boxes, token, "same", count=10)
    assert await later.read() == await first.read()
    coupons = [r["item"] for r in (await first.json())["draws"]].count("coupon_x")
    assert await sql_count(boxes, select(func.count()).select_from(m.grants)) == coupons
    me = await (await boxes.get(f"{GAME}/me", token)).json()
    assert me["player"]["wallet"]["acorn"] == 1000 - 100


async def test_set_stock_never_below_taken(boxes: Any) -> None:
    key = f"Bearer {boxes.merchants['boxshop'].api_key}"
    token = await boxes.token("alice", merchant_id="boxshop")
    await draw(boxes, token, "ten", count=10)
    taken = await sql_count(boxes, select(func.count()).select_from(m.grants))
    resp = await boxes.client.post("/v1/admin/games/squirrel/stock/coupon_x",
                                   json={"add": -(100 - taken) - 1},
                                   headers={"Authorization": key, "Idempotency-Key": "st-1"})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "stock_below_taken"
    unknown = await boxes.client.post("/v1/admin/games/squirrel/stock/nope", json={"add": 1},
                                      headers={"Authorization": key, "Idempotency-Key": "st-2"})
    assert unknown.status == 404


async def test_grant_player_is_ledgered_and_idempotent(boxes: Any) -> None:
    key = boxes.merchants["boxshop"].api_key
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "cs-1"}
    url = "/v1/admin/games/squirrel/players/alice/grant"
    body = {"wallet": {"acorn": 50}, "items": {"fig_a": 2}, "reason": "ticket 123",
            "create": True}  # alice has never played
    first = await boxes.client.post(url, json=body, headers=headers)
    second = await boxes.client.post(url, json=body, headers=headers)
    assert first.status == second.status == 200
    assert await first.read() == await second.read()
    assert (await first.json())["wallet"] == {"acorn": 1050}
    unknown = await boxes.client.post(url, json={"wallet": {"gold": 1}, "reason": "x"},
                                      headers={**headers, "Idempotency-Key": "cs-2"})
    assert unknown.status == 404
    negative = await boxes.client.post(url, json={"wallet": {"acorn": -5000}, "reason": "x"},
                                       headers={**headers, "Idempotency-Key": "cs-3"})
    assert negative.status == 422  # a grant never takes back
    assert (await negative.json())["error"]["code"] == "invalid_input"
    await persister(boxes).run_once()
    view = await (await boxes.client.get("/v1/admin/games/squirrel/players/alice",
                                         headers={"Authorization": f"Bearer {key}"})).json()
    assert [(e["name"], e["delta"], e["reason"]) for e in view["ledger"]] == [
        ("fig_a", 2, "admin:ticket 123"), ("acorn", 50, "admin:ticket 123")]


@pytest.mark.parametrize(("band", "consent", "status", "code"), [
    ("under_8", False, 403, "age_restricted"),
    ("8_17", False, 403, "guardian_consent_required"),
    ("8_17", True, 200, None),
    ("18_plus", False, 200, None),
])
async def test_age_gate(boxes: Any, band: str, consent: bool, status: int,
                        code: str | None) -> None:
    from gameserver.http.auth import session_signature

    creds = boxes.merchants["boxshop"]
    ts = int(boxes.clock.now())
    resp = await boxes.client.post("/v1/sessions", json={
        "merchant": "boxshop", "user": "kid", "ts": ts, "age_band": band,
        "guardian_consent": consent,
        "sign": session_signature(creds.signing_secret, "boxshop", "kid", ts, band, consent)})
    assert resp.status == 201
    token = (await resp.json())["token"]
    drawn = await draw(boxes, token, "k")
    assert drawn.status == status
    if code:
        assert (await drawn.json())["error"]["code"] == code
    forged = await boxes.client.post("/v1/sessions", json={
        "merchant": "boxshop", "user": "kid", "ts": ts, "age_band": "18_plus",
        "sign": session_signature(creds.signing_secret, "boxshop", "kid", ts)})
    assert forged.status == 401


async def test_the_seed_commitment_never_takes_a_shoppers_key(boxes: Any) -> None:
    """The first seed commitment's player key was ``box-seed-commit``, a key a shopper
    can send: bob's adoption under it made his series view and draws 422
    idempotency_mismatch, and carol's first view made her adoption under it 422."""
    adopt = {"species": "squirrel", "name": "A"}
    bob = await boxes.token("bob", merchant_id="boxshop")
    adopted = await boxes.post(f"{GAME}/pet", bob, adopt, "box-seed-commit")
    assert adopted.status == 201, await adopted.text()
    viewed = await boxes.get(SERIES, bob)
    assert viewed.status == 200, await viewed.text()
    assert len((await viewed.json())["player"]["seed_hash"]) == 64
    drawn = await draw(boxes, bob, "d1")
    assert drawn.status == 200, await drawn.text()
    again = await boxes.post(f"{GAME}/pet", bob, adopt, "box-seed-commit")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.read() == await adopted.read()

    carol = await boxes.token("carol", merchant_id="boxshop")
    assert (await boxes.get(SERIES, carol)).status == 200  # commits her seed first
    theirs = await boxes.post(f"{GAME}/pet", carol, adopt, "box-seed-commit")
    assert theirs.status == 201, await theirs.text()
    assert theirs.headers.get("Idempotent-Replayed") is None


async def test_draws_today_start_again_at_local_midnight(boxes: Any) -> None:
    """``getPlayer`` and ``getBoxSeries`` showed a series' ``today`` as of the last draw:
    after midnight (game timezone) yesterday's draws still counted as today's, though
    the daily cap had started again."""
    token = await boxes.token("alice", merchant_id="boxshop")
    assert (await draw(boxes, token, "d1", count=10)).status == 200

    async def today() -> tuple[int, int]:
        fresh = await boxes.token("alice", merchant_id="boxshop")  # tokens last 2 h
        me = await (await boxes.get(f"{GAME}/me", fresh)).json()
        series = await (await boxes.get(SERIES, fresh)).json()
        return (me["player"]["boxes"]["series"]["forest"]["today"],
                series["player"]["today"])

    assert await today() == (10, 10)
    boxes.clock.advance(16 * 3600 - 1)  # 23:59:59 in Shanghai
    assert await today() == (10, 10)
    boxes.clock.advance(1)  # the next local day
    assert await today() == (0, 0)
    token = await boxes.token("alice", merchant_id="boxshop")
    assert (await draw(boxes, token, "d2")).status == 200
    assert await today() == (1, 1)


async def test_a_total_cap_is_a_conflict_and_a_daily_cap_says_when_to_come_back(
        world: Any) -> None:
    """Past the daily cap: 429 ``draw_limit`` with Retry-After until the game's next
    midnight. Past the total cap: 409 ``draw_limit`` with no Retry-After; it was a 429
    with Retry-After 1, and clients that honour it asked again every second forever."""
    config = copy.deepcopy(BOX_CONFIG)
    config["boxes"]["series"]["forest"].update(daily_cap=3, total_cap=4)
    await world.merchant("boxshop", game="squirrel", config=config)
    token = await world.token("alice", merchant_id="boxshop")
    for i in range(3):
        assert (await draw(world, token, f"cap-{i}")).status == 200
    daily = await draw(world, token, "cap-3")
    body = await daily.json()
    assert (daily.status, body["error"]["code"], body["error"]["details"]["scope"]) == (
        429, "draw_limit", "daily")
    assert daily.headers["Retry-After"] == str(body["error"]["details"]["retry_after"])
    assert int(daily.headers["Retry-After"]) > 1

    world.clock.advance(int(daily.headers["Retry-After"]))
    token = await world.token("alice", merchant_id="boxshop")
    assert (await draw(world, token, "cap-4")).status == 200
    total = await draw(world, token, "cap-5")
    body = await total.json()
    assert (total.status, body["error"]["code"]) == (409, "draw_limit")
    assert body["error"]["details"] == {"series": "forest", "scope": "total", "cap": 4,
                                        "used": 4, "asked": 1}
    assert "Retry-After" not in total.headers
