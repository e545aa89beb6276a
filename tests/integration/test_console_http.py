"""The console's HTTP side: the page and its files, and ``listGames`` (merchant-scoped).
The page itself is driven in a real browser by tests/browser/test_console.py."""

from __future__ import annotations

from tests.conftest import World


async def test_page_and_assets_are_served_with_a_strict_policy(world: World) -> None:
    page = await world.client.get("/console")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert '<script src="/console/static/console.js" defer>' in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        resp = await world.client.get(f"/console/static/{name}")
        assert resp.status == 200, name
        assert resp.content_type == kind
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for bad in ("nope.js", "console.html", "..%2Fapi%2Fconsole.py", ".hidden.js", "x.py"):
        resp = await world.client.get(f"/console/static/{bad}")
        assert resp.status == 404, bad
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_list_games_is_scoped_to_the_key(world: World) -> None:
    from gameserver.ops.provision import publish_config

    await world.merchant("rival", game="other")
    await publish_config(world.db, "shop", "garden", world.config, int(world.clock.now()))
    key = str(world.merchants["shop"].api_key)
    draft = await world.client.put("/v1/admin/games/garden/draft", json=world.config,
                                   headers={"Authorization": f"Bearer {key}"})
    assert draft.status == 200, await draft.text()

    resp = await world.get("/v1/admin/games", key)
    assert resp.status == 200
    body = await resp.json()
    assert body["merchant"] == "shop"
    assert [(g["game"], g["live_version"], g["has_draft"]) for g in body["games"]] == [
        ("garden", 1, True), ("squirrel", 1, False)]

    rival = await (await world.get("/v1/admin/games", world.merchants["rival"].api_key)).json()
    assert [g["game"] for g in rival["games"]] == ["other"]
    assert (await world.client.get("/v1/admin/games")).status == 401
    assert (await world.get("/v1/admin/games", "pbk_unknown")).status == 401
    token = await world.token("alice")
    assert (await world.get("/v1/admin/games", token)).status == 403


async def test_openapi_documents_the_console_routes(world: World) -> None:
    doc = await (await world.client.get("/openapi.json")).json()
    assert doc["paths"]["/v1/admin/games"]["get"]["operationId"] == "listGames"
    assert doc["paths"]["/console"]["get"]["operationId"] == "console"
    assert "text/html" in doc["paths"]["/console"]["get"]["responses"]["200"]["content"]
