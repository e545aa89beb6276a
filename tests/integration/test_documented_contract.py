"""What ``/openapi.json`` states is what a client coding from it meets: the statuses a
credentialed route really answers are listed, the experiment views validate against
their schemas, a "1 or 10" is an enum rather than 1..10, and every query parameter is
bounded as the server reads it (a value outside is a 422 that names it, one inside is
served), a body with no required field may be left out, and a 409 that may pass by
itself declares its Retry-After. Found by an outside schemathesis run with every check
on."""

from __future__ import annotations

import copy
import re
from typing import Any

from gameserver.http.auth import session_signature
from tests.conftest import World
from tests.integration.test_experiments_http import AB_CONFIG, EXPERIMENT
from tests.integration.test_flashsale_http import CONFIG as SALE_CONFIG
from tests.integration.test_flashsale_http import START
from tests.integration.test_response_schemas import Checked

SHOP = "abshop"
GAME = "/v1/games/squirrel"
ADMIN = "/v1/admin/games/squirrel"


async def _doc(world: World) -> dict[str, Any]:
    return dict(await (await world.client.get("/openapi.json")).json())


def _op(doc: dict[str, Any], op_id: str) -> dict[str, Any]:
    (found,) = [op for ops in doc["paths"].values() for op in ops.values()
                if op["operationId"] == op_id]
    return dict(found)


async def _shop(world: World) -> tuple[str, str]:
    """The A/B test shop (a blind-box series ``forest``): its API key and a token."""
    creds = await world.merchant(SHOP, config=copy.deepcopy(AB_CONFIG))
    return str(creds.api_key), world.mint("u1", SHOP)


async def _refused(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])


async def test_credentialed_routes_document_their_403_and_422(world: World) -> None:
    """A player token or an API key may be the wrong kind (403), and every such route
    reads ``X-Petbox-Shadow`` (422 for a value other than 1): the document lists both on
    each of them, and createSession its 403 for a load-test login the merchant may not
    make."""
    doc = await _doc(world)
    credentialed = [(op["operationId"], sorted(op["responses"]))
                    for ops in doc["paths"].values() for op in ops.values()
                    if op["security"] and "merchantSignature" not in op["security"][0]]
    assert len(credentialed) > 60
    assert [(o, s) for o, s in credentialed if not {"401", "403", "422"} <= set(s)] == []

    api_key, token = await _shop(world)
    wrong = await world.client.get(f"{ADMIN}/webhooks",
                                   headers={"Authorization": f"Bearer {token}"})
    assert (await _refused(wrong, 403))["code"] == "forbidden"
    for path, credential, op_id in ((f"{GAME}/me", token, "getPlayer"),
                                    ("/v1/admin/games", api_key, "listGames"),
                                    (f"{ADMIN}/stock", api_key, "getStock")):
        bad = await world.client.get(path, headers={"Authorization": f"Bearer {credential}",
                                                    "X-Petbox-Shadow": "true"})
        assert (await _refused(bad, 422))["details"]["field"] == "X-Petbox-Shadow"
        assert "422" in _op(doc, op_id)["responses"]

    ts = int(world.clock.now())
    secret = world.merchants[SHOP].signing_secret
    login = await world.client.post("/v1/sessions", json={
        "merchant": SHOP, "user": "u2", "ts": ts, "shadow": True,
        "sign": session_signature(secret, SHOP, "u2", ts, shadow=True)})
    await _refused(login, 403)
    assert "403" in _op(doc, "createSession")["responses"]


async def test_experiment_views_match_their_schemas(world: World) -> None:
    """listExperiments and getExperiment add each arm's box ``tables`` to the arm as
    configured, whose schema alone forbids other fields: the view's schema has them."""
    api_key, _ = await _shop(world)
    c = Checked(world, await _doc(world))
    put = await world.client.put(f"{ADMIN}/experiments/scarce", json=EXPERIMENT,
                                 headers={"Authorization": f"Bearer {api_key}"})
    assert put.status == 200, await put.text()
    listed = await c.call("listExperiments", "GET", f"{ADMIN}/experiments", 200,
                          token=api_key)
    one = await c.call("getExperiment", "GET", f"{ADMIN}/experiments/scarce", 200,
                       token=api_key)
    for view in (listed["experiments"][0], one):
        assert sorted(view["arms"]) == ["control", "scarce"]
        tables = {arm["tables"]["forest"] for arm in view["arms"].values()}
        assert len(tables) == 2 and all(re.fullmatch("[0-9a-f]{16}", t) for t in tables)


async def test_one_or_ten_is_an_enum(world: World) -> None:
    """drawBox's ``count`` and simulateGame's ``batch`` take 1 or 10: the schema says
    ``enum`` (not 1..10, whose 5 the server refuses), and 5 is a 422 naming the field
    that draws and charges nothing."""
    api_key, token = await _shop(world)
    doc = await _doc(world)
    count = _op(doc, "drawBox")["requestBody"]["content"]["application/json"]["schema"][
        "properties"]["count"]
    batch = _op(doc, "simulateGame")["requestBody"]["content"]["application/json"][
        "schema"]["properties"]["batch"]
    assert (count["type"], count["enum"]) == ("integer", [1, 10]) and "maximum" not in count
    assert (batch["type"], batch["enum"]) == ("integer", [1, 10]) and "maximum" not in batch

    before = await (await world.get(f"{GAME}/me", token)).json()
    five = await world.post(f"{GAME}/boxes/forest/draw", token, {"count": 5}, "d5")
    error = await _refused(five, 422)
    assert error["details"]["problems"] == [{"path": "$.count",
                                             "message": "must be one of 1, 10"}]
    after = await (await world.get(f"{GAME}/me", token)).json()
    assert after["player"]["wallet"] == before["player"]["wallet"]
    assert after["player"]["boxes"] == before["player"]["boxes"]
    ten = await world.post(f"{GAME}/boxes/forest/draw", token, {"count": 10}, "d5")
    assert ten.status == 200 and len((await ten.json())["draws"]) == 10  # key not used up

    sim = await world.client.post(f"{ADMIN}/simulate", json={"series": "forest", "batch": 3},
                                  headers={"Authorization": f"Bearer {api_key}"})
    assert [p["path"] for p in (await _refused(sim, 422))["details"]["problems"]] == [
        "$.batch"]


async def test_query_parameters_are_bounded_as_the_server_reads_them(world: World) -> None:
    """No query parameter is an unbounded string where the server reads a number, a
    date, a state or a merchant id: each says its type and bounds, a value just outside
    them is a 422 naming it, and the bound itself is served."""
    api_key, token = await _shop(world)
    doc = await _doc(world)
    params = {(op["operationId"], p["name"]): p["schema"]
              for ops in doc["paths"].values() for op in ops.values()
              for p in op.get("parameters", []) if p["in"] == "query"}
    assert [k for k, s in params.items() if s == {"type": "string"}] == [
        ("getExperiment", "simulate")]  # any value but 1 is "no simulation"
    limit = params[("listDraws", "limit")]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 100)
    for op_id, name in (("listDraws", "limit"), ("listWebhookEvents", "limit"),
                        ("getAnalytics", "days"), ("exportEvents", "limit")):
        assert params[(op_id, name)]["type"] == "integer"
    merchant = params[("getPoll", "merchant")]
    assert not re.search(merchant["pattern"], "Shop!") and re.search(merchant["pattern"], SHOP)
    assert params[("listWebhookEvents", "state")]["enum"] == ["pending", "delivered", "failed"]
    end = params[("getAnalytics", "end")]["pattern"]
    assert re.search(end, "2026-01-01") and not re.search(end, "yesterday")
    cursor = params[("exportEvents", "cursor")]["pattern"]
    assert re.search(cursor, "") and re.search(cursor, "v1.1.2.3.4")
    assert re.search(cursor, "v2.Zm9v_-") and not re.search(cursor, "v2.a.b")
    assert not re.search(cursor, "v1.1.2") and not re.search(cursor, "1.2.3.4")

    player = {"Authorization": f"Bearer {token}"}
    merchant_key = {"Authorization": f"Bearer {api_key}"}
    for path, headers, op_id, name in (
            (f"{GAME}/draws", player, "listDraws", "limit"),
            (f"{GAME}/draws", player, "listDraws", "cursor"),
            (f"{ADMIN}/webhooks", merchant_key, "listWebhookEvents", "limit"),
            (f"{ADMIN}/analytics", merchant_key, "getAnalytics", "days"),
            (f"{ADMIN}/export", merchant_key, "exportEvents", "limit")):
        top = params[(op_id, name)]["maximum"]
        over = await world.client.get(f"{path}?{name}={top + 1}", headers=headers)
        error = await _refused(over, 422)
        assert [p["path"] for p in error["details"]["problems"]] == [f"$.{name}"], op_id
        at = await world.client.get(f"{path}?{name}={top}", headers=headers)
        assert at.status == 200, (op_id, name, await at.text())
    bad_state = await world.client.get(f"{ADMIN}/webhooks?state=sent", headers=merchant_key)
    await _refused(bad_state, 422)


async def test_a_body_without_required_fields_may_be_left_out(world: World) -> None:
    """An empty body reads as ``{}``: the document marks a request body required only
    when it has a required field, and an action sent without one is served as ``{}``."""
    _, token = await _shop(world)
    doc = await _doc(world)
    bodies = [(op["operationId"], op["requestBody"]) for ops in doc["paths"].values()
              for op in ops.values() if "requestBody" in op]
    wrong = [op_id for op_id, body in bodies
             if body["required"] != bool(body["content"]["application/json"]["schema"].get(
                 "required"))]
    assert wrong == []
    assert _op(doc, "rotateSeed")["requestBody"]["required"] is False
    assert _op(doc, "feedPet")["requestBody"]["required"] is True

    rotated = await world.client.post(f"{GAME}/boxes/seed/rotate", headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "r1"})
    assert rotated.status == 200, await rotated.text()
    drawn = await world.client.post(f"{GAME}/boxes/forest/draw", headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "d1"})
    assert len((await drawn.json())["draws"]) == 1  # count's default
    fed = await world.client.post(f"{GAME}/pet/feed", headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "f1"})
    assert [p["path"] for p in (await _refused(fed, 422))["details"]["problems"]] == [
        "$.food"]


async def test_a_conflict_that_may_pass_documents_its_retry_after(world: World) -> None:
    """A 409 whose details carry ``retry_after`` (not_started, sold_out with units
    pending, idempotency_in_progress...) sends ``Retry-After``: the document declares
    the header, optional, on every 409."""
    doc = await _doc(world)
    conflicts = [(op["operationId"], answer.get("headers", {}).get("Retry-After"))
                 for ops in doc["paths"].values() for op in ops.values()
                 for status, answer in op["responses"].items() if status == "409"]
    assert len(conflicts) > 30
    assert [op_id for op_id, header in conflicts
            if header is None or header["required"] or header["schema"]["type"] != "integer"
            ] == []

    await world.merchant("fsshop", config=copy.deepcopy(SALE_CONFIG))
    early = await world.post(f"{GAME}/flashsales/midnight/claim", world.mint("u1", "fsshop"),
                             {}, "c1")
    error = await _refused(early, 409)
    wait = START - int(world.clock.now())
    assert (error["code"], error["details"]["retry_after"]) == ("not_started", wait)
    assert early.headers["Retry-After"] == str(wait)


PUBLIC_READS = ["getBoxSeries", "getEnvelopeRain", "getFlashSale", "getPoll", "getPresale",
                "getSampleCampaign"]


async def test_public_reads_declare_their_token_optional(world: World) -> None:
    """A public read takes ``?merchant=`` without a token, and a player token when the
    app has one, which adds the shopper's own view: the document says the token is
    optional there (it said none was used, so a generated client never sent it), and
    every other operation keeps one way in."""
    _, token = await _shop(world)
    doc = await _doc(world)
    optional = sorted(op["operationId"] for ops in doc["paths"].values()
                      for op in ops.values() if {} in op["security"])
    assert optional == PUBLIC_READS
    assert all(_op(doc, op_id)["security"] == [{"playerToken": []}, {}]
               for op_id in PUBLIC_READS)
    assert [op["operationId"] for ops in doc["paths"].values() for op in ops.values()
            if len(op["security"]) > 1 and op["operationId"] not in PUBLIC_READS] == []

    anonymous = await world.client.get(f"{GAME}/boxes/forest?merchant={SHOP}")
    assert anonymous.status == 200 and "player" not in await anonymous.json()
    mine = await world.get(f"{GAME}/boxes/forest", token)
    assert mine.status == 200
    assert re.fullmatch("[0-9a-f]{64}", (await mine.json())["player"]["seed_hash"])


def _null_defaults(schema: Any, at: str) -> list[str]:
    """Where ``schema`` publishes ``"default": null`` on a type that is not null."""
    if isinstance(schema, list):
        return [p for i, s in enumerate(schema) for p in _null_defaults(s, f"{at}[{i}]")]
    if not isinstance(schema, dict):
        return []
    kind = schema.get("type")
    nullable = kind == "null" or (isinstance(kind, list) and "null" in kind)
    out = [at] if "default" in schema and schema["default"] is None and not nullable else []
    return out + [p for k, v in schema.items() for p in _null_defaults(v, f"{at}/{k}")]


async def test_no_schema_offers_null_as_a_default_it_refuses(world: World) -> None:
    """An optional field whose default is "absent" (createSession's age_band,
    simulateEnvelopeRain's pool_fen, a config's optional sections) was published with
    ``"default": null`` although null itself is refused (422): the document now leaves
    such defaults out, and null is still a clear 422 naming the field."""
    await _shop(world)
    assert _null_defaults(await _doc(world), "#") == []
    ts = int(world.clock.now())
    secret = world.merchants[SHOP].signing_secret
    login = await world.client.post("/v1/sessions", json={
        "merchant": SHOP, "user": "u3", "ts": ts, "age_band": None,
        "sign": session_signature(secret, SHOP, "u3", ts)})
    assert [p["path"] for p in (await _refused(login, 422))["details"]["problems"]] == [
        "$.age_band"]
