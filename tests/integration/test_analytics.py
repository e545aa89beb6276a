"""getAnalytics on a scripted dataset with known timestamps (SQLite and PostgreSQL).

Rows go straight into SQL with exact times, so every figure is known in
advance; one test takes the real path (HTTP actions, then the persister).
"""

from __future__ import annotations

import copy
import itertools
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from gameserver.appkeys import STORE
from gameserver.clock import ManualClock
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.state.keys import system_key
from tests.conftest import BASIC_CONFIG, World, app_persister, retry_503
from tests.integration.loopgame import Shopper, loop_world, post_order

__all__ = ["loop_world"]  # a fixture of this module's tests

SHANGHAI = ZoneInfo("Asia/Shanghai")
_ids = itertools.count(1)


def at(day: str, hms: str = "12:00:00", tz: ZoneInfo = SHANGHAI) -> int:
    """Unix seconds of a local wall time."""
    return int(datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=tz).timestamp())


def ledger_row(user: str, ts: int, merchant: str = "shop", game: str = "squirrel",
               reason: str = "feed", by_shopper: bool = True) -> dict[str, Any]:
    n = next(_ids)
    return {"commit_id": f"c{n}", "seq": 0, "merchant_id": merchant, "game_id": game,
            "user_id": user, "player_version": 1, "kind": "currency", "name": "acorn",
            "delta": -10, "before": 100, "after": 90, "reason": reason, "ts_ms": ts * 1000,
            "by_shopper": by_shopper}


def player_row(user: str, created: int, merchant: str = "shop", game: str = "squirrel",
               played: int | None = -1) -> dict[str, Any]:
    """A player row; ``played`` their first own action (-1: at ``created``; 0: none yet,
    a player an order or a merchant's grant created; None: unknown, a row from before
    migration 0012)."""
    return {"merchant_id": merchant, "game_id": game, "user_id": user, "version": 1,
            "state": b"x", "created_at": created, "last_seen": created, "flushed_at": created,
            "first_played_at": created if played == -1 else played}


def draw_row(user: str, ts: int, merchant: str = "shop") -> dict[str, Any]:
    n = next(_ids)
    return {"commit_id": f"d{n}", "seq": 0, "merchant_id": merchant, "game_id": "squirrel",
            "user_id": user, "series_id": "s1", "item": "fig", "rarity": "common", "nonce": n,
            "seed_hash": "h", "record": {"n": n}, "ts_ms": ts * 1000}


def grant_row(user: str, ts: int, kind: str = "coupon", status: str = "confirmed",
              shadow: bool = False, redeemed: int | None = None) -> dict[str, Any]:
    n = next(_ids)
    return {"merchant_id": "shop", "game_id": "squirrel", "user_id": user, "ref": "prize:c5",
            "kind": kind, "idem_key": f"k{n}", "position": 0, "commit_id": f"g{n}",
            "status": status, "code": f"C{n}", "detail": {"face": 5}, "reason": "box:s1",
            "shadow": shadow, "created_ms": ts * 1000,
            "settled_ms": ts * 1000 if status != "pending" else None,
            "redeemed_ms": None if redeemed is None else redeemed * 1000}


async def insert_rows(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(insert(table), rows)


async def scripted(db: Database) -> None:
    """alice, bob, carol, dave, eve around 2026-01-05 (a Monday) in Shanghai."""
    d5, d6 = "2026-01-05", "2026-01-06"
    await insert_rows(db, m.players, [
        player_row("alice", at(d5, "09:00:00")), player_row("bob", at(d5, "23:59:30")),
        player_row("carol", at(d6, "10:00:00")),
        player_row("eve", at("2026-01-07", "15:00:00"), played=None),  # from before 0012
        player_row("zed", at(d6), merchant="rival"),
        player_row("olga", at(d5, "08:00:00"), played=0),  # an order's, never played
    ])
    await insert_rows(db, m.ledger, [
        # alice: a 4-minute visit and a separate 1-minute visit on the 5th = 6 min
        ledger_row("alice", at(d5, "09:00:00")), ledger_row("alice", at(d5, "09:02:00")),
        ledger_row("alice", at(d5, "09:04:00")), ledger_row("alice", at(d5, "20:00:00")),
        ledger_row("alice", at(d6, "10:00:00")), ledger_row("alice", at("2026-01-12", "10:00:00")),
        ledger_row("alice", at("2026-02-04", "10:00:00")),
        # bob: one action either side of local midnight
        ledger_row("bob", at(d5, "23:59:30")), ledger_row("bob", at(d6, "00:00:30")),
        ledger_row("carol", at(d6, "10:00:00")), ledger_row("carol", at(d6, "10:01:00")),
        # dave: first seen before the range, no player row (never flushed)
        ledger_row("dave", at("2025-12-20")), ledger_row("dave", at(d6, "11:00:00")),
        # other merchants and games never count
        ledger_row("zed", at(d6), merchant="rival"), ledger_row("alice", at(d6), game="other"),
        # nor commits made for a shopper: olga's order, a clawback of bob's on the 8th
        ledger_row("olga", at(d5, "08:00:00"), by_shopper=False),
        ledger_row("bob", at("2026-01-08"), by_shopper=False),
    ])
    await insert_rows(db, m.draws, [draw_row("alice", at(d5, "09:02:00")) for _ in range(10)]
                      + [draw_row("carol", at(d6, "10:01:00")),
                         draw_row("zed", at(d6), merchant="rival")])
    await insert_rows(db, m.grants, [
        grant_row("alice", at(d6), redeemed=at(d6, "12:00:00")), grant_row("carol", at(d6)),
        grant_row("bob", at(d6), status="void"), grant_row("bob", at(d6), status="pending"),
        grant_row("bob", at(d6), kind="goods"), grant_row("bob", at(d6), shadow=True),
    ])


def rate(retained: int, size: int) -> dict[str, Any]:
    return {"retained": retained, "rate": round(retained / size, 4) if size else None}


async def analytics(world: World, query: str, merchant: str = "shop") -> Any:
    # A report answered 503 (its SQL past the bound on a loaded machine) is asked again.
    resp = await retry_503(lambda: world.get(f"/v1/admin/games/squirrel/analytics?{query}",
                                             str(world.merchants[merchant].api_key)))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_scripted_dataset_exact_figures(world: World, clock: ManualClock) -> None:
    await scripted(world.db)
    clock._now = float(at("2026-02-15"))

    report = await analytics(world, "end=2026-01-12&days=8")

    assert (report["timezone"], report["from"], report["to"], report["today"]) == \
        ("Asia/Shanghai", "2026-01-05", "2026-01-12", "2026-02-15")
    days = {d["date"]: d for d in report["days"]}
    assert len(days) == 8
    assert [(d["date"], d["dau"], d["new_players"], d["draws"], d["coupons_granted"],
             d["avg_active_minutes"]) for d in report["days"] if d["dau"]] == [
        ("2026-01-05", 2, 2, 10, 0, 3.5),   # alice 6 min, bob 1 min
        ("2026-01-06", 4, 1, 1, 2, 1.25),   # alice, bob, dave 1 min; carol 2 min
        ("2026-01-07", 1, 1, 0, 0, 1.0),    # eve: created, no ledger
        ("2026-01-12", 1, 0, 0, 0, 1.0),
    ]
    assert days["2026-01-08"] == {"date": "2026-01-08", "dau": 0, "new_players": 0,
                                  "draws": 0, "coupons_granted": 0, "avg_active_minutes": 0.0,
                                  "coupons_redeemed": 0, "plays": {}}
    assert days["2026-01-06"]["coupons_redeemed"] == 1  # alice's, redeemed at noon
    cohorts = {c["date"]: c for c in report["cohorts"]}
    assert cohorts["2026-01-05"] == {"date": "2026-01-05", "size": 2, "d1": rate(2, 2),
                                     "d7": rate(1, 2), "d30": rate(1, 2)}
    assert cohorts["2026-01-06"] == {"date": "2026-01-06", "size": 1, "d1": rate(0, 1),
                                     "d7": rate(0, 1), "d30": rate(0, 1)}
    assert cohorts["2026-01-08"]["d1"] == {"retained": 0, "rate": None}
    assert report["weekly"] == [
        {"week_start": "2026-01-05", "size": 4, "w1": rate(1, 4), "w2": rate(0, 4),
         "w3": rate(0, 4), "w4": rate(1, 4)},
        {"week_start": "2026-01-12", "size": 0, "w1": rate(0, 0), "w2": rate(0, 0),
         "w3": rate(0, 0), "w4": None},
    ]
    assert report["totals"] == {"players": 5, "active_players": 5, "new_players": 4,
                                "draws": 11, "coupons_granted": 2, "coupons_redeemed": 1,
                                "coupon_redemption_rate": 0.5,
                                "weekly_retention": rate(1, 4)}


async def test_retention_is_null_until_the_day_is_over(world: World,
                                                       clock: ManualClock) -> None:
    await scripted(world.db)
    clock._now = float(at("2026-01-12", "18:00:00"))  # the 12th is not over yet

    report = await analytics(world, "days=8")

    assert (report["from"], report["to"]) == ("2026-01-05", "2026-01-12")
    cohorts = {c["date"]: c for c in report["cohorts"]}
    assert (cohorts["2026-01-05"]["d1"], cohorts["2026-01-05"]["d7"],
            cohorts["2026-01-05"]["d30"]) == (rate(2, 2), None, None)
    assert cohorts["2026-01-11"]["d1"] is None
    assert report["weekly"][0]["w1"] is None
    assert report["totals"]["weekly_retention"] is None
    assert report["days"][-1]["dau"] == 1  # today so far: alice at 10:00


async def test_days_follow_the_games_time_zone_across_dst(world: World,
                                                          clock: ManualClock) -> None:
    ny = ZoneInfo("America/New_York")
    config = copy.deepcopy(BASIC_CONFIG)
    config["timezone"] = "America/New_York"
    await world.merchant("nyshop", config=config)
    rows = [  # DST starts 2026-03-08 02:00: EST (-5) before, EDT (-4) after
        ledger_row("ann", at("2026-03-07", "23:30:00", ny), merchant="nyshop"),
        ledger_row("ann", at("2026-03-09", "00:30:00", ny), merchant="nyshop"),
        ledger_row("ben", at("2026-03-08", "23:50:00", ny), merchant="nyshop"),
    ]
    await insert_rows(world.db, m.ledger, rows)
    clock._now = float(at("2026-03-20", tz=ny))

    report = await analytics(world, "end=2026-03-09&days=3", merchant="nyshop")

    assert report["timezone"] == "America/New_York"
    assert [(d["date"], d["dau"], d["new_players"]) for d in report["days"]] == [
        ("2026-03-07", 1, 1), ("2026-03-08", 1, 1), ("2026-03-09", 1, 0)]
    assert report["cohorts"][0]["d1"] == rate(0, 1)


async def test_bad_parameters_are_422(world: World) -> None:
    key = str(world.merchants["shop"].api_key)
    for query in ("days=0", "days=367", "days=x", "end=2026-13-01", "end=yesterday",
                  "days=-1", "end=20260101", "days=000000001000", "days=%C2%B2",
                  "days=0000000010000000000", "days=" + "9" * 5000, "end=0001-01-01",
                  "end=0001-12-31&days=366", "end=1971-01-01"):
        resp = await world.get(f"/v1/admin/games/squirrel/analytics?{query}", key)
        assert resp.status == 422, query
    assert (await world.get("/v1/admin/games/nope/analytics", key)).status == 404
    # parameters it does not take are refused by name, not ignored for the default range
    for query, named in (("from=2026-13-01", ["$.from"]), ("bogus=1&days=7", ["$.bogus"]),
                         ("to=2026-01-02&from=2026-01-01", ["$.from", "$.to"])):
        resp = await world.get(f"/v1/admin/games/squirrel/analytics?{query}", key)
        assert resp.status == 422, query
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_input"
        assert [p["path"] for p in error["details"]["problems"]] == named
    assert error["message"] == "unknown query parameters: from, to (known: days, end)"
    earliest = await world.get("/v1/admin/games/squirrel/analytics?end=1971-01-02&days=366",
                               key)
    assert earliest.status == 200, await earliest.text()
    assert (await earliest.json())["from"] == "1970-01-02"


async def test_real_actions_through_the_persister(world: World, clock: ManualClock) -> None:
    app = world.client.app
    clock._now = time.time()  # ledger times come from Redis' own clock (stream ids)
    token = await world.token("u1")
    adopted = await world.post("/v1/games/squirrel/pet", token,
                               {"species": "squirrel", "name": "Nutty"}, key="a1")
    assert adopted.status == 201, await adopted.text()
    fed = await world.post("/v1/games/squirrel/pet/feed", token, {"food": "snack"}, key="f1")
    assert fed.status == 200, await fed.text()
    await app_persister(app, consumer="c1").run_once()

    report = await analytics(world, "days=1")

    today = datetime.fromtimestamp(clock.now(), SHANGHAI).date().isoformat()
    [day] = report["days"]
    assert (day["date"], day["dau"], day["new_players"], day["draws"]) == (today, 1, 1, 0)
    assert 1.0 <= day["avg_active_minutes"] < 1.1  # one visit: seconds apart, + 1 min
    assert report["totals"]["players"] == 1


async def test_shared_plays_per_day_and_kind(world: World, clock: ManualClock) -> None:
    """Votes and joins count per day and kind of shared state, with their shoppers;
    a play's own system commits, commits made for a shopper (a team's synced points)
    and other merchants' rows do not."""
    from tests.integration.test_export import play_row

    d5, d6 = "2026-01-05", "2026-01-06"
    await insert_rows(world.db, m.aggregate_ledger, [
        play_row("alice", "poll", "p:b1", 1, at(d5, "09:00:00"), {}),
        play_row("alice", "poll", "p:b1", 2, at(d5, "09:01:00"), {}),
        play_row("bob", "poll", "p:b2", 1, at(d5, "10:00:00"), {}),
        play_row("_rain", "pool", "r:1", 1, at(d5, "10:00:00"), {}),  # a seed commit
        # points synced to dave's team from his own state: not a play of his
        {**play_row("dave", "team", "t:1", 1, at(d5, "11:00:00"), {}),
         "idem_key": system_key("sync", "3-40")},
        # a group's expiry and a team's match list, under the plays' own system users
        {**play_row("~system", "group", "g:y", 1, at(d5, "11:30:00"), {}),
         "idem_key": "groupbuy.expire"},
        {**play_row("~teams", "team", "m:1", 1, at(d5, "11:40:00"), {}), "idem_key": "add-t1"},
        play_row("carol", "group", "g:x", 1, at(d6, "23:30:00"), {}),
        play_row("zed", "poll", "p:b1", 9, at(d6), {}, merchant="rival"),
    ])
    clock._now = float(at("2026-02-15"))
    report = await analytics(world, "end=2026-01-07&days=3")
    assert [(d["date"], d["plays"]) for d in report["days"]] == [
        ("2026-01-05", {"poll": {"actions": 3, "shoppers": 2}}),
        ("2026-01-06", {"group": {"actions": 1, "shoppers": 1}}),
        ("2026-01-07", {}),
    ]


async def test_commits_made_for_a_shopper_are_not_their_activity(loop_world: World,
                                                                  clock: ManualClock) -> None:
    """Only a shopper's own actions are activity. A paid order, a refund of an order never
    seen and a campaign grant for users who never played each create the player, who is
    no player in the report until they act: buyer, who checks in the next day, is new
    that day. A refund's clawback and a grant to fan, who played on day one, do not
    make fan active on day two (no D1)."""
    app, key = loop_world.client.app, str(loop_world.merchants["shop"].api_key)
    app[STORE].entry_time_from_clock = True  # ledger times on the test clock's days
    clock._now = float(at("2026-01-05", "10:00:00"))
    fan = Shopper(loop_world, "fan")
    assert (await fan.post("/checkin"))[0] == 200
    for user, order, status in (("buyer", "o1", "paid"), ("ghost", "o2", "refunded"),
                                ("fan", "o3", "paid")):
        got, body = await post_order(loop_world, user=user, order_id=order, status=status,
                                     amount_fen=500, skus=["sku-1"])
        assert got == 200, body
    granted = await loop_world.post("/v1/admin/games/squirrel/players/gift/grant", key,
                                    {"wallet": {"acorn": 5}, "reason": "campaign",
                                     "create": True}, key="g1")
    assert granted.status == 200, await granted.text()

    clock._now = float(at("2026-01-06", "10:00:00"))
    assert (await Shopper(loop_world, "buyer").post("/checkin"))[0] == 200
    got, body = await post_order(loop_world, user="fan", order_id="o3", status="refunded",
                                 amount_fen=500, skus=["sku-1"])
    assert (got, body["taken_back"]["buy_any"]) == (200, 1), body  # a clawback row
    granted = await loop_world.post("/v1/admin/games/squirrel/players/fan/grant", key,
                                    {"wallet": {"acorn": 5}, "reason": "sorry"}, key="g2")
    assert granted.status == 200, await granted.text()
    await app_persister(app, consumer="c1").run_once()

    clock._now = float(at("2026-01-07", "10:00:00"))
    report = await analytics(loop_world, "end=2026-01-06&days=2")
    assert [(d["date"], d["dau"], d["new_players"]) for d in report["days"]] == [
        ("2026-01-05", 1, 1), ("2026-01-06", 1, 1)]  # fan, then buyer
    assert report["cohorts"][0]["d1"] == rate(0, 1)
    totals = report["totals"]
    assert (totals["players"], totals["active_players"], totals["new_players"]) == (2, 2, 2)


async def test_end_after_today_and_a_change_of_zone(world: World, clock: ManualClock) -> None:
    """An ``end`` after today is today; a published change of zone moves past actions
    to the new zone's days (bob's D1 in Shanghai is the same day in London)."""
    from gameserver.ops.provision import publish_config

    await insert_rows(world.db, m.players, [player_row("bob", at("2026-01-05", "23:30:00"))])
    await insert_rows(world.db, m.ledger, [ledger_row("bob", at("2026-01-06", "00:30:00"))])
    clock._now = float(at("2026-01-10"))
    late = await analytics(world, "end=2026-01-20&days=3")
    assert (late["from"], late["to"], late["today"]) == ("2026-01-08", "2026-01-10",
                                                         "2026-01-10")
    shanghai = await analytics(world, "end=2026-01-06&days=2")
    assert [(d["date"], d["dau"], d["new_players"]) for d in shanghai["days"]] == [
        ("2026-01-05", 1, 1), ("2026-01-06", 1, 0)]
    assert shanghai["cohorts"][0]["d1"] == rate(1, 1)

    config = copy.deepcopy(BASIC_CONFIG)
    config["timezone"] = "Europe/London"  # 23:30 and 00:30 Shanghai: 15:30 and 16:30
    await publish_config(world.db, "shop", "squirrel", config, int(clock.now()))
    london = await analytics(world, "end=2026-01-06&days=2")
    assert london["timezone"] == "Europe/London"
    assert [(d["date"], d["dau"], d["new_players"]) for d in london["days"]] == [
        ("2026-01-05", 1, 1), ("2026-01-06", 0, 0)]
    assert london["cohorts"][0]["d1"] == rate(0, 1)
