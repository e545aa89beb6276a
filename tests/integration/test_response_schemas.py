"""Every operation's success response has a schema in ``/openapi.json`` (and 4xx/5xx
the shared ``Error``), and what petbox really answers matches it: a shopper's and a
merchant's journey through the example game, every 2xx body validated against the
schema the document states for that operation and status."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from gameserver.api.schemas import ALWAYS_SHOWN, VIEW_PARTS
from gameserver.http.auth import body_signature
from mechanics.registry import MECHANICS
from tests.conftest import World, app_persister

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "gameserver" / "examples" / "squirrel-omg.json").read_text())
G = "/v1/games/squirrel"
A = "/v1/admin/games/squirrel"


class Checked:
    """Sends requests and validates each answer against the document's schema."""

    def __init__(self, world: World, doc: dict[str, Any]) -> None:
        self.world, self.doc = world, doc
        self.seen: dict[str, Any] = {}

    def schema(self, op_id: str, status: int) -> dict[str, Any]:
        for ops in self.doc["paths"].values():
            for op in ops.values():
                if op["operationId"] == op_id:
                    content = op["responses"][str(status)]["content"]
                    schema = next(iter(content.values()))["schema"]
                    return {**schema, "components": self.doc["components"]}
        raise AssertionError(f"{op_id} is not in the document")

    async def call(self, op_id: str, method: str, path: str, status: int, *,
                   token: str | None = None, body: Any = None, key: str | None = None,
                   headers: dict[str, str] | None = None, data: bytes | None = None) -> Any:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if key:
            hdrs["Idempotency-Key"] = key
        resp = await self.world.client.request(
            method, path, headers=hdrs, data=data,
            json=body if data is None and method != "GET" else None)
        text = await resp.text()
        assert resp.status == status, (op_id, resp.status, text)
        out = json.loads(text)
        self.seen[op_id] = out
        errors = [f"{e.instance_path}: {e.message}" for e in
                  jsonschema_rs.validator_for(self.schema(op_id, status)).iter_errors(out)]
        assert errors == [], (op_id, errors)
        assert _undescribed(self.schema(op_id, status), out) == [], op_id
        return out


def _undescribed(schema: dict[str, Any], body: Any) -> list[str]:
    """Top-level fields of ``body`` its schema does not name (an object that lists its
    properties without ``additionalProperties``): the generated SDK types have no such
    field, so a client typed from them cannot read it, however the docs describe it."""
    if "$ref" in schema:
        schema = schema["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(body, dict) or "properties" not in schema \
            or "additionalProperties" in schema:
        return []
    return sorted(set(body) - set(schema["properties"]))


def test_every_view_part_of_the_player_has_a_schema() -> None:
    """A mechanic that adds a part to the player view must describe it (VIEW_PARTS)."""
    keys = [v.key for m in MECHANICS for v in m.views]
    assert sorted(VIEW_PARTS) == sorted(keys)
    always = [v.key for m in MECHANICS for v in m.views if not v.omit_none]
    assert sorted(ALWAYS_SHOWN) == sorted(always)


async def test_every_operation_documents_its_success_and_error_bodies(world: World) -> None:
    resp = await world.client.get("/openapi.json")
    doc = await resp.json()
    bare, no_error = [], []
    for ops in doc["paths"].values():
        for op in ops.values():
            for status, answer in op["responses"].items():
                schema = next(iter(answer["content"].values()))["schema"]
                if int(status) < 300 and "$ref" in schema:  # a shared component's
                    schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
                described = set(schema) & {"properties", "items", "additionalProperties"}
                if int(status) < 300 and schema.get("type") != "string" and not described:
                    bare.append(f"{op['operationId']} {status}")
                if int(status) >= 400 and schema != {"$ref": "#/components/schemas/Error"}:
                    no_error.append(f"{op['operationId']} {status}")
    assert bare == []
    assert no_error == ["readyz 503"]  # not ready: the readiness report, which says why
    ready = doc["paths"]["/readyz"]["get"]["responses"]
    assert ready["503"]["content"] == ready["200"]["content"]


def _unrequired(schema: Any, at: str) -> list[str]:
    """Objects of ``schema`` with properties but no ``required`` list (every field
    optional in the generated types, even those always there)."""
    if isinstance(schema, list):
        return [p for i, s in enumerate(schema) for p in _unrequired(s, f"{at}[{i}]")]
    if not isinstance(schema, dict):
        return []
    out = [at] if "properties" in schema and "required" not in schema else []
    for key, sub in schema.items():
        if key in ("properties", "additionalProperties"):
            subs = sub.items() if key == "properties" else [("*", sub)]
            out += [p for name, s in subs for p in _unrequired(s, f"{at}.{name}")]
        elif key in ("items", "anyOf", "oneOf", "allOf"):
            out += _unrequired(sub, f"{at}.{key}")
    return out


async def test_every_success_object_says_what_is_required(world: World) -> None:
    """A success body's objects list their always-present fields in ``required`` (the
    tests below check real answers against it), so SDK types need no guessing."""
    doc = await (await world.client.get("/openapi.json")).json()
    missing = [p for ops in doc["paths"].values() for op in ops.values()
               for status, answer in op["responses"].items() if int(status) < 300
               for content in answer["content"].values()
               for p in _unrequired(content["schema"], f"{op['operationId']} {status}")]
    assert missing == []


async def test_the_answers_match_their_schemas(world: World) -> None:
    doc = await (await world.client.get("/openapi.json")).json()
    config = copy.deepcopy(EXAMPLE)
    # a series without a completion reward discloses it as null
    del config["boxes"]["series"]["forest_friends"]["completion_reward"]
    creds = await world.merchant("omg", "squirrel", config)
    api = str(creds.api_key)
    c = Checked(world, doc)
    for op_id, path in (("healthz", "/healthz"), ("readyz", "/readyz"),
                        ("openapi", "/openapi.json")):
        await c.call(op_id, "GET", path, 200)
    token = await world.token("alice", "omg")
    await c.call("getPlayer", "GET", f"{G}/me", 200, token=token)
    await c.call("adoptPet", "POST", f"{G}/pet", 201, token=token,
                 body={"species": "squirrel", "name": "Nutty"}, key="a1")
    await c.call("feedPet", "POST", f"{G}/pet/feed", 200, token=token,
                 body={"food": "acorn_snack"}, key="f1")
    await c.call("playWithPet", "POST", f"{G}/pet/play", 200, token=token, body={}, key="p1")
    world.clock.advance(3600)
    await c.call("cleanPet", "POST", f"{G}/pet/clean", 200, token=token, body={}, key="n1")
    await c.call("collectProduce", "POST", f"{G}/pet/collect", 200, token=token, body={},
                 key="c1")
    await c.call("checkIn", "POST", f"{G}/checkin", 200, token=token, body={}, key="k1")
    start = await c.call("startTask", "POST", f"{G}/tasks/browse_shop/start", 200,
                         token=token, body={}, key="t1")
    world.clock.advance(60)
    await c.call("completeTask", "POST", f"{G}/tasks/browse_shop/complete", 200,
                 token=token, body={"ticket": start["ticket"]}, key="t2")
    await c.call("getBoxSeries", "GET", f"{G}/boxes/forest_friends?merchant=omg", 200)
    # with a token: the player's committed seed hash (fairness: known before the draw)
    mine = await c.call("getBoxSeries", "GET", f"{G}/boxes/forest_friends", 200, token=token)
    assert len(mine["player"]["seed_hash"]) == 64 and mine["arm"] is None
    await c.call("drawBox", "POST", f"{G}/boxes/forest_friends/draw", 200, token=token,
                 body={"count": 10}, key="d1")
    await c.call("grantPlayer", "POST", f"{A}/players/alice/grant", 200, token=api,
                 body={"wallet": {"gem": 20}, "reason": "support"}, key="g1")
    await c.call("exchange", "POST", f"{G}/exchange", 200, token=token,
                 body={"offer": "gems_for_coupon"}, key="x1")
    await c.call("rotateSeed", "POST", f"{G}/boxes/seed/rotate", 200, token=token, body={},
                 key="r1")
    app = world.client.app
    await app_persister(app, consumer="c1").run_once()
    listed = await c.call("listDraws", "GET", f"{G}/draws", 200, token=token)
    assert len(listed["draws"]) == 10 and listed["draws"][0]["server_seed"] is not None
    await c.call("getPlayer", "GET", f"{G}/me", 200, token=token)
    raw = json.dumps({"merchant": "omg", "game": "squirrel", "user": "alice",
                      "order_id": "o1", "status": "paid", "amount_fen": 9900}).encode()
    ts = str(int(world.clock.now()))
    await c.call("ingestOrder", "POST", "/v1/events/orders", 200, data=raw, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": body_signature(creds.signing_secret, ts, raw)})
    await c.call("getStock", "GET", f"{A}/stock", 200, token=api)
    await c.call("setStock", "POST", f"{A}/stock/coupon_10off", 200, token=api,
                 body={"add": 5}, key="s1")
    await c.call("getPlayerAdmin", "GET", f"{A}/players/alice", 200, token=api)
    await c.call("putGameDraft", "PUT", f"{A}/draft", 200, token=api, body=config)
    await c.call("getGameDraft", "GET", f"{A}/draft", 200, token=api)
    await c.call("getGameVersion", "GET", f"{A}/versions/1", 200, token=api)
    await c.call("simulateGame", "POST", f"{A}/simulate", 200, token=api,
                 body={"series": "forest_friends", "players": 20, "draws": 10})
    await c.call("getAnalytics", "GET", f"{A}/analytics", 200, token=api)
    await c.call("getLeaderboard", "GET", f"{G}/leaderboards/top_squirrels", 200, token=token)
    await c.call("listGames", "GET", "/v1/admin/games", 200, token=api)
    await c.call("publishGame", "POST", f"{A}/publish", 200, token=api, body={"note": "n"})
    await c.call("rollbackGame", "POST", f"{A}/rollback", 200, token=api,
                 body={"version": 1, "note": "back"})
    versions = await c.call("listGameVersions", "GET", f"{A}/versions", 200, token=api)
    assert versions["draft"] is not None and versions["versions"][0]["version"] == 1
    await c.call("diffGameVersions", "GET", f"{A}/versions/1/diff/draft", 200, token=api)
    await c.call("listExperiments", "GET", f"{A}/experiments", 200, token=api)
    assert set(c.seen) >= {"getPlayer", "feedPet", "drawBox", "listDraws", "getAnalytics",
                           "startTask", "listGameVersions"}
    assert c.seen["exchange"]["granted"]["coupons"] == {"coupon_5off": 1}
    assert len(c.seen["drawBox"]["draws"]) == 10


# -- the plays: each against its own merchant, success paths, every answer checked ------
# Their schemas name as required what the handlers always answer: a field a handler
# leaves out fails here, so the generated SDK types may rely on it.


async def _checked(world: World, merchant: str, config: dict[str, Any]) -> tuple[Checked, str]:
    doc = await (await world.client.get("/openapi.json")).json()
    creds = await world.merchant(merchant, "squirrel", copy.deepcopy(config))
    return Checked(world, doc), str(creds.api_key)


async def test_poll_answers_match_their_schemas(world: World) -> None:
    from tests.integration.test_poll_http import NOW, POLL_CONFIG

    c, _ = await _checked(world, "pollshop", POLL_CONFIG)
    ann = world.mint("ann", "pollshop")
    vote = await c.call("castVote", "POST", f"{G}/polls/best/vote", 200, token=ann,
                        body={"option": "red"}, key="v1")
    assert (vote["votes_today"], vote["votes_left_today"]) == (1, 2)
    open_ = await c.call("getPoll", "GET", f"{G}/polls/best?merchant=pollshop", 200)
    assert (open_["status"], open_["result"], open_["cost"]) == ("open", None, {"acorn": 5})
    world.clock.set(NOW + 4 * 86400)
    closed = await c.call("getPoll", "GET", f"{G}/polls/best?merchant=pollshop", 200)
    assert closed["result"]["winners"] == ["red"]


async def test_rain_answers_match_their_schemas(world: World) -> None:
    from tests.integration.test_rains_http import NOW, RAIN_CONFIG

    world.clock.set(NOW)
    c, api = await _checked(world, "rainshop", RAIN_CONFIG)
    path = f"{G}/rains/midnight"
    await c.call("getEnvelopeRain", "GET", f"{path}?merchant=rainshop", 200)
    got = await c.call("grabEnvelope", "POST", f"{path}/grab", 200,
                       token=world.mint("ann", "rainshop"), body={"round": "r1"}, key="g1")
    assert "void" not in got and got["amount_fen"] > 0
    await c.call("simulateEnvelopeRain", "POST", f"{A}/rains/midnight/simulate", 200,
                 token=api, body={"round": "r1", "shoppers": 100, "runs": 2})
    world.clock.set(NOW + 60)
    ended = await c.call("getEnvelopeRain", "GET", f"{path}?merchant=rainshop", 200)
    assert ended["rounds"][0]["seed"] is not None


async def test_sample_answers_match_their_schemas(world: World) -> None:
    from economy.samples import DRAW_GRACE_S
    from tests.integration.test_samples_http import CLOSES, SAMPLE_CONFIG

    c, api = await _checked(world, "sampleshop", SAMPLE_CONFIG)
    ann = world.mint("ann", "sampleshop")
    path = f"{G}/samples/nuts"
    await c.call("getSampleCampaign", "GET", f"{path}?merchant=sampleshop", 200)
    await c.call("applySample", "POST", f"{path}/apply", 200, token=ann, body={}, key="a1")
    await c.call("listMySamples", "GET", f"{G}/samples", 200, token=ann)
    world.clock.set(CLOSES + DRAW_GRACE_S)
    ann = world.mint("ann", "sampleshop")
    drawn = await c.call("drawSampleWinners", "POST", f"{A}/samples/nuts/draw", 200,
                         token=api, body={}, key="d1")
    assert drawn["winners"] == 1
    await c.call("reviewSample", "POST", f"{path}/review", 200, token=ann,
                 body={"report": "crunchy"}, key="r1")
    await c.call("getSampleCampaign", "GET", f"{path}?merchant=sampleshop", 200)
    admin = await c.call("getSampleCampaignAdmin", "GET", f"{A}/samples/nuts", 200, token=api)
    assert admin["result"] is not None and admin["reports"][0]["report"] == "crunchy"
    mine = await c.call("listMySamples", "GET", f"{G}/samples", 200, token=ann)
    assert mine["samples"][0]["status"] == "won"


async def test_group_buy_answers_match_their_schemas(world: World) -> None:
    from tests.integration.test_groupbuy_http import GB_CONFIG

    c, api = await _checked(world, "gbshop", GB_CONFIG)
    ann, bob, cid = (world.mint(u, "gbshop") for u in ("ann", "bob", "cid"))
    path = f"{G}/groupbuys/tea"
    group = await c.call("createGroupBuy", "POST", path, 200, token=ann, body={}, key="c1")
    await c.call("joinGroupBuy", "POST", f"{path}/join", 200, token=bob,
                 body={"code": group["code"]}, key="j1")
    await c.call("listGroupBuys", "GET", path, 200, token=cid)
    await c.call("listGroupBuysAdmin", "GET", f"{A}/groupbuys/tea", 200, token=api)
    left = await c.call("leaveGroupBuy", "POST", f"{path}/groups/{group['group']}/leave", 200,
                        token=bob, body={}, key="l1")
    assert left["refunded"] == {"acorn": 10}
    await c.call("joinGroupBuy", "POST", f"{path}/join", 200, token=cid,
                 body={"code": group["code"]}, key="j2")
    done = await c.call("joinGroupBuy", "POST", f"{path}/join", 200,
                        token=world.mint("dan", "gbshop"),
                        body={"code": group["code"]}, key="j3")
    assert done["state"] == "complete" and done["reward"]["granted"] is True
    await c.call("getGroupBuy", "GET", f"{path}/groups/{group['group']}", 200, token=ann)


async def test_team_answers_match_their_schemas(world: World) -> None:
    from tests.integration.test_teams_http import TEAM_CONFIG

    c, api = await _checked(world, "teamshop", TEAM_CONFIG)
    ann, bob = world.mint("ann", "teamshop"), world.mint("bob", "teamshop")
    path = f"{G}/teams/s11"
    team = await c.call("createTeam", "POST", path, 200, token=ann, body={"name": "Ants"},
                        key="t1")
    joined = await c.call("joinTeam", "POST", f"{path}/join", 200, token=bob,
                          body={"code": team["code"]}, key="t2")
    assert joined["code"] == team["code"]
    seen = await c.call("getTeam", "GET", f"{path}/{team['team']}", 200,
                        token=world.mint("cid", "teamshop"))
    assert "code" not in seen  # not a member
    await c.call("getTeamAdmin", "GET", f"{A}/teams/s11/{team['team']}", 200, token=api)
    await c.call("getTeamSeasonAdmin", "GET", f"{A}/teams/s11", 200, token=api)
    await c.call("claimTeamRewards", "POST", f"{path}/claim", 200, token=ann, body={},
                 key="t3")
    await c.call("leaveTeam", "POST", f"{path}/leave", 200, token=bob, body={}, key="t4")


async def test_assist_answers_match_their_schemas(world: World) -> None:
    from tests.integration.test_assist_http import ASSIST_CONFIG

    c, api = await _checked(world, "helpshop", ASSIST_CONFIG)
    ann = world.mint("ann", "helpshop", age=3600)
    path = f"{G}/assists/friends"
    started = await c.call("startAssist", "POST", path, 200, token=ann, body={}, key="s1")
    for user in ("bob", "cid", "dan"):
        await c.call("giveAssist", "POST", f"{path}/help", 200,
                     token=world.mint(user, "helpshop", age=3600),
                     body={"code": started["code"]}, key=f"h-{user}")
    assert c.seen["giveAssist"]["complete"] is True
    shown = await c.call("getAssist", "GET", f"{path}/{started['code']}", 200, token=ann)
    assert shown["state"] == "complete"
    await c.call("getAssistAdmin", "GET", f"{A}/assists/friends/{started['code']}", 200,
                 token=api)
    await c.call("getAssistCampaignAdmin", "GET", f"{A}/assists/friends", 200, token=api)


async def test_flash_sale_and_presale_answers_match_their_schemas(world: World) -> None:
    from gameserver.api.flashsale import STOCK_CACHE
    from tests.integration.test_flashsale_http import CONFIG, START

    c, _ = await _checked(world, "fsshop", CONFIG)
    world.client.app[STOCK_CACHE].ttl = 0
    ann = world.mint("ann", "fsshop")
    await c.call("getPresale", "GET", f"{G}/presales/early?merchant=fsshop", 200)
    held = await c.call("reservePresale", "POST", f"{G}/presales/early", 200, token=ann,
                        body={}, key="p1")
    assert held["deposit_value_fen"] == 4000 and "priority_until" not in held
    await c.call("getFlashSale", "GET", f"{G}/flashsales/midnight?merchant=fsshop", 200)
    world.clock.set(START)
    ann = world.mint("ann", "fsshop")
    await c.call("claimFlashSale", "POST", f"{G}/flashsales/midnight/claim", 200, token=ann,
                 body={}, key="f1")
    raw = json.dumps({"merchant": "fsshop", "game": "squirrel", "user": "ann",
                      "order_id": "o1", "status": "paid", "skus": ["NUTS-11"]}).encode()
    ts = str(int(world.clock.now()))
    paid = await c.call("ingestOrder", "POST", "/v1/events/orders", 200, data=raw, headers={
        "Content-Type": "application/json", "X-Petbox-Timestamp": ts,
        "X-Petbox-Signature": body_signature(world.merchants["fsshop"].signing_secret, ts,
                                             raw)})
    assert paid["sale_holds"][0]["result"] == "paid"
