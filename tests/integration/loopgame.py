"""A test-owned game with every part of the daily loop, and HTTP helpers for it.

The numbers are the tests' own (never the demo game's), so expectations stay exact.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from gameserver.http.auth import body_signature

GAME = "/v1/games/squirrel"
HOUR = 3600
DAY = 86_400

LOOP_CONFIG: dict[str, Any] = {
    "name": "Loop squirrel",
    "timezone": "Asia/Shanghai",
    "currencies": {"acorn": {"name": "Acorns", "initial": 100, "max": 100_000},
                   "gem": {"name": "Gems", "initial": 0, "max": 1000}},
    "items": {"ticket": {"name": "Box ticket", "max": 50}},
    "coupons": {"c10": {"name": "¥10 off", "value_fen": 1000, "stock": 1}},
    "species": {"squirrel": {
        "name": "Squirrel",
        "stats": {
            "satiety": {"max": 100, "initial": 50, "decay_per_hour": 5, "low": 30,
                        "low_state": "hungry"},
            "mood": {"max": 100, "initial": 80, "decay_per_hour": 0, "low": 25,
                     "low_state": "sad"},
            "clean": {"max": 100, "initial": 40, "decay_per_hour": 0},
        },
        "stages": [
            {"id": "baby", "name": "Baby", "xp": 0, "reward": {"currency": {"gem": 1}}},
            {"id": "teen", "name": "Teen", "xp": 30, "reward": {"items": {"ticket": 1}}},
        ],
        "play": {"effects": {"mood": 10}, "xp": 5, "cooldown_s": 1800},
        "clean": {"effects": {"clean": 50}, "xp": 2, "cooldown_s": 3600,
                  "price": {"acorn": 5}},
        "produce": {"currency": "acorn", "per_hour": 10, "stat": "satiety", "above": 30,
                    "cap_hours": 8},
    }},
    "foods": {
        "snack": {"name": "Snack", "price": {"acorn": 10}, "effects": {"satiety": 20},
                  "xp": 5},
        "cake": {"name": "Cake", "price": {"acorn": 40}, "effects": {"satiety": 40},
                 "xp": 25, "cooldown_s": 600},
        "feast": {"name": "Feast", "price": {"acorn": 5000}, "effects": {"satiety": 50}},
    },
    "checkin": {"cycle": [{"currency": {"acorn": 10}}] * 6
                + [{"currency": {"acorn": 50}, "items": {"ticket": 1}}],
                "makeup": {"cost": {"currency": {"acorn": 20}}, "per_cycle": 1,
                           "window_days": 7}},
    "tasks": {
        "browse15": {"name": "Browse 15 s", "kind": "browse", "limit": 2, "browse_s": 15,
                     "reward": {"currency": {"acorn": 5}}},
        "follow": {"name": "Follow", "kind": "follow", "period": "once",
                   "reward": {"currency": {"gem": 2}}},
        "share": {"name": "Share", "kind": "share", "reward": {"coupon": "c10",
                                                             "currency": {"acorn": 1}}},
        "buy_any": {"name": "Buy anything", "kind": "purchase", "limit": 3,
                    "reward": {"currency": {"acorn": 5}}},
        "spend99": {"name": "Spend ¥99", "kind": "purchase", "period": "weekly",
                    "spend_fen": 9900, "reward": {"items": {"ticket": 1}}},
    },
    "offers": {
        "gems": {"name": "Gems", "cost": {"currency": {"acorn": 50}},
                 "gives": {"currency": {"gem": 5}}, "per_player": 1, "period": "daily"},
        "ticket": {"name": "Ticket", "cost": {"currency": {"gem": 3}},
                   "gives": {"items": {"ticket": 1}}},
        "coupon": {"name": "Coupon", "cost": {"currency": {"gem": 1}},
                   "gives": {"coupon": "c10"}},
        "limited": {"name": "Limited", "cost": {"currency": {"acorn": 1}},
                    "gives": {"currency": {"gem": 1}}, "global_limit": 1},
    },
}


def loop_config(**overrides: Any) -> dict[str, Any]:
    raw = copy.deepcopy(LOOP_CONFIG)
    raw.update(copy.deepcopy(overrides))
    return raw


_keys = itertools.count(1)


class Shopper:
    """One shopper of the loop game, renewing the token as the test clock moves."""

    def __init__(self, world: Any, user: str, merchant: str = "shop") -> None:
        self.world, self.user, self.merchant = world, user, merchant
        self._token = ""
        self._token_at = -10**9

    async def token(self) -> str:
        now = self.world.clock.now()
        if now - self._token_at > 3600:
            self._token = await self.world.token(self.user, merchant_id=self.merchant)
            self._token_at = now
        return self._token

    async def post(self, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        resp = await self.world.post(f"{GAME}{path}", await self.token(),
                                     {} if body is None else body, key or f"k{next(_keys)}")
        return resp.status, await resp.json()

    async def me(self) -> dict[str, Any]:
        resp = await self.world.get(f"{GAME}/me", await self.token())
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def refused(self, path: str, body: Any, status: int, code: str) -> dict[str, Any]:
        """POST expecting a refusal with ``code``; asserts nothing changed."""
        before = await self.me()
        got, out = await self.post(path, body)
        assert (got, out["error"]["code"]) == (status, code), out
        after = await self.me()
        assert after["version"] == before["version"]
        assert after["player"] == before["player"]
        return dict(out["error"])


def signed_order(secret: str, ts: int, **fields: Any) -> tuple[bytes, dict[str, str]]:
    """An ``ingestOrder`` body and its headers, signed with ``secret``."""
    body = json.dumps({"merchant": "shop", "game": "squirrel", **fields}).encode()
    return body, {"Content-Type": "application/json", "X-Petbox-Timestamp": str(ts),
                  "X-Petbox-Signature": body_signature(secret, str(ts), body)}


async def post_order(world: Any, merchant: str = "shop", ts: int | None = None,
                     headers: dict[str, str] | None = None, **fields: Any) -> tuple[int, Any]:
    secret = world.merchants[merchant].signing_secret
    body, hdrs = signed_order(secret, int(world.clock.now()) if ts is None else ts, **fields)
    resp = await world.client.post("/v1/events/orders", data=body, headers={**hdrs,
                                                                          **(headers or {})})
    return resp.status, await resp.json()


@pytest.fixture
async def loop_world(client: Any, db: Any, clock: Any) -> Any:
    """Merchant ``shop`` with the loop game published as ``squirrel``."""
    from tests.conftest import World

    w = World(client, db, clock, LOOP_CONFIG)
    await w.merchant()
    return w
