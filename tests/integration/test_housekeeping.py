"""Draw records are deleted after the game's retention, not before."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import insert, select

from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.games import GameRegistry
from gameserver.jobs.housekeeping import DAY_MS, purge_old_draws
from gameserver.ops.provision import create_merchant, publish_config
from tests.integration.test_boxes_http import BOX_CONFIG

NOW_MS = 1_767_225_600_000


def draw_row(i: int, merchant: str, age_days: float) -> dict[str, Any]:
    return {"commit_id": f"{merchant}-{i}", "seq": 0, "merchant_id": merchant,
            "game_id": "squirrel", "user_id": "u", "series_id": "forest", "item": "fig_a",
            "rarity": "common", "nonce": i, "seed_hash": "0" * 64, "record": {},
            "ts_ms": NOW_MS - int(age_days * DAY_MS)}


async def test_draws_kept_for_each_games_retention(db: Database) -> None:
    long_config = copy.deepcopy(BOX_CONFIG)
    long_config["boxes"]["draw_records_days"] = 365
    for merchant, config in (("short", BOX_CONFIG), ("long", long_config)):
        await create_merchant(db, merchant, NOW_MS // 1000)
        await publish_config(db, merchant, "squirrel", config, NOW_MS // 1000)
    ages = [1, 89.9, 90.1, 200, 400]
    rows = [draw_row(i, merchant, age) for merchant in ("short", "long")
            for i, age in enumerate(ages)]
    async with db.engine.begin() as conn:
        await conn.execute(insert(m.draws), rows)

    deleted = await purge_old_draws(db, GameRegistry(db), NOW_MS)
    assert deleted == 3 + 1
    async with db.engine.connect() as conn:
        kept = (await conn.execute(select(m.draws.c.merchant_id, m.draws.c.nonce)
                                   .order_by(m.draws.c.merchant_id, m.draws.c.nonce))).all()
    assert [tuple(r) for r in kept] == [("long", 0), ("long", 1), ("long", 2), ("long", 3),
                                        ("short", 0), ("short", 1)]
