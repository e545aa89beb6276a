"""The coupon wallet over HTTP, against real Redis and SQL (SQLite and PostgreSQL).

Before it, a shopper could not see a coupon they won: the grant was in SQL, but no
operation listed it and getPlayer did not count it. Here every draw of a 10-draw
wins a coupon (the collectibles weigh nothing), so the numbers are exact."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from tests.conftest import World
from tests.integration.test_boxes_http import BOX_CONFIG

GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"
DAY = 86_400

WALLET_CONFIG: dict[str, Any] = copy.deepcopy(BOX_CONFIG)
_series = WALLET_CONFIG["boxes"]["series"]["forest"]
_series["tiers"] = {"rare": {"name": "Rare", "rank": 1}}
_series["items"] = {"fig_a": {"tier": "rare", "weight": 0}, "fig_b": {"tier": "rare", "weight": 0}}
_series["prizes"]["coupon_x"]["valid_days"] = 7
"""Every draw wins coupon_x (¥5, template T-5), usable for 7 days."""


async def ten_coupons(world: World, user: str = "u1") -> tuple[str, list[dict[str, Any]]]:
    """A shopper of ``boxshop`` who won ten coupons; their token and wallet."""
    if "boxshop" not in world.merchants:
        await world.merchant("boxshop", game="squirrel", config=WALLET_CONFIG)
    token = await world.token(user, merchant_id="boxshop")
    drawn = await world.post(f"{GAME}/boxes/forest/draw", token, {"count": 10}, f"d-{user}")
    assert drawn.status == 200, await drawn.text()
    wallet = await world.get(f"{GAME}/coupons", token)
    assert wallet.status == 200
    return token, (await wallet.json())["coupons"]


async def redeem(world: World, code: str, reference: str = "", merchant: str = "boxshop",
                 key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {world.merchants[merchant].api_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await world.client.post(f"{ADMIN}/coupons/{code}/redeem",
                                   json={"reference": reference}, headers=headers)


async def test_a_won_coupon_is_in_the_wallet_with_its_expiry(world: World) -> None:
    now = int(world.clock.now())
    token, coupons = await ten_coupons(world)
    assert len(coupons) == 10
    assert len({c["code"] for c in coupons}) == 10
    for c in coupons:
        assert {k: v for k, v in c.items() if k != "code"} == {
            "coupon": "coupon_x", "name": "¥5 coupon", "template": "T-5",
            "face_value_fen": 500, "granted_at": now, "expires_at": now + 7 * DAY,
            "state": "issued", "redeemed_at": None}
        assert c["code"].startswith("C") and len(c["code"]) >= 24
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["player"]["coupons"] == {"won": 10}  # from the shopper's state: no SQL
    other = await world.token("u2", merchant_id="boxshop")
    fresh = await (await world.get(f"{GAME}/me", other)).json()
    assert fresh["player"]["coupons"] == {"won": 0}
    assert (await (await world.get(f"{GAME}/coupons", other)).json()) == {
        "coupons": [], "counts": {"issued": 0, "redeemed": 0, "expired": 0}}


async def test_a_game_without_coupons_does_not_count_them(world: World) -> None:
    token = await world.token()
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert "coupons" not in me


async def test_redeem_marks_it_used_once(world: World) -> None:
    token, coupons = await ten_coupons(world)
    code = coupons[0]["code"]
    world.clock.advance(60)
    first = await redeem(world, code, "order-1")
    assert first.status == 200, await first.text()
    body = await first.json()
    assert body["coupon"]["state"] == "redeemed"
    assert body["coupon"]["redeemed_at"] == int(world.clock.now())
    assert body["coupon"]["reference"] == "order-1"
    world.clock.advance(60)
    again = await redeem(world, code, "order-1")  # a checkout's retry: same answer
    assert again.status == 200
    assert await again.json() == body
    other_order = await redeem(world, code, "order-2")
    assert other_order.status == 409
    error = (await other_order.json())["error"]
    assert error["code"] == "coupon_already_redeemed"
    assert error["details"] == {"redeemed_at": body["coupon"]["redeemed_at"]}
    wallet = await (await world.get(f"{GAME}/coupons", token)).json()
    assert [c["state"] for c in wallet["coupons"] if c["code"] == code] == ["redeemed"]
    assert wallet["counts"] == {"issued": 9, "redeemed": 1, "expired": 0}


async def test_redeem_with_an_idempotency_key_replays(world: World) -> None:
    _, coupons = await ten_coupons(world)
    first = await redeem(world, coupons[1]["code"], "order-9", key="redeem-1")
    again = await redeem(world, coupons[1]["code"], "order-9", key="redeem-1")
    assert first.status == again.status == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == await first.json()
    reused = await redeem(world, coupons[2]["code"], "order-9", key="redeem-1")
    assert reused.status == 422
    assert (await reused.json())["error"]["code"] == "idempotency_mismatch"


async def test_expiry_is_per_coupon_and_an_expired_one_is_refused(world: World) -> None:
    _, coupons = await ten_coupons(world)
    world.clock.advance(7 * DAY - 1)
    token = await world.token("u1", merchant_id="boxshop")  # a week on: a new session
    wallet = await (await world.get(f"{GAME}/coupons", token)).json()
    assert wallet["counts"] == {"issued": 10, "redeemed": 0, "expired": 0}
    world.clock.advance(1)
    wallet = await (await world.get(f"{GAME}/coupons", token)).json()
    assert wallet["counts"] == {"issued": 0, "redeemed": 0, "expired": 10}
    late = await redeem(world, coupons[0]["code"], "order-1")
    assert late.status == 409
    error = (await late.json())["error"]
    assert error["code"] == "coupon_expired"
    assert error["details"] == {"expires_at": coupons[0]["expires_at"]}
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert me["player"]["coupons"] == {"won": 10}  # won, whatever became of them


async def test_another_merchants_or_unknown_code_is_404(world: World) -> None:
    _, coupons = await ten_coupons(world)
    code = coupons[0]["code"]
    theirs = await redeem(world, code, merchant="shop")  # 'shop' also has a squirrel game
    assert theirs.status == 404
    assert (await theirs.json())["error"]["code"] == "coupon_not_found"
    unknown = await redeem(world, "C" + "x" * 24)
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "coupon_not_found"
    still = await redeem(world, code, "order-1")
    assert (await still.json())["coupon"]["state"] == "redeemed"


async def test_a_redemption_is_one_signed_webhook_event(world: World) -> None:
    _, coupons = await ten_coupons(world)
    code = coupons[3]["code"]
    for _ in range(2):  # a checkout's retry: still one event
        assert (await redeem(world, code, "order-7")).status == 200
    assert (await redeem(world, code, "order-8")).status == 409
    events = await world.client.get(f"{ADMIN}/webhooks", headers={
        "Authorization": f"Bearer {world.merchants['boxshop'].api_key}"})
    assert events.status == 200
    rows = [e for e in (await events.json())["events"] if e["event"] == "coupon.redeemed"]
    assert len(rows) == 1
    assert rows[0]["key"] == f"coupon-redeemed-{code}"
    assert rows[0]["state"] == "pending"  # the game has no webhook_url yet: it waits
    data = rows[0]["data"]
    assert (data["user"], data["code"], data["reference"], data["state"]) == (
        "u1", code, "order-7", "redeemed")


async def test_racing_redemptions_redeem_once(world: World) -> None:
    """Ten tills redeem one coupon at once: one wins, nine are told it is used."""
    _, coupons = await ten_coupons(world)
    code = coupons[5]["code"]
    answers = await asyncio.gather(*(redeem(world, code, f"till-{i}") for i in range(10)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] + [409] * 9
    codes = {(await a.json())["error"]["code"] for a in answers if a.status == 409}
    assert codes == {"coupon_already_redeemed"}
    events = await world.client.get(f"{ADMIN}/webhooks", headers={
        "Authorization": f"Bearer {world.merchants['boxshop'].api_key}"})
    assert [e["key"] for e in (await events.json())["events"]] == [f"coupon-redeemed-{code}"]
