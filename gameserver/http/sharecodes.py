"""Share codes: the ids shoppers pass to friends, derived from the server's secret.

A code is HMAC-SHA256, keyed with ``PETBOX_TOKEN_SECRET`` (or a key derived from it
and a label), over the fields that make it unique joined by newlines. So a retried
request (same Idempotency-Key, or the same round) reaches the same code, and nobody
without the secret can guess another shopper's. A play keeps its codes apart from
the others' by a label of its own, in the message or in the key; which one is fixed
by the codes it has already shared.

Changing a byte here changes every code already shared, so every link sent to a
friend would break: ``tests/unit/test_share_codes.py`` pins one code per play.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def share_digest(secret: str, *fields: str, key_label: bytes | None = None) -> bytes:
    """HMAC-SHA256 of ``fields`` joined by newlines, keyed with ``secret`` or, with a
    ``key_label``, with SHA-256 of the label, a newline and the secret."""
    key = secret.encode() if key_label is None else \
        hashlib.sha256(key_label + b"\n" + secret.encode()).digest()
    return hmac.new(key, "\n".join(fields).encode(), hashlib.sha256).digest()


def base32_code(digest: bytes, length: int) -> str:
    """The first ``length`` characters of ``digest`` in lower-case base32 (5 bits each)."""
    return base64.b32encode(digest).decode()[:length].lower()
