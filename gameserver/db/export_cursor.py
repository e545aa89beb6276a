"""The export's cursors: opaque, bound to their merchant and game, unforgeable.

A position in the export is the last id delivered from each source, and those ids
are numbered across the whole deployment: shown as they are, an empty game's cursor
would tell its merchant how busy every other merchant is. A cursor is therefore the
position *encrypted* under a key only the servers hold, ``v2.<base64url>``:

- the key is derived from the token secret (``PETBOX_TOKEN_SECRET``, which every
  host of a deployment shares so tokens verify anywhere) with a label of its own, so
  it is independent of the token signatures made with that secret;
- the scheme is a deterministic authenticated encryption (SIV): the synthetic IV is
  a keyed BLAKE2b MAC of the merchant, the game and the position, the position is
  XORed with a keystream of that IV (keyed BLAKE2b under a second key), and decoding
  checks the IV again. A cursor
  altered, forged, from another merchant's or game's export, or from a deployment with
  another secret does not decode (422). The same position gives the same cursor, so
  an export with nothing new ends on the cursor it was given;
- every number takes eight bytes, so a cursor's length says nothing of the ids.

Cursors of the release before (``v1.<ledger>.<draw>.<grant>[.<play>]``, plain ids)
are still read, so an export started before an upgrade resumes after it; they are
never issued any more. Rotating the token secret invalidates issued cursors (422:
start the export again from the beginning, or from a cursor issued since).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from economy.errors import InvalidInput

Position = tuple[int, ...]
"""The last id delivered from each source, in the export's source order."""

PREFIX = "v2."
LEGACY_PREFIX = "v1."
LEGACY_PARTS = (3, 4)
"""Numbers a v1 cursor had: before play lines (3), and with them (4)."""
IV = 16
LABEL = b"petbox export cursor v2"
MAX_NUMBER = 2**63 - 1
MAX_LENGTH = 200
"""Longest cursor accepted. A v2 cursor of 7 sources is 101 characters; the keystream
is one BLAKE2b block, so up to 7 sources fit (64 bytes): more need a longer stream."""


def refused(message: str) -> InvalidInput:
    """The 422 every unusable cursor gets, saying why."""
    return InvalidInput(message, problems=[{"path": "$.cursor", "message": message}])


class CursorCodec:
    """Encodes and decodes the cursors of one merchant's game, under the server's key."""

    def __init__(self, secret: str, merchant: str, game: str, sources: int) -> None:
        root = hmac.new(secret.encode(), LABEL, hashlib.sha256).digest()
        # keyed BLAKE2b (a MAC and a PRF) for both halves: one call each per cursor, as a
        # cursor is encoded for every exported line
        self._mac = hashlib.blake2b(key=hmac.new(root, b"mac", hashlib.sha256).digest(),
                                    digest_size=IV, person=b"petbox-cursor-m")
        self._mac.update(f"{len(merchant)}:{merchant}/{game}".encode() + b"\0")
        self._enc = hashlib.blake2b(key=hmac.new(root, b"enc", hashlib.sha256).digest(),
                                    digest_size=64, person=b"petbox-cursor-e")
        self._pack = struct.Struct(f">B{sources}Q")
        self.merchant, self.game, self.sources = merchant, game, sources

    def _iv(self, plain: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(plain)
        return mac.digest()

    def _xor(self, iv: bytes, data: bytes) -> bytes:
        """``data`` XOR the keystream of ``iv`` (both ways: seal and open)."""
        n = len(data)
        if n > 64:
            raise ValueError("longer than one keystream block")
        enc = self._enc.copy()
        enc.update(iv)
        stream = enc.digest()[:n]
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")

    def encode(self, position: Position) -> str:
        """The opaque cursor of ``position``."""
        plain = (self._pack.pack(len(position), *position) if len(position) == self.sources
                 else struct.pack(f">B{len(position)}Q", len(position), *position))
        iv = self._iv(plain)
        return PREFIX + base64.urlsafe_b64encode(iv + self._xor(iv, plain)).rstrip(
            b"=").decode()

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
        iv, sealed = raw[:IV], raw[IV:]
        if len(sealed) > 64:
            raise refused("must be a cursor from an earlier export")
        plain = self._xor(iv, sealed)
        if (len(iv) < IV or not plain or len(plain) != 1 + 8 * plain[0]
                or not hmac.compare_digest(self._iv(plain), iv)):
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
