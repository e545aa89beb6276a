"""Merchant lookups with a short in-process cache.

Every signed session and every admin call needs the merchant; merchants change
rarely, so each process keeps them for ``ttl`` seconds instead of asking SQL on
every request.
"""

from __future__ import annotations

import time

from gameserver.auth import hash_api_key
from gameserver.db.database import Database, Merchant


class MerchantDirectory:
    """Merchants by id and by API key, cached for ``ttl`` seconds (misses too)."""

    def __init__(self, db: Database, ttl: float = 10.0) -> None:
        self.db = db
        self.ttl = ttl
        self._by_id: dict[str, tuple[float, Merchant | None]] = {}
        self._by_key: dict[str, tuple[float, Merchant | None]] = {}

    async def by_id(self, merchant_id: str) -> Merchant | None:
        hit = self._by_id.get(merchant_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        merchant = await self.db.merchant(merchant_id)
        self._by_id[merchant_id] = (time.monotonic() + self.ttl, merchant)
        return merchant

    async def by_api_key(self, api_key: str) -> Merchant | None:
        key_hash = hash_api_key(api_key)
        hit = self._by_key.get(key_hash)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        merchant = await self.db.merchant_by_key_hash(key_hash)
        if len(self._by_key) > 10_000:  # keys guessed at random must not grow memory
            self._by_key.clear()
        self._by_key[key_hash] = (time.monotonic() + self.ttl, merchant)
        return merchant
