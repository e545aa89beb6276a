"""Shoppers on a 3-master Redis Cluster over HTTP: petbox is given one node's URL.

1,000 players (200 on PostgreSQL, whose SQL the other suites cover), spread over every
logical shard (so over every master), play every shopper operation with no 5xx; after
a persister flush SQL matches Redis for every player and each ledger sums to its
balance; after every master loses its data (FLUSHALL), every player comes back from SQL
as it was.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from gameserver.appkeys import REDIS, SETTINGS
from gameserver.db import models as m
from gameserver.persister import Persister
from gameserver.state.keys import PlayerRef, shard_of
from gameserver.state.redisclient import is_cluster
from gameserver.state.store import decode_state
from tests.conftest import World, app_persister, retry_503
from tests.redis_cluster import RedisCluster

GAME = "/v1/games/squirrel"
PLAYERS = 1000
PLAYERS_ON_POSTGRES = 200
_keys = itertools.count()


class Player:
    def __init__(self, world: World, user: str) -> None:
        self.world, self.user, self.token = world, user, ""
        self.statuses: list[tuple[str, int]] = []

    async def post(self, path: str, body: Any, expect: int = 200) -> Any:
        # A 503 (a node slow on a loaded machine) is retried with its key, as clients do.
        resp = await self.world.post_retrying(f"{GAME}{path}", self.token, body,
                                              f"k{next(_keys)}")
        self.statuses.append((path, resp.status))
        out = await resp.json()
        assert resp.status == expect, (self.user, path, out)
        return out

    async def get(self, path: str) -> Any:
        resp = await retry_503(lambda: self.world.get(f"{GAME}{path}", self.token))
        self.statuses.append((path, resp.status))
        assert resp.status == 200, (self.user, path, await resp.text())
        return await resp.json()

    async def play(self) -> dict[str, Any]:
        """Every shopper operation once; returns the player as getPlayer shows it last."""
        self.token = await self.world.token(self.user)
        await self.post("/pet", {"species": "squirrel", "name": "Nutty"}, 201)
        await self.post("/pet/feed", {"food": "acorn_snack"})
        await self.post("/pet/play", {})
        await self.post("/pet/clean", {})
        await self.post("/checkin", {})
        await self.post("/tasks/follow_shop/complete", {})
        await self.post("/tasks/browse_shop/start", {})
        await self.post("/boxes/forest_friends/draw", {"count": 1})
        await self.post("/exchange", {"offer": "hat_for_acorns"}, 409)  # too few acorns
        await self.get("/leaderboards/top_squirrels")
        await self.get("/draws")
        return dict(await self.get("/me"))


async def _play_all(world: World, users: list[str]) -> tuple[list[Player], list[dict[str, Any]]]:
    players = [Player(world, user) for user in users]
    gate = asyncio.Semaphore(50)

    async def one(player: Player) -> dict[str, Any]:
        async with gate:
            return await player.play()

    return players, list(await asyncio.gather(*(one(p) for p in players)))


def _users(shards: int, count: int) -> list[str]:
    users = [f"shopper{i}" for i in range(count)]
    assert {shard_of("shop", u, shards) for u in users} == set(range(shards))
    return users


def _persister(world: World) -> Persister:
    """A persister on the app's cluster client, writing leaderboards as serve's does."""
    return app_persister(world.client.app, consumer="cluster-test", db=world.db)


async def _check_sql(world: World, views: dict[str, dict[str, Any]]) -> None:
    """SQL's row of every player is the version and wallet Redis served, and the
    player's currency ledger sums to its wallet minus the initial grant."""
    shards = world.client.app[SETTINGS].shards
    lg = m.ledger
    async with world.db.engine.connect() as conn:
        sums = (await conn.execute(
            select(lg.c.user_id, lg.c.name, func.sum(lg.c.delta))
            .where(lg.c.kind == "currency").group_by(lg.c.user_id, lg.c.name))).all()
    ledger: dict[str, dict[str, int]] = {}
    for user, name, total in sums:
        ledger.setdefault(user, {})[name] = int(total)
    for user, view in views.items():
        row = await world.db.fetch_player(PlayerRef("shop", "squirrel", user,
                                                    shard_of("shop", user, shards)))
        assert row is not None and row[0] == view["version"], user
        wallet = decode_state(row[1]).wallet
        assert wallet == view["player"]["wallet"], user
        initial = {"acorn": 600, "gem": 0}  # gameserver/examples/squirrel-omg.json
        expected = {c: v - initial.get(c, 0) for c, v in wallet.items()
                    if v - initial.get(c, 0)}
        assert {c: v for c, v in ledger.get(user, {}).items() if v} == expected, user


@pytest.fixture
async def demo_world(client: Any, db: Any, clock: Any, example_config: dict[str, Any]) -> World:
    """Merchant ``shop`` with the demo game (boxes, leaderboards, tasks, offers)."""
    world = World(client, db, clock, example_config)
    await world.merchant()
    return world


async def test_players_on_every_master_play_everything(demo_world: World,
                                                       redis_cluster: RedisCluster,
                                                       db_url: str) -> None:
    world = demo_world
    app = world.client.app
    assert is_cluster(app[REDIS])
    count = PLAYERS if db_url.startswith("sqlite") else PLAYERS_ON_POSTGRES
    users = _users(app[SETTINGS].shards, count)
    players, views = await _play_all(world, users)

    statuses = Counter(status for p in players for _path, status in p.statuses)
    assert not [s for s in statuses if s >= 500], statuses
    assert sum(statuses.values()) == count * 12
    persister = _persister(world)
    assert await persister.final_flush() is True
    await _check_sql(world, dict(zip(users, views, strict=True)))
    board = await players[0].get("/leaderboards/top_squirrels?limit=100")
    assert len(board["entries"]) == 100  # the board's size, from players of every shard

    # Every master loses its data: the persister's epochs see it on every shard, and
    # every player comes back from SQL as it was.
    redis_cluster.flushall()
    report = await persister.run_once()
    assert sorted(report.lost_shards) == list(range(app[SETTINGS].shards)), report.errors
    for user, view in zip(users, views, strict=True):
        token = await world.token(user)
        again = await (await world.get(f"{GAME}/me", token)).json()
        assert again["version"] == view["version"], user
        assert again["player"]["wallet"] == view["player"]["wallet"], user
