"""Red-envelope rain over HTTP against real Redis and SQL (SQLite, and PostgreSQL when
configured): ``grabEnvelope`` (two commits: the pool bucket is the gate, the shopper
follows) and the public ``getEnvelopeRain``; refusals at the round's instants; the seed
revealed at the end and every amount verified offline; a burst of 2,000 shoppers on a
¥1,000.00 pool paying out exactly the pool, with no 5xx.

Rain ``midnight`` (RAIN_CONFIG): round ``r1`` from NOW for 30 s, ¥1,000.00 in 200
envelopes of at least 1 fen, one grab a shopper, 8 buckets (4 in use: one per 50);
round ``r2`` ten minutes later, 500 fen in 5 envelopes of at least 100 fen (all exactly
100), two grabs each.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from economy.rains import (
    RoundTerms,
    bucket_envelopes,
    round_buckets,
    split_pool,
    verify_envelope,
)
from gameserver.appkeys import SERVICES
from gameserver.db import models as m
from mechanics.rains import bucket_of
from tests.conftest import BASIC_CONFIG, World, answered_despite_503
from tests.integration.test_poll_http import all_owed, flush_all

NOW = 1_767_225_600
GAME = "/v1/games/squirrel"
RAIN_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
RAIN_CONFIG["currencies"]["hongbao"] = {"name": "Red envelopes (fen)", "initial": 0,
                                        "max": 10**10}
RAIN_CONFIG["rains"] = {"midnight": {
    "title": "Midnight rain", "kind": "cash", "currency": "hongbao", "buckets": 8,
    "rounds": {
        "r1": {"starts_at": NOW, "duration_s": 30, "pool_fen": 100_000, "envelopes": 200},
        "r2": {"starts_at": NOW + 600, "duration_s": 30, "pool_fen": 500, "envelopes": 5,
               "min_fen": 100, "grab_limit": 2},
    }}}


@pytest.fixture
async def rw(world: World) -> World:
    world.clock.set(NOW - 60)
    await world.merchant("rainshop", config=RAIN_CONFIG)
    return world


def token(world: World, user: str, merchant: str = "rainshop") -> str:
    return world.mint(user, merchant)


async def grab(world: World, tok: str, key: str, body: dict[str, Any] | None = None,
               rain: str = "midnight") -> Any:
    return await world.client.post(f"{GAME}/rains/{rain}/grab",
                                   json={"round": "r1"} if body is None else body,
                                   headers={"Authorization": f"Bearer {tok}",
                                            "Idempotency-Key": key})


async def rain_view(world: World, merchant: str = "rainshop") -> Any:
    resp = await world.client.get(f"{GAME}/rains/midnight?merchant={merchant}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return str((await resp.json())["error"]["code"])


async def test_grab_credits_once_and_verifies_after_the_round(rw: World) -> None:
    before = await rain_view(rw)
    r1 = before["rounds"][0]
    assert (r1["status"], r1["envelopes_left"], r1["seed"]) == ("upcoming", 200, None)
    assert len(r1["seed_hash"]) == 64
    ann = token(rw, "ann")
    rw.clock.set(NOW - 1)
    early = await grab(rw, ann, "g0")
    assert await error(early, 409) == "round_not_open" and early.headers["Retry-After"] == "1"

    rw.clock.set(NOW)
    resp = await grab(rw, ann, "g1")
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["rain"] == "midnight" and got["round"] == "r1" and got["grabs_left"] == 0
    assert got["seed_hash"] == r1["seed_hash"] and got["reveal_at"] == NOW + 30
    assert got["wallet"] == {"acorn": 100, "hongbao": got["amount_fen"]}
    again = await grab(rw, ann, "g1")
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == got
    assert await error(await grab(rw, ann, "g2"), 409) == "grab_limit_reached"
    during = (await rain_view(rw))["rounds"][0]
    assert during["envelopes_left"] == 199 and during["seed"] is None
    assert during["pool_left_fen"] == 100_000 - got["amount_fen"]
    assert (await grab(rw, token(rw, "zed"), "z1")).status == 200
    cached = await rw.client.get(f"{GAME}/rains/midnight?merchant=rainshop")
    assert cached.headers["Cache-Control"] == "public, max-age=1"
    assert (await cached.json())["rounds"][0]["envelopes_left"] == 199  # read this second
    rw.clock.advance(1)
    assert (await rain_view(rw))["rounds"][0]["envelopes_left"] == 198
    assert await all_owed(rw) == []

    rw.clock.set(NOW + 30)  # the end instant: no grab, the seed is revealed
    assert await error(await grab(rw, token(rw, "bob"), "b1", {"round": "r1"}), 409) == \
        "round_ended"
    after = (await rain_view(rw))["rounds"][0]
    assert after["status"] == "ended" and after["granted_fen"] > got["amount_fen"]
    assert after["returned_fen"] == 100_000 - after["granted_fen"]
    terms = RoundTerms(100_000, 200, 1)
    assert verify_envelope(after["seed"], r1["seed_hash"], "r1", terms, got["nonce"],
                           got["amount_fen"])


async def test_round_two_minimum_envelopes_and_limit(rw: World) -> None:
    rw.clock.set(NOW + 600)
    tok = token(rw, "cat")
    amounts = []
    for key in ("c1", "c2"):
        resp = await grab(rw, tok, key, {"round": "r2"})
        assert resp.status == 200, await resp.text()
        amounts.append((await resp.json())["amount_fen"])
    assert amounts == [100, 100]  # pool = envelopes × min: every envelope is the minimum
    assert await error(await grab(rw, tok, "c3", {"round": "r2"}), 409) == "grab_limit_reached"


async def test_refusals_change_nothing(rw: World) -> None:
    rw.clock.set(NOW)
    dan = token(rw, "dan")
    path = f"{GAME}/rains/midnight/grab"
    assert await error(await grab(rw, dan, "k1", rain="nope"), 404) == "unknown_item"
    assert await error(await grab(rw, dan, "k2", {"round": "r9"}), 404) == "unknown_item"
    assert await error(await grab(rw, dan, "k3", {"round": "r2"}), 409) == "round_not_open"
    assert await error(await grab(rw, dan, "k4", {"round": 7}), 422) == "invalid_input"
    assert await error(await grab(rw, dan, "k5", {"round": "r1", "extra": 1}), 422) == \
        "invalid_input"
    assert await error(await grab(rw, dan, "k5", {}), 422) == "invalid_input"
    no_key = await rw.client.post(path, json={}, headers={"Authorization": f"Bearer {dan}"})
    assert await error(no_key, 400) == "idempotency_key_required"
    assert await error(await rw.client.get(f"{GAME}/rains/midnight"), 422) == "invalid_input"
    assert (await rw.client.get(f"{GAME}/rains/midnight?merchant=shop")).status == 404
    assert (await rain_view(rw))["rounds"][0]["envelopes_left"] == 200
    assert (await grab(rw, dan, "k6")).status == 200
    assert await error(await grab(rw, dan, "k6", {"round": "r2"}), 422) == \
        "idempotency_mismatch"


SHOPPERS = 2000
ENVELOPES = 2000
BURST_CONFIG: dict[str, Any] = copy.deepcopy(RAIN_CONFIG)
BURST_CONFIG["rains"]["midnight"]["rounds"]["r1"]["envelopes"] = ENVELOPES


async def test_two_thousand_shoppers_pay_out_the_pool_exactly(rw: World) -> None:
    """2,000 shoppers grab at once from ¥1,000.00 in 2,000 envelopes (every twentieth
    request sent twice with its key). Each shopper grabs in the bucket of their id, so
    a bucket with more grabbers than envelopes runs dry while another keeps some: the
    envelopes granted are exactly the first of each bucket, as many as it had grabbers,
    the rest answer ``409 pool_empty``, Σ granted + returned = the pool, and each amount
    verifies offline against the revealed seed. Wallets hold exactly their envelope, SQL
    holds one confirmed grant per envelope granted (the value tier) and every grab in
    the pool buckets' ledger; overload is answered 503 + Retry-After (then retried with
    the key, as is a duplicate still running), never another 5xx."""
    await rw.merchant("burstshop", config=BURST_CONFIG)
    rw.clock.set(NOW + 1)
    users = [f"s{u}" for u in range(SHOPPERS)]
    jobs = [(token(rw, u, "burstshop"), f"{u}-1") for u in users]
    dupes = jobs[::20]
    terms = RoundTerms(100_000, ENVELOPES, 1)
    buckets = round_buckets(8, terms)
    grabbers = Counter(bucket_of(u, buckets) for u in users)
    dealt = {b: list(bucket_envelopes(ENVELOPES, b, buckets)) for b in range(buckets)}
    expected = sorted(n for b, envelopes in dealt.items() for n in envelopes[:grabbers[b]])
    assert 0 < len(expected) < ENVELOPES  # some buckets run dry, others keep envelopes
    shed: list[int] = []

    async def in_progress(resp: Any) -> bool:  # the duplicate's first copy is still running
        return bool(resp.status == 409 and (await resp.json())["error"]["code"]
                    == "idempotency_in_progress")

    async def answered(tok: str, key: str) -> Any:
        return await answered_despite_503(lambda: grab(rw, tok, key), shed, key, tries=40,
                                          pause=0, busy=in_progress)

    started = time.monotonic()
    results = await asyncio.gather(*[answered(t, k) for t, k in jobs + dupes])
    took = time.monotonic() - started
    print(f"{len(results)} grabEnvelope requests in {took:.2f} s, 503 retried: {len(shed)}")
    assert all(r.status < 500 for r in results)
    won: dict[str, dict[str, Any]] = {}
    for (_, key), resp in zip(jobs + dupes, results, strict=True):
        if resp.status == 200:
            body = await resp.json()
            assert won.setdefault(key, body) == body  # a duplicate replays the same envelope
        else:
            assert await error(resp, 409) == "pool_empty"
    assert sorted(b["nonce"] for b in won.values()) == expected
    for key, body in won.items():  # a shopper's envelope is one of their bucket's
        assert body["nonce"] % buckets == bucket_of(key.rsplit("-", 1)[0], buckets)

    rw.clock.set(NOW + 30)
    view = (await rain_view(rw, "burstshop"))["rounds"][0]
    amounts = split_pool(view["seed"], "r1", terms)
    assert all(amounts[b["nonce"]] == b["amount_fen"] for b in won.values())
    granted = sum(b["amount_fen"] for b in won.values())
    assert granted == sum(amounts[n] for n in expected) < 100_000
    assert (view["envelopes_left"], view["pool_left_fen"], view["returned_fen"]) == (
        ENVELOPES - len(expected), 100_000 - granted, 100_000 - granted)
    for key in list(won)[:20]:  # wallets hold exactly their envelope
        user = key.rsplit("-", 1)[0]
        me = await rw.get(f"{GAME}/me", token(rw, user, "burstshop"))
        assert (await me.json())["player"]["wallet"]["hongbao"] == won[key]["amount_fen"]

    # The value tier: one grant row per envelope, in SQL before each reply; confirmed
    # after its commit, or (a confirmation SQL did not take in time on a loaded
    # machine) by the reconciler, from the commit: settle those as it does.
    await rw.client.app[SERVICES].value.reconcile(older_than_s=-1)
    g = m.grants
    async with rw.db.connect() as conn:
        rows = (await conn.execute(select(g.c.status, g.c.detail).where(
            g.c.merchant_id == "burstshop", g.c.ref == "rain:midnight:r1"))).all()
    assert {r[0] for r in rows} == {"confirmed"}
    assert sorted(r[1]["nonce"] for r in rows) == expected
    assert sum(r[1]["amount_fen"] for r in rows) == granted
    stock = await rw.client.get("/v1/admin/games/squirrel/stock", headers={
        "Authorization": f"Bearer {rw.merchants['burstshop'].api_key}"})
    assert {"ref": "rain:midnight:r1", "total": ENVELOPES, "reserved": 0,
            "granted": len(expected), "left": ENVELOPES - len(expected)} in \
        (await stock.json())["stock"]

    await flush_all(rw)  # and the pool buckets' ledger holds every grab the gates took
    a = m.aggregate_ledger
    async with rw.db.connect() as conn:
        bodies = (await conn.execute(select(a.c.body).where(
            a.c.merchant_id == "burstshop", a.c.kind == "rain"))).scalars().all()
    assert len(bodies) == len(expected)
    assert sum(orjson.loads(b)["response"]["amount_fen"] for b in bodies) == granted


async def test_simulate_round(rw: World) -> None:
    api_key = {"Authorization": f"Bearer {rw.merchants['rainshop'].api_key}"}
    path = "/v1/admin/games/squirrel/rains/midnight/simulate"
    resp = await rw.client.post(path, json={"round": "r1", "shoppers": 4000, "runs": 20},
                                headers=api_key)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert (report["envelopes_grabbed"], report["expected_cost_fen"]) == (200, 100_000)
    assert report["expected_cost_per_shopper_fen"] == 25.0
    assert report["chance_of_envelope"] == 0.05 and report["sizes_fen"]["mean"] == 500.0
    other = await rw.client.post(path, json={"round": "r1", "shoppers": 10, "runs": 2,
                                             "pool_fen": 150}, headers=api_key)
    assert await error(other, 422) == "invalid_input"
    assert await error(await rw.client.post(path, json={"round": "r1", "runs": 5000},
                                            headers=api_key), 422) == "invalid_input"
    assert await error(await rw.client.post(path, json={"round": "zz"}, headers=api_key),
                       404) == "unknown_item"


async def test_simulate_documents_the_malformed_body_it_answers(rw: World) -> None:
    """A body that is not JSON is ``400 malformed_json``, and /openapi.json says so."""
    api_key = {"Authorization": f"Bearer {rw.merchants['rainshop'].api_key}"}
    path = "/v1/admin/games/squirrel/rains/midnight/simulate"
    resp = await rw.client.post(path, data=b'{"round": ', headers={
        **api_key, "Content-Type": "application/json"})
    assert await error(resp, 400) == "malformed_json"
    doc = await (await rw.client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/admin/games/{game}/rains/{rain}/simulate"]["post"]
    assert op["operationId"] == "simulateEnvelopeRain"
    assert {"400", "401", "403", "404", "422"} <= set(op["responses"])


async def test_retry_after_the_end_finishes_a_grab_the_gate_took(rw: World) -> None:
    """A crash between the gate and the shopper's commit, then the retry arrives after
    the round ended: it replays the gate's envelope and credits it once (not 409)."""
    from gameserver.api.common import request_hash
    from gameserver.api.rains import CODEC, SEEDS_CODEC
    from gameserver.appkeys import GAMES, SETTINGS
    from gameserver.state.aggregates_app import AGGREGATES
    from gameserver.state.keys import AggregateRef, PlayerRef, shard_of
    from mechanics import rains as rules

    app = rw.client.app
    shards = app[SETTINGS].shards
    store = app[AGGREGATES]["pb"].store
    await rain_view(rw)  # commits the seeds
    live = await app[GAMES].get("rainshop", "squirrel")
    rain = live.config.rains["midnight"]
    r1 = rain.rounds["r1"]
    seeds, _ = await store.read(AggregateRef.of("rainshop", "squirrel", rules.SEEDS_KIND,
                                                "midnight", shards), SEEDS_CODEC)
    entry = seeds.rounds["r1"]
    amounts = split_pool(entry.seed, "r1", entry.terms)
    index_of = rules.bucket_of("eve", round_buckets(8, entry.terms))
    bucket = AggregateRef.of("rainshop", "squirrel", rules.KIND,
                             rules.bucket_id("midnight", "r1", index_of), shards)

    class _Req:  # what request_hash reads of a request
        method, path = "POST", f"{GAME}/rains/midnight/grab"

    rw.clock.set(NOW + 10)
    player = PlayerRef("rainshop", "squirrel", "eve", shard_of("rainshop", "eve", shards))
    await store.run(bucket, CODEC, "eve", "e1", request_hash(_Req(), b'{"round":"r1"}'),  # type: ignore[arg-type]
                    lambda b, now: rules.grab(b, rain, r1, entry, index_of, "eve", amounts, now),
                    owed_to=player)
    rw.clock.set(NOW + 40)  # the round has ended
    resp = await rw.client.post(f"{GAME}/rains/midnight/grab", data=b'{"round":"r1"}', headers={
        "Authorization": f"Bearer {token(rw, 'eve')}", "Idempotency-Key": "e1"})
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["nonce"] == index_of and got["amount_fen"] == amounts[index_of]
    assert got["wallet"]["hongbao"] == amounts[index_of]
    assert await all_owed(rw) == []
    async with rw.db.connect() as conn:
        details = (await conn.execute(select(m.grants.c.detail).where(
            m.grants.c.user_id == "eve", m.grants.c.status == "confirmed"))).scalars().all()
    assert [d["amount_fen"] for d in details] == [amounts[index_of]]


async def test_sql_bounds_envelopes_a_bucket_deals(rw: World) -> None:
    """SQL, not the pool buckets, is the truth for value: with the round's counter cut to
    one envelope (setStock), the second envelope a bucket deals finds no unit, and the
    grab is answered without crediting anything (``void``), once; the first stays paid."""
    api_key = {"Authorization": f"Bearer {rw.merchants['rainshop'].api_key}"}
    await rain_view(rw)
    cut = await rw.client.post("/v1/admin/games/squirrel/stock/rain:midnight:r1",
                               json={"add": -199}, headers={**api_key, "Idempotency-Key": "c1"})
    assert cut.status == 200, await cut.text()
    rw.clock.set(NOW)
    first = await (await grab(rw, token(rw, "amy"), "a1")).json()
    assert first["amount_fen"] > 0 and "void" not in first
    resp = await grab(rw, token(rw, "ben"), "b1")
    assert resp.status == 200, await resp.text()
    second = await resp.json()
    assert second["void"] is True and second["amount_fen"] == 0
    assert second["wallet"].get("hongbao", 0) == 0
    again = await grab(rw, token(rw, "ben"), "b1")
    assert again.headers.get("Idempotent-Replayed") == "true" and await again.json() == second
    async with rw.db.connect() as conn:
        users = (await conn.execute(select(m.grants.c.user_id).where(
            m.grants.c.ref == "rain:midnight:r1"))).scalars().all()
    assert users == ["amy"]


# -- a grab is answered only with what the wallet gets ------------------------------------

TIGHT_CONFIG: dict[str, Any] = copy.deepcopy(RAIN_CONFIG)
TIGHT_MAX = 99_801 + 200
"""What one shopper can grab from the rain at most: r1 100,000 − 199 × 1, r2 (two grabs
of five envelopes of ≥ 100) 500 − 3 × 100; the config accepts a max of exactly that."""
TIGHT_CONFIG["currencies"]["hongbao"]["max"] = TIGHT_MAX
TWO_RAINS_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
TWO_RAINS_CONFIG["currencies"]["hb2"] = {"name": "Envelopes (fen)", "initial": 0, "max": 1000}
TWO_RAINS_CONFIG["rains"] = {rid: {
    "title": rid, "currency": "hb2", "rounds": {"r1": {
        "starts_at": NOW, "duration_s": 30, "pool_fen": 1000, "envelopes": 2,
        "grab_limit": 2}}} for rid in ("noon", "night")}


async def test_rains_a_currency_cannot_hold_are_refused(rw: World) -> None:
    """Two 1,000-fen rains on a currency of max 1,000: one shopper grabbing all four
    envelopes was answered 2,000 fen and credited 1,000. Such a config is refused
    (both rains named); the exact bound is accepted."""
    api_key = {"Authorization": f"Bearer {rw.merchants['rainshop'].api_key}"}
    resp = await rw.client.put("/v1/admin/games/squirrel/draft", json=TWO_RAINS_CONFIG,
                               headers=api_key)
    assert await error(resp, 422) == "config_invalid"
    paths = [p["path"] for p in (await resp.json())["error"]["details"]["problems"]]
    assert paths == ["$.rains.noon.currency", "$.rains.night.currency"]
    await rw.merchant("tightshop", config=TIGHT_CONFIG)


async def test_a_full_wallet_is_refused_and_the_envelope_stays(rw: World) -> None:
    """A balance raised by other means (grantPlayer) that cannot hold the next envelope:
    ``409 balance_limit``, nothing taken (the round, the stock, SQL); with room for it
    the same envelope is granted whole, and reply, wallet and grant row agree."""
    from gameserver.api.rains import SEEDS_CODEC
    from gameserver.appkeys import SETTINGS
    from gameserver.state.aggregates_app import AGGREGATES
    from gameserver.state.keys import AggregateRef
    from mechanics import rains as rules

    await rw.merchant("tightshop", config=TIGHT_CONFIG)
    admin = {"Authorization": f"Bearer {rw.merchants['tightshop'].api_key}"}
    view = await rain_view(rw, "tightshop")  # commits the seeds
    store = rw.client.app[AGGREGATES]["pb"].store
    seeds, _ = await store.read(AggregateRef.of(
        "tightshop", "squirrel", rules.SEEDS_KIND, "midnight",
        rw.client.app[SETTINGS].shards), SEEDS_CODEC)
    entry = seeds.rounds["r1"]
    nonce = bucket_of("fay", round_buckets(8, entry.terms))
    amount = split_pool(entry.seed, "r1", entry.terms)[nonce]
    assert verify_envelope(entry.seed, view["rounds"][0]["seed_hash"], "r1", entry.terms,
                           nonce, amount)

    async def grant(body: dict[str, Any], key: str) -> None:
        resp = await rw.client.post("/v1/admin/games/squirrel/players/fay/grant", json={
            "reason": "support", "create": True, **body}, headers={**admin,
                                                               "Idempotency-Key": key})
        assert resp.status == 200, await resp.text()

    await grant({"wallet": {"hongbao": TIGHT_MAX - amount + 1}}, "fill")
    rw.clock.set(NOW)
    fay = token(rw, "fay", "tightshop")
    full = await grab(rw, fay, "f1")
    assert await error(full, 409) == "balance_limit"
    assert (await full.json())["error"]["details"] == {
        "currency": "hongbao", "have": TIGHT_MAX - amount + 1, "add": amount,
        "limit": TIGHT_MAX}
    rw.clock.advance(1)
    after = (await rain_view(rw, "tightshop"))["rounds"][0]
    assert (after["envelopes_left"], after["granted_fen"]) == (200, 0)
    async with rw.db.connect() as conn:
        assert (await conn.execute(select(m.grants.c.id).where(
            m.grants.c.merchant_id == "tightshop"))).all() == []

    await grant({"deduct": {"wallet": {"hongbao": 1}}}, "room")
    resp = await grab(rw, fay, "f2")
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert (got["nonce"], got["amount_fen"]) == (nonce, amount) and "uncredited_fen" not in got
    assert got["wallet"]["hongbao"] == TIGHT_MAX
    rw.clock.advance(1)
    after = (await rain_view(rw, "tightshop"))["rounds"][0]
    assert (after["envelopes_left"], after["granted_fen"]) == (199, amount)
    async with rw.db.connect() as conn:
        details = (await conn.execute(select(m.grants.c.detail).where(
            m.grants.c.merchant_id == "tightshop"))).scalars().all()
    assert [(d["nonce"], d["amount_fen"]) for d in details] == [(nonce, amount)]


# -- a round's split is computed once, and only for an open round -------------------------

LARGE = 100_000
LARGE_CONFIG: dict[str, Any] = copy.deepcopy(RAIN_CONFIG)
LARGE_CONFIG["rains"]["midnight"]["buckets"] = 64
LARGE_CONFIG["rains"]["midnight"]["rounds"]["r1"].update(pool_fen=10 * LARGE,
                                                         envelopes=LARGE)
LARGE_CONFIG["rains"]["midnight"]["rounds"]["r2"].update(pool_fen=10 * LARGE,
                                                         envelopes=LARGE, min_fen=1)


async def test_concurrent_grabs_on_a_new_round_compute_its_split_once(rw: World) -> None:
    """40 shoppers grab at once the first envelopes of a round of 100,000 (a split of
    about 0.4 s): one computation serves them all (each used to compute its own: 20
    together took 9.7 s), and later grabs reuse it. A grab of the upcoming round
    computes nothing."""
    from gameserver.api.rains import SPLITS

    await rw.merchant("bigshop", config=LARGE_CONFIG)
    await rain_view(rw, "bigshop")  # the seeds, so the grabs race on the split alone
    rw.clock.set(NOW + 1)
    before = SPLITS.computed
    early = await grab(rw, token(rw, "ivy", "bigshop"), "i0", {"round": "r2"})
    assert await error(early, 409) == "round_not_open"
    assert SPLITS.computed == before

    async def first_grab(user: str) -> Any:
        tok = token(rw, user, "bigshop")
        return await answered_despite_503(lambda: grab(rw, tok, f"{user}-1"), [], user,
                                          tries=40, pause=0)

    users = [f"g{n}" for n in range(40)]
    results = await asyncio.gather(*[first_grab(u) for u in users])
    assert [r.status for r in results] == [200] * len(users)
    assert SPLITS.computed == before + 1
    nonces = [(await r.json())["nonce"] for r in results]
    assert len(set(nonces)) == len(users)
    assert (await grab(rw, token(rw, "ivy", "bigshop"), "i1")).status == 200
    assert SPLITS.computed == before + 1
