"""``createSession``: a merchant-signed login that yields a player token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from economy.schema import Bool, Enum, Int, Obj, Str
from gameserver.api.common import Operation, json_ok, now_s, read_body
from gameserver.appkeys import MERCHANTS, SETTINGS, SHADOW, SIGNER
from gameserver.http.auth import verify_session_signature
from gameserver.http.errors import Forbidden, Unauthorized
from gameserver.state.keys import MERCHANT_RE, USER_RE

AGE_BANDS = ("under_8", "8_17", "18_plus")

SESSION_BODY = Obj(fields={
    "merchant": Str(pattern=f"^{MERCHANT_RE.pattern}$", max_length=32),
    "user": Str(pattern=f"^{USER_RE.pattern}$", max_length=128,
                description="the shopper's id on the platform (e.g. an openid)"),
    "ts": Int(minimum=0, maximum=2**40, description="unix seconds when the merchant signed"),
    "sign": Str(pattern="^[0-9a-fA-F]{64}$", min_length=64, max_length=64,
                description='hex HMAC-SHA256 over "{merchant}\\n{user}\\n{ts}", followed by '
                            '"\\n{age_band}\\n{0|1}" when age_band is given'),
    "age_band": Enum(values=AGE_BANDS, default=None,
                     description="the shopper's age band, when the platform knows it"),
    "guardian_consent": Bool(default=False,
                             description="a guardian consented (minors' blind-box draws)"),
    "shadow": Bool(default=False,
                   description='a load-test session (signed as "\\nshadow" at the end); its '
                               "requests must send X-Petbox-Shadow: 1 and touch shadow data "
                               "only. The merchant must be approved for load testing."),
})


async def create_session(request: web.Request) -> web.Response:
    body, _ = await read_body(request, SESSION_BODY)
    now = now_s(request)
    skew = request.app[SETTINGS].session_skew
    if abs(now - body["ts"]) > skew:
        raise Unauthorized(f"ts must be within ±{skew} s of server time", server_time=now)
    merchant = await request.app[MERCHANTS].by_id(body["merchant"])
    if merchant is None or not verify_session_signature(
            merchant.signing_secret, body["merchant"], body["user"], body["ts"], body["sign"],
            body["age_band"], body["guardian_consent"], body["shadow"]):
        # One answer for "no such merchant" and "bad signature": no existence oracle.
        raise Unauthorized("signature does not match")
    if body["shadow"] and not merchant.load_test:
        raise Forbidden("this merchant is not approved for load testing")
    if body["shadow"] and SHADOW not in request.app:
        # Every request of such a session would be refused: say so before a load test
        # starts (its probe is this call), not with a token that works nowhere.
        raise Forbidden("shadow traffic is not configured on this server "
                        "(set PETBOX_SHADOW_DATABASE_URL)")
    extra: dict[str, Any] = ({"age": body["age_band"], "gc": body["guardian_consent"]}
                             if body["age_band"] else {})
    if body["shadow"]:
        extra["sh"] = True
    token, expires_at = request.app[SIGNER].mint(body["merchant"], body["user"], now, **extra)
    return json_ok({"token": token, "expires_at": expires_at}, status=201)


OPERATIONS = [
    Operation("createSession", "POST", "/v1/sessions", create_session,
              "Exchange a merchant-signed login for a player token", auth="none",
              tag="shopper", body=SESSION_BODY, success=201, errors=(400, 401, 403, 422),
              response={"type": "object", "required": ["token", "expires_at"], "properties": {
                  "token": {"type": "string"}, "expires_at": {"type": "integer"}}}),
]
