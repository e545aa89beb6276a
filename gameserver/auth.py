"""Credentials exactly as API.md: session signatures, player tokens, merchant API keys.

- ``createSession``: the merchant's backend signs ``"{merchant}\\n{user}\\n{ts}"`` with
  its signing secret (HMAC-SHA256, hex); ``ts`` must be within ±600 s.
- Player tokens: ``pbt1.<payload>.<mac>``, base64url JSON payload with merchant,
  user and expiry, MAC'd with the server's token secret. Stateless: every
  server process verifies them with the shared secret.
- Merchant API keys: ``pbk_<random>``; only their SHA-256 is stored.

Every comparison of secrets uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from gameserver.errors import Unauthorized

TOKEN_PREFIX = "pbt1."
API_KEY_PREFIX = "pbk_"


@dataclass(frozen=True)
class PlayerClaims:
    """What a valid player token says."""

    merchant: str
    user: str
    expires_at: int
    age_band: str | None = None
    guardian_consent: bool = False
    shadow: bool = False
    """A load-test session: its requests run on the shadow keyspace and database."""


def b64url(data: bytes) -> str:
    """Unpadded base64url (tokens and tickets)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_signature(secret: str, merchant: str, user: str, ts: int,
                      age_band: str | None = None, guardian_consent: bool = False,
                      shadow: bool = False) -> str:
    """The signature a merchant backend sends with ``createSession``. An age band and
    the load-test flag, when given, are signed too: a client can claim neither."""
    msg = f"{merchant}\n{user}\n{ts}"
    if age_band:
        msg += f"\n{age_band}\n{int(guardian_consent)}"
    if shadow:
        msg += "\nshadow"
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def verify_session_signature(secret: str, merchant: str, user: str, ts: int, sign: str,
                             age_band: str | None = None, guardian_consent: bool = False,
                             shadow: bool = False) -> bool:
    expected = session_signature(secret, merchant, user, ts, age_band, guardian_consent,
                                 shadow)
    return hmac.compare_digest(expected, sign.lower())


def body_signature(secret: str, ts: str, body: bytes) -> str:
    """``X-Petbox-Signature`` of a merchant event: HMAC over ``"{ts}\\n{body}"``."""
    return hmac.new(secret.encode(), ts.encode() + b"\n" + body, hashlib.sha256).hexdigest()


class TokenSigner:
    """Mints and verifies player tokens with the server's token secret."""

    def __init__(self, secret: str, ttl: int) -> None:
        self._key = hashlib.sha256(b"petbox-player-token\n" + secret.encode()).digest()
        self.ttl = ttl

    def _mac(self, payload: str) -> str:
        return b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def mint(self, merchant: str, user: str, now: int, **extra: Any) -> tuple[str, int]:
        """A token for ``user`` of ``merchant`` and its expiry (unix seconds)."""
        expires_at = now + self.ttl
        claims = {"m": merchant, "u": user, "exp": expires_at, **extra}
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        return f"{TOKEN_PREFIX}{payload}.{self._mac(payload)}", expires_at

    def verify(self, token: str, now: int) -> PlayerClaims:
        """Claims of a valid token; :class:`Unauthorized` if tampered, malformed or expired."""
        if not token.startswith(TOKEN_PREFIX) or token.count(".") != 2:
            raise Unauthorized("malformed player token")
        payload, mac = token[len(TOKEN_PREFIX):].split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            raise Unauthorized("player token signature does not match")
        try:
            claims = json.loads(unb64url(payload))
            result = PlayerClaims(merchant=str(claims["m"]), user=str(claims["u"]),
                                  expires_at=int(claims["exp"]), age_band=claims.get("age"),
                                  guardian_consent=bool(claims.get("gc", False)),
                                  shadow=bool(claims.get("sh", False)))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise Unauthorized("malformed player token") from exc
        if result.expires_at <= now:
            raise Unauthorized("player token expired", expired_at=result.expires_at)
        return result


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_signing_secret() -> str:
    return secrets.token_hex(32)


def bearer(header: str | None) -> str:
    """The credential of an ``Authorization: Bearer`` header, or :class:`Unauthorized`."""
    if not header:
        raise Unauthorized("missing Authorization header")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return value.strip()
