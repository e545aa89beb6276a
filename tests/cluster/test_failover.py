"""Readiness per slot range, and a master failover under play.

A cluster of 3 masters, each with a replica (each test's own: the test kills a
master). ``/readyz`` lists every master with its slots and logical shards; with one
master killed it answers 503 naming exactly that master's shards (and
``/metrics`` says the same), until its replica has taken over: then it is 200
again and the players of those shards play on, with no 5xx.

The failover test records what a merchant needs to know (a ``RELIABILITY`` line, and
``PETBOX_RELIABILITY_FIGURES`` as for ``tests/reliability``): seconds from the kill
until ``/readyz`` is 200, requests answered 503 meanwhile, acknowledged actions the
promoted replica lacks (Redis replicates asynchronously), and the shards affected.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema_rs
import pytest
from redis.crc import key_slot

from gameserver.api.common import request_hash
from gameserver.api.poll import CODEC as POLL_CODEC
from gameserver.appkeys import CLOCK, GAMES, KEYS, METRICS, REDIS, SETTINGS
from gameserver.jobs.lease import ShardLeases
from gameserver.ops.settings import Settings
from gameserver.persister import Persister
from gameserver.state.aggregates_app import AGGREGATES
from gameserver.state.aggregates_gate import OwedReconciler
from gameserver.state.keys import AggregateRef, Keys, PlayerRef, shard_of
from gameserver.state.redisclient import open_redis
from gameserver.state.scripts import Script
from gameserver.state.stockgate import StockGate
from mechanics import poll as poll_rules
from tests.conftest import World
from tests.integration.test_poll_http import POLL_CONFIG, VOTE
from tests.redis_cluster import RedisCluster, running_cluster
from tests.reliability.harness import write_figures

GAME = "/v1/games/squirrel"


class _VoteRequest:  # what request_hash reads of a castVote request
    method, path = "POST", VOTE


@pytest.fixture
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A cluster per test (each SQL backend's run kills a master of its own)."""
    with running_cluster(tmp_path_factory.mktemp("failover"), replicas_per_master=1) as c:
        yield c


@pytest.fixture
def redis_url(replicated: RedisCluster) -> str:
    replicated.flushall()
    return replicated.url


async def readyz(world: World) -> tuple[int, dict[str, Any]]:
    """``/readyz``'s status and report, checked against what /openapi.json documents for
    that status (a 503 is the report too, not an Error) and with Retry-After when 503."""
    resp = await world.client.get("/readyz")
    body = await resp.json()
    doc = await (await world.client.get("/openapi.json")).json()
    answer = doc["paths"]["/readyz"]["get"]["responses"][str(resp.status)]
    schema = {**answer["content"]["application/json"]["schema"],
              "components": doc["components"]}
    assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)] == []
    assert ("Retry-After" in resp.headers) == (resp.status == 503)
    return resp.status, body


def shards_on(cluster: RedisCluster, port: int, shards: int) -> list[int]:
    """The logical shards whose slot the master on ``port`` serves."""
    return [s for s in range(shards)
            if cluster.owner(key_slot(Keys().tag(s).encode())).port == port]


async def _play_round(world: World, tokens: dict[str, str], tag: str) -> list[tuple[str, int]]:
    """Every player feeds once (at once); returns (user, status) per request."""
    async def feed(user: str) -> tuple[str, int]:
        resp = await world.post(f"{GAME}/pet/feed", tokens[user], {"food": "snack"},
                                f"{tag}-{user}")
        return user, resp.status
    return list(await asyncio.gather(*(feed(u) for u in tokens)))


async def _versions(world: World, tokens: dict[str, str]) -> dict[str, int]:
    """Every player's version as ``getPlayer`` serves it (one per committed action)."""
    async def one(user: str) -> tuple[str, int]:
        resp = await world.get(f"{GAME}/me", tokens[user])
        assert resp.status == 200, await resp.text()
        return user, int((await resp.json())["version"])
    return dict(await asyncio.gather(*(one(u) for u in tokens)))


async def test_readiness_lists_every_master_with_its_shards(world: World,
                                                          replicated: RedisCluster) -> None:
    status, body = await readyz(world)
    assert status == 200 and body["checks"] == {"redis": "ok", "sql": "ok"}
    nodes = body["redis_nodes"]
    assert sorted(n["node"] for n in nodes) == sorted(
        f"127.0.0.1:{m.port}" for m in replicated.masters)
    assert sorted(s for n in nodes for s in n["shards"]) == list(range(16))
    for node in nodes:
        port = int(node["node"].rsplit(":", 1)[1])
        assert node["shards"] == shards_on(replicated, port, 16)
        assert node["status"] == "ok" and node["slots"]


async def test_a_killed_master_fails_its_shards_until_its_replica_takes_over(
        world: World, replicated: RedisCluster) -> None:
    users = [f"u{i}" for i in range(48)]
    tokens = {u: await world.token(u) for u in users}
    for user in users:
        resp = await world.post(f"{GAME}/pet", tokens[user], {"species": "squirrel",
                                                             "name": "N"}, f"a-{user}")
        assert resp.status == 201, await resp.text()
    persister = Persister(world.client.app[REDIS], world.client.app[KEYS], world.db,
                          world.client.app[METRICS], world.client.app[CLOCK],
                          shards=world.client.app[SETTINGS].shards, consumer="failover")
    assert (await persister.run_once()).ok  # epochs recorded, the adoptions in SQL
    # One more acknowledged action each, the last just before the kill: the writes a
    # promoted replica could lack (replication is asynchronous).
    before = await _play_round(world, tokens, "b")
    assert {s for _u, s in before} == {200}
    victim = replicated.masters[1]
    lost = shards_on(replicated, victim.port, 16)
    victim.kill()
    killed = time.monotonic()

    status, body = await readyz(world)
    assert status == 503, body
    assert body["checks"]["redis"] == (f"unavailable: shards {lost} on "
                                       f"127.0.0.1:{victim.port}")
    metrics = await (await world.client.get("/metrics")).text()
    assert f'petbox_redis_node_up{{node="127.0.0.1:{victim.port}"}} 0.0' in metrics
    assert f"petbox_redis_shards_down {float(len(lost))}" in metrics

    # The replica takes over (cluster-node-timeout 1 s): ready again, on a new master.
    # Meanwhile shoppers keep playing: those of the lost shards get 503 (retry later),
    # never a 500; the others are served.
    started = time.monotonic()
    during: list[tuple[str, int]] = []
    rounds = 0
    while (await readyz(world))[0] != 200:
        assert time.monotonic() - started < 20, "no failover within 20 s"
        if rounds < 6:  # 100 acorns buy 10 snacks: 6 rounds, the first 48 and the last
            rounds += 1
            during += await _play_round(world, tokens, f"w{rounds}")
        await asyncio.sleep(0.1)
    took = time.monotonic() - killed
    status, body = await readyz(world)
    ports = {int(n["node"].rsplit(":", 1)[1]) for n in body["redis_nodes"]}
    assert victim.port not in ports and len(ports) == 3
    assert {s for _u, s in during} <= {200, 503}
    assert {u for u, s in during if s == 503} <= {u for u in users
                                                  if shard_of("shop", u, 16) in lost}
    assert [s for u, s in during if shard_of("shop", u, 16) not in lost] == \
        [200] * sum(1 for u, _s in during if shard_of("shop", u, 16) not in lost)

    # What the promoted replica has: every acknowledged action (adopt, feeds) is one
    # version; a player may lack some (asynchronous replication), never have more.
    acked = {u: 2 + sum(1 for v, s in during if v == u and s == 200) for u in users}
    versions = await _versions(world, tokens)
    missing = {u: acked[u] - versions[u] for u in users if versions[u] != acked[u]}
    assert all(n > 0 for n in missing.values()), missing  # nothing applied twice
    assert {shard_of("shop", u, 16) for u in missing} <= set(lost), missing
    # The persister on the promoted replica: every shard answers, no shard looks as if
    # it lost its data (its epoch key was replicated), and SQL catches up with what
    # the replica serves.
    report = await persister.run_once()
    assert report.ok and report.lost_shards == [], report
    assert await persister.final_flush() is True
    for user in users:
        row = await world.db.fetch_player(PlayerRef("shop", "squirrel", user,
                                                    shard_of("shop", user, 16)))
        assert row is not None and row[0] == versions[user], user
    write_figures("cluster_failover", {
        "sql": world.db.engine.dialect.name,
        "ready_after_s": round(took, 2), "requests": len(during),
        "answered_503": sum(s == 503 for _u, s in during),
        "other_5xx": sum(s >= 500 and s != 503 for _u, s in during),
        "acknowledged": sum(acked.values()), "acknowledged_lost": sum(missing.values()),
        "players_lost_some": len(missing), "shards_down": lost, "shards": 16})

    statuses = []
    for user in users:  # every player, those of the failed-over shards among them
        resp = await world.post(f"{GAME}/pet/feed", tokens[user], {"food": "snack"},
                                f"f-{user}")
        statuses.append(resp.status)
    assert statuses == [200] * len(users)
    assert {shard_of("shop", u, 16) for u in users} >= set(lost)


async def test_owed_records_of_living_masters_are_applied_while_a_slot_range_is_down(
        world: World, replicated: RedisCluster) -> None:
    """A master and its replica are both down (its slots served by nobody, which
    ``cluster-require-full-coverage no`` confines to its own shards): the owed
    reconciler still applies the owed shopper sides whose aggregate shards live on
    the other masters; those of the dead range wait for it."""
    config = copy.deepcopy(POLL_CONFIG)
    config["polls"]["best"]["buckets"] = 16  # buckets over every master
    await world.merchant("pollshop", config=config)
    app = world.client.app
    live = await app[GAMES].get("pollshop", "squirrel")
    poll = live.config.polls["best"]
    victim = replicated.masters[0]
    dead_aggs = {s for s in range(16) if replicated.owner(
        key_slot(Keys().aggregate_tag(s).encode())).port == victim.port}
    dead_players = set(shards_on(replicated, victim.port, 16))
    owed: dict[str, int] = {}  # user -> aggregate shard of the vote's bucket
    for i in range(60):
        user = f"o{i}"
        player = PlayerRef("pollshop", "squirrel", user, shard_of("pollshop", user, 16))
        if player.shard in dead_players:
            continue  # shoppers of living masters only: their side can be applied
        bucket = AggregateRef.of("pollshop", "squirrel", "poll",
                                 poll_rules.bucket_id("best", poll_rules.bucket_of(user, 16)),
                                 16)
        body = b'{"option":"red"}'
        # The gate's commit only: what a request that died after it leaves.
        await app[AGGREGATES]["pb"].store.run(
            bucket, POLL_CODEC, user, f"k{i}", request_hash(_VoteRequest(), body),  # type: ignore[arg-type]
            lambda b, now, u=user: poll_rules.cast_vote(b, poll, u, "red", now, live.tz),
            owed_to=player)
        owed[user] = bucket.shard
    assert set(owed.values()) & dead_aggs
    # the aggregate shards the reconciler reaches after a dead one hold records too
    assert [a for a in owed.values() if a > min(dead_aggs) and a not in dead_aggs]
    for node in replicated.masters:  # a cluster in service: every master has the scripts
        for lua in resources.files("gameserver.state").joinpath("lua").iterdir():
            replicated.client(node).script_load(lua.read_text())
    replicated.replicas[0].kill()
    victim.kill()

    world.clock.advance(6)
    reconciler = OwedReconciler([app[AGGREGATES]["pb"].actions], app[GAMES], app[CLOCK],
                                16, 1.0, older_than_s=5.0)
    report = await reconciler.run_once()
    reachable = {u for u, a in owed.items() if a not in dead_aggs}
    assert {n.split("|")[1] for n in report.names} == reachable
    assert sorted(report.shards_waiting) == sorted(dead_aggs)
    for user in sorted(reachable):
        resp = await world.get(f"{GAME}/me", world.mint(user, "pollshop"))
        assert (await resp.json())["player"]["wallet"] == {"acorn": 95, "ticket": 1}, user


async def test_scripts_run_on_living_masters_that_lack_them_while_a_master_is_down(
        replicated: RedisCluster, redis_url: str) -> None:
    """A script a living master has not cached (a new release's script, a restarted
    or promoted node) is loaded on that master alone: loading it on every master
    failed while one was down, so such calls failed on the healthy masters too (e.g.
    every limited-stock reservation)."""
    client = await open_redis(redis_url, Settings(redis_url=redis_url))
    try:
        victim = replicated.masters[0]
        replicated.replicas[0].kill()
        victim.kill()
        for node in replicated.masters[1:]:
            replicated.client(node).script_flush()
        keys = [f"pbtest:{{live{i}}}" for i in range(40)]
        living = [k for k in keys if replicated.owner(key_slot(k.encode())) is not victim]
        incr = Script("return redis.call('INCR', KEYS[1])", redis=client)
        assert [await incr(keys=[k]) for k in living] == [1] * len(living)
        gate = StockGate(client, Keys())
        buckets = [b for b in range(gate.buckets) if replicated.owner(key_slot(
            gate.stock_key("shop", "squirrel", b).encode())) is not victim]
        assert buckets
        for bucket in buckets:  # no such hold: nothing goes back, but the script ran
            assert await gate.end_hold("shop", "squirrel", bucket, "nohold", True) == 0
    finally:
        await client.aclose()


async def test_shard_leases_of_living_masters_hold_while_a_slot_range_is_down(
        replicated: RedisCluster, redis_url: str) -> None:
    """A master and its replica are down: the lease pipeline, which fails whole on a
    cluster when one node does not answer, falls back to one command per shard, so the
    persister keeps the shards of the living masters (and flushes them) and leaves the
    dead range's until its node is back. Before, no shard was held: write-behind to SQL
    stopped for every shard while any master was down."""
    client = await open_redis(redis_url, Settings(redis_url=redis_url))
    try:
        leases = ShardLeases(client, "p", 16, 5000)
        assert await leases.assign() == list(range(16))  # one host: every shard
        victim = replicated.masters[0]
        dead = {s for s in range(16)
                if replicated.owner(key_slot(leases.key(s).encode())) is victim}
        assert dead and len(dead) < 16
        replicated.replicas[0].kill()
        victim.kill()
        assert await leases.assign() == sorted(set(range(16)) - dead)
        assert await leases.assign() == sorted(set(range(16)) - dead)  # and it stays so
    finally:
        await client.aclose()
