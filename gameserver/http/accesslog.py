"""Access log lines that carry the request id, so a client's report finds its line."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gameserver.http.clientip import client_ip


def logged_path(request: web.BaseRequest) -> str:
    """The request's path still percent-encoded (as sent, escapes in upper case), never
    decoded: the ``request.path`` of ``/v1/games/x%0a...`` holds a newline, and anyone
    could write a line of their own (a forged entry) into the log with it."""
    return request.rel_url.raw_path


class AccessLogger(AbstractAccessLogger):
    """``METHOD path status bytes ms request_id`` (never bodies or credentials); the path
    as sent (:func:`logged_path`)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %d %d %.1fms rid=%s peer=%s", request.method,
                         logged_path(request),
                         response.status, response.body_length, time * 1000,
                         response.headers.get("X-Request-Id", "-"), client_ip(request))
