"""Opt-in recording of real shopper traffic into load-test traces (``loadtests/``).

With ``PETBOX_RECORD_DIR`` set, a sample of players (whole players, so sessions
stay whole: ``PETBOX_RECORD_SAMPLE``) has each shopper request appended to
rotating, size-bounded msgpack trace files — operationId, path parameters and
body, credentials stripped, player ids pseudonymised with a key derived from the
token secret. Session creation is never recorded: replays mint their own.
Each process writes its own files (``trace-<pid>-NNNNNN``); ``petbox loadtest
replay`` merges them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gameserver.api.common import Operation
from gameserver.settings import Settings
from loadtests.trace import TraceWriter

log = logging.getLogger("petbox.recording")

RECORDER = web.AppKey("recorder", TraceWriter)
PLAYER_OPERATIONS = web.AppKey("player_operations", frozenset[str])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recorder_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that opens the trace writer (and closes it on shutdown)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        assert settings.record_dir is not None
        salt = hashlib.sha256(b"petbox-record\n" + settings.token_secret.encode()).hexdigest()
        writer = TraceWriter(settings.record_dir, prefix=f"trace-{os.getpid()}",
                             max_bytes=settings.record_max_bytes,
                             max_files=settings.record_max_files,
                             sample=settings.record_sample, player_salt=salt,
                             meta={"recorded_by": "petbox"})
        app[RECORDER] = writer
        log.info("recording %.1f%% of players into %s", settings.record_sample * 100,
                 settings.record_dir)
        try:
            yield
        finally:
            writer.close()

    return ctx


def player_operations(operations: list[Operation]) -> frozenset[str]:
    return frozenset(op.operation_id for op in operations if op.auth == "player")


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After a shopper request — refused ones too: they are part of the traffic — append
    it to the trace. Recording never fails or delays the request beyond a buffered write."""
    try:
        return await handler(request)
    finally:
        writer = request.app.get(RECORDER)
        operation = request.match_info.route.name or ""
        if writer is not None and operation in request.app[PLAYER_OPERATIONS]:
            try:
                _record(request, writer, operation, await request.read())
            except Exception:  # a trace is best effort; the shopper's request is not
                log.debug("request not recorded", exc_info=True)


def _record(request: web.Request, writer: TraceWriter, operation: str, raw: bytes) -> None:
    from gameserver.api.common import player_claims

    claims = player_claims(request)
    if claims.shadow:
        return  # load tests are not production traffic
    body = json.loads(raw) if raw else None
    writer.record(f"{claims.merchant}:{claims.user}", operation, body,
                  dict(request.match_info))
