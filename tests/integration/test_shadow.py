"""Shadow (load-test) traffic: served normally, written only to the shadow keyspace and
database, never to real players, stock, ledger or draws; purged at once."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from gameserver.appkeys import KEYS, REDIS, SHADOW, SHADOW_DB
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.db.models import metadata
from gameserver.http.auth import body_signature, session_signature
from gameserver.ops.shadow import purge_shadow
from gameserver.persister import Persister
from gameserver.services import SHADOW_PREFIX
from gameserver.state.keys import Keys
from tests.conftest import app_persister
from tests.integration.loopgame import loop_config
from tests.integration.test_boxes_http import BOX_CONFIG, SERIES

SHADOW_HEADERS = {"X-Petbox-Shadow": "1"}


@pytest.fixture
async def loadtest(world: Any) -> Any:
    """A merchant approved for load testing, with the blind-box game."""
    from gameserver.ops.provision import create_merchant, publish_config

    now = int(world.clock.now())
    world.merchants["lt"] = await create_merchant(world.db, "lt", now, load_test=True)
    await publish_config(world.db, "lt", "squirrel", BOX_CONFIG, now)
    return world


async def shadow_token(world: Any, user: str, merchant: str = "lt") -> Any:
    creds = world.merchants[merchant]
    ts = int(world.clock.now())
    return await world.client.post("/v1/sessions", json={
        "merchant": merchant, "user": user, "ts": ts, "shadow": True,
        "sign": session_signature(creds.signing_secret, merchant, user, ts, shadow=True)})


async def count(db: Database, table: Any) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_shadow_needs_an_approved_merchant_and_a_signed_flag(loadtest: Any) -> None:
    refused = await shadow_token(loadtest, "bot-1", merchant="shop")
    assert refused.status == 403
    creds = loadtest.merchants["lt"]
    ts = int(loadtest.clock.now())
    unsigned = await loadtest.client.post("/v1/sessions", json={
        "merchant": "lt", "user": "bot-1", "ts": ts, "shadow": True,
        "sign": session_signature(creds.signing_secret, "lt", "bot-1", ts)})
    assert unsigned.status == 401
    assert (await shadow_token(loadtest, "bot-1")).status == 201


async def test_shadow_token_and_header_go_together(loadtest: Any) -> None:
    token = (await (await shadow_token(loadtest, "bot-1")).json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    without = await loadtest.client.get("/v1/games/squirrel/me", headers=headers)
    assert without.status == 403
    real = await loadtest.token("alice", merchant_id="lt")
    forged = await loadtest.client.get("/v1/games/squirrel/me", headers={
        "Authorization": f"Bearer {real}", **SHADOW_HEADERS})
    assert forged.status == 403
    ok = await loadtest.client.get("/v1/games/squirrel/me", headers={**headers,
                                                                     **SHADOW_HEADERS})
    assert ok.status == 200


async def test_shadow_writes_never_reach_real_data(loadtest: Any) -> None:
    app = loadtest.client.app
    tokens = [(await (await shadow_token(loadtest, f"bot-{i}")).json())["token"]
              for i in range(30)]
    for i, token in enumerate(tokens):
        resp = await loadtest.client.post(f"{SERIES}/draw", json={"count": 10}, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": f"d{i}", **SHADOW_HEADERS})
        assert resp.status == 200
    shadow = app[SHADOW]
    await Persister(app[SHADOW].store.redis, shadow.keys, app[SHADOW_DB],
                    shadow.store.metrics, loadtest.clock, shards=4, consumer="t").run_once()
    for table in (m.players, m.ledger, m.draws, m.grants):
        assert await count(loadtest.db, table) == 0, table.name
    assert await count(app[SHADOW_DB], m.draws) == 300
    shadow_grants = await count(app[SHADOW_DB], m.grants)
    assert 0 < shadow_grants <= 100
    assert await count(loadtest.db, m.prize_stock) == 0  # real stock never touched

    real = await loadtest.token("alice", merchant_id="lt")
    disclosed = await (await loadtest.get(SERIES, real)).json()
    assert disclosed["stock_left"] == {"coupon_x": 100}
    stock = await (await loadtest.client.get(
        "/v1/admin/games/squirrel/stock",
        headers={"Authorization": f"Bearer {loadtest.merchants['lt'].api_key}"})).json()
    assert stock["stock"] == [{"ref": "prize:coupon_x", "total": 100, "reserved": 0,
                               "granted": 0, "left": 100}]


async def test_purge_removes_every_shadow_key_and_row(loadtest: Any, redis_url: str) -> None:
    app = loadtest.client.app
    token = (await (await shadow_token(loadtest, "bot-1")).json())["token"]
    resp = await loadtest.client.post(f"{SERIES}/draw", json={"count": 1}, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "d1", **SHADOW_HEADERS})
    assert resp.status == 200
    real = await loadtest.token("alice", merchant_id="lt")
    await loadtest.post("/v1/games/squirrel/pet", real, {"species": "squirrel", "name": "N"},
                        "adopt")
    shadow_db = app[SHADOW_DB]
    before = {t.name: await count(shadow_db, t) for t in (m.prize_stock, m.grants)}
    assert before["prize_stock"] == 1
    client = aioredis.Redis.from_url(redis_url)
    shadow_keys = len([k async for k in client.scan_iter(match="pbs:*")])
    keys, rows = await purge_shadow(redis_url, shadow_db.url)
    assert (keys, rows) == (shadow_keys, sum(before.values()))
    assert [k async for k in client.scan_iter(match="pbs:*")] == []
    assert [k async for k in client.scan_iter(match="pb:*")] != []  # real keys stay
    await client.aclose()
    assert await count(app[SHADOW_DB], m.grants) == 0
    me = await loadtest.get("/v1/games/squirrel/me", real)
    assert (await me.json())["player"]["pet"]["name"] == "N"


# -- every operation as shadow traffic: the real keyspace and tables stay byte-identical --

MIXED_CONFIG = loop_config()
MIXED_CONFIG["items"].update(BOX_CONFIG["items"])
MIXED_CONFIG["boxes"] = copy.deepcopy(BOX_CONFIG["boxes"])
MIXED_CONFIG["leaderboards"] = {"pets": {"name": "Top pets", "metric": "xp"}}
MIXED_CONFIG["reminders"] = {"webhook_url": "http://127.0.0.1:9/hook"}
MIXED_CONFIG["polls"] = {"best": {"title": "Best", "options": {"a": {"label": "A"},
                                                               "b": {"label": "B"}},
                                  "opens_at": 0, "closes_at": 4_000_000_000}}
MIXED_CONFIG["energy"] = {"max": 5, "refill_seconds": 600}
MIXED_CONFIG["flashsales"] = {"nuts": {"title": "Nuts", "sku": "NUTS-1", "price_fen": 990,
                                       "starts_at": 0, "stock": 10}}
MIXED_CONFIG["presales"] = {"box": {"title": "Box", "sku": "BOX-1", "price_fen": 9900,
                                    "reserve_from": 0, "reserve_until": 4_000_000_000,
                                    "event_at": 4_000_000_000,
                                    "convert_until": 4_000_000_001, "stock": 10}}
MIXED_CONFIG["currencies"]["hongbao"] = {"name": "Red envelopes", "initial": 0, "max": 10**9}
MIXED_CONFIG["rains"] = {"rain": {"title": "Rain", "currency": "hongbao", "rounds": {
    "r1": {"starts_at": 1_767_225_000, "duration_s": 3600, "pool_fen": 1000, "envelopes": 10}}}}
MIXED_CONFIG["samples"] = {
    "tea": {"title": "Tea", "sku": "tea", "stock": 5, "opens_at": 1_767_225_000,
            "closes_at": 1_767_228_600, "mode": "first_come", "review": {"reward": {"acorn": 1}}},
    "nuts": {"title": "Nuts", "sku": "nuts", "stock": 5, "opens_at": 1_767_225_000,
             "closes_at": 1_767_228_600}}
MIXED_CONFIG["assists"] = {"pals": {"title": "A pal", "needed": 1, "duration_s": 3600,
                                    "owner_reward": {"coupon": "c10", "currency": {"acorn": 5}}}}
"""The daily loop, a blind-box series with a limited coupon, a leaderboard, reminders,
a poll, an energy, a flash sale, a presale, a red-envelope rain, two sample campaigns
and a friend assist rewarded with the limited coupon, in one game."""
MIXED_CONFIG["groupbuys"] = {"duo": {"title": "Duo", "size": 3, "duration_s": 600}}
"""The daily loop, a blind-box series with a limited coupon, a leaderboard, reminders,
a poll, an energy and a group buy, in one game."""
MIXED_CONFIG["teams"] = {"s11": {"name": "Teams", "starts_at": 0, "ends_at": 4_000_000_000,
                                 "points": {"checkin": 5}, "board": "teams"}}
"""And a team season whose check-ins earn points on a team board."""
GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"


async def real_redis(redis_url: str) -> dict[bytes, bytes]:
    """Every key outside the shadow keyspace, with its DUMP (value and type, not TTL)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(count=1000) if not k.startswith(b"pbs:")]
        return {k: await client.dump(k) for k in sorted(keys)}
    finally:
        await client.aclose()


async def real_sql(db: Database) -> dict[str, list[str]]:
    """Every row of every table, as text, in a stable order."""
    out = {}
    async with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
    return out


class Caller:
    """Sends requests of every kind as the load-test merchant ``lt`` would, and notes
    which operation each one was (so the test can prove it covered every route)."""

    def __init__(self, world: Any) -> None:
        self.world, self.client = world, world.client
        self.creds = world.merchants["lt"]
        self.token = ""
        self.assist = ""  # the share code of the assist shopper_ops started
        self.called: dict[str, list[int]] = {}
        self._keys = itertools.count(1)

    async def login(self, user: str = "bot-1") -> None:
        resp = await shadow_token(self.world, user)
        self.called.setdefault("createSession", []).append(resp.status)
        self.token = (await resp.json())["token"]

    async def send(self, op: str, method: str, path: str, auth: str, body: Any = None,
                   key: bool = False, raw: bytes | None = None,
                   headers: dict[str, str] | None = None) -> Any:
        hdrs = {**SHADOW_HEADERS, **(headers or {})}
        if auth == "player":
            hdrs["Authorization"] = f"Bearer {self.token}"
        elif auth == "merchant":
            hdrs["Authorization"] = f"Bearer {self.creds.api_key}"
        if key:
            hdrs["Idempotency-Key"] = f"sh-{next(self._keys)}"
        resp = await self.client.request(method, path, headers=hdrs, data=raw,
                                         json=None if raw is not None else body)
        self.called.setdefault(op, []).append(resp.status)
        return resp

    async def order(self, status: str, order_id: str = "so-1") -> Any:
        ts = int(self.world.clock.now())
        raw = json.dumps({"merchant": "lt", "game": "squirrel", "user": "bot-1",
                          "order_id": order_id, "status": status, "amount_fen": 9900,
                          "skus": ["SKU-1"]}).encode()
        return await self.send("ingestOrder", "POST", "/v1/events/orders", "signature",
                               raw=raw, headers={
                                   "Content-Type": "application/json",
                                   "X-Petbox-Timestamp": str(ts),
                                   "X-Petbox-Signature": body_signature(
                                       self.creds.signing_secret, str(ts), raw)})


@pytest.fixture
async def mixed(world: Any) -> Any:
    """Load-test merchant ``lt`` with the mixed game, and real play already in SQL."""
    from gameserver.ops.provision import create_merchant, publish_config

    now = int(world.clock.now())
    world.merchants["lt"] = await create_merchant(world.db, "lt", now, load_test=True)
    await publish_config(world.db, "lt", "squirrel", MIXED_CONFIG, now)
    real = await world.token("alice", merchant_id="lt")
    api_key = {"Authorization": f"Bearer {world.merchants['lt'].api_key}"}
    grant = await world.client.post(f"{ADMIN}/players/alice/grant", json={
        "wallet": {"acorn": 500}, "reason": "real", "create": True},
        headers={**api_key, "Idempotency-Key": "g1"})
    assert grant.status == 200
    for i, (path, body) in enumerate([("/pet", {"species": "squirrel", "name": "N"}),
                                      ("/checkin", {}), ("/boxes/forest/draw", {"count": 10}),
                                      ("/exchange", {"offer": "gems"})]):
        resp = await world.post(f"{GAME}{path}", real, body, f"real-{i}")
        assert resp.status < 300, await resp.text()
    stock = await world.client.post(f"{ADMIN}/stock/coupon_x", json={"add": 1},
                                    headers={**api_key, "Idempotency-Key": "s1"})
    assert stock.status == 200
    await persister(world, shadow=False).run_once()
    return world


def persister(world: Any, *, shadow: bool) -> Persister:
    """The server's persister of one keyspace, with its hooks (boards, teams)."""
    return app_persister(world.client.app, shadow=shadow, consumer="t")


async def shopper_ops(c: Caller) -> None:
    """Every shopper route, each one answered as it would be for real play."""
    game = c.world
    await c.send("getBoxSeries", "GET", f"{GAME}/boxes/forest?merchant=lt", "none")
    await c.send("getPlayer", "GET", f"{GAME}/me", "player")
    assert (await c.send("getBoxSeries", "GET", f"{GAME}/boxes/forest", "player")).status == 200
    await c.send("adoptPet", "POST", f"{GAME}/pet", "player",
                 {"species": "squirrel", "name": "Bot"}, key=True)
    await c.send("feedPet", "POST", f"{GAME}/pet/feed", "player", {"food": "snack"}, key=True)
    await c.send("playWithPet", "POST", f"{GAME}/pet/play", "player", {}, key=True)
    await c.send("cleanPet", "POST", f"{GAME}/pet/clean", "player", {}, key=True)
    await c.send("checkIn", "POST", f"{GAME}/checkin", "player", {}, key=True)
    started = await c.send("startTask", "POST", f"{GAME}/tasks/browse15/start", "player", {},
                           key=True)
    ticket = (await started.json())["ticket"]
    await c.send("startTask", "POST", f"{GAME}/tasks/follow/start", "player", {}, key=True)
    await c.send("completeTask", "POST", f"{GAME}/tasks/follow/complete", "player", {},
                 key=True)
    game.clock.advance(20)  # browsed long enough
    await c.send("completeTask", "POST", f"{GAME}/tasks/browse15/complete", "player",
                 {"ticket": ticket}, key=True)
    await c.send("exchange", "POST", f"{GAME}/exchange", "player", {"offer": "coupon"},
                 key=True)
    await c.send("drawBox", "POST", f"{GAME}/boxes/forest/draw", "player", {"count": 1},
                 key=True)
    await c.send("rotateSeed", "POST", f"{GAME}/boxes/seed/rotate", "player", {}, key=True)
    await c.send("getLeaderboard", "GET", f"{GAME}/leaderboards/pets", "player")
    voted = await c.send("castVote", "POST", f"{GAME}/polls/best/vote", "player",
                         {"option": "a"}, key=True)
    assert voted.status == 200, await voted.text()
    await c.send("getPoll", "GET", f"{GAME}/polls/best?merchant=lt", "none")
    await c.send("spendEnergy", "POST", f"{GAME}/energy/spend", "player", {"amount": 2},
                 key=True)
    await c.send("getFlashSale", "GET", f"{GAME}/flashsales/nuts?merchant=lt", "none")
    await c.send("claimFlashSale", "POST", f"{GAME}/flashsales/nuts/claim", "player", {},
                 key=True)
    await c.send("getPresale", "GET", f"{GAME}/presales/box?merchant=lt", "none")
    await c.send("reservePresale", "POST", f"{GAME}/presales/box", "player", {}, key=True)
    await c.send("grabEnvelope", "POST", f"{GAME}/rains/rain/grab", "player", {"round": "r1"},
                 key=True)
    await c.send("getEnvelopeRain", "GET", f"{GAME}/rains/rain?merchant=lt", "none")
    for campaign in ("tea", "nuts"):
        await c.send("applySample", "POST", f"{GAME}/samples/{campaign}/apply", "player", {},
                     key=True)
    await c.send("reviewSample", "POST", f"{GAME}/samples/tea/review", "player",
                 {"report": "good"}, key=True)
    await c.send("listMySamples", "GET", f"{GAME}/samples", "player")
    await c.send("getSampleCampaign", "GET", f"{GAME}/samples/nuts?merchant=lt", "none")
    assist = await c.send("startAssist", "POST", f"{GAME}/assists/pals", "player", {},
                          key=True)
    assert assist.status == 200, await assist.text()
    code = c.assist = (await assist.json())["code"]
    await c.login("bot-2")
    helped = await c.send("giveAssist", "POST", f"{GAME}/assists/pals/help", "player",
                          {"code": code}, key=True)
    assert helped.status == 200, await helped.text()
    await c.send("getAssist", "GET", f"{GAME}/assists/pals/{code}", "player")
    await c.login()
    await groupbuy_ops(c)
    await team_ops(c)
    game.clock.advance(2 * 86_400)  # two days on: produce to collect, a day to make up
    await c.login()
    await c.send("collectProduce", "POST", f"{GAME}/pet/collect", "player", {}, key=True)
    await c.send("checkIn", "POST", f"{GAME}/checkin", "player", {}, key=True)
    await c.send("makeupCheckIn", "POST", f"{GAME}/checkin/makeup", "player", {}, key=True)


async def groupbuy_ops(c: Caller) -> None:
    """A group opened, listed, read, joined by a second shopper who then leaves."""
    opened = await c.send("createGroupBuy", "POST", f"{GAME}/groupbuys/duo", "player", {},
                          key=True)
    assert opened.status == 200, await opened.text()
    code = (await opened.json())["code"]
    await c.send("listGroupBuys", "GET", f"{GAME}/groupbuys/duo", "player")
    await c.send("getGroupBuy", "GET", f"{GAME}/groupbuys/duo/groups/{code}", "player")
    await c.login("bot-2")
    joined = await c.send("joinGroupBuy", "POST", f"{GAME}/groupbuys/duo/join", "player",
                          {"code": code}, key=True)
    assert joined.status == 200, await joined.text()
    left = await c.send("leaveGroupBuy", "POST", f"{GAME}/groupbuys/duo/groups/{code}/leave",
                        "player", {}, key=True)
    assert left.status == 200, await left.text()
    await c.login()


async def team_ops(c: Caller) -> None:
    """bot-1 creates a team, bot-2 joins and leaves; bot-1 stays in it (its check-ins
    then earn shadow team points)."""
    created = await c.send("createTeam", "POST", f"{GAME}/teams/s11", "player", {}, key=True)
    team = await created.json()
    await c.login("bot-2")
    await c.send("joinTeam", "POST", f"{GAME}/teams/s11/join", "player",
                 {"code": team["code"]}, key=True)
    await c.send("leaveTeam", "POST", f"{GAME}/teams/s11/leave", "player", {}, key=True)
    await c.login()
    await c.send("getTeam", "GET", f"{GAME}/teams/s11/{team['team']}", "player")
    await c.send("claimTeamRewards", "POST", f"{GAME}/teams/s11/claim", "player", {},
                 key=True)


async def merchant_ops(c: Caller) -> None:
    """The order webhook and the merchant routes that serve load-test traffic."""
    assert (await c.order("paid")).status == 200
    assert (await c.order("refunded")).status == 200
    await c.send("setStock", "POST", f"{ADMIN}/stock/coupon_x", "merchant", {"add": 5},
                 key=True)
    await c.send("grantPlayer", "POST", f"{ADMIN}/players/bot-1/grant", "merchant",
                 {"wallet": {"gem": 7}, "reason": "load test"}, key=True)
    await c.send("getStock", "GET", f"{ADMIN}/stock", "merchant")
    wallet = await c.send("listMyCoupons", "GET", f"{GAME}/coupons", "player")
    code = (await wallet.json())["coupons"][0]["code"]  # the exchange's coupon, in shadow
    await c.send("redeemCoupon", "POST", f"{ADMIN}/coupons/{code}/redeem", "merchant",
                 {"reference": "load-test"}, key=True)
    await c.send("drawSampleWinners", "POST", f"{ADMIN}/samples/nuts/draw", "merchant", {},
                 key=True)
    await c.send("getSampleCampaignAdmin", "GET", f"{ADMIN}/samples/nuts", "merchant")
    await c.send("simulateEnvelopeRain", "POST", f"{ADMIN}/rains/rain/simulate", "merchant",
                 {"round": "r1", "runs": 2})
    await c.send("listGroupBuysAdmin", "GET", f"{ADMIN}/groupbuys/duo", "merchant")
    await c.send("getTeamSeasonAdmin", "GET", f"{ADMIN}/teams/s11", "merchant")
    # a load-test shopper's erasure, on the shadow side (nothing unflushed to wait for:
    # this test runs no persister)
    await c.send("erasePlayer", "POST", f"{ADMIN}/players/bot-9/erase", "merchant", {},
                 key=True)
    # The real shopper's id erased by shadow traffic: shadow data only (the real alice's
    # keys and rows are compared with what they were below).
    await c.send("erasePlayer", "POST", f"{ADMIN}/players/alice/erase", "merchant", {},
                 key=True)


async def refused_ops(c: Caller) -> None:
    """Merchant routes on shared data (configs, reports): refused to shadow traffic,
    each with a body that would change real data if it were taken."""
    raw = copy.deepcopy(MIXED_CONFIG)
    raw["name"] = "changed by a load test"
    for op, method, path, body in [
            ("getGameDraft", "GET", f"{ADMIN}/draft", None),
            ("putGameDraft", "PUT", f"{ADMIN}/draft", raw),
            ("publishGame", "POST", f"{ADMIN}/publish", {"note": "load test"}),
            ("listGameVersions", "GET", f"{ADMIN}/versions", None),
            ("getGameVersion", "GET", f"{ADMIN}/versions/1", None),
            ("diffGameVersions", "GET", f"{ADMIN}/versions/1/diff/live", None),
            ("rollbackGame", "POST", f"{ADMIN}/rollback", {"version": 1}),
            ("simulateGame", "POST", f"{ADMIN}/simulate",
             {"series": "forest", "players": 10, "draws": 10}),
            ("exportEvents", "GET", f"{ADMIN}/export", None),
            ("getAnalytics", "GET", f"{ADMIN}/analytics", None),
            ("listGames", "GET", "/v1/admin/games", None),
            ("listWebhookEvents", "GET", f"{ADMIN}/webhooks", None),
            ("listExperiments", "GET", f"{ADMIN}/experiments", None),
            ("getExperiment", "GET", f"{ADMIN}/experiments/e1", None),
            ("getExperimentResults", "GET", f"{ADMIN}/experiments/e1/results", None),
            ("putExperiment", "PUT", f"{ADMIN}/experiments/e1", {"name": "load test"}),
            ("stopExperiment", "POST", f"{ADMIN}/experiments/e1/stop", {}),
            ("shipExperimentArm", "POST", f"{ADMIN}/experiments/e1/ship", {"arm": "b"}),
            ("listWebhookEvents", "GET", f"{ADMIN}/webhooks", None)]:
        resp = await c.send(op, method, path, "merchant", body, key=method != "GET")
        assert resp.status == 403, (op, await resp.text())
        assert (await resp.json())["error"]["code"] == "forbidden", op


async def public_ops(c: Caller) -> None:
    for op, path in [("healthz", "/healthz"), ("readyz", "/readyz"), ("metrics", "/metrics"),
                     ("openapi", "/openapi.json"), ("console", "/console"),
                     ("consoleAsset", "/console/static/console.js")]:
        await c.send(op, "GET", path, "none")


async def test_no_write_path_lets_shadow_traffic_reach_real_state(
        mixed: Any, redis_url: str) -> None:
    from gameserver.app import all_operations

    app = mixed.client.app
    redis_before, sql_before = await real_redis(redis_url), await real_sql(mixed.db)
    assert redis_before and sql_before["draws"] and sql_before["admin_requests"]
    c = Caller(mixed)
    await c.login()
    await shopper_ops(c)
    await merchant_ops(c)
    await refused_ops(c)
    await public_ops(c)
    await persister(mixed, shadow=True).run_once()
    await c.send("listDraws", "GET", f"{GAME}/draws", "player")
    await c.send("getPlayerAdmin", "GET", f"{ADMIN}/players/bot-1", "merchant")
    report = await c.send("getAssistCampaignAdmin", "GET", f"{ADMIN}/assists/pals", "merchant")
    assert (await report.json())["complete"] == 1  # the shadow assist, from shadow SQL
    await c.send("getAssistAdmin", "GET", f"{ADMIN}/assists/pals/{c.assist}", "merchant")
    listed = await (await c.send("getTeamSeasonAdmin", "GET", f"{ADMIN}/teams/s11",
                                 "merchant")).json()
    assert [t["points"] for t in listed["teams"]] == [5]  # the shadow board, shadow team
    await c.send("getTeamAdmin", "GET", f"{ADMIN}/teams/s11/{listed['teams'][0]['team']}",
                 "merchant")

    assert set(c.called) == {op.operation_id for op in all_operations()}
    served = {op for op, statuses in c.called.items() if all(s < 300 for s in statuses)}
    assert served == set(c.called) - REFUSED_TO_SHADOW, c.called
    assert await real_redis(redis_url) == redis_before
    assert await real_sql(mixed.db) == sql_before
    # ... and the shadow side did take every write.
    shadow = await real_sql(app[SHADOW_DB])
    for table in ("players", "ledger", "draws", "grants", "prize_stock", "admin_requests"):
        assert shadow[table], table
    shadow_keys = Keys(SHADOW_PREFIX)  # bot-1's check-in reached its shadow team's board
    teams_board = await app[REDIS].zrange(shadow_keys.leaderboard("lt", "squirrel", "teams"),
                                          0, -1, withscores=True)
    assert [score for _, score in teams_board] == [5.0]
    for shard in range(4):  # load-test players are never reminded
        assert await app[REDIS].zcard(shadow_keys.reminders(shard)) == 0
    assert sum([await app[REDIS].zcard(app[KEYS].reminders(s)) for s in range(4)]) == 1
    seen = await (await c.send("getPlayerAdmin", "GET", f"{ADMIN}/players/bot-1",
                               "merchant")).json()
    assert seen["player"]["wallet"]["gem"] >= 7
    assert seen["player"]["checkin"]["total"] == 3


REFUSED_TO_SHADOW = {"getGameDraft", "putGameDraft", "publishGame", "listGameVersions",
                     "getGameVersion", "diffGameVersions", "rollbackGame", "simulateGame",
                     "exportEvents", "getAnalytics", "listGames", "listExperiments",
                     "getExperiment", "getExperimentResults", "putExperiment",
                     "stopExperiment", "shipExperimentArm", "listWebhookEvents"}


async def test_shadow_header_needs_a_load_test_merchant(mixed: Any, redis_url: str) -> None:
    """A merchant not approved for load testing cannot divert (or reach) anything with
    the header: its API key, its signed orders and public reads are refused, unchanged."""
    shop = mixed.merchants["shop"]
    redis_before, sql_before = await real_redis(redis_url), await real_sql(mixed.db)
    grant = await mixed.client.post("/v1/admin/games/squirrel/players/u1/grant", json={
        "wallet": {"acorn": 1}, "reason": "x", "create": True}, headers={
        "Authorization": f"Bearer {shop.api_key}", "Idempotency-Key": "g-sh",
        **SHADOW_HEADERS})
    assert grant.status == 403
    ts = int(mixed.clock.now())
    raw = json.dumps({"merchant": "shop", "game": "squirrel", "user": "u1",
                      "order_id": "o1", "status": "paid"}).encode()
    order = await mixed.client.post("/v1/events/orders", data=raw, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": str(ts),
        "X-Petbox-Signature": body_signature(shop.signing_secret, str(ts), raw),
        **SHADOW_HEADERS})
    assert order.status == 403
    public = await mixed.client.get(f"{GAME}/boxes/forest?merchant=shop",
                                    headers=SHADOW_HEADERS)
    assert public.status == 403
    for resp in (grant, order, public):
        assert (await resp.json())["error"]["code"] == "forbidden"
    assert await real_redis(redis_url) == redis_before
    assert await real_sql(mixed.db) == sql_before


@pytest.mark.parametrize("value", ["true", "yes", "0", "11", ""])
async def test_a_misspelt_shadow_header_is_refused_not_read_as_real(
        mixed: Any, redis_url: str, value: str) -> None:
    """Only ``X-Petbox-Shadow: 1`` marks load-test traffic; any other value is 422, never
    taken as "real": a load test that misspelt it would otherwise write real data."""
    header = {"X-Petbox-Shadow": value}
    redis_before, sql_before = await real_redis(redis_url), await real_sql(mixed.db)
    api_key = {"Authorization": f"Bearer {mixed.merchants['lt'].api_key}"}
    grant = await mixed.client.post(f"{ADMIN}/players/alice/grant", json={
        "wallet": {"acorn": 1}, "reason": "x"}, headers={
        **api_key, "Idempotency-Key": "g-typo", **header})
    real = await mixed.token("alice", merchant_id="lt")
    feed = await mixed.client.post(f"{GAME}/pet/feed", json={"food": "acorn_snack"}, headers={
        "Authorization": f"Bearer {real}", "Idempotency-Key": "f-typo", **header})
    public = await mixed.client.get(f"{GAME}/boxes/forest?merchant=lt", headers=header)
    for resp in (grant, feed, public):
        assert resp.status == 422, await resp.text()
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_input"
        assert error["details"]["field"] == "X-Petbox-Shadow"
    assert await real_redis(redis_url) == redis_before
    assert await real_sql(mixed.db) == sql_before
