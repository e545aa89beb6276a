"""Opt-in recording of real shopper traffic into load-test traces (``loadtests/``).

With ``PETBOX_RECORD_DIR`` set, a sample of players (whole players, so sessions
stay whole: ``PETBOX_RECORD_SAMPLE``) has each of its requests appended to
rotating, size-bounded msgpack trace files: operationId, path parameters, body
(credentials stripped) and the outcome the shopper got (``"200"``,
``"409 cooldown"``), so a replay can tell an expected refusal from a new one.
Player ids are pseudonymised with a key derived from the token secret.

Every shopper operation is recorded: the player routes, ``createSession`` (the
player named in the signed body; the signature itself is dropped, a replay mints
its own sessions) and public reads such as ``getBoxSeries`` when they carry a
player token. A reply that hands back a share code (``startAssist``,
``createGroupBuy``, ``createTeam``) has it recorded as ``gave``, with the ids of what
it made that later paths name (a team's id is not its code), so a replay can swap
them for its own in the bodies and paths that send them. Records reach the disk as they come
(flushed at least once a second), never held in memory until shutdown. Each process
writes its own files (``trace-<pid>-NNNNNN``); ``petbox loadtest replay`` rejoins them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from economy.errors import DomainError
from gameserver.api.common import Operation
from gameserver.http.errors import http_status
from gameserver.ops.settings import Settings
from loadtests.ops import OPERATIONS
from loadtests.trace import TraceWriter

log = logging.getLogger("petbox.recording")

RECORDER = web.AppKey("recorder", TraceWriter)
PLAYER_OPERATIONS = web.AppKey("player_operations", frozenset[str])
FLUSH_EVERY_S = 1.0
SESSION_OPERATION = "createSession"
SHARE_OPERATIONS = frozenset({"startAssist", "createGroupBuy", "createTeam"})
"""Replies that hand back a share code other shoppers then send (recorded as ``gave``)."""
PATH_NAMES = frozenset(name for op in OPERATIONS.values() for name in op.path_params())
"""Path parameters of shopper operations: a reply field of one of these names that the
request did not send names a new object later paths refer to."""

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
                             meta={"recorded_by": "petbox"}, flush_every_s=FLUSH_EVERY_S)
        app[RECORDER] = writer
        log.info("recording %.1f%% of players into %s", settings.record_sample * 100,
                 settings.record_dir)
        flusher = asyncio.create_task(_flush_loop(writer))
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            writer.close()

    return ctx


async def _flush_loop(writer: TraceWriter) -> None:
    """Quiet traffic reaches the disk too: a flush every second."""
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        writer.flush()


def player_operations(operations: list[Operation]) -> frozenset[str]:
    """The operations a recording keeps: every shopper route (not merchant or ops routes),
    the public reads of a shop included (a token optional)."""
    return frozenset(op.operation_id for op in operations
                     if op.auth in ("player", "public") or op.operation_id == SESSION_OPERATION)


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After a shopper request — refused ones too: they are part of the traffic — append
    it and its outcome to the trace. Recording never fails or delays the request beyond
    a buffered write."""
    outcome, gave = "500", None
    try:
        resp = await handler(request)
        outcome = str(resp.status)
        if request.match_info.route.name in SHARE_OPERATIONS:
            gave = _handed(resp, request.match_info)
        return resp
    except web.HTTPException as exc:
        outcome = str(exc.status)
        raise
    except Exception as exc:
        outcome = _outcome(exc)
        raise
    finally:
        writer = request.app.get(RECORDER)
        operation = request.match_info.route.name or ""
        if writer is not None and operation in request.app[PLAYER_OPERATIONS]:
            try:
                _record(request, writer, operation, await request.read(), outcome, gave)
            except Exception:  # a trace is best effort; the shopper's request is not
                log.debug("request not recorded", exc_info=True)


def _handed(resp: web.StreamResponse, sent: Mapping[str, str]) -> dict[str, str] | None:
    """The share code a successful reply handed back and the ids of what it made (None
    when there is no code)."""
    body = resp.body if isinstance(resp, web.Response) and resp.status == 200 else None
    try:
        data = json.loads(bytes(body)) if isinstance(body, bytes) else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        return None
    ids = {k: v for k, v in data.items()
           if k in PATH_NAMES and k not in sent and isinstance(v, str)}
    return {"code": data["code"], **ids}


def _outcome(exc: Exception) -> str:
    """``"<status> <code>"`` of a refusal (its status from gameserver/http/errors.py)."""
    if isinstance(exc, DomainError):
        return f"{http_status(exc)} {exc.code}"
    return "500"


def _record(request: web.Request, writer: TraceWriter, operation: str, raw: bytes,
            outcome: str, gave: Mapping[str, str] | None = None) -> None:
    body: Any = json.loads(raw) if raw else None
    player = _player(request, operation, body)
    if player is None:
        return
    if operation == SESSION_OPERATION:
        body = None  # names the shopper in clear; a replay mints sessions of its own
    writer.record(player, operation, body, dict(request.match_info), expect=outcome,
                  at=time.time(), gave=gave)


def _player(request: web.Request, operation: str, body: Any) -> str | None:
    """``merchant:user`` behind the request; None for load tests and anonymous reads."""
    if operation == SESSION_OPERATION:
        if not isinstance(body, dict) or body.get("shadow"):
            return None  # load tests are not production traffic
        merchant, user = body.get("merchant"), body.get("user")
        return f"{merchant}:{user}" if isinstance(merchant, str) and isinstance(user, str) \
            else None
    from gameserver.api.common import player_claims
    from gameserver.http.errors import Forbidden, Unauthorized

    if operation not in request.app[PLAYER_OPERATIONS] or "Authorization" not in request.headers:
        return None
    try:
        claims = player_claims(request)
    except (Unauthorized, Forbidden):
        return None
    return None if claims.shadow else f"{claims.merchant}:{claims.user}"
