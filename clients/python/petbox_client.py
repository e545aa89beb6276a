"""petbox client for merchants' backends: Python 3.10+, standard library only.

One file with no dependency on the petbox server, to copy into a merchant's backend:

- :func:`sign_login`: the ``createSession`` body a mini-program sends for a shopper
  (the backend holds the signing secret, the client never does);
- :func:`sign_order`: the headers of a signed order webhook (``ingestOrder``);
- :class:`PetboxClient`: the merchant (admin) API and the event webhook, with retries.

**Signing.** The HMAC key is the signing secret's *text as is*, UTF-8 encoded: never
hex-decode it (that gives 401). A login signs ``"{merchant}\\n{user}\\n{ts}"``; an order
webhook signs ``"{ts}\\n{body}"`` over the exact bytes sent.

**Retries.** Every write is one *logical action* with one ``Idempotency-Key``, made
once and sent again on every retry, so a retry after a timeout (the first attempt may
have been applied) is answered with the first response and never applied twice.
Retried: connection errors and timeouts, 409 ``idempotency_in_progress``, 429 and 503
(after ``Retry-After`` when given, else exponential backoff with jitter). A
``Retry-After`` is waited in full, never less; one longer than ``max_backoff`` is not
retried early but raised at once (its seconds in ``PetboxError.retry_after``). Any other
error is raised at once as :class:`PetboxError`.

Example::

    client = PetboxClient("https://petbox.example.com", api_key="pk_...")
    client.set_stock("squirrel", "coupon_x", add=100)
    client.redeem_coupon("squirrel", code, reference="order-123")
    login = sign_login("shop", "openid-123", signing_secret)  # give it to the mini-program
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PetboxClient", "PetboxError", "Response", "new_idempotency_key", "session_sign",
           "sign_login", "sign_order", "urllib_transport"]

Headers = dict[str, str]


@dataclass(frozen=True)
class Response:
    """What a transport returns: status, headers (lower-case names) and body bytes."""

    status: int
    headers: Headers
    body: bytes


Transport = Callable[[str, str, Headers, bytes | None, float], Response]
"""``(method, url, headers, body, timeout) -> Response``; raises ``OSError`` (or
``TimeoutError``) when no answer came back: the request may or may not have been
applied, which a retry with the same Idempotency-Key settles."""


class PetboxError(Exception):
    """A refusal: ``status``, the stable ``code``, ``message`` and ``details``."""

    def __init__(self, status: int, code: str, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after: float | None = None
        """The answer's ``Retry-After`` in seconds, when it had one."""


def session_sign(secret: str, merchant: str, user: str, ts: int, *,
                 age_band: str | None = None, guardian_consent: bool = False,
                 shadow: bool = False) -> str:
    """Hex HMAC-SHA256 of ``"{merchant}\\n{user}\\n{ts}"`` keyed with the secret's text;
    an age band adds ``"\\n{age_band}\\n{0|1}"`` (guardian consent) and a load-test
    session ``"\\nshadow"``, so a client can claim neither."""
    message = f"{merchant}\n{user}\n{ts}"
    if age_band:
        message += f"\n{age_band}\n{int(guardian_consent)}"
    if shadow:
        message += "\nshadow"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_login(merchant: str, user: str, secret: str, now: int | None = None, *,
               age_band: str | None = None, guardian_consent: bool = False,
               shadow: bool = False) -> dict[str, Any]:
    """A ``createSession`` body for ``user``; petbox accepts it within ±600 s of ``ts``.
    ``age_band`` (a minor's band, docs/api.md) with ``guardian_consent``, and ``shadow``
    (a load-test session of a merchant approved for load testing) are signed with it."""
    ts = int(time.time()) if now is None else now
    body: dict[str, Any] = {"merchant": merchant, "user": user, "ts": ts}
    if age_band:
        body |= {"age_band": age_band, "guardian_consent": guardian_consent}
    if shadow:
        body["shadow"] = True
    body["sign"] = session_sign(secret, merchant, user, ts, age_band=age_band,
                                guardian_consent=guardian_consent, shadow=shadow)
    return body


def sign_order(body: bytes, secret: str, merchant: str, now: int | None = None) -> Headers:
    """Headers for an order webhook of exactly ``body``: hex HMAC-SHA256 of
    ``"{ts}\\n{body}"`` keyed with the secret's text, within ±300 s of ``ts``."""
    ts = str(int(time.time()) if now is None else now)
    sign = hmac.new(secret.encode(), ts.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Petbox-Timestamp": ts,
            "X-Petbox-Signature": sign, "X-Petbox-Merchant": merchant}


def new_idempotency_key(prefix: str = "py") -> str:
    """A fresh key (``[A-Za-z0-9_-]``, at most 64 characters) for one logical action."""
    return f"{prefix}-{secrets.token_urlsafe(24)}"[:64]


def urllib_transport(method: str, url: str, headers: Headers, body: bytes | None,
                     timeout: float) -> Response:
    """The default transport: ``urllib.request``; HTTP errors are answers, not raises."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                            resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())
    except urllib.error.URLError as err:
        raise OSError(str(err.reason)) from err


RETRY_STATUSES = frozenset({429, 503})


class PetboxClient:
    """The merchant API of one petbox deployment (``api_key``: ``Authorization:
    Bearer``), and its signed event webhook (``signing_secret`` and ``merchant``)."""

    def __init__(self, base_url: str, api_key: str = "", *, merchant: str = "",
                 signing_secret: str = "", timeout: float = 10.0, attempts: int = 5,
                 backoff: float = 0.2, max_backoff: float = 5.0,
                 transport: Transport = urllib_transport,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key, self.merchant, self.signing_secret = api_key, merchant, signing_secret
        self.timeout, self.attempts = timeout, max(1, attempts)
        self.backoff, self.max_backoff = backoff, max_backoff
        self.transport, self.sleep = transport, sleep

    # -- the one request path --------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *,
                idempotency_key: str | None = None, headers: Headers | None = None,
                raw: bytes | None = None, auth: bool = True) -> Any:
        """Send one logical action (retried as the module says); its decoded JSON body.

        A write (not GET) gets an Idempotency-Key made once here unless one is given,
        and every retry sends the same key and the same bytes."""
        data = raw if raw is not None else (None if body is None else
                                            json.dumps(body).encode())
        sent: Headers = {"Accept": "application/json", **(headers or {})}
        if auth and self.api_key:
            sent["Authorization"] = f"Bearer {self.api_key}"
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        if method != "GET":
            sent["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        return self._with_retries(method, self.base_url + path, sent, data)

    def _with_retries(self, method: str, url: str, headers: Headers,
                      data: bytes | None) -> Any:
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                resp = self.transport(method, url, headers, data, self.timeout)
            except OSError:  # no answer: maybe applied; the same key settles it
                if last:
                    raise
                self.sleep(self._backoff(attempt))
                continue
            if resp.status < 300:
                return _decode(resp)
            error = _error_of(resp)
            error.retry_after = _retry_after(resp.headers.get("retry-after"))
            if last or not _retryable(resp.status, error.code):
                raise error
            wait = self._delay(attempt, error.retry_after)
            if wait is None:  # asked to wait longer than this client waits: not early
                raise error
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        """All of ``Retry-After`` when the server gave one (None when it is longer than
        ``max_backoff``: not retried), else backoff with full jitter."""
        if retry_after is not None:
            return None if retry_after > self.max_backoff else retry_after
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, at most ``max_backoff``."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    # -- admin operations ------------------------------------------------------------------

    def _game(self, game: str) -> str:
        return f"/v1/admin/games/{urllib.parse.quote(game, safe='')}"

    def get_stock(self, game: str) -> Any:
        """``getStock``: limited prizes: total, reserved, granted, left."""
        return self.request("GET", f"{self._game(game)}/stock")

    def set_stock(self, game: str, prize: str, add: int, *,
                  idempotency_key: str | None = None) -> Any:
        """``setStock``: add (or remove) units; applied once however often it is retried."""
        return self.request("POST", f"{self._game(game)}/stock/{_seg(prize)}", {"add": add},
                            idempotency_key=idempotency_key)

    def grant_player(self, game: str, user: str, reason: str, *,
                     wallet: Mapping[str, int] | None = None,
                     items: Mapping[str, int] | None = None,
                     deduct: Mapping[str, Mapping[str, int]] | None = None,
                     create: bool = False, idempotency_key: str | None = None) -> Any:
        """``grantPlayer``: add (and, with ``deduct={"wallet": .., "items": ..}``, take)
        currency and items; an unknown user is 404 unless ``create``."""
        body: dict[str, Any] = {"reason": reason, "wallet": dict(wallet or {}),
                                "items": dict(items or {}), "create": create}
        if deduct:
            body["deduct"] = {k: dict(v) for k, v in deduct.items()}
        return self.request("POST", f"{self._game(game)}/players/{_seg(user)}/grant", body,
                            idempotency_key=idempotency_key)

    def get_player(self, game: str, user: str) -> Any:
        """``getPlayerAdmin``: the player with its recent ledger."""
        return self.request("GET", f"{self._game(game)}/players/{_seg(user)}")

    def redeem_coupon(self, game: str, code: str, reference: str = "", *,
                      idempotency_key: str | None = None) -> Any:
        """``redeemCoupon``: mark a shopper's coupon used (again with the same reference:
        the same answer; with another: 409 ``coupon_already_redeemed``)."""
        return self.request("POST", f"{self._game(game)}/coupons/{_seg(code)}/redeem",
                            {"reference": reference}, idempotency_key=idempotency_key)

    def put_draft(self, game: str, config: Mapping[str, Any], *,
                  idempotency_key: str | None = None) -> Any:
        """``putGameDraft``: store a draft (422 lists every problem with its path)."""
        return self.request("PUT", f"{self._game(game)}/draft", dict(config),
                            idempotency_key=idempotency_key)

    def publish(self, game: str, note: str = "", *,
                idempotency_key: str | None = None) -> Any:
        """``publishGame``: the draft becomes the next live version, once per key."""
        return self.request("POST", f"{self._game(game)}/publish", {"note": note},
                            idempotency_key=idempotency_key)

    def rollback(self, game: str, version: int, *,
                 idempotency_key: str | None = None) -> Any:
        """``rollbackGame``: republish ``version`` as the next version, once per key."""
        return self.request("POST", f"{self._game(game)}/rollback", {"version": version},
                            idempotency_key=idempotency_key)

    def versions(self, game: str) -> Any:
        """``listGameVersions``."""
        return self.request("GET", f"{self._game(game)}/versions")

    def analytics(self, game: str) -> Any:
        """``getAnalytics``: DAU, retention, draws, coupons."""
        return self.request("GET", f"{self._game(game)}/analytics")

    def export_events(self, game: str, cursor: str = "", *,
                      page: int = 10_000) -> Iterator[dict[str, Any]]:
        """``exportEvents``: every event line (``ledger``, ``draw``, ``grant``, ``play``,
        ``order``, ``refund``, ``redemption``) after ``cursor``, fetched ``page`` lines at
        a time; each carries the (opaque) ``cursor`` that resumes after it. A stream that
        petbox cut short (an ``error`` line, or no ``end`` line) is resumed from its last
        cursor, at most ``attempts`` times in a row without a new line (then
        :class:`PetboxError` ``export_interrupted``)."""
        stalled = 0
        while True:
            query = urllib.parse.urlencode({"cursor": cursor, "limit": page})
            lines = self.request("GET", f"{self._game(game)}/export?{query}")
            end: dict[str, Any] | None = None
            progressed = False
            for line in lines or []:
                cursor = str(line.get("cursor") or cursor)
                if line.get("type") in ("end", "error"):
                    end = line
                    break
                progressed = True
                yield line
            if end is not None and end["type"] == "end":
                if not end.get("more"):
                    return
                stalled = 0
                continue
            stalled = 0 if progressed else stalled + 1
            if stalled >= self.attempts:
                raise PetboxError(503, "export_interrupted",
                                  str((end or {}).get("message") or "export cut short"),
                                  {"cursor": cursor})

    # -- events and sessions ---------------------------------------------------------------

    def send_order(self, game: str, user: str, order_id: str, status: str = "paid", *,
                   amount_fen: int = 0, skus: tuple[str, ...] = (),
                   paid_at: int = 0, refund_id: str | None = None) -> Any:
        """``ingestOrder``: a signed order webhook, idempotent by order id and status
        (a replay answers ``"duplicate": true``). A ``"refunded"`` one with
        ``refund_id`` is a partial refund of ``amount_fen`` (the SKUs it returns in
        ``skus``), idempotent by order id and refund id; without it the whole order is
        refunded."""
        fields: dict[str, Any] = {"merchant": self.merchant, "game": game, "user": user,
                                  "order_id": order_id, "status": status,
                                  "amount_fen": amount_fen, "skus": list(skus),
                                  "paid_at": paid_at}
        if refund_id is not None:
            fields["refund_id"] = refund_id
        body = json.dumps(fields).encode()
        # One signature covers the retries: it stays valid for 300 s, and petbox keys
        # the event by order id and status (or refund id), so a retry is never applied
        # twice.
        return self.request("POST", "/v1/events/orders", raw=body, auth=False,
                            headers=sign_order(body, self.signing_secret, self.merchant))

    def login(self, user: str) -> dict[str, Any]:
        """A signed ``createSession`` body for ``user`` (for the mini-program)."""
        return sign_login(self.merchant, user, self.signing_secret)

    def create_session(self, user: str) -> Any:
        """``createSession`` for ``user`` (to test as a shopper): ``{token, expires_at}``."""
        return self.request("POST", "/v1/sessions", self.login(user), auth=False)


def _decode(resp: Response) -> Any:
    """A success body: JSON, or for an NDJSON stream (``exportEvents``) its lines."""
    if not resp.body:
        return None
    if resp.headers.get("content-type", "").split(";")[0].strip() == "application/x-ndjson":
        return [json.loads(line) for line in resp.body.splitlines() if line.strip()]
    return json.loads(resp.body)


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` of whole seconds, or None (absent, or an HTTP date)."""
    text = (value or "").strip()
    return float(text) if text.isdigit() else None


def _retryable(status: int, code: str) -> bool:
    return status in RETRY_STATUSES or (status == 409 and code == "idempotency_in_progress")


def _error_of(resp: Response) -> PetboxError:
    try:
        error = json.loads(resp.body)["error"]
        return PetboxError(resp.status, str(error["code"]), str(error["message"]),
                           error.get("details"))
    except (ValueError, KeyError, TypeError):
        text = resp.body[:200].decode("utf-8", "replace")
        return PetboxError(resp.status, "http_error", text or f"HTTP {resp.status}")
