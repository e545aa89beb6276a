"""Server-side errors and the one middleware that turns every error into JSON.

Domain errors (``economy.errors``) and the request errors below carry facts: a
code, a message, details and a :class:`~economy.errors.Refusal` kind. The one
mapping from a kind to an HTTP status is :data:`HTTP_STATUS`;
:func:`error_middleware` answers ``{"error": {"code", "message", "details"}}``
with that status. aiohttp's own HTTP errors (unknown
route, wrong method, body too large) get the same body; a body too large says the
operation's cap (:mod:`gameserver.http.bodylimit`). Anything else is a bug:
a generic 500 with the request id, and the traceback only in the log.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from economy.errors import DomainError, Refusal
from gameserver.http.accesslog import logged_path
from gameserver.http.bodylimit import body_limit
from gameserver.ops.metrics import METRICS
from gameserver.state.latency_budget import LATENCY_BUDGET

log = logging.getLogger("petbox.errors")

REQUEST_ID = web.RequestKey("request_id", str)
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{8,64}")


class Unauthorized(DomainError):
    code = "unauthorized"
    kind = Refusal.UNAUTHENTICATED


class Forbidden(DomainError):
    code = "forbidden"
    kind = Refusal.FORBIDDEN


class IdempotencyKeyMissing(DomainError):
    code = "idempotency_key_required"
    kind = Refusal.MALFORMED

    def __init__(self) -> None:
        super().__init__("this request needs an Idempotency-Key header "
                         "(1-64 characters of A-Z a-z 0-9 _ -)")


class IdempotencyMismatch(DomainError):
    code = "idempotency_mismatch"
    kind = Refusal.INVALID

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used with a different request")


class IdempotencyInProgress(DomainError):
    code = "idempotency_in_progress"
    kind = Refusal.CONFLICT

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still running; retry later",
                         retry_after=1)


class ActionInProgress(DomainError):
    """Another action of this shopper on the same shared thing holds its lock
    (gameserver/api/serial.py): retry in a second."""

    code = "action_in_progress"
    kind = Refusal.CONFLICT

    def __init__(self, what: str) -> None:
        super().__init__(f"another {what} action of yours is still running; retry",
                         what=what, retry_after=1)


class PlayerErased(DomainError):
    """The shopper's personal data is being erased, or was just erased (``erasePlayer``,
    docs/privacy.md): their actions are refused until the erasure's tombstone lapses;
    then they start as a new player."""

    code = "player_erased"
    kind = Refusal.CONFLICT

    def __init__(self) -> None:
        super().__init__("this player's data is being erased at the merchant's request; "
                         "a new player may start in a few minutes", retry_after=60)


class ResponseUnavailable(DomainError):
    """A used Idempotency-Key whose stored response cannot be read (SQL has not got it)."""

    code = "response_unavailable"
    kind = Refusal.UNAVAILABLE

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used before, but its stored response "
                         "cannot be read now; nothing was applied twice, retry later",
                         retry_after=5)


class Busy(DomainError):
    """A transient condition on our side; the client should retry after ``retry_after``."""

    code = "busy"
    kind = Refusal.UNAVAILABLE

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)


class Overloaded(DomainError):
    """Admission control refused the request: this process has as many requests in
    flight and waiting as it admits (``gameserver/http/admission.py``); nothing was done."""

    code = "overloaded"
    kind = Refusal.UNAVAILABLE

    def __init__(self, reason: str) -> None:
        super().__init__("the server is at capacity; retry after Retry-After with the same "
                         "Idempotency-Key", retry_after=1, reason=reason)


class BodyTimeout(DomainError):
    """The request's body did not arrive within ``PETBOX_BODY_WAIT`` of its headers
    (``gameserver/http/admission.py``); nothing was done, so the client may resend it
    with the same Idempotency-Key."""

    code = "body_timeout"
    kind = Refusal.MALFORMED

    def __init__(self, wait: float) -> None:
        super().__init__(f"the request body did not arrive within {wait:g} s; send it "
                         "again whole", wait_s=wait)


class RateLimited(DomainError):
    code = "rate_limited"
    kind = Refusal.LIMITED


REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    # Redis Cluster mid-failover or mid-resharding, past the bounded retries
    # (gameserver/state/routing.py): CLUSTERDOWN, TRYAGAIN, redirections, an uncovered slot.
    redis.exceptions.ClusterError, redis.exceptions.TryAgainError, redis.exceptions.AskError,
    redis.exceptions.RedisClusterException,
)
"""A Redis node that does not answer now (down, paused, its slots moving or served by
nobody): a later call may succeed. A background pass that meets one on a key skips
that key's work until its next pass (on a cluster, only that node's shards wait)."""

UNAVAILABLE: tuple[type[BaseException], ...] = (
    *REDIS_UNAVAILABLE,
    sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # the SQL pool had no connection within its timeout
    ConnectionError, TimeoutError,
)
"""Infrastructure failures: the client should retry (503), it did nothing wrong.
``TimeoutError`` includes a SQL call past ``PETBOX_SQL_TIMEOUT``
(:meth:`gameserver.db.database.Database.connect`); ``sqlalchemy.exc.TimeoutError`` is the
pool's checkout timeout."""

HTTP_STATUS: dict[Refusal, int] = {
    Refusal.MALFORMED: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.FORBIDDEN: 403,
    Refusal.NOT_FOUND: 404,
    Refusal.CONFLICT: 409,
    Refusal.INVALID: 422,
    Refusal.LIMITED: 429,
    Refusal.UNAVAILABLE: 503,
}
"""The one place a domain fact becomes an HTTP status (every kind has a row)."""


def http_status(exc: DomainError) -> int:
    """The HTTP status of a refusal."""
    return HTTP_STATUS[exc.kind]


_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 415: "unsupported_media_type",
}


ECHO_MAX = 256
"""The longest text of an error's details: a refusal names what the client sent (an id
in the path, a field), and a 5,000-character id need not come back whole."""


def _bounded(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v[:ECHO_MAX] + "…" if isinstance(v, str) and len(v) > ECHO_MAX else v
            for k, v in details.items()}


def error_response(status: int, code: str, message: str,
                   details: dict[str, Any] | None = None) -> web.Response:
    resp = web.json_response(
        {"error": {"code": code, "message": message, "details": _bounded(details or {})}},
        status=status)
    retry_after = (details or {}).get("retry_after")
    if status in (429, 503) or (status == 409 and retry_after is not None):
        resp.headers["Retry-After"] = str(max(1, int(retry_after or 1)))
    return resp


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    # Not a secret, only a handle for logs: no getrandom system call per request.
    return given if given and _REQUEST_ID_RE.fullmatch(given) else f"{random.getrandbits(64):016x}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, latency metric, and every error as the JSON error body."""
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        resp = await handler(request)
    except DomainError as exc:
        resp = error_response(http_status(exc), exc.code, exc.message, exc.details)
    except UNAVAILABLE as exc:
        log.warning("dependency unavailable request_id=%s %s %s: %r", request_id,
                    request.method, logged_path(request), exc)
        resp = error_response(503, "unavailable",
                              "storage is unavailable; retry shortly with the same "
                              "Idempotency-Key (it is never applied twice)",
                              {"retry_after": 1})
    except web.HTTPRequestEntityTooLarge:
        resp = too_large(request)
    except RequestPayloadError:
        # The body cannot be read as sent (a Content-Encoding it does not match: "gzip"
        # on plain JSON; a broken chunked encoding): the client's fault, not a 500.
        resp = error_response(400, "malformed_json", "request body could not be decoded "
                              "as sent (check its Content-Encoding and Transfer-Encoding)")
        resp.force_close()  # the rest of the stream cannot be read: no keep-alive
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"),
                              exc.reason or "request refused")
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods that are allowed
            resp.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unhandled error request_id=%s %s %s", request_id, request.method,
                      logged_path(request))
        resp = error_response(500, "internal_error", "internal error; quote the request id",
                              {"request_id": request_id})
    resp.headers["X-Request-Id"] = request_id
    _observe(request, resp.status, time.perf_counter() - started)
    return resp


def too_large(request: web.Request) -> web.Response:
    """The 413 of a body over its operation's cap, with the cap in bytes (aiohttp's
    own says only "Request Entity Too Large")."""
    limit = body_limit(request)
    return error_response(413, "payload_too_large",
                          f"request body is larger than {limit} bytes, the most this "
                          "route accepts", {"max_bytes": limit})


def _observe(request: web.Request, status: int, seconds: float) -> None:
    budget = request.app.get(LATENCY_BUDGET)
    if budget is not None:
        budget.observe(seconds)
    metrics = request.app.get(METRICS)
    if metrics is None:
        return
    metrics.observe_request(request.match_info.route.name or "unmatched", status, seconds)
