"""Friend assist over HTTP against real Redis and SQL (SQLite, and PostgreSQL when
configured): ``startAssist``, ``giveAssist`` (two commits each: the assist is the
gate) and ``getAssist``; the owner's reward (a coupon, through the value tier) granted
exactly once; refusals that change nothing; the owed reconciler converging a help whose
second commits never ran.

Campaign ``friends`` (ASSIST_CONFIG): 3 helps within a day; the owner gets 50 acorns
and a ¥10 coupon (stock 5); each helper 1 ticket; 2 helps a helper a day, 3 in all.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from sqlalchemy import select

from gameserver.api.assist import CODEC
from gameserver.appkeys import CLOCK, GAMES, SETTINGS
from gameserver.db import models as m
from gameserver.state.aggregates_gate import OwedReconciler
from gameserver.state.keys import AggregateRef, PlayerRef, shard_of
from mechanics import assist as rules
from tests.conftest import BASIC_CONFIG, World
from tests.integration.test_poll_http import aggs, all_owed

NOW = 1_767_225_600
GAME = "/v1/games/squirrel"
START = f"{GAME}/assists/friends"
HELP = f"{GAME}/assists/friends/help"
ADMIN = "/v1/admin/games/squirrel"
ASSIST_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
ASSIST_CONFIG["currencies"]["ticket"] = {"name": "Tickets", "initial": 0, "max": 10}
ASSIST_CONFIG["coupons"] = {"c10": {"name": "¥10 off", "stock": 5, "value_fen": 1000}}
ASSIST_CONFIG["assists"] = {
    "friends": {"title": "3 friends, ¥10 off", "needed": 3, "duration_s": 86400,
                "owner_reward": {"currency": {"acorn": 50}, "coupon": "c10"},
                "helper_reward": {"currency": {"ticket": 1}}, "helps_per_day": 2,
                "helps_per_campaign": 3},
    "aged": {"title": "Old sessions only", "needed": 2, "duration_s": 3600,
             "owner_reward": {"currency": {"acorn": 5}}, "min_session_age_s": 600,
             "new_fans_only": True},
}


@pytest.fixture
async def aw(world: World) -> World:
    await world.merchant("helpshop", config=ASSIST_CONFIG)
    await world.merchant("othershop", config=ASSIST_CONFIG)
    return world


def token(world: World, user: str, merchant: str = "helpshop", age: int = 3600) -> str:
    """A session made ``age`` seconds ago (its expiry tells its age)."""
    return world.mint(user, merchant, age=age)


async def start(world: World, tok: str, key: str, campaign: str = "friends") -> Any:
    return await world.post(f"{GAME}/assists/{campaign}", tok, {}, key)


async def help_(world: World, tok: str, code: str, key: str, campaign: str = "friends"
                ) -> Any:
    return await world.post(f"{GAME}/assists/{campaign}/help", tok, {"code": code}, key)


async def read(world: World, tok: str, code: str, campaign: str = "friends") -> Any:
    resp = await world.get(f"{GAME}/assists/{campaign}/{code}", tok)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def me(world: World, tok: str) -> dict[str, Any]:
    resp = await world.get(f"{GAME}/me", tok)
    assert resp.status == 200, await resp.text()
    return dict((await resp.json())["player"])


async def coupon_grants(world: World) -> list[tuple[str, str, str, str]]:
    async with world.db.connect() as conn:
        rows = (await conn.execute(select(m.grants.c.user_id, m.grants.c.ref,
                                          m.grants.c.status, m.grants.c.idem_key))).all()
    return [tuple(r) for r in rows]


async def notices(world: World, merchant: str = "helpshop") -> list[tuple[str, str, Any]]:
    """The merchant's webhook outbox: (event, key, data) of every event."""
    resp = await world.client.get(f"{ADMIN}/webhooks", headers={
        "Authorization": f"Bearer {world.merchants[merchant].api_key}"})
    assert resp.status == 200, await resp.text()
    return [(e["event"], e["key"], e["data"]) for e in (await resp.json())["events"]]


async def started(world: World, owner: str = "olga") -> str:
    """The code of ``owner``'s started help request at helpshop."""
    return await started_in(world, "helpshop", owner)


async def test_three_helps_complete_and_the_owner_is_rewarded_once(aw: World) -> None:
    olga = token(aw, "olga")
    resp = await start(aw, olga, "s1")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    code = body["code"]
    assert len(code) == 10 and set(code) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert body == {"assist": code, "code": code, "campaign": "friends", "needed": 3,
                    "helps": 0, "expires_at": NOW + 86400}
    replay = await start(aw, olga, "s1")
    assert replay.headers.get("Idempotent-Replayed") == "true" and await replay.json() == body
    assert (await me(aw, olga))["assists"]["friends"]["open"] == [
        {"assist": code, "expires_at": NOW + 86400, "needed": 3}]

    for i, helper in enumerate(["hana", "hugo"], 1):
        resp = await help_(aw, token(aw, helper), code, f"h-{helper}")
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"assist": code, "campaign": "friends", "helps": i,
                                     "needed": 3, "complete": False,
                                     "reward": {"currency": {"ticket": 1}, "items": {}},
                                     "wallet": {"acorn": 100, "ticket": 1}}
    assert (await read(aw, olga, code))["reward_state"] == "pending"
    last = await help_(aw, token(aw, "hedy"), code, "h-hedy")
    assert last.status == 200 and (await last.json())["complete"] is True

    owner = await me(aw, olga)
    assert owner["wallet"] == {"acorn": 150, "ticket": 0}
    assert owner["assists"]["friends"]["open"] == []
    assert owner["assists"]["friends"]["rewarded"] == [code]
    assert await coupon_grants(aw) == [("olga", "coupon:c10", "confirmed",
                                        rules.reward_key(code))]
    view = await read(aw, olga, code)
    assert (view["state"], view["helps"], view["helps_left"], view["reward_state"],
            view["mine"], view["completed_at"]) == ("complete", 3, 0, "granted", True, NOW)
    assert (await read(aw, token(aw, "hana"), code))["helped"] is True
    assert await all_owed(aw) == []
    assert await notices(aw) == [("assist.completed", f"assist.completed:friends:{code}", {
        "campaign": "friends", "assist": code, "owner": "olga", "needed": 3,
        "reward": {"currency": {"acorn": 50}, "items": {}, "coupon": "c10"},
        "reward_state": "granted",
        "granted": {"currency": {"acorn": 50}, "items": {}, "coupons": {"c10": 1}}})]

    # the completing help retried, and a fourth helper: nothing more for anyone
    again = await help_(aw, token(aw, "hedy"), code, "h-hedy")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == await last.json()
    late = await help_(aw, token(aw, "hal"), code, "h-hal")
    assert late.status == 409 and (await late.json())["error"]["code"] == "assist_complete"
    assert (await me(aw, olga))["wallet"] == {"acorn": 150, "ticket": 0}
    assert len(await coupon_grants(aw)) == 1 and len(await notices(aw)) == 1
    assert (await me(aw, token(aw, "hal")))["wallet"] == {"acorn": 100, "ticket": 0}


async def test_refusals_are_clear_and_change_nothing(aw: World) -> None:
    code = await started(aw)
    olga, hana = token(aw, "olga"), token(aw, "hana")
    other = await started_in(aw, "othershop", "oscar")
    cases = [
        (await help_(aw, olga, code, "k1"), 403, "self_assist"),
        (await help_(aw, hana, "a" * 10, "k2"), 404, "assist_not_found"),
        (await help_(aw, hana, other, "k3"), 404, "assist_not_found"),  # another merchant's
        (await help_(aw, hana, "ABC", "k4"), 422, "invalid_input"),
        (await aw.client.post(HELP, json={"code": code},
                              headers={"Authorization": f"Bearer {hana}"}),
         400, "idempotency_key_required"),
        (await help_(aw, hana, code, "k5", campaign="nope"), 404, "unknown_item"),
        (await start(aw, olga, "k6"), 409, "assist_open"),
        (await aw.get(f"{GAME}/assists/friends/{other}", hana), 404, "assist_not_found"),
        (await aw.get(f"{GAME}/assists/friends/..", hana), 404, None),
    ]
    for resp, status, err in cases:
        assert resp.status == status, await resp.text()
        if err is not None:
            assert (await resp.json())["error"]["code"] == err
    assert (await read(aw, hana, code))["helps"] == 0
    assert await me(aw, hana) == await me(aw, token(aw, "nobody"))  # hana unchanged

    assert (await help_(aw, hana, code, "k7")).status == 200
    twice = await help_(aw, hana, code, "k8")
    assert twice.status == 409 and (await twice.json())["error"]["code"] == "already_helped"
    reused = await help_(aw, hana, "b" * 10, "k7")  # same key, other body
    assert reused.status == 422
    assert (await reused.json())["error"]["code"] == "idempotency_mismatch"
    assert (await read(aw, hana, code))["helps"] == 1
    assert (await me(aw, hana))["wallet"] == {"acorn": 100, "ticket": 1}
    # A refusal the assist alone decides (self_assist) still lets the key speak first.
    own = await started(aw, "hana")
    self_help = await help_(aw, hana, own, "k7")
    assert self_help.status == 422, await self_help.text()
    assert (await self_help.json())["error"]["code"] == "idempotency_mismatch"
    assert (await help_(aw, hana, own, "k9")).status == 403  # a fresh key: self_assist
    replayed = await help_(aw, hana, code, "k7")
    assert replayed.status == 200 and replayed.headers["Idempotent-Replayed"] == "true"


async def started_in(world: World, merchant: str, owner: str) -> str:
    resp = await start(world, token(world, owner, merchant), f"s-{owner}")
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["code"])


async def test_helper_caps_per_day_and_campaign_and_expiry(aw: World) -> None:
    codes = [await started(aw, f"own{i}") for i in range(5)]
    hana = token(aw, "hana")
    for i in range(2):
        assert (await help_(aw, hana, codes[i], f"d1-{i}")).status == 200
    capped = await help_(aw, hana, codes[2], "d1-2")
    assert capped.status == 409
    assert (await capped.json())["error"]["details"] == {"campaign": "friends", "per": "day",
                                                         "limit": 2}
    assert (await me(aw, hana))["assists"]["friends"]["helps_left_today"] == 0
    aw.clock.advance(16 * 3600)  # 00:00 the next day in Shanghai
    assert (await help_(aw, token(aw, "hana"), codes[2], "d2-0")).status == 200
    over = await help_(aw, token(aw, "hana"), codes[3], "d2-1")
    assert over.status == 409 and (await over.json())["error"]["details"]["per"] == "campaign"
    aw.clock.set(NOW + 86400)  # the assists' expiry instant
    gone = await help_(aw, token(aw, "hugo"), codes[4], "e1")
    assert gone.status == 409 and (await gone.json())["error"]["code"] == "assist_expired"
    assert (await read(aw, token(aw, "hugo"), codes[4]))["state"] == "expired"
    again = await start(aw, token(aw, "own4"), "s-again")  # max_starts 1
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "assist_starts_used"


async def test_session_age_and_new_fans(aw: World) -> None:
    olga = token(aw, "olga")
    code = (await (await start(aw, olga, "a1", campaign="aged")).json())["code"]
    young = await help_(aw, token(aw, "hana", age=599), code, "y1", campaign="aged")
    assert young.status == 429 and young.headers["Retry-After"] == "1"
    assert (await young.json())["error"]["code"] == "session_too_young"
    # a shopper who played before the assist started is no new fan
    aw.clock.set(NOW - 10)
    assert (await aw.post(f"{GAME}/pet", token(aw, "vet"), {"species": "squirrel",
                                                             "name": "Nut"}, "p1")).status \
        in (200, 201)
    aw.clock.set(NOW + 5)
    old = await help_(aw, token(aw, "vet"), code, "v1", campaign="aged")
    assert old.status == 403 and (await old.json())["error"]["code"] == "not_new_fan"
    ok = await help_(aw, token(aw, "hana", age=600), code, "y2", campaign="aged")
    assert ok.status == 200, await ok.text()
    assert (await read(aw, olga, code, campaign="aged"))["helps"] == 1


async def test_a_crash_after_the_gate_converges_once(aw: World) -> None:
    """The completing help's gate commits, then the server dies before either second
    commit: the owed reconciler applies the helper's side and the owner's reward, once;
    a retry of the help replays; more passes change nothing."""
    code = await started(aw)
    for helper in ("hana", "hugo"):
        assert (await help_(aw, token(aw, helper), code, f"h-{helper}")).status == 200
    app = aw.client.app
    shards = app[SETTINGS].shards
    live = await app[GAMES].get("helpshop", "squirrel")
    campaign = live.config.assists["friends"]
    ref = AggregateRef.of("helpshop", "squirrel", rules.KIND,
                          rules.aggregate_id("friends", code), shards)
    hedy = PlayerRef("helpshop", "squirrel", "hedy", shard_of("helpshop", "hedy", shards))
    from gameserver.api.common import request_hash

    class _Req:  # what request_hash reads of a request
        method, path = "POST", HELP

    body = f'{{"code":"{code}"}}'.encode()
    await aggs(aw).store.run(
        ref, CODEC, "hedy", "h-hedy", request_hash(_Req(), body),  # type: ignore[arg-type]
        lambda a, now: rules.give(a, campaign, code, "hedy", None, 3600, now, live.tz),
        owed_to=hedy)
    assert sorted(await all_owed(aw)) == sorted([
        f"{ref.member}|hedy|h-hedy", f"{ref.member}|olga|{rules.reward_key(code)}"])
    reconciler = OwedReconciler([aggs(aw).actions], app[GAMES], app[CLOCK], shards, 1.0,
                                older_than_s=5.0)
    assert (await reconciler.run_once()).applied == 0  # too young: a request may be on it
    aw.clock.advance(6)
    assert (await reconciler.run_once()).applied == 2
    assert (await reconciler.run_once()).applied == 0
    assert (await me(aw, token(aw, "olga")))["wallet"] == {"acorn": 150, "ticket": 0}
    assert (await me(aw, token(aw, "hedy")))["wallet"] == {"acorn": 100, "ticket": 1}
    retry = await aw.client.post(HELP, data=body, headers={
        "Authorization": f"Bearer {token(aw, 'hedy')}", "Idempotency-Key": "h-hedy"})
    assert retry.status == 200 and retry.headers.get("Idempotent-Replayed") == "true"
    assert (await retry.json())["complete"] is True
    assert len(await coupon_grants(aw)) == 1 and await all_owed(aw) == []
    assert (await read(aw, token(aw, "olga"), code))["reward_state"] == "granted"
    assert [n[1] for n in await notices(aw)] == [f"assist.completed:friends:{code}"]


async def test_coupon_gone_the_rest_of_the_reward_still_counts(aw: World) -> None:
    config = copy.deepcopy(ASSIST_CONFIG)
    config["coupons"]["c10"]["stock"] = 1
    config["assists"]["friends"]["needed"] = 1
    await aw.merchant("tinyshop", config=config)
    results = []
    for owner in ("ann", "bob"):
        code = await started_in(aw, "tinyshop", owner)
        resp = await help_(aw, token(aw, f"{owner}-friend", "tinyshop"), code, f"x-{owner}")
        assert resp.status == 200, await resp.text()
        results.append((await read(aw, token(aw, owner, "tinyshop"), code))["reward_state"])
        assert (await me(aw, token(aw, owner, "tinyshop")))["wallet"]["acorn"] == 150
    assert results == ["granted", "coupon_unavailable"]
    assert [g[0] for g in await coupon_grants(aw)] == ["ann"]


async def test_merchant_reads_an_assist_and_the_campaign_report(aw: World) -> None:
    code = await started(aw)
    for helper in ("hana", "hugo", "hedy"):
        assert (await help_(aw, token(aw, helper), code, f"h-{helper}")).status == 200
    aw.clock.advance(10)
    other = await started(aw, "oscar")
    key = {"Authorization": f"Bearer {aw.merchants['helpshop'].api_key}"}
    one = await aw.client.get(f"{ADMIN}/assists/friends/{code}", headers=key)
    assert one.status == 200, await one.text()
    body = await one.json()
    assert (body["owner"], body["helpers"], body["state"], body["reward_state"]) == \
        ("olga", ["hana", "hugo", "hedy"], "complete", "earned")
    assert "mine" not in body
    from tests.integration.test_poll_http import flush_all
    await flush_all(aw)  # the report reads SQL
    report = await aw.client.get(f"{ADMIN}/assists/friends", headers=key)
    assert report.status == 200, await report.text()
    r = await report.json()
    assert {k: r[k] for k in ("started", "open", "complete", "expired", "helps",
                              "truncated")} == {"started": 2, "open": 1, "complete": 1,
                                                "expired": 0, "helps": 3, "truncated": False}
    assert [(x["assist"], x["owner"], x["state"]) for x in r["recent"]] == [
        (other, "oscar", "open"), (code, "olga", "complete")]
    other_key = {"Authorization": f"Bearer {aw.merchants['othershop'].api_key}"}
    theirs = await aw.client.get(f"{ADMIN}/assists/friends/{code}", headers=other_key)
    assert theirs.status == 404  # another merchant's assist
    empty = await aw.client.get(f"{ADMIN}/assists/friends", headers=other_key)
    assert (await empty.json())["started"] == 0
    shopper = await aw.client.get(f"{ADMIN}/assists/friends",
                                  headers={"Authorization": f"Bearer {token(aw, 'olga')}"})
    assert shopper.status == 403


async def test_concurrent_starts_of_one_owner_make_one_assist(aw: World) -> None:
    """Two starts at once with different keys: the code of the owner's round is the
    same, so they meet at one aggregate: one assist, one clear 409."""
    olga = token(aw, "olga")
    results = await asyncio.gather(*[start(aw, olga, f"race-{i}") for i in range(4)])
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 409, 409, 409], statuses
    codes = {(await r.json())["error"]["code"] for r in results if r.status == 409}
    assert codes == {"assist_open"}
    mine = (await me(aw, olga))["assists"]["friends"]
    assert len(mine["open"]) == 1 and mine["starts_left"] == 0
