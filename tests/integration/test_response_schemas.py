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
from gameserver.auth import body_signature
from mechanics.registry import MECHANICS
from tests.conftest import World, app_persister

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "squirrel-omg.json").read_text())
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
        return out


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
                described = set(schema) & {"properties", "items", "additionalProperties"}
                if int(status) < 300 and schema.get("type") != "string" and not described:
                    bare.append(f"{op['operationId']} {status}")
                if int(status) >= 400 and schema != {"$ref": "#/components/schemas/Error"}:
                    no_error.append(f"{op['operationId']} {status}")
    assert bare == []
    assert no_error == []


async def test_the_answers_match_their_schemas(world: World) -> None:
    doc = await (await world.client.get("/openapi.json")).json()
    creds = await world.merchant("omg", "squirrel", copy.deepcopy(EXAMPLE))
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
    await c.call("putGameDraft", "PUT", f"{A}/draft", 200, token=api, body=EXAMPLE)
    await c.call("getGameDraft", "GET", f"{A}/draft", 200, token=api)
    await c.call("getGameVersion", "GET", f"{A}/versions/1", 200, token=api)
    await c.call("simulateGame", "POST", f"{A}/simulate", 200, token=api,
                 body={"series": "forest_friends", "players": 20, "draws": 10})
    await c.call("getAnalytics", "GET", f"{A}/analytics", 200, token=api)
    assert set(c.seen) >= {"getPlayer", "feedPet", "drawBox", "listDraws", "getAnalytics"}
    assert c.seen["exchange"]["granted"]["coupons"] == {"coupon_5off": 1}
    assert len(c.seen["drawBox"]["draws"]) == 10
