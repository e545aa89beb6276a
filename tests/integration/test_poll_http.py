"""Voting over HTTP against real Redis and SQL (SQLite, and PostgreSQL when configured):
``castVote`` (two commits: the poll bucket is the gate, the shopper follows) and the
public ``getPoll``; write-behind, eviction and read-through of the poll's buckets; the
owed reconciler after a gate whose shopper commit never ran; Redis losing everything.

Poll ``best`` (config POLL_CONFIG): options red/blue/green, 3 votes a day, a vote
costs 5 acorns and earns 1 ticket (tickets max 2, so the third is clamped away).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import Any

import pytest
from sqlalchemy import func, select

from gameserver.appkeys import (
    CLOCK,
    GAMES,
    KEYS,
    REDIS,
    SERVICES,
    SETTINGS,
)
from gameserver.db import models as m
from gameserver.ops.metrics import Metrics
from gameserver.persister import Persister
from gameserver.state.aggregates_app import AGGREGATES, Aggregates
from gameserver.state.aggregates_gate import OwedReconciler, SharedActions
from gameserver.state.keys import AggregateRef, PlayerRef, shard_of
from gameserver.state.store import Store
from mechanics import poll as rules
from tests.conftest import BASIC_CONFIG, World, app_persister

NOW = 1_767_225_600  # the test clock: 2026-01-01 00:00 UTC, 08:00 in Shanghai
GAME = "/v1/games/squirrel"
VOTE = f"{GAME}/polls/best/vote"
POLL_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
POLL_CONFIG["currencies"]["ticket"] = {"name": "Tickets", "initial": 0, "max": 2}
POLL_CONFIG["polls"] = {
    "best": {"title": "Best colour", "options": {"red": {"label": "Red"},
                                                 "blue": {"label": "Blue"},
                                                 "green": {"label": "Green"}},
             "opens_at": NOW - 3600, "closes_at": NOW + 3 * 86400, "votes_per_day": 3,
             "cost": {"acorn": 5}, "reward": {"ticket": 1}, "buckets": 4},
    "later": {"title": "Not yet", "options": {"a": {"label": "A"}, "b": {"label": "B"}},
              "opens_at": NOW + 3600, "closes_at": NOW + 7200},
}


@pytest.fixture
async def pw(world: World) -> World:
    await world.merchant("pollshop", config=POLL_CONFIG)
    return world


def token(world: World, user: str, merchant: str = "pollshop") -> str:
    return world.mint(user, merchant)


async def vote(world: World, tok: str, option: str, key: str, poll: str = "best") -> Any:
    return await world.client.post(f"{GAME}/polls/{poll}/vote", json={"option": option},
                                   headers={"Authorization": f"Bearer {tok}",
                                            "Idempotency-Key": key})


async def poll_view(world: World, poll: str = "best", merchant: str = "pollshop") -> Any:
    resp = await world.client.get(f"{GAME}/polls/{poll}?merchant={merchant}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


def tallies(view: dict[str, Any]) -> dict[str, int]:
    return {o["id"]: o["votes"] for o in view["options"]}


async def wallet(world: World, tok: str) -> dict[str, int]:
    resp = await world.get(f"{GAME}/me", tok)
    assert resp.status == 200, await resp.text()
    return dict((await resp.json())["player"]["wallet"])


def aggs(world: World) -> Aggregates:
    """The app's shared aggregates (poll buckets, assist campaigns, ...)."""
    return world.client.app[AGGREGATES]["pb"]


async def all_owed(world: World) -> list[str]:
    """Every owed record of every aggregate shard."""
    out = []
    for shard in range(world.client.app[SETTINGS].shards):
        out += [name for name, _ in await aggs(world).store.owed_older_than(shard, 10**15, 100)]
    return out


async def flush_all(world: World) -> Persister:
    """One persister pass (players, then the aggregate stage), as the server's."""
    app = world.client.app
    p = app_persister(app)
    report = await p.run_once()
    assert report.ok, report.errors
    return p


async def test_vote_counts_once_pays_and_replays(pw: World) -> None:
    alice = token(pw, "alice")
    resp = await vote(pw, alice, "red", "v1")
    assert resp.status == 200, await resp.text()
    first = await resp.json()
    assert first == {"poll": "best", "option": "red", "votes_today": 1, "votes_left_today": 2,
                     "wallet": {"acorn": 95, "ticket": 1}}
    again = await vote(pw, alice, "red", "v1")
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == first
    for key, option in (("v2", "blue"), ("v3", "red")):
        assert (await vote(pw, alice, option, key)).status == 200
    over = await vote(pw, alice, "green", "v4")
    assert over.status == 409
    assert (await over.json())["error"]["code"] == "vote_limit_reached"
    view = await poll_view(pw)
    assert tallies(view) == {"red": 2, "blue": 1, "green": 0} and view["total"] == 3
    assert view["status"] == "open" and view["result"] is None
    # paid 3 x 5, rewarded 3 x 1 clamped at the max of 2
    assert await wallet(pw, alice) == {"acorn": 85, "ticket": 2}
    assert await all_owed(pw) == []

    pw.clock.advance(86400)  # a new day in Shanghai: three more votes
    tomorrow = await vote(pw, token(pw, "alice"), "green", "v5")
    assert tomorrow.status == 200 and (await tomorrow.json())["votes_today"] == 1
    assert tallies(await poll_view(pw)) == {"red": 2, "blue": 1, "green": 1}


async def test_refusals_change_nothing(pw: World) -> None:
    bob = token(pw, "bob")
    cases = [
        (await vote(pw, bob, "purple", "k1"), 422, "unknown_option"),
        (await vote(pw, bob, "red", "k2", poll="nope"), 404, "not_found"),
        (await vote(pw, bob, "a", "k3", poll="later"), 409, "poll_not_open"),
        (await pw.client.post(VOTE, json={"option": "red"},
                              headers={"Authorization": f"Bearer {bob}"}),
         400, "idempotency_key_required"),
        (await pw.client.post(VOTE, json={"option": 7}, headers={
            "Authorization": f"Bearer {bob}", "Idempotency-Key": "k4"}), 422, "invalid_input"),
    ]
    for resp, status, code in cases:
        assert resp.status == status, await resp.text()
        assert (await resp.json())["error"]["code"] in (code, "unknown_item")
    assert (await vote(pw, bob, "red", "k5")).status == 200
    reused = await vote(pw, bob, "blue", "k5")  # same key, other body
    assert reused.status == 422
    assert (await reused.json())["error"]["code"] == "idempotency_mismatch"
    # a key the shopper used for another action is refused before the poll changes
    fed = await pw.client.post(f"{GAME}/pet", json={"species": "squirrel", "name": "Nut"},
                               headers={"Authorization": f"Bearer {bob}",
                                        "Idempotency-Key": "k6"})
    assert fed.status in (200, 201), await fed.text()
    assert (await vote(pw, bob, "red", "k6")).status == 422
    assert tallies(await poll_view(pw)) == {"red": 1, "blue": 0, "green": 0}
    assert await wallet(pw, bob) == {"acorn": 95, "ticket": 1}


async def test_price_checked_before_the_gate(pw: World) -> None:
    config = copy.deepcopy(POLL_CONFIG)
    config["polls"]["best"]["cost"] = {"acorn": 101}
    await pw.merchant("pricey", config=config)
    resp = await vote(pw, token(pw, "carol", "pricey"), "red", "c1")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "insufficient_funds"
    assert (await poll_view(pw, merchant="pricey"))["total"] == 0


async def test_a_bad_ballot_is_refused_as_such_before_the_price(pw: World) -> None:
    """A shopper who cannot pay and sends an option the poll does not have (or votes
    in a poll not open) is told that (422 unknown_option, 409 poll_not_open), not
    insufficient_funds: the request is wrong whatever the wallet holds."""
    config = copy.deepcopy(POLL_CONFIG)
    config["polls"]["best"]["cost"] = {"acorn": 101}
    config["polls"]["later"]["cost"] = {"acorn": 101}
    await pw.merchant("pricey", config=config)
    carol = token(pw, "carol", "pricey")
    bad = await vote(pw, carol, "purple", "c1")
    assert bad.status == 422
    assert (await bad.json())["error"]["code"] == "unknown_option"
    early = await vote(pw, carol, "a", "c2", poll="later")
    assert early.status == 409
    assert (await early.json())["error"]["code"] == "poll_not_open"
    poor = await vote(pw, carol, "red", "c3")
    assert (await poor.json())["error"]["code"] == "insufficient_funds"
    assert (await poll_view(pw, merchant="pricey"))["total"] == 0


async def test_get_poll_public_errors_and_frozen_result(pw: World) -> None:
    assert (await pw.client.get(f"{GAME}/polls/best")).status == 422
    assert (await pw.client.get(f"{GAME}/polls/best?merchant=shop")).status == 404
    assert (await pw.client.get(f"{GAME}/polls/nope?merchant=pollshop")).status == 404
    for i, option in enumerate(["red", "blue", "blue"]):
        assert (await vote(pw, token(pw, f"s{i}"), option, f"f{i}")).status == 200
    pw.clock.set(NOW + 3 * 86400)  # the close
    late = await vote(pw, token(pw, "s9"), "red", "late")
    assert late.status == 409 and (await late.json())["error"]["code"] == "poll_closed"
    view = await poll_view(pw)
    assert view["status"] == "closed"
    assert view["result"] == {"frozen_at": NOW + 3 * 86400, "total": 3, "winners": ["blue"]}
    with_token = await pw.get(f"{GAME}/polls/best", token(pw, "s9"))  # the token's merchant
    assert with_token.status == 200 and await with_token.json() == view


async def test_write_behind_eviction_and_read_through(pw: World) -> None:
    dave = token(pw, "dave")
    assert (await vote(pw, dave, "red", "d1")).status == 200
    await flush_all(pw)
    async with pw.db.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(m.aggregate_ledger))).scalar()
        states = (await conn.execute(select(m.aggregates.c.aggregate_id,
                                            m.aggregates.c.version))).all()
    assert rows == 1
    bucket = rules.bucket_id("best", rules.bucket_of("dave", 4))
    assert [tuple(s) for s in states] == [(bucket, 1)]
    app = pw.client.app
    ref = AggregateRef.of("pollshop", "squirrel", "poll", bucket, app[SETTINGS].shards)
    pw.clock.advance(app[SETTINGS].idle_evict_after + 1)
    assert (await flush_all(pw)).last_aggregates.evicted == 1
    assert await app[REDIS].hgetall(app[KEYS].aggregate(ref)) == {b"x": b"1"}  # tombstone
    assert tallies(await poll_view(pw))["red"] == 1  # from SQL
    again = await vote(pw, token(pw, "dave"), "red", "d1")  # its record is still in Redis
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert (await vote(pw, token(pw, "dave"), "blue", "d2")).status == 200  # read through
    assert tallies(await poll_view(pw)) == {"red": 1, "blue": 1, "green": 0}
    assert await app[REDIS].hget(app[KEYS].aggregate(ref), "v") == b"2"


async def test_redis_loses_everything_after_flush(pw: World) -> None:
    """Votes flushed, then Redis comes back empty: retries replay (no vote counted
    twice, no price paid twice), new votes continue from SQL's tallies."""
    erin = token(pw, "erin")
    first = await vote(pw, erin, "green", "e1")
    assert first.status == 200
    await flush_all(pw)
    await pw.client.app[REDIS].flushall()
    retry = await vote(pw, erin, "green", "e1")
    assert retry.status == 200, await retry.text()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert await retry.json() == await first.json()
    assert (await vote(pw, erin, "red", "e2")).status == 200
    assert tallies(await poll_view(pw)) == {"red": 1, "blue": 0, "green": 1}
    assert await wallet(pw, erin) == {"acorn": 90, "ticket": 2}


async def test_retry_replayed_after_redis_loss_stays_replayed_once_the_player_is_back(
        pw: World) -> None:
    """A vote retried after Redis lost everything is replayed from SQL; another action
    then reads the shopper back with their keys. The first retry's claim on its key
    must not keep that key from coming back: a later retry still replays, and the
    price and reward are not applied a second time."""
    gus = token(pw, "gus")
    first = await vote(pw, gus, "green", "h1")
    assert first.status == 200
    await flush_all(pw)
    await pw.client.app[REDIS].flushall()
    for _ in range(2):  # the second retry comes after the player was read back
        retry = await vote(pw, gus, "green", "h1")
        assert retry.status == 200, await retry.text()
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert await retry.json() == await first.json()
        assert (await vote(pw, gus, "red", f"h2-{_}")).status == 200
    assert tallies(await poll_view(pw)) == {"red": 2, "blue": 0, "green": 1}
    assert await wallet(pw, gus) == {"acorn": 85, "ticket": 2}


async def gate_only(world: World, user: str, option: str, key: str) -> tuple[PlayerRef,
                                                                            AggregateRef]:
    """The gate's commit of a vote, and nothing after it: what a crash between the
    two commits leaves (the request path is the same code, minus its second half)."""
    app = world.client.app
    shards = app[SETTINGS].shards
    live = await app[GAMES].get("pollshop", "squirrel")
    poll = live.config.polls["best"]
    player = PlayerRef("pollshop", "squirrel", user, shard_of("pollshop", user, shards))
    bucket = AggregateRef.of("pollshop", "squirrel", "poll",
                             rules.bucket_id("best", rules.bucket_of(user, 4)), shards)
    from gameserver.api.common import request_hash
    from gameserver.api.poll import CODEC

    class _Req:  # what request_hash reads of a request
        method, path = "POST", VOTE

    body = f'{{"option":"{option}"}}'.encode()
    await aggs(world).store.run(
        bucket, CODEC, user, key, request_hash(_Req(), body),  # type: ignore[arg-type]
        lambda b, now: rules.cast_vote(b, poll, user, option, now, live.tz), owed_to=player)
    return player, bucket


async def test_owed_reconciler_converges_once(pw: World) -> None:
    app = pw.client.app
    _, bucket = await gate_only(pw, "fay", "blue", "g1")
    owed = await aggs(pw).store.owed_older_than(bucket.shard, NOW * 1000 + 1, 10)
    assert [name for name, _ in owed] == [f"{bucket.member}|fay|g1"]
    metrics = Metrics()
    reconciler = OwedReconciler([aggs(pw).actions], app[GAMES], app[CLOCK],
                                app[SETTINGS].shards, 1.0, older_than_s=5.0, metrics=metrics)
    assert (await reconciler.run_once()).applied == 0  # too young: a request may be on it
    pw.clock.advance(6)
    assert (await reconciler.run_once()).applied == 1
    assert (await reconciler.run_once()).applied == 0
    assert metrics.owed_reconciled.labels("applied")._value.get() == 1
    fay = token(pw, "fay")
    assert await wallet(pw, fay) == {"acorn": 95, "ticket": 1}
    retry = await pw.client.post(VOTE, data=b'{"option":"blue"}', headers={
        "Authorization": f"Bearer {fay}", "Idempotency-Key": "g1"})
    assert retry.status == 200 and retry.headers.get("Idempotent-Replayed") == "true"
    assert (await retry.json())["wallet"] == {"acorn": 95, "ticket": 1}
    assert tallies(await poll_view(pw))["blue"] == 1


async def test_reconciler_racing_the_retry_applies_once(pw: World) -> None:
    app = pw.client.app
    await gate_only(pw, "gus", "red", "r1")
    pw.clock.advance(6)
    gus = token(pw, "gus")
    reconcilers = [OwedReconciler([aggs(pw).actions], app[GAMES], app[CLOCK],
                                  app[SETTINGS].shards, 1.0, older_than_s=5.0)
                   for _ in range(2)]
    results = await asyncio.gather(
        *[r.run_once() for r in reconcilers],
        pw.client.post(VOTE, data=b'{"option":"red"}', headers={
            "Authorization": f"Bearer {gus}", "Idempotency-Key": "r1"}))
    assert results[2].status == 200, await results[2].text()
    # both reconcilers saw the record (each ran steps 2-3; one of the three applied)
    assert [r.applied + r.waiting for r in results[:2]] == [1, 1]
    assert await wallet(pw, gus) == {"acorn": 95, "ticket": 1}
    assert tallies(await poll_view(pw))["red"] == 1
    assert await all_owed(pw) == []


async def test_shopper_slot_lost_a_retry_redrives_it_from_the_gate(pw: World) -> None:
    """The shopper's slot loses everything (a cluster node restarted empty) before the
    persister flushed the vote's shopper side; the poll's slot is intact. A retry with
    the key re-applies the shopper side once from the gate's record; the tally stays."""
    app = pw.client.app
    hal = token(pw, "hal")
    first = await vote(pw, hal, "green", "h1")
    assert first.status == 200
    shard = shard_of("pollshop", "hal", app[SETTINGS].shards)
    lost = [k async for k in app[REDIS].scan_iter(match=f"{app[KEYS].tag(shard)}:*")]
    assert lost and await app[REDIS].delete(*lost) == len(lost)
    retry = await vote(pw, hal, "green", "h1")
    assert retry.status == 200 and await retry.json() == await first.json()
    assert await wallet(pw, hal) == {"acorn": 95, "ticket": 1}
    assert tallies(await poll_view(pw))["green"] == 1
    again = await vote(pw, hal, "green", "h1")
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_reconciler_keeps_a_record_whose_commit_fails_for_now(pw: World) -> None:
    """A shopper commit that cannot go through now (here: a store that gives up at once,
    as one does after its retries under contention, 503 busy) leaves the record owed
    for the next pass; it is applied once when the commit can go through."""
    app = pw.client.app
    _, bucket = await gate_only(pw, "ivy", "red", "i1")
    pw.clock.advance(6)
    svc = app[SERVICES]
    giving_up = dataclasses.replace(svc, store=Store(
        app[REDIS], svc.keys, svc.db, Metrics(), app[CLOCK], retries=0))
    stuck = OwedReconciler([SharedActions(giving_up, aggs(pw).store)], app[GAMES],
                           app[CLOCK], app[SETTINGS].shards, 1.0, older_than_s=5.0)
    report = await stuck.run_once()
    assert (report.applied, report.waiting, report.refused) == (0, 1, 0)
    assert await all_owed(pw) == [f"{bucket.member}|ivy|i1"]
    working = OwedReconciler([aggs(pw).actions], app[GAMES], app[CLOCK],
                             app[SETTINGS].shards, 1.0, older_than_s=5.0)
    assert (await working.run_once()).applied == 1
    assert await all_owed(pw) == []
    assert await wallet(pw, token(pw, "ivy")) == {"acorn": 95, "ticket": 1}


async def test_reconciler_counts_a_commit_that_fails_for_good_apart_and_keeps_it(
        pw: World) -> None:
    """A shopper key Redis refuses for good (here: damaged into a string, WRONGTYPE on
    every try) is not "waiting" for a passing outage: it is counted as failing, logged
    as an error, and kept (dropped, the shopper would lose the vote's reward); once the
    key is mended the next pass applies it once."""
    app = pw.client.app
    player, _ = await gate_only(pw, "jo", "red", "j1")
    pw.clock.advance(6)
    await app[REDIS].set(app[KEYS].player(player), "damaged")
    metrics = Metrics()
    reconciler = OwedReconciler([aggs(pw).actions], app[GAMES], app[CLOCK],
                                app[SETTINGS].shards, 1.0, older_than_s=5.0, metrics=metrics)
    report = await reconciler.run_once()
    assert (report.applied, report.waiting, report.failing) == (0, 0, 1)
    assert metrics.owed_reconciled.labels("failing")._value.get() == 1
    assert len(await all_owed(pw)) == 1
    await app[REDIS].delete(app[KEYS].player(player))
    assert (await reconciler.run_once()).applied == 1
    assert await all_owed(pw) == []
    assert await wallet(pw, token(pw, "jo")) == {"acorn": 95, "ticket": 1}


async def test_a_burst_of_priced_votes_never_goes_into_debt(world: World) -> None:
    """Eight votes of one shopper at once, each with its own key, on a poll priced one
    ticket a vote, holding three tickets: the price is checked against the shopper as
    peeked, so priced votes go one at a time: three counted, paid, no debt."""
    config = copy.deepcopy(POLL_CONFIG)
    config["currencies"]["vt"] = {"name": "Vote tickets", "initial": 3, "max": 10}
    config["polls"]["paid"] = {**config["polls"]["best"], "votes_per_day": 10,
                               "cost": {"vt": 1}, "reward": {}}
    await world.merchant("paidshop", config=config)
    tok = token(world, "ann", "paidshop")
    answers = await asyncio.gather(*(vote(world, tok, "red", f"v{i}", poll="paid")
                                     for i in range(8)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 3 + [409] * 5, statuses
    codes = {(await r.json())["error"]["code"] for r in answers if r.status == 409}
    assert codes == {"insufficient_funds"}
    view = await poll_view(world, "paid", "paidshop")
    assert sum(tallies(view).values()) == 3
    player = await (await world.client.get(f"{GAME}/me", headers={
        "Authorization": f"Bearer {tok}"})).json()
    assert player["player"]["wallet"]["vt"] == 0
    assert not player["player"].get("debts")
