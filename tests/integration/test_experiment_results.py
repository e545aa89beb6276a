"""Experiment results in SQL (SQLite and PostgreSQL): every metric's per-arm figures from a
scripted dataset, exact, including rows before the exposure, of other experiments,
games and merchants, voided and shadow grants, and refunds."""

from __future__ import annotations

import copy
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from economy.abstats import Moments
from economy.config import parse_game_config
from economy.rewards import Coupon
from gameserver.db import models as m
from gameserver.db.database import Database
from gameserver.db.experiments import experiment_results, measure
from tests.unit.boxes_factory import game_raw
from tests.unit.test_experiments import T0, raw_with

TZ = ZoneInfo("Asia/Shanghai")
D0 = 739617  # the ordinal of 2026-01-01, T0's local day
MS = T0 * 1000
_ids = itertools.count(1)


def exposure(user: str, arm: str, day: int = D0, ms: int = MS,
             experiment: str = "e1", game: str = "squirrel") -> dict[str, Any]:
    return {"merchant_id": "shop", "game_id": game, "experiment": experiment, "user_id": user,
            "arm": arm, "game_version": 2, "day": day, "commit_id": f"x{next(_ids)}",
            "seq": 0, "ts_ms": ms}


def active(user: str, day: int, experiment: str = "e1") -> dict[str, Any]:
    return {"merchant_id": "shop", "game_id": "squirrel", "experiment": experiment,
            "user_id": user, "day": day, "commit_id": f"a{next(_ids)}", "seq": 0, "ts_ms": MS}


def ledger(user: str, delta: int, ms: int = MS, merchant: str = "shop",
           kind: str = "currency") -> dict[str, Any]:
    return {"commit_id": f"l{next(_ids)}", "seq": 0, "merchant_id": merchant,
            "game_id": "squirrel", "user_id": user, "player_version": 1, "kind": kind,
            "name": "acorn", "delta": delta, "before": 1000, "after": 1000 + delta,
            "reason": "box:s", "ts_ms": ms}


def draw(user: str, ms: int = MS) -> dict[str, Any]:
    n = next(_ids)
    return {"commit_id": f"d{n}", "seq": 0, "merchant_id": "shop", "game_id": "squirrel",
            "user_id": user, "series_id": "s", "item": "a", "rarity": "c", "nonce": n,
            "seed_hash": "h", "record": {}, "ts_ms": ms}


def grant(user: str, fen: int, status: str = "confirmed", shadow: bool = False) -> dict[str, Any]:
    n = next(_ids)
    return {"merchant_id": "shop", "game_id": "squirrel", "user_id": user, "ref": "prize:c",
            "kind": "coupon", "idem_key": f"k{n}", "position": 0, "commit_id": f"g{n}",
            "status": status, "code": f"C{n}", "reason": "draw:s", "shadow": shadow,
            "detail": {"prize": "c", "value": {"face_value_fen": fen}},
            "created_ms": MS + 1, "settled_ms": MS + 1}


def order(user: str, order_id: str, kind: str, fen: int, ms: int = MS + 5) -> dict[str, Any]:
    return {"merchant_id": "shop", "game_id": "squirrel", "user_id": user, "order_id": order_id,
            "kind": kind, "amount_fen": fen, "commit_id": f"o{next(_ids)}", "seq": 0,
            "ts_ms": ms}


async def rows(db: Database, table: Any, values: list[dict[str, Any]]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(insert(table), values)


async def scripted(db: Database) -> None:
    """ann, bob: control; cat, dan: rare. ann returns on day 1 and day 9, bob never,
    cat on day 1, dan on day 30."""
    await rows(db, m.experiment_exposures, [
        exposure("ann", "control"), exposure("bob", "control"), exposure("cat", "rare"),
        exposure("dan", "rare", day=D0 + 1, ms=MS + 86_400_000),
        exposure("ann", "rare", experiment="other"), exposure("eve", "control", game="g2")])
    await rows(db, m.experiment_days, [
        active("ann", D0), active("ann", D0 + 1), active("ann", D0 + 9), active("cat", D0 + 1),
        active("dan", D0 + 31), active("bob", D0 + 1, experiment="other")])
    await rows(db, m.ledger, [
        ledger("ann", -10), ledger("ann", -30), ledger("ann", 5), ledger("bob", -20),
        ledger("cat", -10, ms=MS - 1), ledger("cat", -7, kind="item"),
        ledger("dan", -10, ms=MS + 86_400_000), ledger("dan", -10, merchant="rival")])
    await rows(db, m.draws, [draw("ann"), draw("ann"), draw("cat"), draw("cat", ms=MS - 5)])
    await rows(db, m.grants, [grant("ann", 500), grant("cat", 1000),
                              grant("cat", 1000, status="void"), grant("bob", 300, shadow=True)])
    await rows(db, m.order_events, [
        order("ann", "o1", "paid", 9900), order("ann", "o2", "paid", 100),
        order("ann", "o2", "refunded", 100), order("dan", "o3", "paid", 5000, ms=MS + 86_400_000),
        order("dan", "o0", "paid", 700)])  # before dan's exposure: not counted


async def test_every_metric_per_arm(db: Database) -> None:
    await scripted(db)
    exp = parse_game_config(raw_with()).experiments["e1"]
    now = T0 + 40 * 86_400  # day 40: every window is over
    got = await measure(db, "shop", "squirrel", exp, TZ, now)
    assert got["exposed"] == {"control": 2, "rare": 2}
    assert got["d1_retention"] == ({"control": 2, "rare": 2}, {"control": 1, "rare": 1})
    assert got["d7_retention"] == ({"control": 2, "rare": 2}, {})
    assert got["w1_retention"] == ({"control": 2, "rare": 2}, {"control": 1})
    assert got["d30_retention"] == ({"control": 2, "rare": 2}, {"rare": 1})
    assert got["draws_per_shopper"] == {"control": Moments(2, 2, 4), "rare": Moments(2, 1, 1)}
    assert got["spend_per_shopper"] == {"control": Moments(2, 60, 40 * 40 + 20 * 20),
                                        "rare": Moments(2, 10, 100)}
    assert got["prize_cost_per_shopper"] == {"control": Moments(2, 500, 250_000),
                                             "rare": Moments(2, 1000, 1_000_000)}
    assert got["orders_per_shopper"] == {"control": Moments(2, 2, 4), "rare": Moments(2, 1, 1)}
    assert got["gmv_per_shopper"] == {"control": Moments(2, 9900, 9900 ** 2),
                                      "rare": Moments(2, 5000, 5000 ** 2)}


async def test_prize_cost_counts_coupons_of_the_coupons_section(db: Database) -> None:
    """A coupon granted by a task, a check-in or an exchange (the ``coupons`` section)
    keeps its face value at the top of the grant row's detail, a blind-box prize under
    ``value``: both are prize cost. Reading only ``value`` counted the first as free."""
    await rows(db, m.experiment_exposures, [exposure("ann", "control"), exposure("cat", "rare")])
    five = Coupon("coupon_5off", "5 off", "SHOP-5OFF", 500, 100)
    task_coupon = {**grant("ann", 0), "ref": "coupon:coupon_5off", "reason": "task:t",
                   "detail": {"coupon": "coupon_5off", "count": 1, "reason": "task:t",
                              **five.wallet_detail()}}
    await rows(db, m.grants, [task_coupon, grant("cat", 1000)])
    exp = parse_game_config(raw_with()).experiments["e1"]
    got = await measure(db, "shop", "squirrel", exp, TZ, T0 + 40 * 86_400)
    assert got["prize_cost_per_shopper"] == {"control": Moments(1, 500, 250_000),
                                             "rare": Moments(1, 1000, 1_000_000)}


async def test_windows_not_over_are_not_counted(db: Database) -> None:
    await scripted(db)
    exp = parse_game_config(raw_with()).experiments["e1"]
    got = await measure(db, "shop", "squirrel", exp, TZ, T0 + 2 * 86_400 + 3600)  # day 2
    # dan (day 0 = D0 + 1) is not mature for D1 yet: day 2 is today
    assert got["d1_retention"] == ({"control": 2, "rare": 1}, {"control": 1, "rare": 1})
    assert got["d7_retention"] == ({}, {})
    body = await experiment_results(db, "shop", "squirrel", exp, TZ, T0 + 2 * 86_400)
    assert body["exposed"] == {"control": 2, "rare": 2}
    assert body["primary"]["horizon_reached"] is False
    assert body["primary"]["note"].startswith("PEEK")
    assert body["sample_ratio"] == {"chi2": 0.0, "df": 1, "p": 1.0, "mismatch": False,
                                    "threshold": 0.001}


async def test_the_verdict_calls_a_higher_prize_cost_worse(db: Database) -> None:
    """Prize cost is a cost: an arm whose shoppers cost more is worse than the control,
    where more draws or spend is better."""
    from tests.unit.test_experiments import experiment

    users = [(f"c{i}", "control", 100 + 100 * (i % 2)) for i in range(10)] + [
        (f"r{i}", "rare", 1000 + 100 * (i % 2)) for i in range(10)]
    await rows(db, m.experiment_exposures, [exposure(u, arm) for u, arm, _ in users])
    await rows(db, m.grants, [grant(u, fen) for u, _, fen in users])
    await rows(db, m.draws, [draw(u) for u, arm, _ in users for _ in range(
        1 if arm == "control" else 1 + int(u[1:]) % 3)])
    for primary, direction in (("prize_cost_per_shopper", "worse"),
                               ("draws_per_shopper", "better")):
        exp = parse_game_config(raw_with(experiment(
            sample_size=10, metrics={"primary": primary}))).experiments["e1"]
        body = await experiment_results(db, "shop", "squirrel", exp, TZ, T0 + 86_400)
        verdict = body["primary"]["arms"]["rare"]
        assert verdict["significant"] is True, (primary, verdict)
        assert verdict["direction"] == direction, primary


async def test_two_games_running_one_experiment_are_each_notified(db: Database) -> None:
    """Two games of one merchant with the same experiment (id and salt: a copied config)
    each get their own notices: the outbox stores a key once per merchant."""
    from gameserver.clock import ManualClock
    from gameserver.games import GameRegistry
    from gameserver.jobs.experiment_watch import HORIZON, MISMATCH, watch_experiments
    from gameserver.jobs.webhooks import Outbox
    from gameserver.ops.provision import create_merchant, publish_config
    from tests.unit.test_experiments import experiment

    raw = raw_with(experiment(sample_size=100))
    await create_merchant(db, "shop", T0)
    for game in ("squirrel", "squirrel2"):
        await publish_config(db, "shop", game, raw, T0)
        await rows(db, m.experiment_exposures,
                   [exposure(f"c{i}", "control", game=game) for i in range(200)]
                   + [exposure(f"r{i}", "rare", game=game) for i in range(100)])
    outbox = Outbox(db, ManualClock(T0 + 60))
    assert await watch_experiments(db, GameRegistry(db), outbox, T0 + 60) == 4
    for game in ("squirrel", "squirrel2"):
        events = {e.event: e.key for e in await outbox.list("shop", game)}
        assert events == {HORIZON: f"experiment:{game}:e1:s1:horizon",
                          MISMATCH: f"experiment:{game}:e1:s1:srm"}


async def test_watcher_notifies_the_horizon_and_a_ratio_mismatch_once(db: Database) -> None:
    """200 control and 100 rare exposures of a 50/50 experiment with a horizon of 100:
    the horizon is reached and the split fails the χ² check (χ² = 33.3); each notice
    is stored once, however often the pass runs."""
    from gameserver.clock import ManualClock
    from gameserver.games import GameRegistry
    from gameserver.jobs.experiment_watch import HORIZON, MISMATCH, watch_experiments
    from gameserver.jobs.webhooks import Outbox
    from gameserver.ops.provision import create_merchant, publish_config
    from tests.unit.test_experiments import experiment

    raw = raw_with(experiment(sample_size=100))
    await create_merchant(db, "shop", T0)
    await publish_config(db, "shop", "squirrel", raw, T0)
    await rows(db, m.experiment_exposures,
               [exposure(f"c{i}", "control") for i in range(200)]
               + [exposure(f"r{i}", "rare") for i in range(100)])
    outbox = Outbox(db, ManualClock(T0 + 60))
    games = GameRegistry(db)
    assert await watch_experiments(db, games, outbox, T0 + 60) == 2
    assert await watch_experiments(db, games, outbox, T0 + 120) == 0
    events = {e.event: e for e in await outbox.list("shop", "squirrel")}
    assert set(events) == {HORIZON, MISMATCH}
    assert events[HORIZON].key == "experiment:squirrel:e1:s1:horizon"
    assert events[HORIZON].data["exposed"] == {"control": 200, "rare": 100}
    srm = events[MISMATCH].data["sample_ratio"]
    assert srm["mismatch"] is True and srm["chi2"] == pytest.approx(100 / 3, abs=1e-4)
    assert await watch_experiments(db, games, outbox, T0 + 31 * 86_400) == 0  # stopped


async def test_long_experiment_ids_and_salts_are_notified_once(db: Database) -> None:
    """An id and a salt of 64 characters each (the most they may have) made a key longer
    than the outbox keeps: the pass failed there, for every later game too."""
    from gameserver.clock import ManualClock
    from gameserver.games import GameRegistry
    from gameserver.jobs.experiment_watch import HORIZON, watch_experiments
    from gameserver.jobs.webhooks import KEY_MAX, Outbox
    from gameserver.ops.provision import create_merchant, publish_config
    from tests.unit.boxes_factory import game_raw
    from tests.unit.test_experiments import experiment

    eid, salt = "e" * 64, "s" * 64
    raw = game_raw()
    raw["experiments"] = {eid: experiment(salt=salt, sample_size=10)}
    await create_merchant(db, "shop", T0)
    await publish_config(db, "shop", "squirrel", raw, T0)
    await publish_config(db, "shop", "zebra", raw_with(experiment(sample_size=10)), T0)
    await rows(db, m.experiment_exposures,
               [exposure(f"c{i}", "control", experiment=eid) for i in range(10)]
               + [exposure(f"r{i}", "rare", experiment=eid) for i in range(10)]
               + [exposure(f"{arm}{i}", arm, game="zebra") for i in range(10)
                  for arm in ("control", "rare")])
    outbox = Outbox(db, ManualClock(T0 + 60))
    games = GameRegistry(db)
    assert await watch_experiments(db, games, outbox, T0 + 60) == 2
    assert await watch_experiments(db, games, outbox, T0 + 120) == 0
    for game in ("squirrel", "zebra"):
        events = await outbox.list("shop", game)
        assert [e.event for e in events] == [HORIZON]
        assert len(events[0].key) <= KEY_MAX


async def test_a_refund_counts_with_its_order(db: Database) -> None:
    """GMV nets each order's refund against the order: a refund, after the exposure, of an
    order paid before it is not the arm's (it made the shopper's GMV -700); a refund, a
    day later, of an order paid after the exposure still takes that order back."""
    day = 86_400_000
    await rows(db, m.experiment_exposures, [exposure("ann", "control"), exposure("cat", "rare")])
    await rows(db, m.order_events, [
        order("ann", "old", "paid", 700, ms=MS - day), order("ann", "old", "refunded", 700),
        order("cat", "o1", "paid", 2000), order("cat", "o1", "refunded", 2000, ms=MS + day),
        order("cat", "o2", "paid", 300)])
    exp = parse_game_config(raw_with()).experiments["e1"]
    got = await measure(db, "shop", "squirrel", exp, TZ, T0 + 40 * 86_400)
    assert got["gmv_per_shopper"] == {"control": Moments(1, 0, 0),
                                      "rare": Moments(1, 300, 300 ** 2)}
    assert got["orders_per_shopper"] == {"control": Moments(1, 0, 0),
                                         "rare": Moments(1, 2, 4)}


async def test_figures_end_with_the_experiment(db: Database) -> None:
    """An arm's figures are bounded by the experiment's window: from the exposure to its
    end, the stop's version when it came before stops_at (then everyone is on the live
    config). Draws, spend, prize cost and orders after it are not the arm's, nor is a
    shopper exposed after it; an order paid inside it still nets its refund, whenever
    it comes. Everything was counted."""
    day, stop = 86_400_000, T0 + 2 * 86_400
    raw = raw_with()
    exp = parse_game_config(raw).experiments["e1"]
    stopped = copy.deepcopy(raw)
    stopped["experiments"]["e1"]["status"] = "stopped"
    await rows(db, m.game_versions, [
        {"merchant_id": "shop", "game_id": "squirrel", "version": v, "config": c,
         "checksum": f"c{v}", "published_at": at, "note": ""}
        for v, c, at in ((1, game_raw(), T0 - 86_400), (2, raw, T0 - 60), (3, stopped, stop))])
    after = stop * 1000
    await rows(db, m.experiment_exposures, [
        exposure("ann", "control"), exposure("cat", "rare"),
        exposure("late", "rare", ms=after + 5)])  # a host still on version 2
    await rows(db, m.draws, [draw("ann", ms=after - 1), draw("ann", ms=after),
                             draw("late", ms=after + 5)])
    await rows(db, m.ledger, [ledger("ann", -10, ms=after - 1), ledger("ann", -50, ms=after)])
    await rows(db, m.grants, [grant("cat", 1000), {**grant("cat", 700), "created_ms": after}])
    await rows(db, m.order_events, [
        order("cat", "o1", "paid", 2000), order("cat", "o1", "refunded", 500, ms=after + day),
        order("cat", "o2", "paid", 300, ms=after)])
    got = await measure(db, "shop", "squirrel", exp, TZ, T0 + 40 * 86_400)
    assert got["exposed"] == {"control": 1, "rare": 1}
    assert got["draws_per_shopper"] == {"control": Moments(1, 1, 1), "rare": Moments(1, 0, 0)}
    assert got["spend_per_shopper"] == {"control": Moments(1, 10, 100),
                                        "rare": Moments(1, 0, 0)}
    assert got["prize_cost_per_shopper"] == {"control": Moments(1, 0, 0),
                                             "rare": Moments(1, 1000, 1_000_000)}
    assert got["orders_per_shopper"] == {"control": Moments(1, 0, 0),
                                         "rare": Moments(1, 1, 1)}
    assert got["gmv_per_shopper"] == {"control": Moments(1, 0, 0),
                                      "rare": Moments(1, 1500, 1500 ** 2)}
    # without the stop, the window ends at stops_at: the same rows count up to it
    async with db.engine.begin() as conn:
        await conn.execute(m.game_versions.delete().where(m.game_versions.c.version == 3))
    open_until = await measure(db, "shop", "squirrel", exp, TZ, T0 + 40 * 86_400)
    assert open_until["draws_per_shopper"]["rare"] == Moments(2, 1, 1)  # late's, too
    assert open_until["spend_per_shopper"]["control"] == Moments(1, 60, 3600)


async def test_gmv_nets_every_refund_of_an_order_once(db: Database) -> None:
    """An order refunded in parts has an order_refunds row per partial refund (and a
    whole refund's order_events row for what they left): GMV nets their sum once,
    however many there are, and never below 0."""
    def part(user: str, order_id: str, refund_id: str, fen: int) -> dict[str, Any]:
        row = order(user, order_id, "refunded", fen)
        del row["kind"]
        return {**row, "refund_id": refund_id}

    await rows(db, m.experiment_exposures, [exposure("ann", "control"), exposure("cat", "rare")])
    await rows(db, m.order_events, [
        order("ann", "o1", "paid", 30_000), order("ann", "o2", "paid", 20_000),
        order("ann", "o2", "refunded", 15_000), order("cat", "o3", "paid", 1_000),
        order("cat", "o4", "paid", 700)])
    await rows(db, m.order_refunds, [
        part("ann", "o1", "r1", 10_000), part("ann", "o1", "r2", 5_000),
        part("ann", "o2", "r1", 5_000), part("cat", "o3", "r1", 4_000)])
    exp = parse_game_config(raw_with()).experiments["e1"]
    got = await measure(db, "shop", "squirrel", exp, TZ, T0 + 40 * 86_400)
    assert got["gmv_per_shopper"] == {"control": Moments(1, 15_000, 15_000 ** 2),
                                      "rare": Moments(1, 700, 700 ** 2)}
    assert got["orders_per_shopper"] == {"control": Moments(1, 2, 4),
                                         "rare": Moments(1, 2, 4)}
