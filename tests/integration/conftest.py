"""Fixtures shared by the integration tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web


class Endpoint:
    """The merchant's webhook: records what it gets, answers with scripted statuses."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, raw in self.received]


@pytest.fixture
async def endpoint(aiohttp_server: Any) -> tuple[Endpoint, str]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", ep.handle)
    server = await aiohttp_server(app)
    return ep, str(server.make_url("/hook"))


@pytest.fixture
async def redirecting_endpoint(aiohttp_server: Any) -> tuple[list[str], str]:
    """A webhook that answers 302 to a login page (an auth proxy's, say) whose 200 must
    not count as a delivery: the methods that reached the login page (none, when the
    redirect is not followed) and the webhook's URL."""
    landed: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/login")

    async def login(request: web.Request) -> web.Response:
        landed.append(request.method)
        return web.Response(status=200, text="sign in")

    app = web.Application()
    app.router.add_post("/hook", moved)
    app.router.add_route("*", "/login", login)
    server = await aiohttp_server(app)
    return landed, str(server.make_url("/hook"))
