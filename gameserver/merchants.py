"""Merchant lookups with an in-process cache that also rides out an SQL outage.

Every signed session and every admin call needs the merchant; merchants change
rarely, so each process keeps them instead of asking SQL on every request.

- By id (``createSession`` and order events, which need the signing secret): a merchant
  read from SQL is used for ``fresh`` seconds (``PETBOX_SECRET_CACHE_SECONDS``), so a
  rotated or revoked signing secret takes effect within that. When SQL cannot be read
  (down, hung past its timeout), a cached merchant up to ``max_age`` seconds old
  (``PETBOX_SECRET_CACHE_MAX_AGE``) is used instead, so shoppers keep signing in; an
  older one, or a merchant never seen, is not (the request answers 503). "No such
  merchant" is remembered for ``ttl`` seconds only, so a new merchant is usable soon.
- By API key (merchant routes): ``ttl`` seconds (misses too), no outage fallback: a
  revoked key stops within ``ttl``, and merchant routes need SQL anyway.

Concurrent misses of one merchant share one SQL read: at midnight a cold process
gets hundreds of sign-ins of one merchant at once, and each asking SQL for the same
row filled the pool and turned sign-ins away (``503 unavailable``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from gameserver.db.database import Database, Merchant
from gameserver.http.auth import hash_api_key
from gameserver.http.errors import UNAVAILABLE
from gameserver.state.singleflight import once

log = logging.getLogger("petbox.merchants")


class MerchantDirectory:
    """Merchants by id and by API key, cached (see the module docstring)."""

    def __init__(self, db: Database, ttl: float = 10.0, fresh: float = 300.0,
                 max_age: float = 3600.0, max_entries: int = 10_000) -> None:
        self.db = db
        self.max_entries = max_entries
        """Past this many cached lookups, the misses (ids and keys guessed at random,
        which must not grow memory) are dropped; found merchants stay."""
        self.ttl = ttl
        self.fresh = fresh
        self.max_age = max(max_age, fresh)
        self._by_id: dict[str, tuple[float, Merchant | None]] = {}
        """merchant id → (monotonic time read from SQL, merchant or None)."""
        self._by_key: dict[str, tuple[float, Merchant | None]] = {}
        self._reading: dict[str, asyncio.Future[Merchant | None]] = {}
        """SQL reads under way, by ``id:`` or ``key:`` (shared by concurrent misses)."""

    async def by_id(self, merchant_id: str) -> Merchant | None:
        hit = self._by_id.get(merchant_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < (self.fresh if hit[1] else self.ttl):
            return hit[1]
        try:
            merchant = await once(self._reading, f"id:{merchant_id}",
                                   lambda: self.db.merchant(merchant_id))
        except UNAVAILABLE:
            if hit is None or hit[1] is None or now - hit[0] >= self.max_age:
                raise
            log.warning("SQL unavailable: merchant %s served from a cache %.0f s old",
                        merchant_id, now - hit[0])
            return hit[1]
        if len(self._by_id) > self.max_entries:
            self._by_id = {k: v for k, v in self._by_id.items() if v[1] is not None}
        self._by_id[merchant_id] = (time.monotonic(), merchant)
        return merchant

    async def by_api_key(self, api_key: str) -> Merchant | None:
        key_hash = hash_api_key(api_key)
        hit = self._by_key.get(key_hash)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        merchant = await once(self._reading, f"key:{key_hash}",
                               lambda: self.db.merchant_by_key_hash(key_hash))
        if len(self._by_key) > self.max_entries:
            # only the misses: a flood of wrong keys emptied the whole cache, and every
            # merchant's next calls went to SQL
            self._by_key = {k: v for k, v in self._by_key.items() if v[1] is not None}
        self._by_key[key_hash] = (time.monotonic() + self.ttl, merchant)
        return merchant
