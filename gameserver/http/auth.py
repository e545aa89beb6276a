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

from gameserver.http.errors import Unauthorized
from gameserver.http.signing import body_signature as body_signature  # re-exported
from gameserver.http.signing import session_signature as session_signature  # re-exported
from gameserver.http.signing import signature_matches

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


def verify_session_signature(secret: str, merchant: str, user: str, ts: int, sign: str,
                             age_band: str | None = None, guardian_consent: bool = False,
                             shadow: bool = False) -> bool:
    expected = session_signature(secret, merchant, user, ts, age_band, guardian_consent,
                                 shadow)
    return signature_matches(expected, sign)


class BadSeal(ValueError):
    """A sealed value that is malformed (``forged`` False) or whose MAC does not match."""

    def __init__(self, forged: bool) -> None:
        super().__init__("forged" if forged else "malformed")
        self.forged = forged


class Sealer:
    """``<prefix><base64url JSON>.<base64url HMAC-SHA256>`` under a key derived from the
    token secret for one ``purpose`` (player tokens and browse tickets each have their
    own, so one can never be passed off as the other). The key is derived once."""

    def __init__(self, secret: str, purpose: str, prefix: str) -> None:
        self._key = hashlib.sha256(purpose.encode() + b"\n" + secret.encode()).digest()
        self.prefix = prefix

    def _mac(self, payload: str) -> str:
        return b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def seal(self, data: dict[str, Any], *, sort_keys: bool = False) -> str:
        payload = b64url(json.dumps(data, separators=(",", ":"), sort_keys=sort_keys).encode())
        return f"{self.prefix}{payload}.{self._mac(payload)}"

    def open(self, text: str) -> Any:
        """The sealed JSON value; :class:`BadSeal` if malformed or forged."""
        # Sealed values are ASCII: anything else is garbage (and would not compare).
        if not text.isascii() or not text.startswith(self.prefix) or text.count(".") != 2:
            raise BadSeal(forged=False)
        payload, mac = text[len(self.prefix):].split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            raise BadSeal(forged=True)
        try:
            return json.loads(unb64url(payload))
        except (ValueError, binascii.Error) as exc:
            raise BadSeal(forged=False) from exc


class TokenSigner:
    """Mints and verifies player tokens with the server's token secret.

    A shopper sends the same token with every request for its lifetime, so the claims
    of tokens whose signature checked out are remembered (at most ``cache_size``, the
    oldest forgotten first): a repeat costs a dict lookup instead of an HMAC, a base64
    and a JSON decode. Expiry is still checked on every use; a token is immutable, so
    a remembered verification can never go stale otherwise.
    """

    def __init__(self, secret: str, ttl: int, cache_size: int = 50_000) -> None:
        self._sealer = Sealer(secret, "petbox-player-token", TOKEN_PREFIX)
        self.ttl = ttl
        self.cache_size = cache_size
        self._verified: dict[str, PlayerClaims] = {}

    def mint(self, merchant: str, user: str, now: int, **extra: Any) -> tuple[str, int]:
        """A token for ``user`` of ``merchant`` and its expiry (unix seconds)."""
        expires_at = now + self.ttl
        token = self._sealer.seal({"m": merchant, "u": user, "exp": expires_at, **extra})
        return token, expires_at

    def verify(self, token: str, now: int) -> PlayerClaims:
        """Claims of a valid token; :class:`Unauthorized` if tampered, malformed or expired."""
        result = self._verified.get(token)
        if result is None:
            result = self._check(token)
            if len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = result
        if result.expires_at <= now:
            raise Unauthorized("player token expired", expired_at=result.expires_at)
        return result

    def _check(self, token: str) -> PlayerClaims:
        """The claims of a token whose signature matches (expiry not checked)."""
        try:
            claims = self._sealer.open(token)
        except BadSeal as exc:
            raise Unauthorized("player token signature does not match" if exc.forged
                               else "malformed player token") from exc
        try:
            result = PlayerClaims(merchant=str(claims["m"]), user=str(claims["u"]),
                                  expires_at=int(claims["exp"]), age_band=claims.get("age"),
                                  guardian_consent=bool(claims.get("gc", False)),
                                  shadow=bool(claims.get("sh", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("malformed player token") from exc
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
    # Tokens and API keys are printable ASCII; other bytes (a latin-1 byte reaches us
    # as a lone surrogate, which no hash can encode) are a bad credential, not a crash.
    if not value.strip().isascii() or not value.strip().isprintable():
        raise Unauthorized("malformed credential")
    return value.strip()
