"""Group buy over HTTP against real Redis and SQL (SQLite, and PostgreSQL when
configured): open, join, fill (every member rewarded once), full, expired, leave, the
per-shopper limit, stock through the value tier, codes bound to merchant and game, the
expiry sweep (fail with refunds and a webhook, or auto-complete) run by two hosts, and
50 shoppers racing for the seats of a 5-seat group.

Offers (config GB_CONFIG): ``tea`` 3 seats, joining costs 10 acorns, the reward is 5
gems; ``duo`` 2 seats, auto-completes on expiry, 2 per shopper; ``rare`` 2 seats,
stock for 2 rewarded members; ``five`` 5 seats, free.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from sqlalchemy import select

from gameserver.api.groupbuy import GroupBuySweep
from gameserver.appkeys import CLOCK, DB, GAMES, REDIS, SETTINGS, VALUE
from gameserver.db import models as m
from gameserver.jobs.webhooks import OUTBOX
from gameserver.state.aggregates_app import AGGREGATES
from tests.conftest import BASIC_CONFIG, World
from tests.integration.loopgame import signed_order
from tests.integration.test_flashsale_http import in_flight
from tests.integration.test_poll_http import flush_all

GAME = "/v1/games/squirrel"
GB_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
GB_CONFIG["currencies"]["gem"] = {"name": "Gems", "initial": 0, "max": 1000}
_REWARD = {"currency": {"gem": 5}, "items": {}, "coupon": ""}
GB_CONFIG["groupbuys"] = {
    "tea": {"title": "Tea for 3", "size": 3, "duration_s": 3600, "cost": {"acorn": 10},
            "price_fen": 990, "reward": _REWARD},
    "duo": {"title": "Duo", "size": 2, "duration_s": 600, "reward": _REWARD,
            "auto_complete": True, "per_shopper": 2},
    "rare": {"title": "Rare", "size": 2, "duration_s": 600, "reward": _REWARD, "stock": 2,
             "per_shopper": 5},
    "five": {"title": "Five", "size": 5, "duration_s": 600, "reward": _REWARD},
}


@pytest.fixture
async def gw(world: World) -> World:
    await world.merchant("gbshop", config=GB_CONFIG)
    await world.merchant("othershop", config=GB_CONFIG)
    return world


def token(world: World, user: str, merchant: str = "gbshop") -> str:
    return world.mint(user, merchant)


async def create(world: World, tok: str, offer: str, key: str) -> Any:
    return await world.post(f"{GAME}/groupbuys/{offer}", tok, {}, key)


async def join(world: World, tok: str, offer: str, code: str, key: str) -> Any:
    return await world.post(f"{GAME}/groupbuys/{offer}/join", tok, {"code": code}, key)


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def error(resp: Any, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (status, code), body
    return body  # type: ignore[no-any-return]


async def me(world: World, tok: str) -> dict[str, Any]:
    return (await ok(await world.get(f"{GAME}/me", tok)))["player"]  # type: ignore[no-any-return]


def sweeper(world: World) -> GroupBuySweep:
    """One host's expiry sweep (the app's own is off in tests: run_background=False)."""
    app = world.client.app
    return GroupBuySweep(app[REDIS], [a.actions for a in app[AGGREGATES].values()],
                         app[GAMES], app[CLOCK], app[SETTINGS].shards, app[OUTBOX], 1.0)


async def webhooks(world: World) -> list[tuple[str, str]]:
    w = m.webhook_outbox
    async with world.client.app[DB].connect() as conn:
        rows = await conn.execute(select(w.c.event, w.c.event_key).order_by(w.c.id))
        return [(r[0], r[1]) for r in rows]


async def test_open_share_join_fill_rewards_every_member_once(gw: World) -> None:
    ann, bob, cat, dan = (token(gw, u) for u in ("ann", "bob", "cat", "dan"))
    opened = await ok(await create(gw, ann, "tea", "o1"))
    code = opened["code"]
    assert opened["group"] == code and len(code) == 10
    assert (opened["size"], opened["seats_left"], opened["state"], opened["expires_at"],
            opened["wallet"]) == (3, 2, "open", int(gw.clock.now()) + 3600,
                                  {"acorn": 90, "gem": 0})
    again = await create(gw, ann, "tea", "o1")  # a retry: the same group, charged once
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await ok(again))["code"] == code

    listed = await ok(await gw.get(f"{GAME}/groupbuys/tea", bob))
    assert [(g["code"], g["seats_left"]) for g in listed["groups"]] == [(code, 2)]

    joined = await ok(await join(gw, bob, "tea", code, "j1"))
    assert (joined["seats_left"], joined["state"], joined["wallet"]) == (
        1, "open", {"acorn": 90, "gem": 0})
    filled = await ok(await join(gw, cat, "tea", code, "j2"))
    assert (filled["seats_left"], filled["state"], filled["wallet"]) == (
        0, "complete", {"acorn": 90, "gem": 5})
    assert filled["reward"]["granted"] is True
    await error(await join(gw, dan, "tea", code, "j3"), 409, "group_full")

    for tok in (ann, bob, cat):  # every member rewarded once, by the filling request
        player = await me(gw, tok)
        assert player["wallet"] == {"acorn": 90, "gem": 5}
        assert [(g["group"], g["state"], g["rewarded"]) for g in player["groupbuys"]] == [
            (code, "complete", True)]
    assert (await me(gw, dan))["wallet"] == {"acorn": 100, "gem": 0}
    replay = await join(gw, cat, "tea", code, "j2")
    assert (await ok(replay))["wallet"] == {"acorn": 90, "gem": 5}

    view = await ok(await gw.get(f"{GAME}/groupbuys/tea/groups/{code}", dan))
    assert (view["state"], view["seats_left"], view["member_count"]) == ("complete", 0, 3)
    assert [mm["opener"] for mm in view["members"]] == [True, False, False]
    assert (await ok(await gw.get(f"{GAME}/groupbuys/tea", dan)))["groups"] == []

    assert await sweeper(gw).run_once() == 1  # the completion is due now: merchant told
    assert await webhooks(gw) == [("groupbuy.complete", f"groupbuy:{code}:complete")]


async def test_expiry_fails_refunds_and_tells_the_merchant_once_on_two_hosts(
        gw: World) -> None:
    ann, bob, cat = (token(gw, u) for u in ("ann", "bob", "cat"))
    code = (await ok(await create(gw, ann, "tea", "o1")))["code"]
    await ok(await join(gw, bob, "tea", code, "j1"))
    gw.clock.advance(3599)
    assert await sweeper(gw).run_once() == 0  # one second early: nothing
    gw.clock.advance(1)
    await error(await join(gw, cat, "tea", code, "j2"), 409, "group_expired")
    view = await ok(await gw.get(f"{GAME}/groupbuys/tea/groups/{code}", cat))
    assert view["state"] == "failed"  # decided at the expiry, before the sweep

    one, two = sweeper(gw), sweeper(gw)
    assert await asyncio.gather(one.run_once(), two.run_once()) in ([1, 0], [0, 1], [1, 1])
    assert await one.run_once() == 0
    late = await create(gw, ann, "tea", "o1")  # a late retry of the swept group's create
    assert late.status == 200 and late.headers["Idempotent-Replayed"] == "true"
    listing = await gw.client.get("/v1/admin/games/squirrel/groupbuys/tea", headers={
        "Authorization": f"Bearer {gw.merchants['gbshop'].api_key}"})
    assert listing.status == 200, await listing.text()
    listed = await listing.json()
    assert (listed["open"], listed["groups"]) == (0, [])  # not listed again
    assert await one.run_once() == 0
    for tok in (ann, bob):
        player = await me(gw, tok)
        assert player["wallet"] == {"acorn": 100, "gem": 0}  # refunded once
        assert [g["state"] for g in player["groupbuys"]] == ["failed"]
    assert await webhooks(gw) == [("groupbuy.failed", f"groupbuy:{code}:failed")]
    assert (await ok(await create(gw, ann, "tea", "o2")))["state"] == "open"  # limit freed

    await flush_all(gw)  # write-behind: the group's commits and every member's, once
    a, lg = m.aggregate_ledger, m.ledger
    async with gw.client.app[DB].connect() as conn:
        gates = (await conn.execute(select(a.c.user_id, a.c.idem_key)
                                    .where(a.c.aggregate_id == code).order_by(a.c.id))).all()
        money = (await conn.execute(select(lg.c.user_id, lg.c.delta)
                                    .where(lg.c.reason.like(f"groupbuy:{code}%"))
                                    .order_by(lg.c.user_id, lg.c.delta))).all()
    assert [tuple(r) for r in gates] == [("ann", "o1"), ("bob", "j1"),
                                         ("~system", "groupbuy.expire")]
    assert [tuple(r) for r in money] == [("ann", -10), ("ann", 10), ("bob", -10), ("bob", 10)]


async def test_auto_complete_fills_with_system_members_and_rewards(gw: World) -> None:
    ann = token(gw, "ann")
    code = (await ok(await create(gw, ann, "duo", "o1")))["code"]
    gw.clock.advance(600)
    assert await sweeper(gw).run_once() == 1
    view = await ok(await gw.get(f"{GAME}/groupbuys/duo/groups/{code}", ann))
    assert (view["state"], [mm.get("system", False) for mm in view["members"]]) == (
        "complete", [False, True])
    assert (await me(gw, ann))["wallet"] == {"acorn": 100, "gem": 5}
    assert await webhooks(gw) == [("groupbuy.complete", f"groupbuy:{code}:complete")]


async def test_leave_gives_the_seat_and_the_payment_back(gw: World) -> None:
    ann, bob = token(gw, "ann"), token(gw, "bob")
    code = (await ok(await create(gw, ann, "tea", "o1")))["code"]
    await ok(await join(gw, bob, "tea", code, "j1"))
    left = await ok(await gw.post(f"{GAME}/groupbuys/tea/groups/{code}/leave", bob, {}, "l1"))
    assert (left["state"], left["seats_left"], left["refunded"], left["wallet"]) == (
        "open", 2, {"acorn": 10}, {"acorn": 100, "gem": 0})
    await error(await gw.post(f"{GAME}/groupbuys/tea/groups/{code}/leave", ann, {}, "l2"),
                409, "cannot_leave_group")
    await error(await join(gw, bob, "tea", code, "j2"), 409, "already_in_group")


async def test_limits_and_bad_input_change_nothing(gw: World) -> None:
    ann, bob = token(gw, "ann"), token(gw, "bob")
    code = (await ok(await create(gw, ann, "tea", "o1")))["code"]
    await error(await create(gw, ann, "tea", "o2"), 409, "group_limit_reached")
    listed = await ok(await gw.get(f"{GAME}/groupbuys/tea", bob))
    assert [g["code"] for g in listed["groups"]] == [code]
    index = gw.client.app[AGGREGATES]["pb"].actions.services.keys.aggregate_index(
        "gbshop", "squirrel", "groupbuy", "tea")
    assert await gw.client.app[REDIS].zcard(index) == 1  # the refused id is not listed
    await error(await join(gw, ann, "tea", code, "j0"), 409, "already_in_group")
    await error(await join(gw, bob, "tea", "zzzzzzzzzz", "j1"), 404, "group_not_found")
    await error(await join(gw, bob, "tea", "NOT-A-CODE", "j2"), 422, "invalid_input")
    await error(await join(gw, bob, "nope", code, "j3"), 404, "unknown_item")
    await error(await join(gw, bob, "duo", code, "j4"), 404, "group_not_found")
    await error(await gw.get(f"{GAME}/groupbuys/tea/groups/x", bob), 404, "group_not_found")
    other = token(gw, "bob", merchant="othershop")  # another merchant's code: not there
    await error(await join(gw, other, "tea", code, "j5"), 404, "group_not_found")
    await error(await gw.get(f"{GAME}/groupbuys/tea/groups/{code}", other), 404,
                "group_not_found")
    no_key = await gw.post(f"{GAME}/groupbuys/tea/join", bob, {"code": code})
    assert no_key.status == 400
    assert (await me(gw, bob))["wallet"] == {"acorn": 100, "gem": 0}
    view = await ok(await gw.get(f"{GAME}/groupbuys/tea/groups/{code}", bob))
    assert (view["member_count"], view["seats_left"]) == (1, 2)


async def test_stock_rewards_through_the_value_tier_and_runs_out(gw: World) -> None:
    ann, bob, cat = (token(gw, u) for u in ("ann", "bob", "cat"))
    code = (await ok(await create(gw, ann, "rare", "o1")))["code"]
    await ok(await join(gw, bob, "rare", code, "j1"))
    g = m.grants
    async with gw.client.app[DB].connect() as conn:
        rows = (await conn.execute(select(g.c.user_id, g.c.ref, g.c.status)
                                   .order_by(g.c.user_id))).all()
    assert [tuple(r) for r in rows] == [("ann", "groupbuy:rare", "confirmed"),
                                        ("bob", "groupbuy:rare", "confirmed")]
    body = await error(await create(gw, cat, "rare", "o2"), 409, "groupbuy_sold_out")
    assert body["error"]["details"] == {"offer": "rare", "left": 0, "stock_pending": 0}


async def test_a_unit_held_by_a_grant_in_flight_is_sold_out_for_now(gw: World) -> None:
    """Too few units left for a full group, but one is held by a grant still being
    settled: the refusal says it may come back (Retry-After); once it is back, a group
    opens."""
    ann = token(gw, "ann")
    value = gw.client.app[VALUE]
    await value.ensure_stock("gbshop", "squirrel", {"groupbuy:rare": 2})
    pieces = await in_flight(gw, "attempt-1", "groupbuy:rare", "gbshop")
    resp = await create(gw, ann, "rare", "o1")
    body = await error(resp, 409, "groupbuy_sold_out")
    assert body["error"]["details"] == {"offer": "rare", "left": 1, "stock_pending": 1,
                                        "retry_after": 1}
    assert resp.headers["Retry-After"] == "1"
    await value.gate.give_back("gbshop", "squirrel", pieces)
    assert (await ok(await create(gw, ann, "rare", "o2")))["size"] == 2


async def test_fifty_shoppers_race_for_a_five_seat_group(gw: World) -> None:
    """50 shoppers join a 5-seat group its opener shared, all at once: exactly 4 joins
    are taken (5 members with the opener), 46 answer 409 group_full, none 5xx."""
    opener = token(gw, "opener")
    code = (await ok(await create(gw, opener, "five", "o1")))["code"]
    toks = [token(gw, f"racer{i}") for i in range(50)]
    results = await asyncio.gather(*[join(gw, t, "five", code, f"r{i}")
                                     for i, t in enumerate(toks)])
    statuses = [r.status for r in results]
    assert statuses.count(200) == 4 and statuses.count(409) == 46, sorted(statuses)
    codes = {(await r.json())["error"]["code"] for r in results if r.status == 409}
    assert codes == {"group_full"}
    view = await ok(await gw.get(f"{GAME}/groupbuys/five/groups/{code}", opener))
    assert (view["member_count"], view["state"]) == (5, "complete")
    winners = [t for t, r in zip(toks, results, strict=True) if r.status == 200]
    for tok in [opener, *winners]:
        assert (await me(gw, tok))["wallet"]["gem"] == 5


async def test_refund_after_completion_through_ingest_order(gw: World) -> None:
    """The merchant refunds a member's group purchase: the order names the group
    (sku ``groupbuy:<code>``); the reward goes back once, the group no longer counts."""
    ann, bob = token(gw, "ann"), token(gw, "bob")
    code = (await ok(await create(gw, ann, "duo", "o1")))["code"]
    await ok(await join(gw, bob, "duo", code, "j1"))

    async def order(status: str) -> tuple[int, Any]:
        body, headers = signed_order(
            gw.merchants["gbshop"].signing_secret, int(gw.clock.now()), merchant="gbshop",
            user="bob", order_id="gb-1", amount_fen=990, status=status,
            skus=[f"groupbuy:{code}", "TEA-1"])
        resp = await gw.client.post("/v1/events/orders", data=body, headers=headers)
        return resp.status, await resp.json()

    status, paid = await order("paid")
    assert status == 200 and "groupbuy" not in paid  # a paid order changes no group
    status, out = await order("refunded")
    assert (status, out["groupbuy"]) == (200, {"groups": [
        {"group": code, "refunded": True, "debt": {}}]})
    player = await me(gw, bob)
    assert player["wallet"] == {"acorn": 100, "gem": 0}
    assert [g["state"] for g in player["groupbuys"]] == ["refunded"]
    status, again = await order("refunded")
    # the webhook retried: the first answer replayed, marked a duplicate
    assert (status, again) == (200, {**out, "duplicate": True})
    assert (await me(gw, ann))["wallet"] == {"acorn": 100, "gem": 5}  # others keep theirs


async def test_a_refund_after_many_other_groups_still_takes_the_reward_back(
        gw: World) -> None:
    """A complete group stays in its member's state however many other groups they
    close: 21 groups joined and left later, the refund of its purchase still takes the
    reward back (before, the 20 newer closed groups had pushed it out: ``refunded:
    false``, the reward kept)."""
    ann, bob = token(gw, "ann"), token(gw, "bob")
    code = (await ok(await create(gw, ann, "duo", "o1")))["code"]
    await ok(await join(gw, bob, "duo", code, "j1"))
    for i in range(21):
        other = (await ok(await create(gw, token(gw, f"opener{i}"), "tea", f"o{i}")))["code"]
        await ok(await join(gw, bob, "tea", other, f"t{i}"))
        await ok(await gw.post(f"{GAME}/groupbuys/tea/groups/{other}/leave", bob, {},
                               f"l{i}"))
    player = await me(gw, bob)
    assert player["wallet"] == {"acorn": 100, "gem": 5}
    states = {g["group"]: g["state"] for g in player["groupbuys"]}
    assert len(states) == 21 and states[code] == "complete"  # + the 20 newest left
    body, headers = signed_order(
        gw.merchants["gbshop"].signing_secret, int(gw.clock.now()), merchant="gbshop",
        user="bob", order_id="gb-1", amount_fen=990, status="refunded",
        skus=[f"groupbuy:{code}"])
    out = await ok(await gw.client.post("/v1/events/orders", data=body, headers=headers))
    assert out["groupbuy"] == {"groups": [{"group": code, "refunded": True, "debt": {}}]}
    player = await me(gw, bob)
    assert player["wallet"] == {"acorn": 100, "gem": 0}
    assert {g["group"]: g["state"] for g in player["groupbuys"]}[code] == "refunded"


async def test_a_lost_index_is_rebuilt_from_sql_and_its_groups_still_end(gw: World) -> None:
    """Redis lost the offer indexes (data loss): the sweep indexes every open group SQL
    holds again, once, so an unfilled group is still failed and its members refunded."""
    ann = token(gw, "ann")
    code = (await ok(await create(gw, ann, "tea", "o1")))["code"]
    assert await sweeper(gw).run_once() == 0  # builds the registry's mark
    await flush_all(gw)
    app = gw.client.app
    keys = app[AGGREGATES]["pb"].actions.services.keys
    lost = [keys.aggregate_indexes("groupbuy"),
            keys.aggregate_index("gbshop", "squirrel", "groupbuy", "tea")]
    assert await app[REDIS].delete(*lost) == 2
    gw.clock.advance(3600)
    assert await sweeper(gw).run_once() == 1
    assert (await me(gw, ann))["wallet"] == {"acorn": 100, "gem": 0}
    assert await webhooks(gw) == [("groupbuy.failed", f"groupbuy:{code}:failed")]
    assert await sweeper(gw).run_once() == 0


async def test_merchant_sees_open_groups_with_members_and_stock(gw: World) -> None:
    ann, bob = token(gw, "ann"), token(gw, "bob")
    code = (await ok(await create(gw, ann, "rare", "o1")))["code"]
    admin = {"Authorization": f"Bearer {gw.merchants['gbshop'].api_key}"}
    path = "/v1/admin/games/squirrel/groupbuys/rare"
    view = await ok(await gw.client.get(path, headers=admin))
    assert (view["open"], [(g["code"], g["users"]) for g in view["groups"]]) == (
        1, [(code, ["ann"])])
    assert view["stock"] == {"ref": "groupbuy:rare", "total": 2, "reserved": 0, "granted": 0,
                             "left": 2}
    await ok(await join(gw, bob, "rare", code, "j1"))
    view = await ok(await gw.client.get(path, headers=admin))
    assert (view["open"], view["groups"], view["stock"]["granted"]) == (0, [], 2)
    other = {"Authorization": f"Bearer {gw.merchants['othershop'].api_key}"}
    assert (await ok(await gw.client.get(path, headers=other)))["groups"] == []
    await error(await gw.client.get(path, headers={"Authorization": f"Bearer {ann}"}), 403,
                "forbidden")


async def test_a_host_whose_clock_is_early_leaves_the_group_for_later(gw: World) -> None:
    """An index entry due by its score but not by the group's own expiry (hosts' clocks
    differ) is left in place, not dropped: the group is still ended when it is due."""
    ann = token(gw, "ann")
    code = (await ok(await create(gw, ann, "tea", "o1")))["code"]
    app = gw.client.app
    index = app[AGGREGATES]["pb"].actions.services.keys.aggregate_index(
        "gbshop", "squirrel", "groupbuy", "tea")
    await app[REDIS].zadd(index, {code: 1})
    assert await sweeper(gw).run_once() == 0
    assert await app[REDIS].zscore(index, code) == 1
    gw.clock.advance(3600)
    assert await sweeper(gw).run_once() == 1
    assert (await me(gw, ann))["wallet"] == {"acorn": 100, "gem": 0}


async def test_fifty_shoppers_race_for_the_last_seat(gw: World) -> None:
    """Four of five seats taken, then 50 shoppers at once for the last one: exactly one
    member more, 49 clear 409 group_full, none 5xx."""
    code = (await ok(await create(gw, token(gw, "opener"), "five", "o1")))["code"]
    for i in range(3):
        await ok(await join(gw, token(gw, f"early{i}"), "five", code, f"e{i}"))
    results = await asyncio.gather(*[join(gw, token(gw, f"last{i}"), "five", code, f"l{i}")
                                     for i in range(50)])
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [409] * 49, statuses
    assert {(await r.json())["error"]["code"] for r in results if r.status == 409} == {
        "group_full"}
    view = await ok(await gw.get(f"{GAME}/groupbuys/five/groups/{code}", token(gw, "x")))
    assert (view["member_count"], view["seats_left"], view["state"]) == (5, 0, "complete")


async def test_one_shopper_racing_with_two_keys_stays_within_the_limit(gw: World) -> None:
    """``per_shopper`` 1: the same shopper opens twice, and joins two groups, at the same
    instant with different keys: one of each is taken, the other is refused."""
    ann, bob, cat, dan = (token(gw, u) for u in ("ann", "bob", "cat", "dan"))
    opened = await asyncio.gather(create(gw, ann, "tea", "o1"), create(gw, ann, "tea", "o2"))
    assert sorted(r.status for r in opened) == [200, 409]
    assert {(await r.json()).get("error", {}).get("code") for r in opened} == {
        None, "group_limit_reached"}
    one = (await ok(await create(gw, bob, "tea", "o3")))["code"]
    two = (await ok(await create(gw, cat, "tea", "o4")))["code"]
    joins = await asyncio.gather(join(gw, dan, "tea", one, "j1"), join(gw, dan, "tea", two, "j2"))
    assert sorted(r.status for r in joins) == [200, 409]
    player = await me(gw, dan)
    assert (len(player["groupbuys"]), player["wallet"]["acorn"]) == (1, 90)


async def test_a_lock_left_by_a_crash_lets_its_own_retry_through(
        gw: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shopper's lock left by a request that died: a retry with that request's key goes
    on (and applies once); another key waits, then is refused 409 groupbuy_in_progress."""
    import gameserver.api.serial as api

    monkeypatch.setattr(api, "LOCK_WAIT_S", 0.1)
    ann = token(gw, "ann")
    app = gw.client.app
    lock = app[AGGREGATES]["pb"].actions.services.keys.lock(
        "groupbuy:gbshop:squirrel:tea:ann")
    await app[REDIS].set(lock, "o1|dead", px=5000)
    busy = await error(await create(gw, ann, "tea", "o2"), 409, "groupbuy_in_progress")
    assert busy["error"]["details"]["retry_after"] == 1
    opened = await ok(await create(gw, ann, "tea", "o1"))
    assert opened["wallet"] == {"acorn": 90, "gem": 0}
    assert await app[REDIS].get(lock) == b"o1|dead"  # not ours to release
