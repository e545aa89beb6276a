"""The daily loop end to end: eight days of one shopper, driven by the injected clock,
against real Redis and SQL (both backends), then flushed and checked in SQL.

adopt → feed → leave 10 h → collect → check in 8 days with one makeup → buy and
refund (ingestOrder) → exchange; and a coupon reward once its stock is gone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gameserver.appkeys import SETTINGS
from gameserver.db import models as m
from gameserver.state.keys import PlayerRef, shard_of
from gameserver.state.store import decode_state
from tests.conftest import app_persister
from tests.integration.loopgame import DAY, HOUR, Shopper, loop_world, post_order

__all__ = ["loop_world"]


async def ok(shopper: Shopper, path: str, body: Any = None, status: int = 200) -> Any:
    got, out = await shopper.post(path, body)
    assert got == status, out
    return out


async def test_eight_days_of_one_shopper(loop_world: Any, db: Any) -> None:
    world, clock = loop_world, loop_world.clock
    alice = Shopper(world, "alice")
    t0 = int(clock.now())  # 2026-01-01 08:00 in Shanghai

    # day 0: adopt, feed, check in; leave 10 h; collect (capped at 8 h worth)
    out = await ok(alice, "/pet", {"species": "squirrel", "name": "Nutty"}, 201)
    assert out["player"]["wallet"] == {"acorn": 100, "gem": 1}  # baby stage: 1 gem
    out = await ok(alice, "/pet/feed", {"food": "cake"})
    assert out["player"]["pet"]["stats"]["satiety"]["value"] == 90.0
    out = await ok(alice, "/checkin")
    assert (out["streak"], out["player"]["wallet"]["acorn"]) == (1, 70)
    clock.advance(10 * HOUR)
    me = (await alice.me())["player"]
    assert me["pet"]["produce"] == {"currency": "acorn", "pending": 80, "pending_milli": 80_000,
                                    "cap": 80, "per_hour": 10,
                                    "full_at": t0 + 10 * HOUR}  # full already: as of now
    assert me["pet"]["stats"]["satiety"]["value"] == 40.0
    out = await ok(alice, "/pet/collect")
    assert out["collected"] == {"acorn": 80} and out["player"]["wallet"]["acorn"] == 150

    # day 1 (08:00): check in; day 2 missed; day 3 check in, then make day 2 up
    clock.advance(14 * HOUR)
    assert (await ok(alice, "/checkin"))["streak"] == 2
    clock.advance(2 * DAY)
    out = await ok(alice, "/checkin")
    assert (out["day"], out["streak"]) == ("2026-01-04", 1)
    out = await ok(alice, "/checkin/makeup", {})
    assert (out["day"], out["streak"], out["cycle_day"]) == ("2026-01-03", 4, 3)
    assert out["player"]["wallet"]["acorn"] == 150 + 10 + 10 - 20 + 10
    # days 4..7: the streak reaches 8; day 7 is the big prize, day 8 starts a new cycle
    for streak in (5, 6, 7, 8):
        clock.advance(DAY)
        out = await ok(alice, "/checkin")
        assert out["streak"] == streak
    assert out["cycle_day"] == 1
    me = (await alice.me())["player"]
    assert me["wallet"] == {"acorn": 240, "gem": 1} and me["inventory"] == {"ticket": 1}
    assert me["checkin"]["total"] == 8 and me["checkin"]["makeup_days"] == []

    # buy and refund through the merchant's webhook
    status, out = await post_order(world, user="alice", order_id="A-1", status="paid",
                                   amount_fen=9900, skus=["NUTS"])
    assert (status, out["tasks"]) == (200, {"buy_any": 1, "spend99": 1})
    me = (await alice.me())["player"]
    assert me["wallet"]["acorn"] == 245 and me["inventory"] == {"ticket": 2}
    status, out = await post_order(world, user="alice", order_id="A-1", status="refunded")
    assert (status, out["taken_back"], out["debt"]) == (200, {"buy_any": 1, "spend99": 1}, {})

    # exchange: 50 acorns → 5 gems, 3 gems → a ticket
    out = await ok(alice, "/exchange", {"offer": "gems"})
    out = await ok(alice, "/exchange", {"offer": "ticket"})
    final = await alice.me()
    assert final["player"]["wallet"] == {"acorn": 190, "gem": 3}
    assert final["player"]["inventory"] == {"ticket": 2}
    assert final["player"]["checkin"]["streak"] == 8
    assert final["player"]["pet"]["states"] == ["hungry"]

    await _check_sql(world, db, final)


async def _check_sql(world: Any, db: Any, final: dict[str, Any]) -> None:
    """Flush, then SQL holds the same player, and its ledger explains the wallet."""
    app = world.client.app
    persister = app_persister(app, consumer="scenario", db=db)
    assert await persister.final_flush() is True
    shards = app[SETTINGS].shards
    row = await db.fetch_player(PlayerRef("shop", "squirrel", "alice",
                                          shard_of("shop", "alice", shards)))
    assert row is not None and row[0] == final["version"]
    state = decode_state(row[1])
    assert state.wallet == final["player"]["wallet"]
    assert state.inventory == final["player"]["inventory"]
    lg = m.ledger
    async with db.engine.connect() as conn:
        sums = dict((await conn.execute(
            select(lg.c.name, func.sum(lg.c.delta)).where(lg.c.user_id == "alice",
                                                         lg.c.kind == "currency")
            .group_by(lg.c.name))).all())
    assert {k: int(v) for k, v in sums.items()} == {"acorn": 190 - 100, "gem": 3}


async def test_coupon_reward_when_stock_is_gone(loop_world: Any, db: Any) -> None:
    """The share task's coupon (stock 1): the second shopper still gets the rest."""
    first, second = Shopper(loop_world, "first"), Shopper(loop_world, "second")
    out = await ok(first, "/tasks/share/complete", {})
    assert out["granted"] == {"currency": {"acorn": 1}, "items": {}, "coupons": {"c10": 1}}
    out = await ok(second, "/tasks/share/complete", {})
    assert out["granted"] == {"currency": {"acorn": 1}, "items": {},
                              "coupons_unavailable": {"c10": 1}}
    assert out["player"]["wallet"]["acorn"] == 101
    loop_world.clock.advance(DAY)  # a new day: the daily task again, still no stock
    out = await ok(first, "/tasks/share/complete", {})
    assert "coupons_unavailable" in out["granted"]
    g, s = m.grants, m.prize_stock
    async with db.engine.connect() as conn:
        granted = (await conn.execute(select(func.count()).select_from(g).where(
            g.c.ref == "coupon:c10", g.c.status != "void"))).scalar_one()
        stock = (await conn.execute(select(s.c.total, s.c.taken, s.c.granted).where(
            s.c.ref == "coupon:c10"))).one()
    assert granted == 1 and tuple(stock) == (1, 1, 1)
