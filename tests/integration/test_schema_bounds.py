"""The OpenAPI document states what the server accepts, and the server agrees: for the
inputs an outside schemathesis run found schema-valid but refused (issue 12), the
schema now bounds them, a value inside the bounds is accepted (or is a plain 404 for
a thing that does not exist), and one outside is a 422 that changes nothing."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import World
from tests.integration.test_admin_idempotency import (
    ADMIN,
    GRANT,
    SHOP,
    _played,
    boxshop,
    send,
)
from tests.integration.test_boxes_http import SERIES


async def _operation(world: World, method: str, path: str) -> dict[str, Any]:
    doc = await (await world.client.get("/openapi.json")).json()
    return dict(doc["paths"][path][method])


def _problems(body: dict[str, Any]) -> list[str]:
    return [p["path"] for p in body["error"]["details"].get("problems", [])]


async def test_empty_merchant_query_is_outside_the_schema(world: World) -> None:
    await boxshop(world)
    op = await _operation(world, "get", "/v1/games/{game}/boxes/{series}")
    (param,) = [p for p in op["parameters"] if p["name"] == "merchant"]
    schema = param["schema"]
    assert (schema["type"], schema["minLength"], schema["maxLength"]) == ("string", 1, 32)
    assert not re.search(schema["pattern"], "") and re.search(schema["pattern"], SHOP)
    assert not re.search(schema["pattern"], "Shop!")
    for value in ("", "Shop!"):  # outside the schema: a clear 422
        resp = await world.client.get(f"{SERIES}?merchant={value}")
        assert resp.status == 422, value
        assert (await resp.json())["error"]["details"]["field"] == "merchant"
    inside = await world.client.get(f"{SERIES}?merchant=noshop")  # valid, no such shop
    assert inside.status == 404
    assert (await world.client.get(f"{SERIES}?merchant={SHOP}")).status == 200


async def test_rollback_version_is_bounded_as_the_server_reads_it(world: World) -> None:
    api_key = await boxshop(world)
    op = await _operation(world, "post", "/v1/admin/games/{game}/rollback")
    version = op["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "version"]
    assert (version["type"], version["minimum"], version["maximum"]) == ("integer", 1,
                                                                         999_999_999)
    huge = await send(world, api_key, "POST", f"{ADMIN}/rollback", {"version": 8.6e23}, "r1")
    assert huge.status == 422 and _problems(await huge.json()) == ["$.version"]
    top = await send(world, api_key, "POST", f"{ADMIN}/rollback", {"version": 999_999_999},
                     "r2")
    assert top.status == 404  # inside the schema: this game has no such version
    versions = await world.client.get(f"{ADMIN}/versions",
                                      headers={"Authorization": f"Bearer {api_key}"})
    assert [v["version"] for v in (await versions.json())["versions"]] == [1]


async def test_grant_item_counts_are_integers_as_the_schema_says(world: World) -> None:
    api_key = await boxshop(world)
    await _played(world)
    op = await _operation(world, "post", "/v1/admin/games/{game}/players/{user}/grant")
    items = op["requestBody"]["content"]["application/json"]["schema"]["properties"]["items"]
    counts = items["additionalProperties"]
    assert (counts["type"], counts["minimum"], counts["maximum"]) == ("integer", 0, 1_000_000)
    # 2.0 is an integer in JSON Schema, so the server takes it as 2.
    whole = await send(world, api_key, "POST", GRANT,
                       {"items": {"fig_a": 2.0}, "reason": "r"}, "i1")
    assert whole.status == 200, await whole.text()
    assert (await whole.json())["inventory"]["fig_a"] == 2
    for bad, key in ((2.5, "i2"), (1_000_001, "i3"), (-1, "i4")):
        resp = await send(world, api_key, "POST", GRANT, {"items": {"fig_a": bad},
                                                          "reason": "r"}, key)
        assert resp.status == 422, bad
        assert _problems(await resp.json()) == ["$.items.fig_a"]
    again = await send(world, api_key, "POST", GRANT, {"items": {"fig_a": 1}, "reason": "r"},
                       "i5")
    assert (await again.json())["inventory"]["fig_a"] == 3  # the refusals changed nothing
