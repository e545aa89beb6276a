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
