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


async def test_a_request_the_parser_refused_is_still_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp answers a malformed request 400 before routing; its access log line was
    lost (looking up the trusted proxies raised on a request with no route) and an
    error traceback logged instead: those probes are the lines most worth having."""
    import asyncio

    from gameserver.http.clientip import TRUSTED_PROXIES

    app = web.Application()
    app[TRUSTED_PROXIES] = ()
    logger = logging.getLogger("petbox.access.test2")
    runner = web.AppRunner(app, access_log=logger, access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        with caplog.at_level(logging.INFO):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            await writer.drain()
            assert b" 400 " in await reader.readline()
            writer.close()
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert len(lines) == 1 and lines[0].endswith("peer=127.0.0.1"), lines
    # (aiohttp logs the parser's refusal itself; the access logger raised nothing)
    assert not [r for r in caplog.records if r.exc_info and r.exc_info[0] is AssertionError]
