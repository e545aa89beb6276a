"""Teams over HTTP against real Redis and SQL (SQLite, and PostgreSQL when configured):
``createTeam``, ``joinTeam`` (by code and auto-match), ``leaveTeam``, ``getTeam``,
``claimTeamRewards``; members' feeds, check-ins and orders reaching the team after the
persister's flush; the team board through ``getLeaderboard``; the last seats under a
burst of joins.

Season ``s11`` (config TEAM_CONFIG): teams of 2..3, a feed earns 2 points, a check-in 5,
a paid order 20; milestone ``m20`` (20 points) gives 7 gems, ``m40`` the ¥10 coupon
``c10`` (stock 1); board ``s11-teams``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from gameserver.api.teams import TeamSync, team_code
from gameserver.appkeys import (
    CLOCK,
    DB,
    GAMES,
    KEYS,
    REDIS,
    SETTINGS,
    SIGNER,
)
from gameserver.jobs.flushhooks import FlushContext
from gameserver.jobs.webhooks import OUTBOX
from gameserver.ops.metrics import METRICS
from gameserver.persister import Persister
from gameserver.state.keys import AggregateRef
from gameserver.state.redisclient import open_redis
from mechanics import teams as team_rules
from tests.conftest import World, app_persister
from tests.integration.loopgame import GAME, Shopper, loop_config, post_order
from tests.reliability.tcpproxy import TcpProxy

NOW = 1_767_225_600  # the test clock
S11 = f"{GAME}/teams/s11"
SEASON: dict[str, Any] = {
    "name": "Double 11 teams", "starts_at": NOW - 3600, "ends_at": NOW + 7 * 86400,
    "min_size": 2, "max_size": 3, "points": {"feed": 2, "checkin": 5, "order": 20},
    "milestones": {"m20": {"points": 20, "reward": {"currency": {"gem": 7}}},
                   "m40": {"points": 40, "reward": {"coupon": "c10"}}},
    "max_teams": 2, "rejoin_after_s": 600, "board": "s11-teams"}
TEAM_CONFIG = loop_config(teams={"s11": SEASON, "open": {
    **SEASON, "name": "Open teams", "auto_match": True, "board": "", "milestones": {}}})


@pytest.fixture
async def tw(client: Any, db: Any, clock: Any) -> World:
    world = World(client, db, clock, TEAM_CONFIG)
    await world.merchant()
    return world


def persister(world: World) -> Persister:
    """A persister like the server's (the teams' flush hook included)."""
    return app_persister(world.client.app)


async def get_team(shopper: Shopper, team: str, season: str = "s11") -> dict[str, Any]:
    resp = await shopper.world.get(f"{GAME}/teams/{season}/{team}", await shopper.token())
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def admin_team(world: World, team: str, season: str = "s11") -> dict[str, Any]:
    """The merchant's view of a team (members' ids whole)."""
    resp = await world.get(f"/v1/admin/games/squirrel/teams/{season}/{team}",
                           world.merchants["shop"].api_key)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def create(shopper: Shopper, body: Any = None, season: str = "s11") -> dict[str, Any]:
    status, out = await shopper.post(f"/teams/{season}", body or {})
    assert status == 200, out
    return dict(out)


async def test_create_join_full_and_leave(tw: World) -> None:
    ann, bob, cid, dan = (Shopper(tw, u) for u in ("ann", "bob", "cid", "dan"))
    status, team = await ann.post("/teams/s11", {"name": "Ants"}, key="create-1")
    assert status == 200
    code, tid = team["code"], team["team"]
    assert len(code) == 16 and code.startswith(tid)
    assert (team["name"], team["size"], team["seats_left"], team["points"]) == ("Ants", 1, 2, 0)
    assert await ann.post("/teams/s11", {"name": "Ants"}, key="create-1") == (200, team)
    await ann.refused("/teams/s11", {}, 409, "already_in_team")

    status, joined = await bob.post("/teams/s11/join", {"code": code})
    assert (status, joined["team"], joined["size"], joined["code"]) == (200, tid, 2, code)
    assert (await cid.post("/teams/s11/join", {"code": code}))[0] == 200
    err = await dan.refused("/teams/s11/join", {"code": code}, 409, "team_full")
    assert err["details"] == {"team": tid, "max_size": 3}
    await dan.refused("/teams/s11/join", {"code": tid + "aaaaaaaa"}, 404, "team_not_found")
    await dan.refused("/teams/s11/join", {}, 422, "team_code_required")

    seen_by_dan = await get_team(dan, tid)
    assert "code" not in seen_by_dan
    assert [(m["user"], m["me"], m["owner"]) for m in seen_by_dan["members"]] == [
        ("a***", False, True), ("b***", False, False), ("c***", False, False)]
    assert seen_by_dan["owner"] == "a***"  # ids masked: team ids are public
    assert (await bob.me())["player"]["teams"]["s11"] == {
        "team": tid, "points": 0, "teams_joined": 1, "claimed": [], "status": "open"}

    status, left = await bob.post("/teams/s11/leave", {})
    assert (status, left) == (200, {"season": "s11", "team": tid, "left": True,
                                    "points_kept_by_team": 0, "team_points": 0})
    assert (await bob.me())["player"]["teams"]["s11"]["team"] is None
    await bob.refused("/teams/s11/leave", {}, 409, "not_in_team")
    err = await bob.refused("/teams/s11/join", {"code": code}, 429, "rejoin_too_soon")
    assert err["details"]["retry_after"] == 600
    tw.clock.advance(600)
    status, back = await bob.post("/teams/s11/join", {"code": code})
    assert (status, back["size"]) == (200, 3)
    assert [m["user"] for m in (await get_team(ann, tid))["members"]] == [
        "a***", "c***", "b***"]


async def test_codes_are_bound_to_the_merchant(tw: World) -> None:
    await tw.merchant("other", config=TEAM_CONFIG)
    team = await create(Shopper(tw, "ann"))
    stranger = Shopper(tw, "eve", merchant="other")
    await stranger.refused("/teams/s11/join", {"code": team["code"]}, 404, "team_not_found")
    resp = await tw.get(f"{S11}/{team['team']}", await stranger.token())
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "team_not_found"


async def test_bad_input_is_a_clear_4xx(tw: World) -> None:
    ann = Shopper(tw, "ann")
    await ann.refused("/teams/s12", {}, 404, "unknown_item")
    await ann.refused("/teams/s11", {"name": "x" * 41}, 422, "invalid_input")
    await ann.refused("/teams/s11/join", {"code": "NOT A CODE"}, 422, "invalid_input")
    resp = await tw.post(S11, await ann.token(), {})  # no Idempotency-Key
    assert resp.status == 400
    resp = await tw.get(f"{S11}/nope", await ann.token())
    assert resp.status == 404


async def test_a_team_name_is_printable_text(tw: World) -> None:
    """Other shoppers read a team's name: like a pet's, it takes no control or
    formatting characters (it took NUL, newlines and a right-to-left override);
    refused, nothing changes; surrounding spaces are trimmed, and an empty name is
    the team's default."""
    ann = Shopper(tw, "ann")
    for name in ("a\x00b", "line\nbreak", "\u202eevil", "zero\u200bwidth", "bell\x07"):
        error = await ann.refused("/teams/s11", {"name": name}, 422, "invalid_input")
        assert error["details"]["field"] == "name", name
    named = await create(ann, {"name": "  松鼠队 Squirrels 🐿  "})
    assert named["name"] == "松鼠队 Squirrels 🐿"
    bob = Shopper(tw, "bob")
    assert (await create(bob, {"name": "   "}))["name"].startswith("Team ")


async def test_points_reach_the_team_board_and_milestones(tw: World) -> None:
    ann, bob = Shopper(tw, "ann"), Shopper(tw, "bob")
    team = await create(ann, {"name": "Ants"})
    tid = team["team"]
    assert (await bob.post("/teams/s11/join", {"code": team["code"]}))[0] == 200
    assert (await ann.post("/pet", {"species": "squirrel", "name": "Nut"}))[0] == 201
    for _ in range(3):
        assert (await ann.post("/pet/feed", {"food": "snack"}))[0] == 200
    assert (await ann.post("/checkin", {}))[0] == 200
    assert (await ann.me())["player"]["teams"]["s11"]["points"] == 11
    assert (await get_team(ann, tid))["points"] == 0  # the team follows the flush
    status, _ = await post_order(tw, user="bob", order_id="o1", status="paid", amount_fen=100)
    assert status == 200
    await post_order(tw, user="bob", order_id="o1", status="paid", amount_fen=100)  # retry

    report = await persister(tw).run_once()
    assert report.ok
    view = await get_team(ann, tid)
    assert view["members"] == [
        {"user": "b***", "points": 20, "joined_at": NOW, "me": False, "owner": False},
        {"user": "a***", "points": 11, "joined_at": NOW, "me": True, "owner": True}]
    assert (view["points"], view["rank"]) == (31, 1)
    assert [(m["id"], m["reached_at"]) for m in view["milestones"]] == [("m20", NOW),
                                                                        ("m40", None)]
    resp = await tw.get(f"{GAME}/leaderboards/s11-teams", await ann.token())
    board = await resp.json()
    assert (resp.status, board["entries"], board["metric"]) == (
        200, [{"rank": 1, "name": tid, "score": 31, "you": False}], "team:s11")

    await post_order(tw, user="bob", order_id="o2", status="paid", amount_fen=100)
    await persister(tw).run_once()
    await persister(tw).run_once()  # nothing new: no second event
    assert (await get_team(bob, tid))["points"] == 51
    events = await tw.client.app[OUTBOX].list("shop", "squirrel")
    assert [(e.event, e.key) for e in events] == [
        ("team.milestone_reached", f"team:s11:{tid}:m40"),
        ("team.milestone_reached", f"team:s11:{tid}:m20")]
    assert events[1].data == {"season": "s11", "team": tid, "name": "Ants",
                              "milestone": "m20", "points": 20, "reached_at": NOW,
                              "members": ["ann", "bob"],
                              "reward": {"currency": {"gem": 7}, "items": {}}}

    api_key = tw.merchants["shop"].api_key
    resp = await tw.get("/v1/admin/games/squirrel/teams/s11", api_key)
    season = await resp.json()
    assert (resp.status, season["status"], season["board"]) == (200, "open", "s11-teams")
    assert season["teams"] == [{"rank": 1, "team": tid, "points": 51, "name": "Ants",
                                "size": 2, "milestones_reached": ["m20", "m40"]}]
    resp = await tw.get(f"/v1/admin/games/squirrel/teams/s11/{tid}", api_key)
    admin_view = await resp.json()
    assert (admin_view["code"], admin_view["reached"]["m40"]) == (
        team["code"], {"at": NOW, "members": ["ann", "bob"]})

    status, claimed = await ann.post("/teams/s11/claim", {})
    assert status == 200
    assert claimed["claimed"] == {"m20": {"currency": {"gem": 7}, "items": {}},
                                  "m40": {"currency": {}, "items": {}, "coupons": {"c10": 1}}}
    status, again = await ann.post("/teams/s11/claim", {})
    assert (status, again["claimed"]) == (200, {})
    status, bobs = await bob.post("/teams/s11/claim", {})
    assert bobs["claimed"]["m40"]["coupons_unavailable"] == {"c10": 1}  # stock 1: ann's
    assert bobs["claimed"]["m20"] == {"currency": {"gem": 7}, "items": {}}
    me = (await ann.me())["player"]
    assert me["wallet"]["gem"] == 7 + 1 and me["teams"]["s11"]["claimed"] == ["m20", "m40"]


async def test_a_leaving_members_points_stay_with_the_team(tw: World) -> None:
    ann, bob = Shopper(tw, "ann"), Shopper(tw, "bob")
    team = await create(ann)
    await bob.post("/teams/s11/join", {"code": team["code"]})
    await bob.post("/checkin", {})
    await bob.post("/checkin", {})  # refused (already checked in): earns nothing
    status, left = await bob.post("/teams/s11/leave", {})  # before any flush
    assert (status, left["points_kept_by_team"], left["team_points"]) == (200, 5, 5)
    await persister(tw).run_once()  # bob's flushed state is in no team: nothing synced
    view = await get_team(ann, team["team"])
    assert (view["points"], view["kept_points"], view["size"], view["rank"]) == (5, 5, 1, None)


async def test_auto_match_fills_open_teams_in_order(tw: World) -> None:
    users = [Shopper(tw, f"m{i}") for i in range(5)]
    teams = []
    for shopper in users:
        status, out = await shopper.post("/teams/open/join", {})
        assert status == 200, out
        teams.append(out["team"])
    assert teams[:3] == [teams[0]] * 3 and teams[3:] == [teams[3]] * 2 != [teams[0]] * 2
    first = await get_team(users[0], teams[0], "open")
    assert (first["open"], first["size"]) == (True, 3)
    assert [m["me"] for m in first["members"] if m["owner"]] == [True]  # m0 opened it
    private = await create(Shopper(tw, "p0"), {"open": False}, season="open")
    status, out = await Shopper(tw, "m5").post("/teams/open/join", {})
    assert out["team"] == teams[3] and out["team"] != private["team"]


async def test_a_burst_of_joins_seats_exactly_the_free_seats(tw: World) -> None:
    app = tw.client.app
    owner = Shopper(tw, "owner")
    team = await create(owner)
    now = int(app[CLOCK].now())

    async def join(i: int) -> tuple[int, Any]:
        tok = app[SIGNER].mint("shop", f"b{i}", now)[0]
        resp = await tw.post(f"{S11}/join", tok, {"code": team["code"]}, key=f"j{i}")
        return resp.status, await resp.json()

    results = await asyncio.gather(*(join(i) for i in range(30)))
    assert sorted(s for s, _ in results) == [200] * 2 + [409] * 28
    assert {b["error"]["code"] for s, b in results if s == 409} == {"team_full"}
    view = await admin_team(tw, team["team"])
    winners = sorted(f"b{i}" for i, (s, _) in enumerate(results) if s == 200)
    assert sorted(m["user"] for m in view["members"]) == sorted(["owner", *winners])


async def test_every_persister_runs_the_teams_hook(tw: World) -> None:
    """The persister process of its own (``petbox persister``, ``serve --workers N``)
    syncs team points too; on the shadow keyspace without the merchant's outbox."""
    from gameserver.persister.standalone import _standalone
    from gameserver.services import SHADOW_PREFIX
    from gameserver.state.keys import Keys

    app = tw.client.app
    for keys, outbox in ((app[KEYS], True), (Keys(SHADOW_PREFIX), False)):
        p = _standalone(app[SETTINGS], app[REDIS], keys, app[DB], app[GAMES])
        hooks = [cb for cb in p.on_flushed if isinstance(cb, TeamSync)]
        assert len(hooks) == 1
        assert hooks[0].io.keys == keys and (hooks[0].io.outbox is not None) == outbox


async def test_a_burst_of_auto_matches_seats_everyone_once(tw: World) -> None:
    """10 shoppers auto-match at once while one open team has 2 seats: exactly 2 take
    them; the others open (or fill) new teams; nobody is seated twice or left out."""
    app = tw.client.app
    first = await create(Shopper(tw, "owner"), {"open": True}, season="open")
    now = int(app[CLOCK].now())

    async def match(i: int) -> tuple[int, Any]:
        tok = app[SIGNER].mint("shop", f"a{i}", now)[0]
        resp = await tw.post(f"{GAME}/teams/open/join", tok, {}, key=f"m{i}")
        return resp.status, await resp.json()

    results = await asyncio.gather(*(match(i) for i in range(10)))
    assert [s for s, _ in results] == [200] * 10
    seated: dict[str, str] = {}
    for team_id in {b["team"] for _, b in results} | {first["team"]}:
        view = await admin_team(tw, team_id, "open")
        assert view["size"] <= 3
        for m in view["members"]:
            assert m["user"] not in seated
            seated[m["user"]] = team_id
    assert sorted(seated) == sorted(["owner", *(f"a{i}" for i in range(10))])
    assert sum(1 for t in seated.values() if t == first["team"]) == 3
    for i, (_, body) in enumerate(results):
        assert seated[f"a{i}"] == body["team"]


async def test_an_experiment_arm_can_change_the_points(client: Any, db: Any, clock: Any) -> None:
    """In a game with experiments the follow-ups run on the shopper's arm's config: an
    arm that doubles a check-in's points earns its members double."""
    config = copy.deepcopy(TEAM_CONFIG)
    config["experiments"] = {"double": {
        "name": "Double check-in points", "hypothesis": "teams check in more",
        "salt": "s1", "sample_size": 10, "status": "running", "starts_at": NOW - 60,
        "stops_at": NOW + 86400, "arms": {
            "control": {"percent": 1},
            "double": {"percent": 99, "overrides": {"$.teams.s11.points.checkin": 10}}},
        "metrics": {"primary": "d1_retention"}, "show_arm": True}}
    world = World(client, db, clock, config)
    await world.merchant()
    ann = Shopper(world, "ann")
    await create(ann)
    assert (await ann.post("/checkin", {}))[0] == 200
    me = (await ann.me())["player"]
    assert (me["experiments"], me["teams"]["s11"]["points"]) == ({"double": "double"}, 10)
    # (salt s1 puts ann in the 99 % arm; the control arm's members earn the 5 of the base)


async def test_concurrent_creates_of_one_shopper_open_one_team(tw: World) -> None:
    """Ten createTeam of one shopper at once, each with its own key: the season's
    one-team rule is checked against the shopper as peeked, so they go one at a time
    (gameserver/api/serial.py): one team, the rest refused with nothing left behind."""
    ann = Shopper(tw, "ann")
    await ann.token()
    results = await asyncio.gather(*(ann.post("/teams/s11", {"name": f"T{i}"}, key=f"c{i}")
                                     for i in range(10)))
    assert sorted(status for status, _ in results) == [200] + [409] * 9
    assert {out["error"]["code"] for status, out in results if status == 409} \
        == {"already_in_team"}
    team = next(out for status, out in results if status == 200)
    assert (await ann.me())["player"]["teams"]["s11"]["team"] == team["team"]
    secret = tw.client.app[SETTINGS].token_secret
    ids = [team_code(secret, "shop", "squirrel", "s11", "ann", f"c{i}")[0] for i in range(10)]
    assert team["team"] in ids
    for tid in ids:  # the refused creates left no team (no phantom seat of ann)
        resp = await tw.get(f"{GAME}/teams/s11/{tid}", await ann.token())
        assert resp.status == (200 if tid == team["team"] else 404), tid


async def test_a_members_own_key_never_takes_the_sync_of_their_points(tw: World) -> None:
    """The flush hook reported a member's points on their team under
    ``sync-<seq>-<points>`` and the member's user, the space of the member's own keys
    on the team (create, join, leave): ann's createTeam under ``sync-1-5`` made the
    sync of her 5 check-in points 422 (dropped: the team stayed at 0). Now the hook's
    key is outside the shopper's alphabet."""
    ann = Shopper(tw, "ann")
    status, team = await ann.post("/teams/s11", {"name": "Ants"}, "sync-1-5")
    assert status == 200, team
    assert (await ann.post("/checkin", {}))[0] == 200
    assert (await ann.me())["player"]["teams"]["s11"]["points"] == 5
    assert (await persister(tw).run_once()).ok
    view = await get_team(ann, team["team"])
    assert view["members"] == [
        {"user": "a***", "points": 5, "joined_at": NOW, "me": True, "owner": True}]
    assert view["points"] == 5
    status, again = await ann.post("/teams/s11", {"name": "Ants"}, "sync-1-5")
    assert (status, again["team"]) == (200, team["team"])  # her key still answers hers


@pytest.fixture
async def cut_off(tw: World) -> AsyncIterator[tuple[TcpProxy, Persister, TeamSync]]:
    """A persister like the server's whose teams hook reaches Redis through a proxy the
    test cuts (every connection reset, new ones refused: its master down) and restores."""
    app = tw.client.app
    url = urlsplit(app[SETTINGS].redis_url)
    proxy = await TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    redis = await open_redis(f"redis://127.0.0.1:{proxy.port}", app[SETTINGS])
    sync = TeamSync(FlushContext(redis, app[KEYS], app[DB], app[GAMES], app[CLOCK],
                                 app[SETTINGS], app[OUTBOX], app[METRICS]))
    p = persister(tw)
    p.on_flushed[:] = [cb for cb in p.on_flushed if not isinstance(cb, TeamSync)] + [sync]
    sync.kept.rest_s = 0.0  # a failed shard is tried again on the very next call
    yield proxy, p, sync
    await redis.aclose()
    await proxy.close()


async def test_points_the_teams_redis_refused_reach_the_team_on_the_next_pass(
        tw: World, cut_off: tuple[TcpProxy, Persister, TeamSync],
        caplog: pytest.LogCaptureFixture) -> None:
    """The teams hook's Redis is away for one pass. Before, the hook raised: the points
    were dropped (an ERROR with a traceback), and ann, who does not play again, is never
    flushed again, so her team stayed at 0. Now her report is kept, one warning says so,
    and the next pass, which flushes nothing, brings it to the team."""
    proxy, p, sync = cut_off
    ann, bob = Shopper(tw, "ann"), Shopper(tw, "bob")
    team = await create(ann, {"name": "Ants"})
    tid = team["team"]
    assert (await bob.post("/teams/s11/join", {"code": team["code"]}))[0] == 200
    assert (await ann.post("/checkin", {}))[0] == 200
    metrics = tw.client.app[METRICS]
    errors = metrics.persister_errors.labels("on_flushed")
    failed_before = errors._value.get()

    proxy.cut()
    with caplog.at_level(logging.WARNING):
        report = await p.run_once()
    assert report.ok and report.players_flushed == 2
    assert sync.kept.pending == {("shop", "squirrel", "s11", tid, "ann"): (1, 5)}
    assert metrics.flush_hook_pending.labels("teams")._value.get() == 1
    assert [(r.name, r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records
            if r.levelno >= logging.WARNING] == [
        ("petbox.teams", "WARNING", "teams: 1 member reports not applied")]
    assert errors._value.get() == failed_before  # a Redis outage is not a hook failure
    assert (await get_team(ann, tid))["points"] == 0

    proxy.restore()
    report = await p.run_once()
    assert report.ok and report.players_flushed == 0
    view = await get_team(ann, tid)
    assert (view["points"], view["rank"]) == (5, 1)
    assert view["members"][0] == {"user": "a***", "points": 5, "joined_at": NOW,
                                  "me": True, "owner": True}
    assert sync.kept.pending == {}
    assert metrics.flush_hook_pending.labels("teams")._value.get() == 0
    await p.run_once()  # nothing kept, nothing flushed: nothing to do
    assert (await get_team(ann, tid))["points"] == 5


async def test_a_failed_shard_rests_before_it_is_tried_again(
        tw: World, cut_off: tuple[TcpProxy, Persister, TeamSync],
        caplog: pytest.LogCaptureFixture) -> None:
    """The hook runs every flush round of every pass: a failed team shard is left alone
    for ``rest_s`` (its report kept, no wait, no warning), then tried again."""
    proxy, p, sync = cut_off
    sync.kept.rest_s = 60.0
    ann = Shopper(tw, "ann")
    tid = (await create(ann, {"name": "Ants"}))["team"]
    assert (await ann.post("/checkin", {}))[0] == 200
    proxy.cut()
    await p.run_once()
    kept = {("shop", "squirrel", "s11", tid, "ann"): (1, 5)}
    assert sync.kept.pending == kept
    proxy.restore()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await p.run_once()  # resting: kept, not tried
    assert sync.kept.pending == kept and (await get_team(ann, tid))["points"] == 0
    assert [r for r in caplog.records if r.name == "petbox.teams"] == []
    assert len(sync.kept.resting) == 1  # the team's shard
    sync.kept.resting.clear()  # its rest is over
    await p.run_once()
    assert sync.kept.pending == {} and (await get_team(ann, tid))["points"] == 5


async def test_the_kept_reports_are_bounded(
        tw: World, cut_off: tuple[TcpProxy, Persister, TeamSync]) -> None:
    """At most ``max_pending`` reports are kept through an outage: past it the oldest
    go (counted); the member's next flush reports their whole count again."""
    proxy, p, sync = cut_off
    sync.kept.max_kept = 1
    ann, bob = Shopper(tw, "ann"), Shopper(tw, "bob")
    team = await create(ann, {"name": "Ants"})
    tid = team["team"]
    assert (await bob.post("/teams/s11/join", {"code": team["code"]}))[0] == 200
    assert (await ann.post("/checkin", {}))[0] == 200
    proxy.cut()
    await p.run_once()  # ann: 5 kept
    assert (await bob.post("/checkin", {}))[0] == 200
    dropped = tw.client.app[METRICS].flush_hook_dropped.labels("teams")
    before = dropped._value.get()
    await p.run_once()  # bob: 5 kept, ann's (the oldest) dropped
    assert sync.kept.pending == {("shop", "squirrel", "s11", tid, "bob"): (2, 5)}
    assert dropped._value.get() == before + 1

    proxy.restore()
    await p.run_once()
    assert (await get_team(ann, tid))["points"] == 5  # bob's
    assert (await ann.post("/pet", {"species": "squirrel", "name": "Nut"}))[0] == 201
    await p.run_once()  # ann's next flush: her whole count
    assert (await get_team(ann, tid))["points"] == 10


async def test_a_team_redis_refuses_for_good_is_the_hooks_failure_not_kept(
        tw: World, caplog: pytest.LogCaptureFixture) -> None:
    """A team whose key Redis answers with an error reply (WRONGTYPE here; a Lua
    script's error is the same: it fails the same way on every try). Before, every
    RedisError counted as an outage: the report was kept and tried on every pass,
    forever, a warning each time, and never counted as the hook's failure. Now it is the
    hook's failure (logged with its traceback, counted) and not kept."""
    ann = Shopper(tw, "ann")
    tid = (await create(ann, {"name": "Ants"}))["team"]
    assert (await ann.post("/checkin", {}))[0] == 200
    app = tw.client.app
    ref = AggregateRef.of("shop", "squirrel", team_rules.KIND, team_rules.aggregate_id("s11", tid),
                          app[SETTINGS].shards)
    await app[REDIS].delete(app[KEYS].aggregate(ref))
    await app[REDIS].set(app[KEYS].aggregate(ref), "not a team")
    p = persister(tw)
    sync = next(cb for cb in p.on_flushed if isinstance(cb, TeamSync))
    errors = app[METRICS].persister_errors.labels("on_flushed")
    before = errors._value.get()
    with caplog.at_level(logging.WARNING):
        assert (await p.run_once()).players_flushed == 1
    assert errors._value.get() == before + 1
    assert sync.kept.pending == {}
    failed = [r for r in caplog.records if r.name == "petbox.teams" or "TeamSync" in r.getMessage()]
    assert [(r.levelname, type(r.exc_info[1]).__name__ if r.exc_info else None)
            for r in failed] == [("ERROR", "ResponseError")]
