"""Background passes on a Redis Cluster with one master paused (SIGSTOP: it holds its
data but answers nothing): the pass does the work on the other masters, names what it
skipped, and does the skipped work on the first pass after the master answers again.

Each test has a cluster of its own (3 masters, no replicas: no failover takes the
paused master's slots over) and a short Redis bound, so a silent node costs a pass
about that bound per key it holds."""

from __future__ import annotations

import copy
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
from redis.crc import key_slot
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import insert, select

from gameserver.api.groupbuy import group_code
from gameserver.api.groupbuy_sweep import INDEXED, GroupBuySweep
from gameserver.api.teams import TeamSync, team_code
from gameserver.appkeys import ADMIN_REQUESTS, DB, GAMES, REDIS, SETTINGS, VALUE
from gameserver.db import models as m
from gameserver.db.persist import PlayerRow
from gameserver.jobs.reconciler import Reconciler
from gameserver.ops.embedded import RedisProcess
from gameserver.ops.metrics import METRICS
from gameserver.ops.settings import Settings
from gameserver.state.aggregates_app import AGGREGATES
from gameserver.state.keys import AggregateRef, Keys, PlayerRef, shard_of
from gameserver.state.redisclient import open_redis
from gameserver.state.value import HOLD_TTL_MS, PENDING_SETTLE_AFTER_S, StockView, ValueTier
from mechanics import teams as team_rules
from tests.conftest import app_persister
from tests.integration.loopgame import Shopper
from tests.integration.test_admin_idempotency import committed_without_redis_step
from tests.integration.test_boxes_http import BOX_CONFIG
from tests.integration.test_groupbuy_http import (
    GB_CONFIG,
    create,
    join,
    me,
    ok,
    sweeper,
    webhooks,
)
from tests.integration.test_poll_http import flush_all
from tests.integration.test_teams_http import TEAM_CONFIG, get_team
from tests.integration.test_value_tier import TOTALS, outcome
from tests.redis_cluster import RedisCluster, running_cluster

SHOP, GAME, PRIZE = "boxshop", "squirrel", "prize:coupon_x"
GAME_PATH = f"/v1/games/{GAME}"
REDIS_BOUND = 0.5


@pytest.fixture
def paused_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A cluster of this test's own: the test pauses one of its masters."""
    with running_cluster(tmp_path_factory.mktemp("paused")) as cluster:
        yield cluster


@pytest.fixture
def redis_url(paused_cluster: RedisCluster) -> str:
    return paused_cluster.url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(redis_timeout=REDIS_BOUND)


def pause(node: RedisProcess) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGSTOP)


def resume(cluster: RedisCluster, node: RedisProcess) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGCONT)
    cluster.wait_ok()


def on(cluster: RedisCluster, key: str) -> RedisProcess:
    return cluster.owner(key_slot(key.encode()))


async def expired_holds(tier: ValueTier) -> dict[str, int]:
    """Holds key → holds in it (every bucket; the cluster answering)."""
    return {tier.gate.holds_key(SHOP, GAME, b): int(await tier.redis.zcard(
        tier.gate.holds_key(SHOP, GAME, b))) for b in range(tier.gate.buckets)}


async def pending_users(tier: ValueTier) -> set[str]:
    g = m.grants
    async with tier.db.connect() as conn:
        return {r[0] for r in await conn.execute(
            select(g.c.user_id).where(g.c.status == "pending"))}


async def test_a_command_to_a_paused_master_fails_within_two_bounds(
        paused_cluster: RedisCluster, redis_url: str) -> None:
    """One retry (after a slot-map refresh), as on one server: redis-py's default of
    10 retries with back-off took 9-10 s per command for a 0.5 s bound, so every
    background key on a paused master cost a pass that long."""
    client = await open_redis(redis_url, Settings(redis_url=redis_url,
                                                  redis_timeout=REDIS_BOUND))
    try:
        key = "pbtest:{paused}"
        await client.set(key, 1)
        victim = on(paused_cluster, key)
        pause(victim)
        try:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError):
                    await client.get(key)
                assert time.monotonic() - started < 2 * REDIS_BOUND + 0.3
        finally:
            resume(paused_cluster, victim)
        assert await client.get(key) == b"1"
    finally:
        await client.aclose()


async def test_a_reconcile_pass_settles_the_living_masters_and_retries_the_paused_one(
        world: Any, paused_cluster: RedisCluster) -> None:
    """Gate holds of dead attempts in every bucket and pending grants of players of
    every shard; one master paused. Before, the first key on the paused master failed
    the whole pass: no hold ended and no grant settled anywhere while it was silent."""
    await world.merchant(SHOP, game=GAME, config=BOX_CONFIG)
    tier: ValueTier = world.client.app[VALUE]
    await tier.ensure_stock(SHOP, GAME, TOTALS)
    # The paused master: one that holds gate buckets and player shards, but not the
    # bucket a voided grant's unit goes back to (that unit is the test's count of 100).
    home = tier.gate.stock_key(SHOP, GAME, tier.gate.home(PRIZE))
    victim = next(n for n in paused_cluster.masters if n is not on(paused_cluster, home))
    for i in range(24):  # attempts that died after the gate step: holds only
        await tier._gate(PlayerRef(SHOP, GAME, f"d{i}", 0), f"dead{i}", {PRIZE: 1},
                         StockView(), TOTALS)
    users = [f"u{i}" for i in range(12)]
    for user in users:  # attempts that died after the SQL try: a hold and a pending row
        ref = PlayerRef(SHOP, GAME, user, shard_of(SHOP, user, 16))
        await tier._gate(ref, f"c-{user}", {PRIZE: 1}, StockView(), TOTALS)
        await tier._try_sql(ref, f"k-{user}", f"c-{user}", outcome(), {PRIZE: 1})
    holds = await expired_holds(tier)
    silent_holds = sorted(k for k, n in holds.items() if n and on(paused_cluster, k) is victim)
    silent_users = {u for u in users if on(paused_cluster, Keys().tag(
        shard_of(SHOP, u, 16))) is victim}
    assert silent_holds and silent_users and silent_users != set(users)
    silent = sorted(silent_holds + sorted({f"shard {shard_of(SHOP, u, 16)}"
                                           for u in silent_users}))
    world.clock.advance(max(HOLD_TTL_MS / 1000, PENDING_SETTLE_AFTER_S) + 1)
    reconciler = Reconciler([tier], 60)

    pause(victim)
    try:
        started = time.monotonic()
        assert await reconciler.run_once() == (0, len(users) - len(silent_users))
        took = time.monotonic() - started
        assert sorted(reconciler.unreached) == silent
        assert await pending_users(tier) == silent_users
    finally:
        resume(paused_cluster, victim)
    # each call to the silent master cost at most two bounded tries (not 10 s each)
    calls = len(silent_holds) + len(silent_users)
    assert took < (2 * REDIS_BOUND + 0.25) * calls + 2, took
    after = await expired_holds(tier)
    assert {k: n for k, n in after.items() if n} == {k: holds[k] for k in silent_holds}

    assert await reconciler.run_once() == (0, len(silent_users))  # the next pass
    assert reconciler.unreached == []
    assert reconciler.unreached_total == len(silent)
    assert await pending_users(tier) == set()
    assert set((await expired_holds(tier)).values()) == {0}
    assert (await tier.stock_left(SHOP, GAME, TOTALS)).left == {PRIZE: 100}


@dataclass(frozen=True)
class ThreeOffers:
    """Group buys on three offers whose indexes sit on the three masters (``offers[0]``'s
    on ``victim``, which also holds the shadow keyspace's registry, but no group, member
    or real registry): one group each, two members who paid 10 acorns each."""

    victim: RedisProcess
    offers: list[str]
    members: dict[str, tuple[str, str]]
    codes: dict[str, str]
    silent_index: str
    shadow_registry: str


async def three_offers(world: Any, paused_cluster: RedisCluster) -> ThreeOffers:
    """:class:`ThreeOffers`, both registries marked indexed, the groups due."""
    victim = on(paused_cluster, Keys("pbs").aggregate_indexes("groupbuy"))
    assert on(paused_cluster, Keys().aggregate_indexes("groupbuy")) is not victim
    others = [n for n in paused_cluster.masters if n is not victim]

    def offer_on(letter: str, node: RedisProcess) -> str:
        """The first offer ``<letter><i>`` whose index ``node`` holds."""
        return next(f"{letter}{i}" for i in count() if on(paused_cluster, Keys()
                    .aggregate_index("gbshop", GAME, "groupbuy", f"{letter}{i}")) is node)

    offers = [offer_on("a", victim), offer_on("b", others[0]), offer_on("c", others[1])]
    config = copy.deepcopy(GB_CONFIG)
    config["groupbuys"] = {o: {**GB_CONFIG["groupbuys"]["tea"], "title": o} for o in offers}
    await world.merchant("gbshop", game=GAME, config=config)
    app = world.client.app
    secret, shards = app[SETTINGS].token_secret, app[SETTINGS].shards
    users = (u for u in (f"u{i}" for i in count())
             if on(paused_cluster, Keys().tag(shard_of("gbshop", u, shards))) is not victim)
    members: dict[str, tuple[str, str]] = {}
    codes: dict[str, str] = {}
    for offer in offers:  # a group whose aggregate a living master holds, and a joiner
        opener, joiner = next(users), next(users)
        key = next(k for k in (f"o{i}" for i in count()) if on(paused_cluster, Keys()
                   .aggregate(AggregateRef.of("gbshop", GAME, "groupbuy", group_code(
                       secret, "gbshop", GAME, offer, opener, k), shards))) is not victim)
        code = (await ok(await create(world, world.mint(opener, "gbshop"), offer, key)))["code"]
        await ok(await join(world, world.mint(joiner, "gbshop"), offer, code, "j1"))
        members[offer], codes[offer] = (opener, joiner), code
    assert await sweeper(world).run_once() == 0  # nothing due yet (and both registries marked)
    world.clock.advance(3600)
    silent_index = app[AGGREGATES]["pb"].actions.services.keys.aggregate_index(
        "gbshop", GAME, "groupbuy", offers[0])
    return ThreeOffers(victim, offers, members, codes, silent_index,
                       Keys("pbs").aggregate_indexes("groupbuy"))


async def wallets(world: Any, setup: ThreeOffers) -> dict[str, int]:
    return {u: (await me(world, world.mint(u, "gbshop")))["wallet"]["acorn"]
            for pair in setup.members.values() for u in pair}


async def paused_offer_waited(world: Any, setup: ThreeOffers) -> None:
    """After a pass with ``victim`` paused: the living masters' groups failed (members
    paid back, the merchant told), the paused offer's members still paid."""
    # (getPlayer reads a key on the paused master: the pass's effects are read now)
    assert await wallets(world, setup) == {u: 90 if o == setup.offers[0] else 100
                                           for o, pair in setup.members.items() for u in pair}
    assert sorted(await webhooks(world)) == sorted(
        ("groupbuy.failed", f"groupbuy:{setup.codes[o]}:failed") for o in setup.offers[1:])


async def every_group_ended_once(world: Any, setup: ThreeOffers) -> None:
    """Every member paid back, the merchant told once a group, one charge and one refund
    a member in SQL's ledger."""
    assert await wallets(world, setup) == {u: 100 for pair in setup.members.values()
                                           for u in pair}
    assert sorted(await webhooks(world)) == sorted(
        ("groupbuy.failed", f"groupbuy:{setup.codes[o]}:failed") for o in setup.offers)
    await flush_all(world)
    lg = m.ledger
    async with world.client.app[DB].connect() as conn:
        money = (await conn.execute(select(lg.c.reason, lg.c.user_id, lg.c.delta)
                                    .where(lg.c.reason.like("groupbuy:%"))
                                    .order_by(lg.c.reason, lg.c.user_id, lg.c.delta))).all()
    assert sorted((r[0].split(":")[1], r[1], r[2]) for r in money) == sorted(
        (setup.codes[o], u, d) for o, pair in setup.members.items() for u in pair
        for d in (-10, 10))


async def pass_with_the_victim_paused(world: Any, cluster: RedisCluster, setup: ThreeOffers,
                                      sweep: GroupBuySweep) -> None:
    """One sweep pass with the master of one offer's index paused: the two other offers'
    groups end; the silent index and the shadow registry (real keyspace first) are left
    for the next pass, each read of the silent master costing at most two bounded tries;
    the paused offer's group is still open."""
    pause(setup.victim)
    try:
        started = time.monotonic()
        assert await sweep.run_once() == 2
        took = time.monotonic() - started
        assert sweep.unreached == [setup.silent_index, setup.shadow_registry]
    finally:
        resume(cluster, setup.victim)
    assert took < (2 * REDIS_BOUND + 0.25) * 2 + 2, took
    await paused_offer_waited(world, setup)


async def test_a_group_buy_sweep_ends_the_living_masters_offers_and_retries_the_paused_one(
        world: Any, paused_cluster: RedisCluster) -> None:
    """:class:`ThreeOffers`, due; the master of one offer's index paused. Before, the
    paused offer's index read (sorted first) failed the whole sweep pass: no group
    ended anywhere."""
    setup = await three_offers(world, paused_cluster)
    sweep = sweeper(world)

    await pass_with_the_victim_paused(world, paused_cluster, setup, sweep)
    assert await world.client.app[REDIS].zcard(setup.silent_index) == 1  # still listed

    assert await sweep.run_once() == 1  # the next pass: the paused offer's group
    assert (sweep.unreached, sweep.unreached_total) == ([], 2)
    assert await sweep.run_once() == 0
    await every_group_ended_once(world, setup)


async def test_a_group_buy_index_rebuild_indexes_the_living_masters_offers_first(
        world: Any, paused_cluster: RedisCluster) -> None:
    """:class:`ThreeOffers`, due, in SQL; then Redis lost the offers' indexes and the
    registry's mark that they were built (its offers listed again, as requests do), and
    the rebuild from SQL runs with one index's master paused. Before, its first write to
    that index failed the rebuild and the whole keyspace's sweep with it: no group ended
    anywhere, pass after pass, while the master was silent."""
    setup = await three_offers(world, paused_cluster)
    app = world.client.app
    redis, keys = app[REDIS], app[AGGREGATES]["pb"].actions.services.keys
    registry = keys.aggregate_indexes("groupbuy")
    await flush_all(world)  # the open groups are in SQL, which the rebuild reads
    await redis.srem(registry, INDEXED)
    for offer in setup.offers:
        assert await redis.delete(keys.aggregate_index("gbshop", GAME, "groupbuy", offer)) == 1
    sweep = sweeper(world)

    await pass_with_the_victim_paused(world, paused_cluster, setup, sweep)
    assert INDEXED.encode() not in await redis.smembers(registry)  # rebuilt again next pass
    # what is left is kept: the next pass writes the silent offer's groups alone, not
    # every open group of a scan of SQL again (every 5 s on every host while it is silent)
    assert {name: len(groups) for name, groups in sweep._rebuild_left[registry].items()} \
        == {f"gbshop:{GAME}:{setup.offers[0]}": 1}

    await flush_all(world)  # (the persister's: SQL has the ended groups as failed)
    assert await sweep.run_once() == 1  # the next pass: the paused offer's group
    assert (sweep.unreached, sweep.unreached_total) == ([], 2)
    assert INDEXED.encode() in await redis.smembers(registry)
    assert sweep._rebuild_left == {}
    assert await sweep.run_once() == 0
    await every_group_ended_once(world, setup)


async def test_shoppers_of_the_living_masters_are_served_while_one_is_paused(
        world: Any, paused_cluster: RedisCluster) -> None:
    """With one master silent, only the shoppers of its shards are refused (503 with
    Retry-After); the others read and play, even on a master that has to learn the
    action scripts again (its script cache empty, as after a restart). A script Redis
    did not know was loaded with SCRIPT LOAD, which goes to every master: it waited on
    the silent one and failed a living master's shoppers too."""
    users = [f"u{i}" for i in range(12)]
    tokens = {u: await world.token(u) for u in users}
    for user in users:
        resp = await world.post(f"{GAME_PATH}/pet", tokens[user],
                                {"species": "squirrel", "name": "N"}, f"adopt-{user}")
        assert resp.status == 201, await resp.text()
    victim = paused_cluster.masters[1]
    keys = Keys()
    silent = {u for u in users
              if on(paused_cluster, keys.tag(shard_of("shop", u, 16))).port == victim.port}
    assert 0 < len(silent) < len(users)
    for node in paused_cluster.masters:  # every script cache empty
        assert paused_cluster.client(node).script_flush() is True
    pause(victim)
    try:
        for user in users:
            started = time.monotonic()
            read = await world.get(f"{GAME_PATH}/me", tokens[user])
            fed = await world.post(f"{GAME_PATH}/pet/feed", tokens[user], {"food": "snack"},
                                   f"feed-{user}")
            took = time.monotonic() - started
            if user in silent:
                assert (read.status, fed.status) == (503, 503), user
                assert read.headers["Retry-After"] == fed.headers["Retry-After"] == "1"
            else:
                assert (read.status, fed.status) == (200, 200), (user, await read.text())
                assert took < 0.5, (user, took)  # never waited on the silent master
    finally:
        resume(paused_cluster, victim)
    for user in users:  # the refused feeds, sent again with their keys, apply once
        fed = await world.post(f"{GAME_PATH}/pet/feed", tokens[user], {"food": "snack"},
                               f"feed-{user}")
        assert fed.status == 200, await fed.text()
        me = await (await world.get(f"{GAME_PATH}/me", tokens[user])).json()
        assert me["version"] == 2, user  # adopted, fed: one feed however often sent


async def tier_with_a_silent_shard(world: Any, paused_cluster: RedisCluster,
                                   ) -> tuple[ValueTier, RedisProcess, int]:
    """The shop's value tier with its coupon's stock, the master the test will pause
    (not the one of the coupon's gate) and a logical shard that master serves."""
    await world.merchant(SHOP, game=GAME, config=BOX_CONFIG)
    tier: ValueTier = world.client.app[VALUE]
    await tier.ensure_stock(SHOP, GAME, TOTALS)
    home = tier.gate.stock_key(SHOP, GAME, tier.gate.home(PRIZE))
    victim = next(n for n in paused_cluster.masters if n is not on(paused_cluster, home))
    shard = next(s for s in range(16) if on(paused_cluster, Keys().tag(s)) is victim)
    return tier, victim, shard


async def test_pending_grants_of_a_silent_shard_cost_a_pass_one_bounded_call(
        world: Any, paused_cluster: RedisCluster) -> None:
    """Ten pending grants of players of one shard whose master is paused: the first
    row's idempotency read finds the node silent, and the shard's other rows wait for
    the next pass without asking it again (a shard's keys share one hash tag, so one
    node). Before, each row cost its own two bounded tries: a pass with a thousand such
    rows (a batch) took about a thousand seconds while the master was down."""
    tier, victim, shard = await tier_with_a_silent_shard(world, paused_cluster)
    users = [u for u in (f"u{i}" for i in range(2000)) if shard_of(SHOP, u, 16) == shard][:10]
    assert len(users) == 10
    for user in users:  # attempts that died after the SQL try: a hold and a pending row
        ref = PlayerRef(SHOP, GAME, user, shard)
        await tier._gate(ref, f"c-{user}", {PRIZE: 1}, StockView(), TOTALS)
        await tier._try_sql(ref, f"k-{user}", f"c-{user}", outcome(), {PRIZE: 1})
    world.clock.advance(PENDING_SETTLE_AFTER_S + 1)
    unreached: list[str] = []

    pause(victim)
    try:
        started = time.monotonic()
        assert await tier.reconcile(PENDING_SETTLE_AFTER_S, 1000, unreached) == (0, 0)
        took = time.monotonic() - started
    finally:
        resume(paused_cluster, victim)
    assert unreached == [f"shard {shard}"]
    assert await pending_users(tier) == set(users)
    assert took < 2 * REDIS_BOUND + 0.25 + 2, took  # one call to the silent node

    assert await tier.reconcile(PENDING_SETTLE_AFTER_S, 1000, []) == (0, len(users))
    assert await pending_users(tier) == set()
    assert (await tier.stock_left(SHOP, GAME, TOTALS)).left == {PRIZE: 100}


async def silent_rows_first(world: Any, paused_cluster: RedisCluster,
                            ) -> tuple[ValueTier, RedisProcess, int]:
    """Nine grants left pending by attempts that died after their SQL try: six of
    players of one shard whose master the test pauses (commit ids ``a…``, so they sort
    first), three of players whose masters answer (``b…``). One commit of each kind
    happened (``a0…`` is in SQL's ledger, ``b0…`` in its player's idempotency record):
    those are confirmed, the others voided. Returns (tier, master, silent shard)."""
    tier, victim, shard = await tier_with_a_silent_shard(world, paused_cluster)
    silent = [u for u in (f"s{i}" for i in range(2000)) if shard_of(SHOP, u, 16) == shard]
    living = [u for u in (f"l{i}" for i in range(2000)) if on(
        paused_cluster, Keys().tag(shard_of(SHOP, u, 16))) is not victim]
    players = [("a", u) for u in silent[:6]] + [("b", u) for u in living[:3]]
    for i, (prefix, user) in enumerate(players):
        ref = PlayerRef(SHOP, GAME, user, shard_of(SHOP, user, 16))
        await tier.hold(ref, f"k-{user}", f"{prefix}{i % 6}-{user}", outcome(), StockView(),
                        TOTALS)
    a0, b0 = players[0][1], players[6][1]
    async with tier.db.begin() as conn:
        await conn.execute(insert(m.ledger).values(
            commit_id=f"a0-{a0}", seq=0, merchant_id=SHOP, game_id=GAME, user_id=a0,
            player_version=1, kind="currency", name="acorn", delta=-1, before=1, after=0,
            reason="draw:forest", ts_ms=0))
    b0_ref = PlayerRef(SHOP, GAME, b0, shard_of(SHOP, b0, 16))
    await tier.redis.hset(tier.keys.idempotency(b0_ref, f"k-{b0}"), "x", f"b0-{b0}")
    assert await pending_users(tier) == {u for _, u in players}
    assert (await tier.stock_left(SHOP, GAME, TOTALS)).left == {PRIZE: 91}
    world.clock.advance(PENDING_SETTLE_AFTER_S + 1)
    return tier, victim, shard


def skipped(tier: ValueTier, cluster: RedisCluster, victim: RedisProcess,
            shard: int) -> list[str]:
    """What a pass names unreached: the paused master's gate buckets, then its shard
    (asked before the pause: finding a key's master asks the cluster)."""
    return [k for k in (tier.gate.holds_key(SHOP, GAME, b) for b in range(tier.gate.buckets))
            if on(cluster, k) is victim] + [f"shard {shard}"]


async def settled_right(tier: ValueTier) -> None:
    """Two units granted, seven back: SQL and the gate agree on 98 left."""
    assert await pending_users(tier) == set()
    assert await tier.stock_report(SHOP, GAME, [PRIZE]) == [
        {"ref": PRIZE, "total": 100, "reserved": 0, "granted": 2, "left": 98}]
    assert (await tier.stock_left(SHOP, GAME, TOTALS)).left == {PRIZE: 98}


async def test_a_silent_shards_full_page_of_pending_grants_does_not_hide_the_others(
        world: Any, paused_cluster: RedisCluster) -> None:
    """Pages of 5; the paused master's shard has 6 pending grants, which sort first.
    Before, the pending-grant read had no order and no cursor and a pass stopped after
    its first short batch: each pass read the same 5 silent rows, skipped them, and the
    living shards' grants (their units held out of the gate) waited for the master."""
    tier, victim, shard = await silent_rows_first(world, paused_cluster)
    reconciler = Reconciler([tier], 60, batch=5)
    unreached = skipped(tier, paused_cluster, victim, shard)

    pause(victim)
    try:
        # a0 (in the ledger: no Redis needed), b0 confirmed; b1, b2 voided
        assert await reconciler.run_once() == (2, 2)
        assert reconciler.unreached == unreached
        assert len(await pending_users(tier)) == 5
    finally:
        resume(paused_cluster, victim)
    assert await reconciler.run_once() == (0, 5)  # the next pass: the silent shard's
    assert reconciler.unreached == []
    await settled_right(tier)


async def test_a_pass_capped_by_its_pages_goes_on_where_it_stopped(
        world: Any, paused_cluster: RedisCluster) -> None:
    """One page of 5 a pass: the first reads the silent shard's first five rows (one in
    the ledger), the next goes on after them, not from the start again."""
    tier, victim, shard = await silent_rows_first(world, paused_cluster)
    reconciler = Reconciler([tier], 60, batch=5, pages=1)
    unreached = skipped(tier, paused_cluster, victim, shard)

    pause(victim)
    try:
        assert await reconciler.run_once() == (1, 0)  # a0 confirmed, a1…a4 skipped
        assert await reconciler.run_once() == (1, 2)  # a5 skipped; b0 confirmed, b1, b2
        assert await reconciler.run_once() == (0, 0)  # from the start: a1…a5 skipped
        assert reconciler.unreached == unreached
    finally:
        resume(paused_cluster, victim)
    assert await reconciler.run_once() == (0, 0)  # after a5: nothing, so it starts over
    assert await reconciler.run_once() == (0, 5)
    assert reconciler.unreached == []
    await settled_right(tier)


async def test_owed_follow_ups_a_silent_master_holds_do_not_hide_the_others(
        world: Any, paused_cluster: RedisCluster) -> None:
    """Pages of 2; four setStock writes (+1 unit each) whose process died between the SQL
    commit and the Redis step: the first two owe it to gate buckets on the paused master
    (their rows' ids first), the other two to living masters' buckets. Before, owed
    follow-ups were read as one page without a cursor: every pass read the same two
    silent rows, and the living buckets' units stayed out of the gate."""
    tier, victim, _ = await tier_with_a_silent_shard(world, paused_cluster)

    def keys_whose_bucket(silent: bool) -> list[str]:
        """Two setStock keys whose home bucket is (or is not) on the paused master."""
        return [k for k in (f"{'s' if silent else 'l'}{i}" for i in range(200)) if (on(
            paused_cluster, tier.gate.stock_key(SHOP, GAME, tier.gate.home(k)))
            is victim) is silent][:2]

    silent, living = keys_whose_bucket(True), keys_whose_bucket(False)
    assert len(silent) == len(living) == 2
    for key in silent + living:
        await committed_without_redis_step(world, key, 1)
    world.clock.advance(PENDING_SETTLE_AFTER_S + 1)
    reconciler = Reconciler([tier], 60, batch=2, admin=world.client.app[ADMIN_REQUESTS])
    unreached: list[str] = []

    async def gate() -> int:
        left = await tier.gate.left(SHOP, GAME, [PRIZE])
        assert left is not None
        return sum(left[PRIZE])

    pause(victim)
    try:
        assert await reconciler.settle_followups(unreached) == 2
        assert unreached == [f"follow-up {k}" for k in silent]
    finally:
        resume(paused_cluster, victim)
    assert await gate() == 102  # (a step sent to the paused master may land on resume)
    assert await reconciler.settle_followups(unreached) == 2  # the next pass: the others
    assert await reconciler.settle_followups(unreached) == 0
    assert await gate() == 104
    assert await tier.stock_report(SHOP, GAME, [PRIZE]) == [  # SQL agrees
        {"ref": PRIZE, "total": 104, "reserved": 0, "granted": 0, "left": 104}]


async def test_team_points_reach_the_living_masters_teams_and_the_paused_ones_after(
        world: Any, paused_cluster: RedisCluster) -> None:
    """Two teams, one whose shard the paused master holds, one on another master; their
    owners' player shards on living masters, each with a check-in (5 points) to report;
    the season's board is on the paused master too. Before, the teams hook read the
    batch's teams in one call: the paused one failed it (an ERROR with a traceback), the
    living team got nothing either, and as the owners do not play again neither team
    ever did. Now the living team gets its points in that pass, and the silent one's
    report is kept and applied in the first pass after its master answers, a pass with
    nothing to flush. So is the living team's rank (its follow-up: the board's write
    failed after the points landed), which that pass writes though its points are in."""
    await world.merchant("teamshop", config=TEAM_CONFIG)
    secret = world.client.app[SETTINGS].token_secret
    board = Keys().leaderboard("teamshop", GAME, "s11-teams")  # the teams' follow-up
    victim = on(paused_cluster, board)
    users = (u for u in (f"u{i}" for i in count())
             if on(paused_cluster, Keys().tag(shard_of("teamshop", u, 16))) is not victim)

    def team_of(user: str, silent: bool) -> tuple[str, str]:
        """(Idempotency-Key, team id) of a createTeam whose team is (not) on victim."""
        for key in (f"t{i}" for i in count()):
            tid = team_code(secret, "teamshop", GAME, "s11", user, key)[0]
            ref = AggregateRef.of("teamshop", GAME, team_rules.KIND,
                                  team_rules.aggregate_id("s11", tid), 16)
            if (on(paused_cluster, Keys().aggregate(ref)) is victim) == silent:
                return key, tid
        raise AssertionError

    owners = {silent: Shopper(world, next(users), "teamshop") for silent in (True, False)}
    teams = {}
    for silent, owner in owners.items():
        key, teams[silent] = team_of(owner.user, silent)
        status, made = await owner.post("/teams/s11", {"name": "T"}, key)
        assert status == 200
        if not silent:  # a second member: the team is big enough for the board
            joined = await Shopper(world, next(users), "teamshop").post(
                "/teams/s11/join", {"code": made["code"]})
            assert joined[0] == 200
        assert (await owner.post("/checkin", {}))[0] == 200
    p = app_persister(world.client.app)
    sync = next(cb for cb in p.on_flushed if isinstance(cb, TeamSync))
    sync.kept.rest_s = 0.0  # the silent shard is tried again at once once it answers
    flushed: list[Any] = []

    async def keep(rows: list[Any]) -> None:
        flushed.extend(rows)

    # The rows are flushed before the pause: a pass with a paused master costs a bound
    # in every stage of its shards, the hook is what this test times.
    p.on_flushed[p.on_flushed.index(sync)] = keep
    assert (await p.run_once()).players_flushed == len(flushed) == 3

    pause(victim)
    try:
        started = time.monotonic()
        await sync(flushed)
        took = time.monotonic() - started
        assert sync.kept.pending == {
            ("teamshop", GAME, "s11", teams[silent], owners[silent].user): (1, 5)
            for silent in (True, False)}  # the living team's for its follow-up
    finally:
        resume(paused_cluster, victim)
    # One read of the silent team's shard, one write of the board.
    assert took < 2 * (2 * REDIS_BOUND + 0.25) + 1, took
    assert (await get_team(owners[False], teams[False]))["points"] == 5
    # The board's write sent to the paused master may land on resume: as if it had not.
    await world.client.app[REDIS].delete(board)

    await sync([])  # the persister's call on a pass that flushed nothing
    assert sync.kept.pending == {}
    for silent, owner in owners.items():
        view = await get_team(owner, teams[silent])
        assert (view["points"], view["rank"]) == (5, None if silent else 1)

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL only holds the games
async def test_boards_of_the_living_masters_are_written_and_the_paused_ones_after(
        world: Any, paused_cluster: RedisCluster) -> None:
    """Two games' boards (a board's slot is its game's), one on the paused master. Before,
    the updater wrote every board of the batch in one pipeline: the paused slot failed it
    (an ERROR with a traceback, counted as a failed hook), the living game's board was
    not written either, and as the players do not play again neither board ever was. Now
    the living board is written in that call, the silent one's scores are kept (counted in
    ``petbox_flush_hook_pending{hook="leaderboards"}``) and written on the first call
    after its master answers, a pass with nothing to flush."""
    from gameserver.games import parse_config
    from gameserver.jobs.leaderboards import LeaderboardUpdater
    from gameserver.state.store import encode_state
    from mechanics.pet import new_player
    from mechanics.petstate import PetState
    from tests.integration.test_leaderboards_http import LB_CONFIG

    keys = Keys()
    victim = paused_cluster.masters[0]
    shops = {silent: next(s for s in (f"lb{i}" for i in count()) if (on(
        paused_cluster, keys.leaderboard(s, "squirrel", "pets")) is victim) == silent)
        for silent in (True, False)}
    parsed = parse_config(LB_CONFIG)
    rows = []
    for shop in shops.values():
        await world.merchant(shop, config=LB_CONFIG)
        state = new_player(parsed, 0)
        state.pet = PetState("squirrel", "Nut", {}, 0, 15, 0)
        rows.append(PlayerRow(shop, "squirrel", "ann", 1, encode_state(state), 0, 0, 0, 0))
    app = world.client.app
    metrics = app[METRICS]
    updater = LeaderboardUpdater(app[REDIS], keys, app[GAMES], metrics)
    updater.kept.rest_s = 0.0  # the silent slot is tried again at once once it answers
    pending = metrics.flush_hook_pending.labels("leaderboards")

    async def pets(shop: str) -> list[tuple[bytes, float]]:
        return list(await app[REDIS].zrange(keys.leaderboard(shop, "squirrel", "pets"),
                                            0, -1, withscores=True))

    pause(victim)
    try:
        started = time.monotonic()
        await updater(rows)
        took = time.monotonic() - started
        assert await pets(shops[False]) == [(b"ann", 15.0)]
        assert pending._value.get() == 2  # ann on the silent game's two boards
        assert {k for k, _ in updater.kept.pending} == {
            keys.leaderboard(shops[True], "squirrel", b) for b in ("pets", "rich")}
    finally:
        resume(paused_cluster, victim)
    assert took < 2 * REDIS_BOUND + 0.25 + 1, took  # one bounded write of the silent slot

    await updater([])  # the persister's call on a pass that flushed nothing
    assert await pets(shops[True]) == [(b"ann", 15.0)]
    assert pending._value.get() == 0 and updater.kept.pending == {}
