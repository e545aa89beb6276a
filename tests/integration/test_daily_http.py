"""Pet actions, check-in, tasks and exchange over HTTP against real Redis and SQL.

Every bad input is refused with its own error code and leaves the player exactly
as it was (same version, same view).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from gameserver.db import models as m
from tests.integration.loopgame import DAY, HOUR, Shopper, loop_world

__all__ = ["loop_world"]

ADOPT = {"species": "squirrel", "name": "Nutty"}


async def adopted(world: Any, user: str = "alice") -> Shopper:
    shopper = Shopper(world, user)
    status, _ = await shopper.post("/pet", ADOPT)
    assert status == 201
    return shopper


# -- pet -------------------------------------------------------------------------------


async def test_play_clean_and_their_cooldowns(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    await alice.refused("/pet/play", {}, 409, "no_pet")
    await alice.post("/pet", ADOPT)
    status, out = await alice.post("/pet/play")
    assert status == 200
    assert out["player"]["pet"]["stats"]["mood"]["value"] == 90.0
    assert out["player"]["pet"]["xp"] == 5
    t0 = int(loop_world.clock.now())
    assert out["player"]["cooldowns"] == {"play": t0 + 1800}
    err = await alice.refused("/pet/play", {}, 429, "cooldown")
    assert err["details"] == {"action": "play", "ready_at": t0 + 1800, "retry_after": 1800}
    status, out = await alice.post("/pet/clean")
    assert status == 200
    assert out["player"]["wallet"] == {"acorn": 95, "gem": 1}
    assert out["player"]["pet"]["stats"]["clean"]["value"] == 90.0
    await alice.refused("/pet/clean", {}, 429, "cooldown")
    loop_world.clock.advance(1800)
    assert (await alice.post("/pet/play"))[0] == 200


async def test_collect_produce_exact_and_stops_below_threshold(loop_world: Any) -> None:
    alice = await adopted(loop_world)
    await alice.refused("/pet/collect", {}, 409, "nothing_to_collect")
    loop_world.clock.advance(2 * HOUR)  # satiety 50 → 40, 10 acorns an hour
    status, out = await alice.post("/pet/collect")
    assert status == 200 and out["collected"] == {"acorn": 20}
    assert out["player"]["wallet"]["acorn"] == 120
    loop_world.clock.advance(10 * HOUR)  # satiety crosses 30 after 2 more hours: 20, not 100
    me = await alice.me()
    assert me["player"]["pet"]["produce"]["pending"] == 20
    assert me["player"]["pet"]["states"] == ["hungry"]
    status, out = await alice.post("/pet/collect")
    assert out["collected"] == {"acorn": 20} and out["player"]["wallet"]["acorn"] == 140


async def test_feed_refusals(loop_world: Any) -> None:
    alice = await adopted(loop_world)
    err = await alice.refused("/pet/feed", {"food": "pizza"}, 404, "unknown_item")
    assert err["details"]["kind"] == "food" and err["details"]["id"] == "pizza"
    err = await alice.refused("/pet/feed", {"food": "feast"}, 409, "insufficient_funds")
    assert err["details"]["currency"] == "acorn"
    assert (await alice.post("/pet/feed", {"food": "cake"}))[0] == 200
    await alice.refused("/pet/feed", {"food": "cake"}, 429, "cooldown")
    await alice.refused("/pet/feed", {"food": "Bad Food!"}, 422, "invalid_input")


# -- check-in --------------------------------------------------------------------------


async def test_check_in_once_per_shanghai_day(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    status, out = await alice.post("/checkin")
    assert status == 200
    assert (out["day"], out["streak"], out["cycle_day"]) == ("2026-01-01", 1, 1)
    assert out["player"]["wallet"]["acorn"] == 110
    loop_world.clock.advance(16 * HOUR - 1)  # 23:59:59 in Shanghai
    err = await alice.refused("/checkin", {}, 409, "already_checked_in")
    assert err["details"] == {"day": "2026-01-01", "next_at": int(loop_world.clock.now()) + 1}
    loop_world.clock.advance(1)  # midnight
    status, out = await alice.post("/checkin")
    assert (out["day"], out["streak"]) == ("2026-01-02", 2)
    me = await alice.me()
    assert me["player"]["checkin"] == {"streak": 2, "checked_in_today": True, "total": 2,
                                       "next_cycle_day": 3, "cycle_length": 7,
                                       "makeup_days": []}


async def test_makeup_check_in_and_its_limits(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    for _ in range(3):  # days 0, 2, 4
        assert (await alice.post("/checkin"))[0] == 200
        loop_world.clock.advance(2 * DAY)
    loop_world.clock.advance(-2 * DAY)
    assert (await alice.me())["player"]["checkin"]["makeup_days"] == ["2026-01-02",
                                                                      "2026-01-04"]
    status, out = await alice.post("/checkin/makeup", {})
    assert status == 200 and (out["day"], out["streak"]) == ("2026-01-04", 3)
    assert out["player"]["wallet"]["acorn"] == 130 - 20 + 10
    err = await alice.refused("/checkin/makeup", {"day": "2026-01-02"}, 409,
                              "makeup_limit_reached")
    assert err["details"] == {"day": "2026-01-02", "limit": 1}
    err = await alice.refused("/checkin/makeup", {"day": "2026-01-05"}, 409,
                              "makeup_not_allowed")
    assert err["details"]["reason"] == "not_in_the_past"
    await alice.refused("/checkin/makeup", {"day": "yesterday"}, 422, "invalid_input")


# -- tasks -----------------------------------------------------------------------------


async def test_browse_ticket_early_forged_reused(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    t0 = int(loop_world.clock.now())
    status, out = await alice.post("/tasks/browse15/start", {}, key="start-1")
    assert status == 200 and out["complete_after"] == t0 + 15
    ticket = out["ticket"]
    assert ticket.startswith("tk1.")
    again = await alice.post("/tasks/browse15/start", {}, key="start-1")
    assert again == (200, out)  # same key: the same ticket
    err = await alice.refused("/tasks/browse15/complete", {"ticket": ticket}, 409,
                              "ticket_too_early")
    assert err["details"] == {"ready_at": t0 + 15, "retry_after": 15}
    head, mac = ticket.rsplit(".", 1)
    forged = f"{head}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    err = await alice.refused("/tasks/browse15/complete", {"ticket": forged}, 403,
                              "ticket_invalid")
    assert err["details"] == {"reason": "forged"}
    await alice.refused("/tasks/browse15/complete", {}, 403, "ticket_invalid")
    await alice.refused("/tasks/browse15/complete", {"ticket": "tk1.x"}, 403, "ticket_invalid")
    loop_world.clock.advance(15)
    status, out = await alice.post("/tasks/browse15/complete", {"ticket": ticket})
    assert status == 200 and out["done"] == 1 and out["player"]["wallet"]["acorn"] == 105
    await alice.refused("/tasks/browse15/complete", {"ticket": ticket}, 409, "ticket_reused")
    me = await alice.me()
    assert me["player"]["tasks"]["browse15"]["done"] == 1


async def test_browse_started_before_midnight_counts_on_that_day(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    loop_world.clock.advance(16 * HOUR - 10)  # 23:59:50 in Shanghai
    _, out = await alice.post("/tasks/browse15/start")
    loop_world.clock.advance(15)  # 00:00:05: the next local day
    status, out = await alice.post("/tasks/browse15/complete", {"ticket": out["ticket"]})
    assert status == 200 and (out["done"], out["limit"]) == (1, 2)  # the day it started
    assert out["granted"] == {"currency": {"acorn": 5}, "items": {}}
    assert out["player"]["wallet"]["acorn"] == 105
    assert out["player"]["tasks"]["browse15"]["done"] == 0  # today's are all left
    for n in (1, 2):
        _, started = await alice.post("/tasks/browse15/start")
        loop_world.clock.advance(15)
        status, out = await alice.post("/tasks/browse15/complete",
                                       {"ticket": started["ticket"]})
        assert status == 200 and out["player"]["tasks"]["browse15"]["done"] == n
    assert out["player"]["wallet"]["acorn"] == 115
    await alice.refused("/tasks/browse15/start", {}, 409, "task_limit_reached")


async def test_ticket_of_another_player_is_invalid(loop_world: Any) -> None:
    alice, bob = Shopper(loop_world, "alice"), Shopper(loop_world, "bob")
    _, out = await bob.post("/tasks/browse15/start")
    loop_world.clock.advance(20)
    err = await alice.refused("/tasks/browse15/complete", {"ticket": out["ticket"]}, 403,
                              "ticket_invalid")
    assert err["details"] == {"reason": "other_player"}


async def test_simple_tasks_limits_and_unknown(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    status, out = await alice.post("/tasks/follow/start")
    assert status == 200 and out["ticket"] is None
    status, out = await alice.post("/tasks/follow/complete", {})
    assert status == 200 and out["granted"] == {"currency": {"gem": 2}, "items": {}}
    err = await alice.refused("/tasks/follow/complete", {}, 409, "task_limit_reached")
    assert err["details"] == {"task": "follow", "limit": 1, "period": "once"}
    await alice.refused("/tasks/follow/start", {}, 409, "task_limit_reached")
    await alice.refused("/tasks/nope/start", {}, 404, "unknown_item")
    await alice.refused("/tasks/nope/complete", {}, 404, "unknown_item")
    await alice.refused("/tasks/buy_any/start", {}, 409, "task_driven_by_orders")
    await alice.refused("/tasks/buy_any/complete", {}, 409, "task_driven_by_orders")


# -- exchange --------------------------------------------------------------------------


async def test_exchange_and_its_refusals(loop_world: Any) -> None:
    alice, bob = Shopper(loop_world, "alice"), Shopper(loop_world, "bob")
    status, out = await alice.post("/exchange", {"offer": "gems"})
    assert status == 200 and out["granted"] == {"currency": {"gem": 5}, "items": {}}
    assert out["player"]["wallet"] == {"acorn": 50, "gem": 5}
    err = await alice.refused("/exchange", {"offer": "gems"}, 409, "exchange_limit_reached")
    assert err["details"] == {"offer": "gems", "limit": 1, "period": "daily"}
    await alice.refused("/exchange", {"offer": "nope"}, 404, "unknown_item")
    await bob.refused("/exchange", {"offer": "ticket"}, 409, "insufficient_funds")
    await alice.refused("/exchange", {"offer": "gems", "extra": 1}, 422, "invalid_input")
    assert (await bob.post("/exchange", {"offer": "limited"}))[0] == 200
    err = await alice.refused("/exchange", {"offer": "limited"}, 409, "offer_sold_out")
    assert err["details"] == {"offer": "limited", "ref": "offer:limited"}
    loop_world.clock.advance(DAY)
    assert (await alice.post("/exchange", {"offer": "gems"}))[0] == 200  # a new day


async def _confirmed_grants(db: Any, ref: str) -> int:
    g = m.grants
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(g).where(
            g.c.ref == ref, g.c.status == "confirmed"))).scalar_one())


async def test_coupon_out_of_stock_does_not_break_play(loop_world: Any, db: Any) -> None:
    """Stock 1: one shopper gets the coupon, the others still complete the task."""
    players = [Shopper(loop_world, f"p{i}") for i in range(6)]
    results = await asyncio.gather(*(p.post("/tasks/share/complete", {}) for p in players))
    assert [s for s, _ in results] == [200] * 6
    granted = [o["granted"] for _, o in results]
    assert sum(g.get("coupons", {}).get("c10", 0) for g in granted) == 1
    assert sum(g.get("coupons_unavailable", {}).get("c10", 0) for g in granted) == 5
    assert all(g["currency"] == {"acorn": 1} for g in granted)
    assert await _confirmed_grants(db, "coupon:c10") == 1
    late = Shopper(loop_world, "late")
    await late.post("/tasks/follow/complete", {})  # 2 gems
    err = await late.refused("/exchange", {"offer": "coupon"}, 409, "offer_sold_out")
    assert err["details"]["ref"] == "coupon:c10"
    assert await _confirmed_grants(db, "coupon:c10") == 1


async def test_idempotent_replay_grants_once(loop_world: Any) -> None:
    alice = Shopper(loop_world, "alice")
    first = await alice.post("/checkin", {}, key="ck-1")
    second = await alice.post("/checkin", {}, key="ck-1")
    assert first == second
    assert (await alice.me())["player"]["wallet"]["acorn"] == 110
    status, out = await alice.post("/checkin/makeup", {}, key="ck-1")
    assert (status, out["error"]["code"]) == (422, "idempotency_mismatch")


async def test_get_player_full_view(loop_world: Any) -> None:
    alice = await adopted(loop_world)
    await alice.post("/checkin")
    loop_world.clock.advance(HOUR)
    me = (await alice.me())["player"]
    assert me["checkin"]["streak"] == 1
    assert me["tasks"]["browse15"] == {"kind": "browse", "period": "daily", "limit": 2,
                                       "done": 0, "browse_s": 15,
                                       "reward": {"currency": {"acorn": 5}, "items": {}}}
    assert me["tasks"]["spend99"]["spend_fen"] == 0
    assert me["exchanges"]["gems"] == {"used": 0, "limit": 1}
    assert me["pet"]["produce"]["pending"] == 10
    assert me["pet"]["stats"]["satiety"]["value"] == 45.0


async def test_every_operation_is_documented(loop_world: Any) -> None:
    resp = await loop_world.client.get("/openapi.json")
    doc = await resp.json()
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()
           if isinstance(op, dict) and "operationId" in op}
    assert {"getPlayer", "adoptPet", "feedPet", "playWithPet", "cleanPet", "collectProduce",
            "checkIn", "makeupCheckIn", "startTask", "completeTask", "exchange",
            "ingestOrder"} <= ids
    post = doc["paths"]["/v1/games/{game}/checkin"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in post["parameters"])


async def test_merchant_sees_the_daily_loop_in_the_games_timezone(loop_world: Any) -> None:
    """getPlayerAdmin shows check-in, tasks and exchanges exactly as the shopper sees them
    (it once left out the game's timezone, and with it these three sections)."""
    alice = await adopted(loop_world)
    assert (await alice.post("/checkin"))[0] == 200
    assert (await alice.post("/tasks/follow/start"))[0] == 200
    assert (await alice.post("/tasks/follow/complete"))[0] == 200
    assert (await alice.post("/exchange", {"offer": "gems"}))[0] == 200
    shopper = await alice.me()
    resp = await loop_world.client.get(
        "/v1/admin/games/squirrel/players/alice",
        headers={"Authorization": f"Bearer {loop_world.merchants['shop'].api_key}"})
    assert resp.status == 200
    merchant = (await resp.json())["player"]
    assert merchant["checkin"]["streak"] == 1
    assert merchant["checkin"]["checked_in_today"] is True
    assert merchant["tasks"]["follow"]["done"] == 1
    assert merchant["exchanges"]["gems"] == {"used": 1, "limit": 1}
    for section in ("checkin", "tasks", "exchanges"):
        assert merchant[section] == shopper["player"][section], section
