"""Request body caps: a config the schema accepts can be uploaded, a shopper body cannot
be large, and every 413 says the cap (real Redis and SQL).

Config writes (``putGameDraft``, ``putExperiment``) accept bodies up to
``PETBOX_MAX_CONFIG_BODY``; every other route up to ``PETBOX_MAX_BODY``.
"""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

import brotli
import pytest

from gameserver.appkeys import SETTINGS

try:  # the standard library's from Python 3.14
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[no-redef,unused-ignore]
from gameserver.ops.settings import Settings
from tests.conftest import BASIC_CONFIG, World

ADMIN = "/v1/admin/games/squirrel"
GAME = "/v1/games/squirrel"
NOW = 1_767_225_600  # the test clock


def settings_of(world: World) -> Settings:
    return world.client.app[SETTINGS]


def merchant(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.merchants['shop'].api_key}",
            "Content-Type": "application/json"}


def many_items(count: int) -> dict[str, Any]:
    """``count`` items of about 100 bytes each, as a big shop's catalogue would be."""
    return {f"figure_{i:04d}": {"name": f"Forest figure number {i:04d}, limited spring edition",
                                "max": 99, "paid": False} for i in range(count)}


def padded(head: bytes, size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``head``'s fields and a ``pad`` string."""
    shell = head[:-1] + b', "pad": ""}'
    body = shell[:-2] + b"x" * (size - len(shell)) + b'"}'
    assert len(body) == size
    json.loads(body)
    return body


async def test_a_config_of_990_items_is_drafted_and_published(world: World) -> None:
    config = copy.deepcopy(BASIC_CONFIG) | {"items": many_items(990)}
    raw = json.dumps(config).encode()
    assert 96 * 1024 < len(raw) < 128 * 1024

    resp = await world.client.put(f"{ADMIN}/draft", data=raw, headers=merchant(world))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["live_version"] == 1

    resp = await world.client.post(f"{ADMIN}/publish", data=b'{"note": "catalogue"}',
                                   headers=merchant(world))
    assert resp.status == 200, await resp.text()
    published = await resp.json()
    assert (published["version"], published["changed"]) == (2, True)
    stored = await (await world.client.get(f"{ADMIN}/versions/2",
                                           headers=merchant(world))).json()
    assert len(stored["config"]["items"]) == 990


async def test_an_experiment_with_large_overrides_is_accepted(world: World) -> None:
    items = many_items(990)
    experiment = {
        "name": "Bigger catalogue", "hypothesis": "more figures, more draws",
        "starts_at": NOW, "stops_at": NOW + 86_400,
        "arms": {"control": {"percent": 50},
                 "wide": {"percent": 50, "overrides": {"$.items": items}}},
        "metrics": {"primary": "draws_per_shopper"}, "sample_size": 10,
    }
    raw = json.dumps(experiment).encode()
    assert len(raw) > 96 * 1024

    resp = await world.client.put(f"{ADMIN}/experiments/wide", data=raw,
                                  headers=merchant(world))

    assert resp.status == 200, await resp.text()
    stored = await (await world.client.get(f"{ADMIN}/versions/2",
                                           headers=merchant(world))).json()
    assert stored["config"]["experiments"]["wide"]["arms"]["wide"]["overrides"] == {
        "$.items": items}


async def test_a_shopper_body_over_the_shopper_cap_is_413_naming_it(world: World) -> None:
    cap = settings_of(world).client_max_size
    assert cap == 65536
    token = await world.token("alice")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    head = b'{"species": "squirrel", "name": "N"}'

    at_cap = await world.client.post(f"{GAME}/pet", data=padded(head, cap),
                                     headers=headers | {"Idempotency-Key": "at-cap"})
    assert at_cap.status == 422  # read in full: the unknown "pad" field is the problem
    assert (await at_cap.json())["error"]["details"]["problems"] == [
        {"path": "$.pad", "message": "is not a known field"}]

    over = await world.client.post(f"{GAME}/pet", data=padded(head, cap + 1),
                                   headers=headers | {"Idempotency-Key": "over-cap"})
    assert over.status == 413
    assert await over.json() == {"error": {
        "code": "payload_too_large",
        "message": "request body is larger than 65536 bytes, the most this route accepts",
        "details": {"max_bytes": 65536}}}
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert (me["player"]["pet"], me["version"]) == (None, 0)  # nothing adopted


async def test_merchant_routes_other_than_config_writes_keep_the_shopper_cap(
        world: World) -> None:
    body = padded(b'{"note": "n"}', 70 * 1024)

    resp = await world.client.post(f"{ADMIN}/publish", data=body, headers=merchant(world))

    assert resp.status == 413
    assert (await resp.json())["error"]["details"] == {"max_bytes": 65536}


async def test_a_config_body_over_the_config_cap_is_413_naming_it(world: World) -> None:
    cap = 2 * 1024 * 1024  # the default
    head = json.dumps(BASIC_CONFIG).encode()

    at_cap = await world.client.put(f"{ADMIN}/draft", data=padded(head, cap),
                                    headers=merchant(world))
    assert at_cap.status == 422  # read in full and validated
    assert (await at_cap.json())["error"]["details"]["problems"] == [
        {"path": "$.pad", "message": "is not a known field"}]

    over = await world.client.put(f"{ADMIN}/draft", data=padded(head, cap + 1),
                                  headers=merchant(world))
    assert over.status == 413
    assert await over.json() == {"error": {
        "code": "payload_too_large",
        "message": f"request body is larger than {cap} bytes, the most this route accepts",
        "details": {"max_bytes": cap}}}
    assert (await world.client.get(f"{ADMIN}/draft", headers=merchant(world))).status == 404


async def test_openapi_lists_413_on_every_operation_with_a_body(world: World) -> None:
    doc = await (await world.client.get("/openapi.json")).json()
    with_body = {op["operationId"]: op for path in doc["paths"].values()
                 for op in path.values() if "requestBody" in op}
    assert {"putGameDraft", "putExperiment", "adoptPet", "publishGame"} <= set(with_body)
    assert [name for name, op in with_body.items() if "413" not in op["responses"]] == []
    assert "PETBOX_MAX_CONFIG_BODY" in with_body["putGameDraft"]["responses"]["413"][
        "description"]
    assert "PETBOX_MAX_BODY" in with_body["adoptPet"]["responses"]["413"]["description"]


async def test_a_body_that_does_not_decode_as_sent_is_400_and_applies_nothing(
        world: World) -> None:
    """``Content-Encoding: gzip`` on a body that is not gzip cannot be read: 400
    ``malformed_json`` (it was a 500), nothing adopted, and the key not used up: the
    same request gzipped as it says is then served."""
    token = await world.token("alice")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Content-Encoding": "gzip", "Idempotency-Key": "gz"}
    body = b'{"species": "squirrel", "name": "N"}'

    plain = await world.client.post(f"{GAME}/pet", data=body, headers=headers)
    assert plain.status == 400
    assert (await plain.json())["error"]["code"] == "malformed_json"
    me = await (await world.get(f"{GAME}/me", token)).json()
    assert (me["player"]["pet"], me["version"]) == (None, 0)

    zipped = await world.client.post(f"{GAME}/pet", data=gzip.compress(body),
                                     headers=headers)
    assert zipped.status == 201, await zipped.text()
    assert (await zipped.json())["player"]["pet"]["name"] == "N"


COMPRESSORS = {"br": brotli.compress, "zstd": zstd.compress, "gzip": gzip.compress}


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
async def test_a_body_compressed_br_zstd_or_gzip_is_served_and_a_bomb_is_413(
        world: World, encoding: str) -> None:
    """A body sent with ``Content-Encoding`` br or zstd is read as gzip is (it was a
    plain-text 400 from the HTTP parser, before any JSON error could answer); one that
    inflates past the route's cap is 413 ``payload_too_large``, though it is small sent,
    and one that is not encoded as it says is 400 ``malformed_json``."""
    compress = COMPRESSORS[encoding]
    token = await world.token("alice")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Content-Encoding": encoding}
    cap = settings_of(world).client_max_size
    bomb = compress(padded(b'{"species": "squirrel", "name": "N"}', 100 * cap))
    assert len(bomb) < cap // 4
    over = await world.client.post(f"{GAME}/pet", data=bomb,
                                   headers=headers | {"Idempotency-Key": "bomb"})
    assert over.status == 413
    assert (await over.json())["error"]["code"] == "payload_too_large"

    plain = await world.client.post(f"{GAME}/pet", data=b'{"species": "squirrel"}',
                                    headers=headers | {"Idempotency-Key": "plain"})
    assert plain.status == 400
    assert (await plain.json())["error"]["code"] == "malformed_json"

    body = compress(b'{"species": "squirrel", "name": "N"}')
    adopted = await world.client.post(f"{GAME}/pet", data=body,
                                      headers=headers | {"Idempotency-Key": "packed"})
    assert adopted.status == 201, await adopted.text()
    assert (await adopted.json())["player"]["pet"]["name"] == "N"
