"""The signatures a merchant's backend makes with its signing secret (API.md): the
``sign`` of ``createSession`` and the ``X-Petbox-Signature`` of merchant events.

The server checks them (:mod:`gameserver.http.auth`, ``ingestOrder``) and signs its own
webhooks with the same scheme; the load tester signs the sessions and orders it plays.
Both import them from here, so the scheme has one definition. This module uses the
standard library only: the load tester imports it without loading the server (its
workers start many processes, and ``loadtests`` otherwise talks to petbox over HTTP).
"""

from __future__ import annotations

import hashlib
import hmac


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


def signature_matches(expected: str, given: str) -> bool:
    """Whether ``given`` (hex, either case) is ``expected``, in constant time. A value
    no signature can be (non-ASCII text, which :func:`hmac.compare_digest` refuses to
    compare) is simply no match: a hostile header is a 401, never an error."""
    return given.isascii() and hmac.compare_digest(expected, given.lower())


def body_signature(secret: str, ts: str, body: bytes) -> str:
    """``X-Petbox-Signature`` of a merchant event: HMAC over ``"{ts}\\n{body}"``."""
    return hmac.new(secret.encode(), ts.encode() + b"\n" + body, hashlib.sha256).hexdigest()
