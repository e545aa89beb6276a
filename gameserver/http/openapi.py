"""The OpenAPI 3.1 document, generated from the same operation table as the routes."""

from __future__ import annotations

import re
from typing import Any

from economy.schema import Spec
from gameserver.api.common import Operation
from gameserver.api.schemas import SHARED
from gameserver.ops.settings import Settings

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "description": "snake_case, stable"},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    }},
}

IDEMPOTENCY_TEXT = (
    "1-64 characters of A-Z a-z 0-9 _ -, kept at least 24 h (PETBOX_IDEMPOTENCY_TTL). "
    "The same key with the same request (method, path and the body's exact bytes) "
    "answers the first response again "
    "(Idempotent-Replayed: true) and applies nothing twice; the same key with another "
    "request is 422 idempotency_mismatch; while the first is still running, 409 "
    "idempotency_in_progress. A refused request does not use up its key. Merchant keys "
    "are per merchant and kept in SQL (they survive restarts and Redis data loss).")

_STATUS_TEXT = {
    400: "Malformed request (bad JSON, missing Idempotency-Key)",
    401: "Missing, expired or tampered credential",
    403: "Wrong kind of credential, or load-test traffic (X-Petbox-Shadow) not allowed",
    404: "No such resource (or another merchant's)",
    409: "Conflicts with the current state, or the same Idempotency-Key is still running",
    413: "Body larger than this operation accepts: PETBOX_MAX_BODY bytes "
         f"({Settings.client_max_size:,} by default); the cap is in the message and "
         "details.max_bytes",
    422: "Well-formed but invalid (JSON paths in details.problems), an X-Petbox-Shadow "
         "other than 1, or the Idempotency-Key was used with another request "
         "(idempotency_mismatch)",
    429: "Rate limited (details.limit names the limit: ip, player, draw, merchant, "
         "merchant_auth, events, merchant_simulation, simulation) or cooling down; "
         "see Retry-After",
    503: "Temporarily unable; retry after Retry-After",
}

SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "player": [{"playerToken": []}],
    "merchant": [{"merchantKey": []}],
    "signature": [{"merchantSignature": []}],
    "none": [],
    # A token is optional: without one ?merchant= names the shop; with one the answer
    # adds the shopper's own view (their seed hash, their experiment arm's odds).
    "public": [{"playerToken": []}, {}],
}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    params += [_query(name, spec) for name, spec in op.params.items()]
    if op.idempotent or op.optional_key:
        params.append({"name": "Idempotency-Key", "in": "header", "required": op.idempotent,
                       "description": IDEMPOTENCY_TEXT + (
                           "" if op.idempotent else " Optional here: without one, every "
                                                    "request is applied."),
                       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}})
    return params


def _query(name: str, spec: str | Spec) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": name, "in": "query", "required": False, "description": spec,
                "schema": {"type": "string"}}
    schema = spec.schema()
    return {"name": name, "in": "query", "required": False,
            "description": schema.pop("description", ""), "schema": schema}


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "schema": {"type": "integer", "minimum": 1}}}
CONFLICT_RETRY_AFTER = {"Retry-After": {
    "description": "on a conflict that may pass by itself (details.retry_after: "
                   "not_started, sold_out while units are pending, idempotency_in_progress, "
                   "groupbuy_in_progress...): seconds to wait before looking again",
    "required": False, "schema": {"type": "integer", "minimum": 1}}}
"""A 409 carries it when its details name a ``retry_after``."""
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
"""Not subject to admission control (gameserver/http/admission.py)."""


def _statuses(op: Operation) -> list[int]:
    """The documented errors plus what the middlewares may answer: 503 (admission
    control) on every admitted route, 429 on every rate-limited one (every ``/v1/``
    route: shoppers, merchants and merchant events each have limits), and 413 (a body
    over its cap, :mod:`gameserver.http.bodylimit`) on every route that takes a body. A route
    behind a player token or a merchant key also reads ``X-Petbox-Shadow``
    (:func:`gameserver.api.common.shadow_header`): 422 for a value other than ``1``, 403
    where load-test traffic is not allowed; and a wrong kind of credential is 403 too.
    Whatever reads a shopper's state (a player route, or a public read sent with their
    token) may answer 409 ``player_erased`` while that shopper is being erased
    (docs/privacy.md)."""
    out = set(op.errors)
    if op.auth in ("player", "merchant"):
        out |= {401, 403, 422}
    if op.auth in ("player", "public"):
        out.add(409)
    if op.body is not None:
        out.add(413)
    if op.path not in OPERATIONS_PATHS:
        out.add(503)
    if op.path.startswith("/v1/"):  # shopper, merchant and event limits alike
        out.add(429)
    return sorted(out)


CONFIG_BODY_TEXT = (
    "Body larger than a config write accepts: PETBOX_MAX_CONFIG_BODY bytes "
    f"({Settings.config_max_size:,} by default); the cap is in the message and "
    "details.max_bytes")


def _status_text(op: Operation, status: int) -> str:
    if status == 413 and op.config_body:
        return CONFIG_BODY_TEXT
    return _STATUS_TEXT.get(status, "Error")


def _hoisted(schema: Any) -> Any:
    """``schema`` with each shared schema of :data:`SHARED` (the very object) replaced by
    a ``$ref`` to its component, so the player view is stated once, not in every action."""
    for name, shared in SHARED.items():
        if schema is shared:
            return {"$ref": f"#/components/schemas/{name}"}
    if isinstance(schema, dict):
        return {k: _hoisted(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_hoisted(v) for v in schema]
    return schema


def _operation(op: Operation) -> dict[str, Any]:
    success_schema = _hoisted(op.response) if op.response else {"type": "object"}
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        **({"description": op.description} if op.description else {}),
        "tags": [op.tag],
        "security": SECURITY[op.auth],
        "parameters": _parameters(op),
        "responses": {str(op.success): {"description": "OK", "content": {
            op.content_type: {"schema": success_schema}}}},
    }
    if op.body is not None:
        body = op.body.schema()
        # An empty body is read as {} (decode_json): a body with no required field may
        # be left out, and the document says so rather than calling it required.
        out["requestBody"] = {"required": bool(body.get("required")), "content": {
            "application/json": {"schema": body}}}
    for status in _statuses(op):
        schema = op.error_bodies.get(status, {"$ref": "#/components/schemas/Error"})
        out["responses"][str(status)] = {
            "description": _status_text(op, status),
            "content": {"application/json": {"schema": schema}},
        }
        if status in (429, 503):
            out["responses"][str(status)]["headers"] = RETRY_AFTER
        elif status == 409:
            out["responses"][str(status)]["headers"] = CONFLICT_RETRY_AFTER
    return out


def build_openapi(operations: list[Operation], version: str) -> dict[str, Any]:
    """OpenAPI 3.1 for ``operations`` (operationIds as in API.md)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "petbox", "version": version,
                 "description": "Backend for gamified in-shop mini-games."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA,
                        **{name: _hoisted({**schema}) for name, schema in SHARED.items()}},
            "securitySchemes": {
                "playerToken": {"type": "http", "scheme": "bearer",
                                "description": "player token from createSession"},
                "merchantKey": {"type": "http", "scheme": "bearer",
                                "description": "merchant API key (pbk_...)"},
                "merchantSignature": {"type": "apiKey", "in": "header",
                                      "name": "X-Petbox-Signature"},
            },
        },
    }
