"""The access log writes a request's path as it was sent, so nobody can write lines of
their own into it (a percent-encoded newline decoded into the log was a forged entry)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gameserver.http.accesslog import AccessLogger


def test_a_newline_in_the_path_stays_encoded_in_the_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    forged = "/v1/games/x%0A2026-12-08%2000:00:00,000%20INFO%20petbox.admin%20key%20rotated/me"
    request = make_mocked_request("GET", forged + "?merchant=shop")
    response = web.Response(status=404, headers={"X-Request-Id": "rid-12345"})
    logger = logging.getLogger("petbox.access.test")
    with caplog.at_level(logging.INFO, logger=logger.name):
        AccessLogger(logger, "").log(request, response, 0.0012)
    assert [r.getMessage() for r in caplog.records] == [
        f"GET {forged} 404 0 1.2ms rid=rid-12345 peer=-"]
