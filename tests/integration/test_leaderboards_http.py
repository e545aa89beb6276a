"""Leaderboards over HTTP against real Redis and SQL: the persister's hook writes the
boards from the states it flushes, ``getLeaderboard`` reads them.

Players (BASIC_CONFIG: 100 acorns to start; a snack costs 10 and gives 5 xp):

=======  ======  ==  ======
player   snacks  xp  acorns
=======  ======  ==  ======
alice    3       15  70
bob      1       5   90
carol    2       10  80
dave     0       0   100
erin     1       5   90
=======  ======  ==  ======
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import Any

import pytest

from gameserver.appkeys import GAMES, KEYS, REDIS, SETTINGS
from gameserver.db.persist import PlayerRow
from gameserver.jobs.leaderboards import KEEP_FACTOR, LeaderboardUpdater
from gameserver.persister import Persister
from gameserver.state.keys import Keys
from mechanics.masking import masked_id
from tests.conftest import BASIC_CONFIG, World, app_persister
from tests.integration.test_shadow import SHADOW_HEADERS, shadow_token

GAME = "/v1/games/squirrel"
LB_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
LB_CONFIG["leaderboards"] = {
    "pets": {"name": "Top pets", "metric": "xp", "size": 2},
    "rich": {"name": "Richest", "metric": "currency:acorn"},
}
SNACKS = {"alice": 3, "bob": 1, "carol": 2, "dave": 0, "erin": 1}


def persister(world: World, *, shadow: bool = False) -> Persister:
    """A persister like the server's (leaderboard hook included) on one keyspace."""
    return app_persister(world.client.app, shadow=shadow)


async def play(world: World, token: str, user: str, snacks: int,
               headers: dict[str, str] | None = None) -> None:
    """Adopt a pet and feed it ``snacks`` snacks."""
    extra = headers or {}
    calls = [("/pet", {"species": "squirrel", "name": "Nut"})] + [
        ("/pet/feed", {"food": "snack"})] * snacks
    for i, (path, body) in enumerate(calls):
        resp = await world.client.post(f"{GAME}{path}", json=body, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": f"{user}-{i}", **extra})
        assert resp.status in (200, 201), await resp.text()


async def board(world: World, token: str, name: str, query: str = "",
                headers: dict[str, str] | None = None) -> Any:
    resp = await world.client.get(f"{GAME}/leaderboards/{name}{query}", headers={
        "Authorization": f"Bearer {token}", **(headers or {})})
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.fixture
async def lb(world: World) -> tuple[World, dict[str, str]]:
    """Merchant ``lbshop`` with five players who played and were flushed once."""
    await world.merchant("lbshop", config=LB_CONFIG)
    tokens = {u: await world.token(u, merchant_id="lbshop") for u in SNACKS}
    for user, snacks in SNACKS.items():
        await play(world, tokens[user], user, snacks)
    report = await persister(world).run_once()
    assert report.ok and report.players_flushed == 5
    return world, tokens


def entries(body: Any) -> list[tuple[int, str, int]]:
    """(rank, user, score): each entry's masked name read back (the real players of
    these tests mask to distinct names: their first letters)."""
    unmask = {masked_id(u): u for u in [*SNACKS, "olga", "rita"]}
    assert len(unmask) == len(SNACKS) + 2
    return [(e["rank"], unmask[e["name"]], e["score"]) for e in body["entries"]]


async def test_ranks_and_scores_are_exact(lb: tuple[World, dict[str, str]]) -> None:
    world, tokens = lb
    pets = await board(world, tokens["alice"], "pets")
    assert pets == {"board": "pets", "name": "Top pets", "metric": "xp", "size": 2,
                    "show": "masked",
                    "entries": [{"rank": 1, "name": "a***", "score": 15, "you": True},
                                {"rank": 2, "name": "c***", "score": 10, "you": False}],
                    "me": {"rank": 1, "score": 15},
                    "updated_within_s": world.client.app[SETTINGS].flush_interval}
    rich = await board(world, tokens["alice"], "rich")
    # Equal scores (bob, erin: 90) are ordered by user id, descending (ZREVRANGE).
    assert entries(rich) == [(1, "dave", 100), (2, "erin", 90), (3, "bob", 90),
                             (4, "carol", 80), (5, "alice", 70)]
    assert rich["me"] == {"rank": 5, "score": 70}


async def test_me_outside_the_top_and_off_the_board(lb: tuple[World, dict[str, str]]) -> None:
    world, tokens = lb
    bob = await board(world, tokens["bob"], "pets")
    assert entries(bob) == [(1, "alice", 15), (2, "carol", 10)]
    assert bob["me"] == {"rank": 4, "score": 5}  # behind erin on the tie
    dave = await board(world, tokens["dave"], "pets")
    assert dave["me"] is None  # no xp: a score of 0 is not on the board
    never = await world.token("frank", merchant_id="lbshop")
    assert (await board(world, never, "rich"))["me"] is None
    top2 = await board(world, tokens["dave"], "rich", "?limit=2")
    assert entries(top2) == [(1, "dave", 100), (2, "erin", 90)]
    assert top2["me"] == {"rank": 1, "score": 100}


async def test_boards_follow_the_flushes(lb: tuple[World, dict[str, str]]) -> None:
    world, tokens = lb
    for i in range(3):  # bob: 5 → 20 xp, 90 → 60 acorns
        resp = await world.post(f"{GAME}/pet/feed", tokens["bob"], {"food": "snack"}, f"b{i}")
        assert resp.status == 200
    stale = await board(world, tokens["bob"], "pets")
    assert stale["me"] == {"rank": 4, "score": 5}  # not flushed yet: one interval behind
    await persister(world).run_once()
    fresh = await board(world, tokens["bob"], "pets")
    assert entries(fresh) == [(1, "bob", 20), (2, "alice", 15)]
    assert fresh["me"] == {"rank": 1, "score": 20}
    assert entries(await board(world, tokens["bob"], "rich"))[-2:] == [(4, "alice", 70),
                                                                       (5, "bob", 60)]


async def test_bad_requests(lb: tuple[World, dict[str, str]]) -> None:
    world, tokens = lb
    token = tokens["alice"]
    unknown = await world.get(f"{GAME}/leaderboards/nope", token)
    assert unknown.status == 404
    body = await unknown.json()
    assert body["error"]["code"] == "unknown_item"
    assert body["error"]["details"]["known"] == ["pets", "rich"]
    for query in ("?limit=0", "?limit=3", "?limit=x", "?limit=-1",  # pets has size 2
                  "?limit=%C2%B2", "?limit=0000000003"):
        resp = await world.get(f"{GAME}/leaderboards/pets{query}", token)
        assert resp.status == 422, query
    anonymous = await world.client.get(f"{GAME}/leaderboards/pets")
    assert anonymous.status == 401
    merchant_key = world.merchants["lbshop"].api_key
    assert (await world.get(f"{GAME}/leaderboards/pets", merchant_key)).status == 403


async def test_another_merchants_game_is_not_found(lb: tuple[World, dict[str, str]]) -> None:
    world, tokens = lb
    await world.merchant("other", game="forest", config=LB_CONFIG)
    resp = await world.get("/v1/games/forest/leaderboards/pets", tokens["alice"])
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    # Same game id at two merchants: separate boards.
    shop_token = await world.token("zed", merchant_id="shop")  # shop's game has no boards
    assert (await world.get(f"{GAME}/leaderboards/pets", shop_token)).status == 404
    other = await world.token("olga", merchant_id="other")
    await world.post("/v1/games/forest/pet", other, {"species": "squirrel", "name": "O"}, "o1")
    await persister(world).run_once()
    resp = await world.get("/v1/games/forest/leaderboards/rich", other)
    assert entries(await resp.json()) == [(1, "olga", 100)]


async def test_shadow_players_never_reach_the_real_board(
        lb: tuple[World, dict[str, str]]) -> None:
    from gameserver.ops.provision import create_merchant, publish_config

    world, _ = lb
    now = int(world.clock.now())
    world.merchants["lt"] = await create_merchant(world.db, "lt", now, load_test=True)
    await publish_config(world.db, "lt", "squirrel", LB_CONFIG, now)
    real = await world.token("rita", merchant_id="lt")
    await play(world, real, "rita", 1)
    for i in range(3):
        resp = await shadow_token(world, f"bot-{i}")
        await play(world, (await resp.json())["token"], f"bot-{i}", 3, SHADOW_HEADERS)
    await persister(world).run_once()
    await persister(world, shadow=True).run_once()
    real_board = await board(world, real, "pets")
    assert entries(real_board) == [(1, "rita", 5)]
    bot = (await (await shadow_token(world, "bot-0")).json())["token"]
    shadow_board = await board(world, bot, "pets", headers=SHADOW_HEADERS)
    # bot-2 and bot-1 (their order is the zrange's below, reversed)
    assert [(e["rank"], e["name"], e["score"]) for e in shadow_board["entries"]] == [
        (1, "b***", 15), (2, "b***", 15)]
    assert shadow_board["me"] == {"rank": 3, "score": 15}
    redis = world.client.app[REDIS]
    assert await redis.zrange(Keys("pbs").leaderboard("lt", "squirrel", "pets"), 0, -1) == [
        b"bot-0", b"bot-1", b"bot-2"]
    assert await redis.exists(Keys().leaderboard("lt", "squirrel", "rich"))


async def test_boards_are_trimmed_to_ten_times_their_size(world: World) -> None:
    await world.merchant("lbshop", config=LB_CONFIG)  # pets: size 2 → keeps 20
    players = [f"p{i:02d}" for i in range(25)]
    for i, user in enumerate(players):
        await play(world, await world.token(user, merchant_id="lbshop"), user, 1 + i % 9)
    await persister(world).run_once()
    redis = world.client.app[REDIS]
    key = Keys().leaderboard("lbshop", "squirrel", "pets")
    assert await redis.zcard(key) == KEEP_FACTOR * 2
    kept = {m.decode(): int(s) for m, s in await redis.zrange(key, 0, -1, withscores=True)}
    assert min(kept.values()) >= min(sorted((1 + i % 9) * 5 for i in range(25))[5:])


async def test_a_failing_hook_never_breaks_the_flush(lb: tuple[World, dict[str, str]]) -> None:
    world, tokens = lb
    resp = await world.post(f"{GAME}/pet/feed", tokens["dave"], {"food": "snack"}, "d1")
    assert resp.status == 200

    async def broken(rows: list[Any]) -> None:
        raise RuntimeError("boom")

    p = persister(world)
    p.on_flushed.insert(0, broken)
    errors = p.metrics.persister_errors.labels("on_flushed")
    before = errors._value.get()
    report = await p.run_once()
    assert report.ok and report.players_flushed == 1
    assert errors._value.get() == before + 1
    # The updater after the broken hook still ran; ties with erin and bob: erin, dave, bob.
    assert (await board(world, tokens["dave"], "pets"))["me"] == {"rank": 4, "score": 5}
    backlog = await p.backlog()
    assert backlog.dirty == 0


async def test_a_board_of_an_unpublished_game_is_skipped(
        lb: tuple[World, dict[str, str]]) -> None:
    world, _ = lb
    updater = LeaderboardUpdater(world.client.app[REDIS], Keys(), world.client.app[GAMES])
    row = PlayerRow("nobody", "gone", "u1", 1, b"\x80", 0, 0, 0, 0)
    assert await updater.board_writes([row]) == {}
    garbage = PlayerRow("lbshop", "squirrel", "u2", 1, b"\xc1", 0, 0, 0, 0)
    assert await updater.board_writes([garbage]) == {}


async def test_the_server_wires_the_hook(aiohttp_client: Any, settings: Any, db: Any,
                                         clock: Any) -> None:
    from gameserver.app import PERSISTERS, create_app

    live = dataclasses.replace(settings, run_persister=True)
    client = await aiohttp_client(create_app(live, clock=clock))
    world = World(client, db, clock, LB_CONFIG)
    await world.merchant("lbshop")
    persisters = client.app[PERSISTERS]
    assert [p.keys.prefix for p in persisters] == ["pb", "pbs"]
    assert all(any(isinstance(cb, LeaderboardUpdater) and cb.keys is p.keys
                   for cb in p.on_flushed) for p in persisters)
    token = await world.token("alice", merchant_id="lbshop")
    await play(world, token, "alice", 2)
    # The server's own persister runs every 0.05 s; a pass may fall between the two
    # plays (the board then shows 5 for a moment), so wait for the second one's flush.
    for _ in range(200):
        body = await board(world, token, "pets")
        if entries(body) == [(1, "alice", 10)]:
            break
        await asyncio.sleep(0.05)
    assert entries(body) == [(1, "alice", 10)]


async def test_a_pet_name_board_names_players_by_their_pet(world: World) -> None:
    """Leaderboards showed raw user ids (platform openids) to every shopper."""
    config = copy.deepcopy(LB_CONFIG)
    config["leaderboards"]["named"] = {"name": "Pets", "metric": "xp", "show": "pet_name"}
    await world.merchant("petshop", config=config)
    users = {"oWx1-alice-openid": ("Hazel", 2), "oWx1-bob-openid": ("Pip", 1)}
    tokens = {u: await world.token(u, merchant_id="petshop") for u in users}
    for user, (pet, snacks) in users.items():
        calls = [("/pet", {"species": "squirrel", "name": pet})] + [
            ("/pet/feed", {"food": "snack"})] * snacks
        for i, (path, body) in enumerate(calls):
            assert (await world.post(f"{GAME}{path}", tokens[user], body,
                                     f"p{i}")).status in (200, 201)
    await persister(world).run_once()
    named = await board(world, tokens["oWx1-bob-openid"], "named")
    assert named["show"] == "pet_name"
    assert named["entries"] == [{"rank": 1, "name": "Hazel", "score": 10, "you": False},
                                {"rank": 2, "name": "Pip", "score": 5, "you": True}]
    masked = await board(world, tokens["oWx1-bob-openid"], "pets")
    assert [e["name"] for e in masked["entries"]] == ["oW***id", "oW***id"]
    for body in (named, masked):
        assert "alice" not in str(body) and "bob" not in str(body)


async def test_pet_names_are_kept_to_about_the_board(world: World) -> None:
    """The names hash beside a pet_name board is pruned to the board's members once it
    holds twice what the board keeps (so it stays bounded like the board)."""
    from gameserver.games import parse_config
    from gameserver.state.store import encode_state
    from mechanics.pet import new_player
    from mechanics.petstate import PetState

    config = copy.deepcopy(LB_CONFIG)
    config["leaderboards"] = {"named": {"name": "N", "metric": "xp", "size": 1,
                                        "show": "pet_name"}}  # keeps 10
    await world.merchant("lbshop", config=config)
    parsed = parse_config(config)

    def row(user: str, xp: int) -> PlayerRow:
        state = new_player(parsed, 0)
        state.pet = PetState("squirrel", f"Pet-{user}", {}, 0, xp, 0)
        return PlayerRow("lbshop", "squirrel", user, 1, encode_state(state), 0, 0, 0, 0)

    app = world.client.app
    updater = LeaderboardUpdater(app[REDIS], app[KEYS], app[GAMES])
    redis, keys = app[REDIS], app[KEYS]
    board_key = keys.leaderboard("lbshop", "squirrel", "named")
    names_key = keys.leaderboard_names("lbshop", "squirrel", "named")
    sizes = []
    for batch in range(3):  # each batch of ten outscores the last and pushes it off
        await updater([row(f"u{batch}{i}", 100 * batch + i + 1) for i in range(10)])
        sizes.append(await redis.hlen(names_key))
    assert sizes == [10, 20, 10]  # past 2 × 10 the names of trimmed players went
    members = {m.decode() for m in await redis.zrange(board_key, 0, -1)}
    assert members == {f"u2{i}" for i in range(10)}
    named = {k.decode(): v.decode() for k, v in (await redis.hgetall(names_key)).items()}
    assert named == {u: f"Pet-{u}" for u in members}
