"""Access log lines that carry the request id, so a client's report finds its line."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class AccessLogger(AbstractAccessLogger):
    """``METHOD path status bytes ms request_id`` (never bodies or credentials)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %d %d %.1fms rid=%s peer=%s", request.method, request.path,
                         response.status, response.body_length, time * 1000,
                         response.headers.get("X-Request-Id", "-"), request.remote)
