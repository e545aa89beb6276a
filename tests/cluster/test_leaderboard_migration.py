"""``getLeaderboard`` while the board's slot is being migrated between masters (as
``redis-cli --cluster reshard`` does it: CLUSTER SETSLOT IMPORTING/MIGRATING, then
MIGRATE key by key): a board already moved is read on the importing node (ASK), one
not moved yet on the old owner, and neither answers 503."""

from __future__ import annotations

import time

from redis.crc import key_slot

from gameserver.state.keys import Keys
from tests.conftest import World
from tests.integration.test_leaderboards_http import LB_CONFIG
from tests.redis_cluster import RedisCluster

GAME = "/v1/games/squirrel"
RICH = {"alice": 70, "bob": 90, "carol": 80}
PETS = {"alice": 15, "dave": 20}


def expected(board: str, scores: dict[str, int], me: str) -> tuple[list[tuple[int, int]],
                                                                   dict[str, int]]:
    """(rank, score) of each entry, best first, and ``me``'s standing."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    rank = 1 + [u for u, _ in ranked].index(me)
    return [(i + 1, s) for i, (_, s) in enumerate(ranked)], {"rank": rank,
                                                              "score": scores[me]}


async def test_boards_are_read_while_their_slot_is_migrating(
        world: World, redis_cluster: RedisCluster) -> None:
    await world.merchant("lbshop", config=LB_CONFIG)
    token = await world.token("alice", merchant_id="lbshop")
    keys = Keys()
    rich, pets = (keys.leaderboard("lbshop", "squirrel", b) for b in ("rich", "pets"))
    slot = key_slot(rich.encode())
    assert key_slot(pets.encode()) == slot  # one game's boards share a slot
    source = redis_cluster.owner(slot)
    target = next(n for n in redis_cluster.masters if n is not source)
    redis_cluster.client(source).zadd(rich, RICH)
    redis_cluster.client(source).zadd(pets, PETS)
    for name in ("rich", "pets"):  # the server's slot map knows the owner
        assert (await world.get(f"{GAME}/leaderboards/{name}", token)).status == 200

    redis_cluster.begin_migration(slot, target)
    try:
        # The reshard has moved one board so far: ``rich`` is on the importing node
        # (the old owner answers ASK for it), ``pets`` still on the old owner.
        redis_cluster.client(source).execute_command(
            "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", rich)
        for name, scores in (("rich", RICH), ("pets", PETS)):
            started = time.monotonic()
            resp = await world.get(f"{GAME}/leaderboards/{name}", token)
            body = await resp.json()
            assert resp.status == 200, body
            assert time.monotonic() - started < 1.0  # followed at once, no back-off
            top, me = expected(name, scores, "alice")
            assert [(e["rank"], e["score"]) for e in body["entries"]] == top
            assert body["me"] == me
        for node in (source, target):  # one board on each node all along
            assert redis_cluster.client(node).execute_command(
                "CLUSTER", "COUNTKEYSINSLOT", slot) == 1
    finally:
        redis_cluster.finish_migration(slot, source, target)
        redis_cluster.move_slot(slot, source)
