"""Experiments end to end on a real server (real Redis, SQLite and PostgreSQL when
configured): a two-arm weight experiment whose disclosed odds are each shopper's arm's,
whose draws verify against their arm's table, and whose results (computed in SQL) show a
return-rate difference planted over simulated days; stop and ship publish versions.

Experiment ``scarce``: control keeps fig_b (rare) at weight 50 of 100; arm ``scarce``
sets it to 10 (10 of 60). 40 shoppers draw once on day 0; on day 1, four in five
control shoppers come back and draw again, one in five of the ``scarce`` arm.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from economy.fairness import verify_record
from gameserver.api.poll import CODEC as POLL_CODEC
from gameserver.appkeys import CLOCK, GAMES, SETTINGS, STORE
from gameserver.db import models as m
from gameserver.games import parse_config
from gameserver.state.aggregates_gate import OwedReconciler
from gameserver.state.keys import AggregateRef, PlayerRef, shard_of
from mechanics import poll as poll_rules
from tests.conftest import BASIC_CONFIG, World, app_persister
from tests.integration.test_poll_http import aggs

NOW = 1_767_225_600  # the test clock: 2026-01-01 00:00 UTC, 08:00 in Shanghai
DAY = 86_400
GAME = "/v1/games/squirrel"
SERIES = f"{GAME}/boxes/forest"
ADMIN = "/v1/admin/games/squirrel/experiments"
WEIGHT = "$.boxes.series.forest.items.fig_b.weight"

AB_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
AB_CONFIG["currencies"]["acorn"] = {"name": "Acorns", "initial": 1000, "max": 100000}
AB_CONFIG["items"] = {"fig_a": {"name": "A"}, "fig_b": {"name": "B"}}
AB_CONFIG["boxes"] = {"series": {"forest": {
    "name": "Forest", "price": {"currency": "acorn", "amount": 10},
    "tiers": {"common": {"name": "Common", "rank": 0}, "rare": {"name": "Rare", "rank": 1}},
    "items": {"fig_a": {"tier": "common", "weight": 50},
              "fig_b": {"tier": "rare", "weight": 50}},
    "pity": {}}}}

EXPERIMENT: dict[str, Any] = {
    "name": "Scarcer rare", "hypothesis": "a scarcer rare figure lowers D1 return",
    "status": "running", "starts_at": NOW, "stops_at": NOW + 40 * DAY,
    "arms": {"control": {"percent": 50},
             "scarce": {"percent": 50, "overrides": {WEIGHT: 10}}},
    "metrics": {"primary": "d1_retention", "guardrails": ["spend_per_shopper"]},
    "sample_size": 10, "show_arm": True,
}


@pytest.fixture
async def ab(world: World) -> World:
    await world.merchant("abshop", config=AB_CONFIG)
    return on_test_clock(world)


def on_test_clock(world: World) -> World:
    """SQL dates commits by their ledger entry, Redis' clock in serving; here the test
    clock's, which the experiment's window (starts_at, stops_at, a stop's version) is
    on too."""
    world.client.app[STORE].entry_time_from_clock = True
    return world


def admin(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.merchants['abshop'].api_key}"}


def token(world: World, user: str) -> str:
    return world.mint(user, "abshop")


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def put(world: World, exp: dict[str, Any], eid: str = "scarce") -> Any:
    return await world.client.put(f"{ADMIN}/{eid}", json=exp, headers=admin(world))


async def flush(world: World) -> None:
    await app_persister(world.client.app).run_once()


def fig_b_probability(disclosure: dict[str, Any]) -> str:
    return next(str(i["base_probability_exact"]) for i in disclosure["items"]
                if i["id"] == "fig_b")


# The end-to-end test pins its salt: it plants return rates per arm and reads a verdict
# at the 10-per-arm horizon, which a random salt's split of 40 shoppers misses now and
# then (a CI dry run saw an arm short of it). Under this salt the 40 split 20/20.
BALANCED_SALT = "fixed-salt-1"


async def test_two_arm_weight_experiment_end_to_end(ab: World) -> None:
    put_body = await ok(await put(ab, EXPERIMENT | {"salt": BALANCED_SALT}))
    assert put_body["published"]["version"] == 2 and put_body["draft"] == "none"
    assert put_body["published"]["note"] == "experiment scarce: put"
    view = await ok(await ab.client.get(f"{ADMIN}/scarce", headers=admin(ab)))
    tables = {arm: v["tables"]["forest"] for arm, v in view["arms"].items()}
    assert tables["control"] != tables["scarce"] and view["salt"] == BALANCED_SALT

    public = await ok(await ab.client.get(f"{SERIES}?merchant=abshop"))
    assert fig_b_probability(public) == "1/2"
    assert [(a["arm"], a["percent"], a["table"], fig_b_probability(a))
            for a in public["experiments"]["arms"]] == [
        ("control", 50, tables["control"], "1/2"), ("scarce", 50, tables["scarce"], "1/6")]

    arms: dict[str, str] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for i in range(40):
        user, tok = f"shopper-{i}", token(ab, f"shopper-{i}")
        shown = await ok(await ab.get(SERIES, tok))
        arm = shown["arm"].split("/")[1]
        arms[user] = arm
        assert shown["table"] == tables[arm]
        assert fig_b_probability(shown) == ("1/2" if arm == "control" else "1/6")
        drawn = await ok(await ab.post(f"{SERIES}/draw", tok, {}, f"d0-{i}"))
        records[user] = drawn["draws"]
        assert drawn["draws"][0]["arm"] == f"scarce/{arm}"
        assert drawn["draws"][0]["table"] == tables[arm]
    me = await ok(await ab.get(f"{GAME}/me", token(ab, "shopper-0")))
    assert me["player"]["experiments"] == {"scarce": arms["shopper-0"]}

    ab.clock.advance(DAY)  # day 1: the planted return rates, 4/5 vs 1/5
    returned = {u for i, u in enumerate(arms) if i % 5 < (4 if arms[u] == "control" else 1)}
    for i, user in enumerate(arms):
        if user in returned:
            drawn = await ok(await ab.post(f"{SERIES}/draw", token(ab, user), {}, f"d1-{i}"))
            records[user] += drawn["draws"]

    ab.clock.advance(DAY)  # day 1 is over: D1 is reported (rotating a seed on day 2 is
    # an action of day 2, no return on day 1)
    # every draw verifies against its own arm's table, and not against the other's
    stored = parse_config(AB_CONFIG | {"experiments": {"scarce": {
        **EXPERIMENT, "salt": view["salt"]}}})
    series = {arm: stored.experiments["scarce"].configs[arm].boxes.series["forest"]
              for arm in ("control", "scarce")}
    for i, (user, recs) in enumerate(records.items()):
        rotated = await ok(await ab.post(f"{GAME}/boxes/seed/rotate", token(ab, user), {},
                                         f"rot-{i}"))
        seed = rotated["revealed"]["server_seed"]
        other = "scarce" if arms[user] == "control" else "control"
        for rec in recs:
            assert verify_record(series[arms[user]], rec, seed)
            assert not verify_record(series[other], rec, seed)

    await flush(ab)
    res = await ok(await ab.client.get(f"{ADMIN}/scarce/results", headers=admin(ab)))
    size = {arm: sum(1 for a in arms.values() if a == arm) for arm in ("control", "scarce")}
    assert size == {"control": 20, "scarce": 20}
    back = {arm: sum(1 for u in returned if arms[u] == arm) for arm in ("control", "scarce")}
    assert res["exposed"] == size
    d1 = res["metrics"]["d1_retention"]
    assert {arm: (d1[arm]["n"], d1[arm]["retained"]) for arm in d1} == {
        arm: (size[arm], back[arm]) for arm in size}
    assert d1["scarce"]["vs_control"]["diff"]["estimate"] == pytest.approx(
        back["scarce"] / size["scarce"] - back["control"] / size["control"], abs=1e-6)
    assert res["primary"]["horizon_reached"] is True
    assert res["primary"]["arms"]["scarce"] == {
        "p": d1["scarce"]["vs_control"]["p"], "significant": True, "direction": "worse"}
    draws = res["metrics"]["draws_per_shopper"]
    assert {arm: draws[arm]["total"] for arm in draws} == {
        arm: size[arm] + back[arm] for arm in size}
    spend = res["metrics"]["spend_per_shopper"]
    assert {arm: spend[arm]["total"] for arm in spend} == {
        arm: 10.0 * (size[arm] + back[arm]) for arm in size}
    assert res["metrics"]["d7_retention"]["control"]["n"] == 0  # not over yet
    assert res["sample_ratio"]["df"] == 1

    stopped = await ok(await ab.client.post(f"{ADMIN}/scarce/stop", json={},
                                            headers=admin(ab)))
    assert stopped["published"]["version"] == 3
    assert stopped["experiment"]["status"] == "stopped"
    await ab.client.app[GAMES].refresh()
    after = await ok(await ab.get(SERIES, token(ab, "shopper-1")))
    assert after["arm"] is None and after["table"] == public["table"]
    # after the stop everyone draws on the live config: not the arm's figures (they were)
    ab.clock.advance(60)
    drawn = await ok(await ab.post(f"{SERIES}/draw", token(ab, "shopper-1"), {}, "d2-1"))
    assert "arm" not in drawn["draws"][0]
    await flush(ab)
    frozen = await ok(await ab.client.get(f"{ADMIN}/scarce/results", headers=admin(ab)))
    assert frozen["metrics"] == res["metrics"] and frozen["status"] == "stopped"


async def test_ship_shows_the_diff_then_publishes_the_arm(ab: World) -> None:
    await ok(await put(ab, EXPERIMENT))
    preview = await ok(await ab.client.post(f"{ADMIN}/scarce/ship", json={"arm": "scarce"},
                                            headers=admin(ab)))
    assert preview["confirm_required"] is True
    assert {"path": WEIGHT, "op": "changed", "from": 50, "to": 10} in preview["changes"]
    shipped = await ok(await ab.client.post(f"{ADMIN}/scarce/ship", json={
        "arm": "scarce", "confirm": True}, headers=admin(ab)))
    assert shipped["published"]["version"] == 3
    assert shipped["published"]["note"] == "experiment scarce: ship arm scarce"
    assert shipped["experiment"]["status"] == "shipped"
    versions = await ok(await ab.client.get("/v1/admin/games/squirrel/versions/3",
                                            headers=admin(ab)))
    weights = versions["config"]["boxes"]["series"]["forest"]["items"]
    assert weights["fig_b"]["weight"] == 10
    again = await ab.client.post(f"{ADMIN}/scarce/ship", json={"arm": "control",
                                                                "confirm": True},
                                 headers=admin(ab))
    assert again.status == 409 and (await again.json())["error"]["code"] == "experiment_closed"


async def test_bad_arms_are_refused_and_allocation_is_locked_once_started(ab: World) -> None:
    bad = copy.deepcopy(EXPERIMENT)
    bad["arms"]["scarce"]["overrides"] = {WEIGHT: -1}
    resp = await put(ab, bad)
    assert resp.status == 422
    assert (await resp.json())["error"]["details"]["problems"] == [{
        "path": "$.experiments.scarce.arms.scarce.overrides",
        "message": "merged config: $.boxes.series.forest.items.fig_b.weight must be ≥ 0"}]
    await ok(await put(ab, EXPERIMENT))
    moved = copy.deepcopy(EXPERIMENT)
    moved["arms"]["control"]["percent"], moved["arms"]["scarce"]["percent"] = 30, 70
    resp = await put(ab, moved)
    assert resp.status == 409
    assert (await resp.json())["error"]["details"]["fields"] == ["arms"]
    paused = await put(ab, EXPERIMENT | {"status": "draft"})
    assert paused.status == 409
    assert (await paused.json())["error"]["details"]["fields"] == ["status"]
    renamed = EXPERIMENT | {"name": "Scarcer rare figure"}
    headers = admin(ab) | {"Idempotency-Key": "rename-1"}
    first = await ok(await ab.client.put(f"{ADMIN}/scarce", json=renamed, headers=headers))
    assert first["experiment"]["name"] == "Scarcer rare figure"
    again = await ab.client.put(f"{ADMIN}/scarce", json=renamed, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await ok(again) == first  # the same version, published once
    await ab.merchant("rival", config=AB_CONFIG)
    theirs = await ab.client.get(f"{ADMIN}/scarce", headers={
        "Authorization": f"Bearer {ab.merchants['rival'].api_key}"})
    assert theirs.status == 404  # another merchant's experiment: not found
    listed = await ok(await ab.client.get(ADMIN, headers=admin(ab)))
    assert [e["experiment"] for e in listed["experiments"]] == ["scarce"]
    simulated = await ok(await ab.client.get(f"{ADMIN}/scarce?simulate=1", headers=admin(ab)))
    sims = {arm: s["forest"] for arm, s in simulated["simulation"].items()}
    assert {arm: s["draws"] for arm, s in sims.items()} == {"control": 10_000, "scarce": 10_000}
    rare = {arm: s["items"]["fig_b"]["rate"] for arm, s in sims.items()}
    assert 0.47 < rare["control"] < 0.53 and 0.14 < rare["scarce"] < 0.19  # 1/2 and 1/6
    missing = await ab.client.get(f"{ADMIN}/nope/results", headers=admin(ab))
    assert missing.status == 404


async def test_publishing_a_draft_or_rolling_back_keeps_the_experiment_locked(
        ab: World) -> None:
    """The lock is the config's, not only putExperiment's: a draft published over a
    started experiment cannot reshuffle its shoppers, and a rollback cannot restart a
    stopped one."""
    game = "/v1/admin/games/squirrel"
    await ok(await put(ab, EXPERIMENT))  # version 2, running from NOW
    live = (await ok(await ab.client.get(f"{game}/versions/2", headers=admin(ab))))["config"]
    moved = copy.deepcopy(live)
    moved["experiments"]["scarce"]["salt"] = "reshuffled"
    moved["experiments"]["scarce"]["arms"]["control"]["percent"] = 10
    await ok(await ab.client.put(f"{game}/draft", json=moved, headers=admin(ab)))
    refused = await ab.client.post(f"{game}/publish", json={}, headers=admin(ab))
    assert refused.status == 422, await refused.text()
    paths = {p["path"] for p in (await refused.json())["error"]["details"]["problems"]}
    assert paths == {"$.experiments.scarce.salt", "$.experiments.scarce.arms"}
    renamed = copy.deepcopy(live)
    renamed["experiments"]["scarce"]["name"] = "Scarcer rare, renamed"
    await ok(await ab.client.put(f"{game}/draft", json=renamed, headers=admin(ab)))
    assert (await ok(await ab.client.post(f"{game}/publish", json={},
                                          headers=admin(ab))))["version"] == 3
    await ok(await ab.client.post(f"{ADMIN}/scarce/stop", json={}, headers=admin(ab)))
    revived = await ab.client.post(f"{game}/rollback", json={"version": 3},
                                   headers=admin(ab))
    assert revived.status == 422, await revived.text()
    assert [p["path"] for p in (await revived.json())["error"]["details"]["problems"]] == [
        "$.experiments.scarce.status"]
    current = await ok(await ab.client.get(f"{ADMIN}/scarce", headers=admin(ab)))
    assert (current["status"], current["salt"]) == ("stopped", live["experiments"]["scarce"]
                                                    ["salt"])


async def test_a_started_experiment_is_stopped_before_it_is_removed(ab: World) -> None:
    """Removed and added again, a running experiment would start afresh (a way around its
    lock): a draft or a rollback without it is refused until it is stopped."""
    game = "/v1/admin/games/squirrel"
    await ok(await put(ab, EXPERIMENT))  # version 2, running from NOW
    live = (await ok(await ab.client.get(f"{game}/versions/2", headers=admin(ab))))["config"]
    without = copy.deepcopy(live)
    del without["experiments"]["scarce"]
    await ok(await ab.client.put(f"{game}/draft", json=without, headers=admin(ab)))
    refused = await ab.client.post(f"{game}/publish", json={}, headers=admin(ab))
    assert refused.status == 422, await refused.text()
    assert [p["path"] for p in (await refused.json())["error"]["details"]["problems"]] == [
        "$.experiments.scarce"]
    back = await ab.client.post(f"{game}/rollback", json={"version": 1}, headers=admin(ab))
    assert back.status == 422, await back.text()
    assert (await ok(await ab.client.get(f"{ADMIN}/scarce", headers=admin(ab))))[
        "status"] == "running"
    await ok(await ab.client.post(f"{ADMIN}/scarce/stop", json={}, headers=admin(ab)))
    assert (await ok(await ab.client.post(f"{game}/rollback", json={"version": 1},
                                          headers=admin(ab))))["version"] == 4


async def test_an_id_that_exposed_shoppers_is_not_used_again(ab: World) -> None:
    """Stopped, removed and added again under its id, an experiment kept its shoppers in
    the arms marked in their state (not by the new salt) and counted the old exposures:
    an id that exposed shoppers is refused for a new draft or running experiment, by
    putExperiment, a draft and a rollback alike; stopped, it may come back."""
    game = "/v1/admin/games/squirrel"
    await ok(await put(ab, EXPERIMENT))  # version 2, running from NOW
    await ok(await ab.post_retrying(f"{SERIES}/draw", token(ab, "ann"), {}, "d1"))
    await flush(ab)
    await ok(await ab.client.post(f"{ADMIN}/scarce/stop", json={}, headers=admin(ab)))
    await ok(await ab.client.post(f"{game}/rollback", json={"version": 1}, headers=admin(ab)))
    fresh = EXPERIMENT | {"salt": "another-salt"}
    for attempt in (put(ab, fresh), put(ab, fresh | {"status": "draft"}),
                    ab.client.post(f"{game}/rollback", json={"version": 2},
                                   headers=admin(ab))):
        refused = await attempt
        assert refused.status == 422, await refused.text()
        assert [p["path"] for p in (await refused.json())["error"]["details"]["problems"]
                ] == ["$.experiments.scarce"]
    with_it = copy.deepcopy(AB_CONFIG) | {"experiments": {"scarce": fresh}}
    await ok(await ab.client.put(f"{game}/draft", json=with_it, headers=admin(ab)))
    assert (await ab.client.post(f"{game}/publish", json={}, headers=admin(ab))).status == 422
    await ok(await put(ab, fresh | {"status": "draft"}, eid="scarce2"))  # a new id is new
    back = await ok(await ab.client.post(f"{game}/rollback", json={"version": 3},
                                         headers=admin(ab)))  # stopped: assigns nobody
    assert back["version"] == 6


async def test_results_stay_readable_after_the_experiment_is_removed(ab: World) -> None:
    """A stopped experiment removed from the config (a rollback to before it) keeps its
    rows in SQL: its results are read with its definition from the newest version that
    had it, the same figures as before the removal (it was 404)."""
    game = "/v1/admin/games/squirrel"
    await ok(await put(ab, EXPERIMENT))  # version 2, running from NOW
    for user in ("ann", "bob"):
        await ok(await ab.post_retrying(f"{SERIES}/draw", token(ab, user), {}, f"d-{user}"))
    await flush(ab)
    await ok(await ab.client.post(f"{ADMIN}/scarce/stop", json={}, headers=admin(ab)))
    before = await ok(await ab.client.get(f"{ADMIN}/scarce/results", headers=admin(ab)))
    assert sum(before["exposed"].values()) == 2
    await ok(await ab.client.post(f"{game}/rollback", json={"version": 1}, headers=admin(ab)))
    after = await ok(await ab.client.get(f"{ADMIN}/scarce/results", headers=admin(ab)))
    assert after == before
    missing = await ab.client.get(f"{ADMIN}/never/results", headers=admin(ab))
    assert missing.status == 404


async def test_a_shopper_seeded_before_the_start_is_exposed_by_viewing_the_odds(
        ab: World) -> None:
    """A shopper whose seed was committed before the experiment (so viewing the series
    is not their first commit) and who is shown an arm's odds is exposed to that arm,
    once, as a shopper viewing first is."""
    headers = {"Authorization": f"Bearer {token(ab, 'early')}"}
    before = await ok(await ab.client.get(SERIES, headers=headers))
    assert before["arm"] is None
    view = await ok(await put(ab, EXPERIMENT))
    arm = parse_config(AB_CONFIG | {"experiments": {"scarce": EXPERIMENT | {
        "salt": view["experiment"]["salt"]}}}).experiments["scarce"].assign("early")
    for _ in range(2):
        shown = await ok(await ab.client.get(SERIES, headers=headers))
        assert shown["arm"] == f"scarce/{arm}"
    me = await ok(await ab.client.get(f"{GAME}/me", headers=headers))
    assert me["player"]["experiments"] == {"scarce": arm}
    await flush(ab)
    async with ab.db.engine.connect() as conn:
        x = m.experiment_exposures
        rows = (await conn.execute(select(x.c.user_id, x.c.arm))).all()
    assert [tuple(r) for r in rows] == [("early", arm)]


async def test_concurrent_first_actions_expose_each_shopper_once(ab: World) -> None:
    """40 shoppers send three draws each at once (120 concurrent first actions): one
    exposure and one active day per shopper, and every draw names the shopper's arm."""
    view = await ok(await put(ab, EXPERIMENT))
    salt = view["experiment"]["salt"]
    assert len(salt) == 16  # created without one: a fresh random salt
    stored = parse_config(AB_CONFIG | {"experiments": {"scarce": EXPERIMENT | {"salt": salt}}})
    users = [f"burst-{i}" for i in range(40)]
    tokens = {u: token(ab, u) for u in users}
    async def draw(user: str, n: int) -> Any:
        return await ab.post_retrying(f"{SERIES}/draw", tokens[user], {}, f"b-{user}-{n}")

    replies = await asyncio.gather(*(draw(u, n) for u in users for n in range(3)))
    bodies = [await ok(r) for r in replies]
    expected = {u: stored.experiments["scarce"].assign(u) for u in users}
    for (u, _), body in zip([(u, n) for u in users for n in range(3)], bodies, strict=True):
        assert body["draws"][0]["arm"] == f"scarce/{expected[u]}"
    await flush(ab)
    async with ab.db.engine.connect() as conn:
        x, d = m.experiment_exposures, m.experiment_days
        rows = (await conn.execute(select(x.c.user_id, x.c.arm))).all()
        days = (await conn.execute(select(func.count()).select_from(d))).scalar_one()
        draws = (await conn.execute(select(func.count()).select_from(m.draws))).scalar_one()
    assert dict(rows) == expected and len(rows) == 40
    assert days == 40 and draws == 120


async def test_a_version_lists_its_arms_after_the_window_and_after_a_republish(
        ab: World) -> None:
    """A draw made under an arm records the arm's table; ``getBoxSeries?version=N``
    must still disclose that arm once the experiment's window is over and once a newer
    version (here the stop) replaced N, or the draw could not be checked from public
    data."""
    await ok(await put(ab, EXPERIMENT | {"salt": BALANCED_SALT}))
    tok = token(ab, "shopper-0")
    drawn = await ok(await ab.post(f"{SERIES}/draw", tok, {}, "d-0"))
    rec = drawn["draws"][0]
    assert rec["version"] == 2 and rec["arm"] is not None

    def arms_of(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {a["arm"]: (a["table"], fig_b_probability(a))
                for a in body.get("experiments", {}).get("arms", [])}

    ab.clock.advance(41 * DAY)  # past stops_at, version 2 still live
    await ab.client.app[GAMES].refresh()
    assert "experiments" not in await ok(await ab.client.get(f"{SERIES}?merchant=abshop"))
    at_v2 = arms_of(await ok(await ab.client.get(f"{SERIES}?merchant=abshop&version=2")))
    assert set(at_v2) == {"control", "scarce"}
    assert at_v2["scarce"][1] == "1/6" and at_v2["control"][1] == "1/2"
    assert at_v2[rec["arm"].split("/")[1]][0] == rec["table"]

    stopped = await ok(await ab.client.post(f"{ADMIN}/scarce/stop", json={},
                                            headers=admin(ab)))
    assert stopped["published"]["version"] == 3
    await ab.client.app[GAMES].refresh()
    old = await ok(await ab.client.get(f"{SERIES}?merchant=abshop&version=2"))
    assert old["live_version"] == 3 and arms_of(old) == at_v2
    assert "experiments" not in await ok(await ab.client.get(
        f"{SERIES}?merchant=abshop&version=3"))


async def test_an_experiment_past_stops_at_has_ended(ab: World) -> None:
    """Past stops_at an experiment assigns nobody: it reads ``ended`` (it read
    ``running``), its figures stay those of its window (a full-price draw after it was
    counted in the shopper's arm), it cannot be edited back to life, and a new
    experiment may start (it was refused: one runs at a time), stopping it."""
    await ok(await put(ab, EXPERIMENT))
    await ok(await ab.post(f"{SERIES}/draw", token(ab, "ann"), {}, "d-0"))
    ab.clock.advance(40 * DAY)  # exactly stops_at
    await ab.client.app[GAMES].refresh()
    drawn = await ok(await ab.post(f"{SERIES}/draw", token(ab, "ann"), {}, "d-1"))
    assert "arm" not in drawn["draws"][0]
    await flush(ab)
    view = await ok(await ab.client.get(f"{ADMIN}/scarce", headers=admin(ab)))
    listed = await ok(await ab.client.get(ADMIN, headers=admin(ab)))
    res = await ok(await ab.client.get(f"{ADMIN}/scarce/results", headers=admin(ab)))
    assert (view["status"], listed["experiments"][0]["status"], res["status"]) == (
        "ended", "ended", "ended")
    assert sum(res["exposed"].values()) == 1
    assert {arm: (res["metrics"]["draws_per_shopper"][arm]["total"],
                  res["metrics"]["spend_per_shopper"][arm]["total"])
            for arm in res["exposed"] if res["exposed"][arm]} == {
        next(a for a, n in res["exposed"].items() if n): (1.0, 10.0)}
    later = await put(ab, EXPERIMENT | {"stops_at": NOW + 50 * DAY})
    assert later.status == 409
    assert (await later.json())["error"]["details"]["status"] == "ended"
    fresh = EXPERIMENT | {"starts_at": NOW + 40 * DAY, "stops_at": NOW + 60 * DAY}
    started = await ok(await put(ab, fresh, eid="scarce2"))
    assert started["published"]["version"] == 3
    assert started["experiment"]["status"] == "running"
    now = await ok(await ab.client.get(ADMIN, headers=admin(ab)))
    assert {e["experiment"]: e["status"] for e in now["experiments"]} == {
        "scarce": "stopped", "scarce2": "running"}
    again = await ok(await ab.client.get(f"{ADMIN}/scarce/results", headers=admin(ab)))
    assert again["metrics"] == res["metrics"]


async def test_spend_is_the_shoppers_own_and_orders_expose_nobody(world: World) -> None:
    """An exposed shopper's spend is what they spent themselves: a refund's clawback of
    what their order earned and a merchant's deduction take currency from them but are
    not their spend. An order for a user who never played exposes nobody."""
    from tests.integration.loopgame import signed_order

    config = copy.deepcopy(AB_CONFIG)
    config["tasks"] = {"buy_any": {"name": "Buy anything", "kind": "purchase", "limit": 3,
                                   "reward": {"currency": {"acorn": 5}}}}
    await world.merchant("abshop", config=config)
    await ok(await put(on_test_clock(world), EXPERIMENT))
    await ok(await world.post(f"{SERIES}/draw", token(world, "ann"), {}, "d-ann"))  # 10
    secret = world.merchants["abshop"].signing_secret
    for user, status in (("ann", "paid"), ("ann", "refunded"), ("buyer", "paid")):
        body, headers = signed_order(secret, int(world.clock.now()), merchant="abshop",
                                     user=user, order_id=f"o-{user}", status=status,
                                     amount_fen=500, skus=["sku-1"])
        answer = await ok(await world.client.post("/v1/events/orders", data=body,
                                                  headers=headers))
    assert answer["tasks"] == {"buy_any": 1}
    deducted = await world.post("/v1/admin/games/squirrel/players/ann/grant",
                                str(world.merchants["abshop"].api_key),
                                {"reason": "correction", "deduct": {"wallet": {"acorn": 3}}},
                                key="fix-1")
    assert deducted.status == 200, await deducted.text()
    me = await ok(await world.get(f"{GAME}/me", token(world, "ann")))
    assert me["player"]["wallet"]["acorn"] == 1000 - 10 - 3  # +5 paid, -5 refunded
    await flush(world)

    res = await ok(await world.client.get(f"{ADMIN}/scarce/results", headers=admin(world)))
    assert sum(res["exposed"].values()) == 1  # ann; not buyer
    spend = res["metrics"]["spend_per_shopper"]
    assert sorted((row["n"], row["total"]) for row in spend.values()) == [(0, 0.0), (1, 10.0)]


async def test_a_shared_play_is_the_acting_shoppers_active_day_only(world: World) -> None:
    """A shopper's side of a shared play is their action: an exposed shopper who only
    votes on a day acted that day, also when the owed reconciler applies the vote the
    next day (the day of the vote counts). A group's member whom another shopper's join
    rewards did not act; and a shared play exposes nobody (it runs on the live config)."""
    config = copy.deepcopy(AB_CONFIG)
    config["currencies"]["gem"] = {"name": "Gems", "initial": 0, "max": 1000}
    config["polls"] = {"best": {"title": "Best", "options": {"red": {"label": "Red"},
                                                             "blue": {"label": "Blue"}},
                                "opens_at": NOW - 3600, "closes_at": NOW + 5 * DAY}}
    config["groupbuys"] = {"duo": {"title": "Duo", "size": 2, "duration_s": 2 * DAY,
                                   "reward": {"currency": {"gem": 5}}}}
    await world.merchant("abshop", config=config)
    await ok(await put(on_test_clock(world), EXPERIMENT))
    for user in ("ann", "bob", "dan"):  # day 0: exposed by a draw
        await ok(await world.post(f"{SERIES}/draw", token(world, user), {}, f"d-{user}"))
    code = (await ok(await world.post(f"{GAME}/groupbuys/duo", token(world, "bob"), {},
                                      "o-bob")))["code"]

    world.clock.advance(DAY)  # day 1: ann votes; cat fills bob's group; dan's vote is
    # gated, and its second commit left to the owed reconciler (a crash between them)
    await ok(await world.post(f"{GAME}/polls/best/vote", token(world, "ann"),
                              {"option": "red"}, "v-ann"))
    await ok(await world.post(f"{GAME}/groupbuys/duo/join", token(world, "cat"),
                              {"code": code}, "j-cat"))
    app = world.client.app
    shards, live = app[SETTINGS].shards, await app[GAMES].get("abshop", "squirrel")
    poll = live.config.polls["best"]
    bucket = AggregateRef.of("abshop", "squirrel", poll_rules.KIND, poll_rules.bucket_id(
        "best", poll_rules.bucket_of("dan", poll.buckets)), shards)
    await aggs(world).store.run(
        bucket, POLL_CODEC, "dan", "v-dan", "h-dan",
        lambda b, now: poll_rules.cast_vote(b, poll, "dan", "blue", now, live.tz),
        owed_to=PlayerRef("abshop", "squirrel", "dan", shard_of("abshop", "dan", shards)))

    world.clock.advance(DAY)  # day 2: day 1 is over; the reconciler applies dan's vote
    reconciler = OwedReconciler([aggs(world).actions], app[GAMES], app[CLOCK], shards, 1.0,
                                older_than_s=5.0)
    assert (await reconciler.run_once()).applied == 1
    bob = await ok(await world.get(f"{GAME}/me", token(world, "bob")))
    assert bob["player"]["wallet"]["gem"] == 5  # bob's side of the filled group applied
    await flush(world)
    day0 = date(2026, 1, 1).toordinal()
    async with world.db.engine.connect() as conn:
        x, d = m.experiment_exposures, m.experiment_days
        exposed = (await conn.execute(select(x.c.user_id))).scalars().all()
        days = (await conn.execute(select(d.c.user_id, d.c.day))).all()
    assert sorted(exposed) == ["ann", "bob", "dan"]  # cat's join exposed nobody
    assert sorted((u, day - day0) for u, day in days) == [
        ("ann", 0), ("ann", 1), ("bob", 0), ("dan", 0), ("dan", 1)]
    res = await ok(await world.client.get(f"{ADMIN}/scarce/results", headers=admin(world)))
    d1 = res["metrics"]["d1_retention"]
    assert (sum(a["n"] for a in d1.values()), sum(a["retained"] for a in d1.values())) == (3, 2)
