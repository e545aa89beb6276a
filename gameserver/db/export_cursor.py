"""The export's cursors: opaque, bound to their merchant and game, unforgeable.

A position in the export is the last id delivered from each source, and those ids
are numbered across the whole deployment: shown as they are, an empty game's cursor
would tell its merchant how busy every other merchant is. A cursor is therefore the
position *encrypted* under a key only the servers hold, ``v2.<base64url>``:

- the key is derived from the token secret (``PETBOX_TOKEN_SECRET``, which every
  host of a deployment shares so tokens verify anywhere) with a label of its own, so
  it is independent of the token signatures made with that secret;
- the scheme is AES-SIV (RFC 5297, from ``cryptography``): a deterministic
  authenticated encryption, with the merchant and the game as associated data. A
  cursor altered, forged, from another merchant's or game's export, or from a
  deployment with another secret does not decode (422). The same position gives the
  same cursor, so an export with nothing new ends on the cursor it was given;
- every number takes eight bytes, so a cursor's length says nothing of the ids.

Cursors of the release before (``v1.<ledger>.<draw>.<grant>[.<play>]``, plain ids)
are still read, so an export started before an upgrade resumes after it; they are
never issued any more. Rotating the token secret invalidates issued cursors (422:
start the export again from the beginning, or from a cursor issued since).
"""

from __future__ import annotations

import base64
import binascii
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from economy.errors import InvalidInput

Position = tuple[int, ...]
"""The last id delivered from each source, in the export's source order."""

PREFIX = "v2."
LEGACY_PREFIX = "v1."
LEGACY_PARTS = (3, 4)
"""Numbers a v1 cursor had: before play lines (3), and with them (4)."""
IV = 16
"""Bytes of AES-SIV's synthetic IV, ahead of the sealed position."""
LABEL = b"petbox export cursor v2"
MAX_NUMBER = 2**63 - 1
MAX_LENGTH = 200
"""Longest cursor accepted (a v2 cursor of 7 sources is 101 characters)."""


def refused(message: str) -> InvalidInput:
    """The 422 every unusable cursor gets, saying why."""
    return InvalidInput(message, problems=[{"path": "$.cursor", "message": message}])


class CursorCodec:
    """Encodes and decodes the cursors of one merchant's game, under the server's key."""

    def __init__(self, secret: str, merchant: str, game: str, sources: int) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None,
                   info=LABEL).derive(secret.encode())  # AES-256-SIV takes 64 bytes
        self._siv = AESSIV(key)
        self._bound = [f"{len(merchant)}:{merchant}/{game}".encode()]
        self._pack = struct.Struct(f">B{sources}Q")
        self.merchant, self.game, self.sources = merchant, game, sources

    def encode(self, position: Position) -> str:
        """The opaque cursor of ``position``."""
        plain = (self._pack.pack(len(position), *position) if len(position) == self.sources
                 else struct.pack(f">B{len(position)}Q", len(position), *position))
        sealed = self._siv.encrypt(plain, self._bound)
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def decode(self, cursor: str | None) -> Position:
        """Where a cursor resumes (all zeros for none); 422 for one this server did not
        issue for this game. A v1 cursor is read as it was (sources it predates: 0)."""
        if not cursor:
            return (0,) * self.sources
        if cursor.startswith(LEGACY_PREFIX):
            return self._legacy(cursor)
        if not cursor.startswith(PREFIX) or len(cursor) > MAX_LENGTH:
            raise refused("must be a cursor from an earlier export")
        try:
            raw = base64.urlsafe_b64decode(cursor[len(PREFIX):] + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise refused("must be a cursor from an earlier export") from None
        try:
            plain = self._siv.decrypt(raw, self._bound) if len(raw) > IV else b""
        except InvalidTag:
            plain = b""
        if not plain or len(plain) != 1 + 8 * plain[0]:
            raise refused("must be a cursor from an earlier export of this game (a cursor "
                          "of another game or deployment, or one altered, is not)")
        numbers = struct.unpack(f">{plain[0]}Q", plain[1:])
        if len(numbers) > self.sources or max(numbers, default=0) > MAX_NUMBER:
            raise refused("must be a cursor from an earlier export")
        return numbers + (0,) * (self.sources - len(numbers))

    def _legacy(self, cursor: str) -> Position:
        parts = cursor[len(LEGACY_PREFIX):].split(".")
        if (len(parts) not in LEGACY_PARTS
                or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts)):
            raise refused("must be a cursor from an earlier export")
        return tuple(int(p) for p in parts) + (0,) * (self.sources - len(parts))
