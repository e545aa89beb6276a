"""Sampling over HTTP against real Redis and SQL (SQLite, and PostgreSQL when
configured): ``applySample`` (one commit on the shopper's application bucket),
``listMySamples``, ``reviewSample`` (two commits), the public ``getSampleCampaign``, and
the merchant's ``drawSampleWinners`` and ``getSampleCampaignAdmin``; 1,000 applications
at once on a lottery of 20 samples: exactly 20 winners, each verifiable.

Campaigns (SAMPLE_CONFIG): ``nuts``, a lottery of 20 samples, applications for an hour,
a review rewards 50 acorns; ``tea``, first come, 2 samples, followers of the shop only.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from economy.samples import DRAW_GRACE_S, applicants_hash, lottery, verify_ticket
from gameserver.jobs.webhooks import OUTBOX
from tests.conftest import BASIC_CONFIG, World, answered_despite_503

NOW = 1_767_225_600
CLOSES = NOW + 3600
GAME = "/v1/games/squirrel"
SHOP = "sampleshop"
SAMPLE_CONFIG: dict[str, Any] = copy.deepcopy(BASIC_CONFIG)
SAMPLE_CONFIG["tasks"] = {"follow": {"name": "Follow the shop", "kind": "follow",
                                     "period": "once", "reward": {"currency": {"acorn": 1}}}}
SAMPLE_CONFIG["samples"] = {
    "nuts": {"title": "New nuts", "sku": "nuts-200g", "stock": 20, "opens_at": NOW,
             "closes_at": CLOSES, "mode": "lottery", "review": {"reward": {"acorn": 50}}},
    "tea": {"title": "Tea", "sku": "tea-50g", "stock": 2, "opens_at": NOW,
            "closes_at": CLOSES, "mode": "first_come",
            "eligibility": {"follow_task": "follow"}},
}


@pytest.fixture
async def sw(world: World) -> World:
    await world.merchant(SHOP, config=SAMPLE_CONFIG)
    return world


def token(world: World, user: str) -> str:
    return world.mint(user, SHOP)


def headers(tok: str, key: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {tok}"}
    if key is not None:
        out["Idempotency-Key"] = key
    return out


async def apply(world: World, tok: str, key: str, campaign: str = "nuts") -> Any:
    return await world.client.post(f"{GAME}/samples/{campaign}/apply", json={},
                                   headers=headers(tok, key))


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return str((await resp.json())["error"]["code"])


async def won_events(world: World) -> dict[str, dict[str, Any]]:
    """The ``sample.won`` webhook events of the shop: key → data."""
    events = await world.client.app[OUTBOX].list(SHOP, "squirrel", limit=1000)
    return {e.key: e.data for e in events if e.event == "sample.won"}


def admin_key(world: World) -> str:
    return str(world.merchants[SHOP].api_key)


async def draw(world: World, key: str = "d1", campaign: str = "nuts") -> Any:
    return await world.client.post(f"/v1/admin/games/squirrel/samples/{campaign}/draw",
                                   json={}, headers=headers(admin_key(world), key))


async def admin_view(world: World, campaign: str = "nuts") -> Any:
    return await ok(await world.client.get(f"/v1/admin/games/squirrel/samples/{campaign}",
                                           headers=headers(admin_key(world))))


async def public_view(world: World, campaign: str = "nuts") -> Any:
    return await ok(await world.client.get(f"{GAME}/samples/{campaign}?merchant={SHOP}"))


async def test_apply_draw_list_and_review(sw: World) -> None:
    before = await public_view(sw)
    assert (before["status"], before["applicants"], before["result"]) == ("open", 0, None)
    seed_hash = before["seed_hash"]
    toks = {u: token(sw, u) for u in ("ann", "bob", "cat")}
    first = await ok(await apply(sw, toks["ann"], "a1"))
    assert first == {"campaign": "nuts", "status": "applied", "applied_at": NOW}
    again = await apply(sw, toks["ann"], "a1")
    assert again.headers.get("Idempotent-Replayed") == "true" and await ok(again) == first
    assert await error(await apply(sw, toks["ann"], "a2"), 409) == "already_applied"
    for u in ("bob", "cat"):
        await ok(await apply(sw, toks[u], f"{u}1"))
    mine = await ok(await sw.get(f"{GAME}/samples", toks["ann"]))
    assert mine == {"samples": [{"campaign": "nuts", "sku": "nuts-200g", "status": "applied",
                                 "applied_at": NOW, "won_at": None, "reviewed": False,
                                 "review_until": None}]}

    sw.clock.set(CLOSES)
    assert await error(await apply(sw, token(sw, "late"), "l1"), 409) == "applications_closed"
    sw.clock.set(CLOSES + DRAW_GRACE_S - 1)
    assert await error(await draw(sw), 409) == "draw_not_due"
    sw.clock.set(CLOSES + DRAW_GRACE_S)
    result = await ok(await draw(sw))
    assert result["winners"] == 3 and result["applicants"] == 3 and result["cutoff"] is None
    assert result["seed_hash"] == seed_hash
    assert result["applicants_hash"] == applicants_hash(["ann", "bob", "cat"])
    assert await ok(await draw(sw, key="d2")) == result  # drawn once
    events = await won_events(sw)  # one notice a winner, however often it was emitted
    assert sorted(events) == [f"sample-won:squirrel:nuts:{u}" for u in ("ann", "bob", "cat")]
    assert events["sample-won:squirrel:nuts:ann"] == {
        "campaign": "nuts", "sku": "nuts-200g", "user": "ann", "won_at": CLOSES + DRAW_GRACE_S,
        "mode": "lottery", "review_until": CLOSES + DRAW_GRACE_S + 30 * 86400}

    got = await ok(await sw.client.post(f"{GAME}/samples/nuts/review", json={"report": "Crunchy"},
                                        headers=headers(toks["bob"], "r1")))
    assert got["reward"] == {"acorn": 50} and got["wallet"] == {"acorn": 150}
    review_again = await sw.client.post(f"{GAME}/samples/nuts/review", json={"report": "More"},
                                        headers=headers(toks["bob"], "r2"))
    assert await error(review_again, 409) == "already_reviewed"
    view = await admin_view(sw)
    assert sorted(view["winner_users"]) == ["ann", "bob", "cat"]
    assert view["reviews"] == 1 and view["review_rate"] == round(1 / 3, 4)
    assert view["reports"] == [{"user": "bob", "at": CLOSES + DRAW_GRACE_S,
                                "report": "Crunchy"}]
    mine = await ok(await sw.get(f"{GAME}/samples", toks["bob"]))
    assert mine["samples"][0]["status"] == "won" and mine["samples"][0]["reviewed"] is True
    assert (await public_view(sw))["status"] == "drawn"


async def test_first_come_eligibility_and_stock(sw: World) -> None:
    ann = token(sw, "ann")
    refused = await apply(sw, ann, "t1", "tea")
    assert await error(refused, 403) == "not_eligible"
    assert (await refused.json())["error"]["details"]["missing"] == ["follow"]
    statuses = []
    for n, u in enumerate(["ann", "bob", "cat"]):
        tok = token(sw, u)
        await ok(await sw.client.post(f"{GAME}/tasks/follow/complete", json={},
                                      headers=headers(tok, f"f{n}")))
        statuses.append((await ok(await apply(sw, tok, f"t{n}-ok", "tea")))["status"])
    assert statuses == ["won", "won", "waitlisted"]
    assert sorted(await won_events(sw)) == ["sample-won:squirrel:tea:ann",
                                            "sample-won:squirrel:tea:bob"]
    view = await admin_view(sw, "tea")
    assert view["winner_users"] == ["ann", "bob"] and view["stock_left"] == 0
    assert await error(await draw(sw, campaign="tea"), 409) == "not_a_lottery"
    loser = await sw.client.post(f"{GAME}/samples/tea/review", json={"report": "x"},
                                 headers=headers(token(sw, "cat"), "rv"))
    assert await error(loser, 409) == "review_closed"  # tea has no review task


async def test_a_winner_with_a_long_user_id_is_announced(sw: World) -> None:
    """A user id may have 128 characters; its sample.won key is longer than the outbox
    keeps, so the winner's apply answered 500 (after winning) and the merchant was never
    told: the key is now bounded, stable, and the apply answers and replays."""
    user = "o" * 128
    tok = token(sw, user)
    await ok(await sw.client.post(f"{GAME}/tasks/follow/complete", json={},
                                  headers=headers(tok, "f-long")))
    first = await ok(await apply(sw, tok, "t-long", "tea"))
    assert first["status"] == "won"
    assert await ok(await apply(sw, tok, "t-long", "tea")) == first
    won = await won_events(sw)
    assert [data["user"] for data in won.values()] == [user]
    (key,) = won
    assert len(key) <= 128 and key.startswith("sample-won:squirrel:tea:ooo")


async def test_refusals(sw: World) -> None:
    ann = token(sw, "ann")
    assert await error(await apply(sw, ann, "x1", "nope"), 404) == "unknown_item"
    no_key = await sw.client.post(f"{GAME}/samples/nuts/apply", json={}, headers=headers(ann))
    assert await error(no_key, 400) == "idempotency_key_required"
    assert await error(await sw.client.post(f"{GAME}/samples/nuts/apply", json={"x": 1},
                                            headers=headers(ann, "x2")), 422) == "invalid_input"
    assert (await sw.client.get(f"{GAME}/samples/nuts?merchant=shop")).status == 404
    as_shopper = await sw.client.get("/v1/admin/games/squirrel/samples/nuts",
                                     headers=headers(ann))
    assert as_shopper.status == 403
    not_winner = await sw.client.post(f"{GAME}/samples/nuts/review", json={"report": "x"},
                                      headers=headers(ann, "x3"))
    assert await error(not_winner, 409) == "not_a_winner"
    assert (await public_view(sw))["applicants"] == 0


async def test_thousand_applications_twenty_verifiable_winners(sw: World) -> None:
    """1,000 shoppers apply at once (every tenth twice with its key): 1,000 applicants,
    then exactly 20 winners, each verifiable from the revealed seed and the cutoff, and
    the whole draw recomputable from the applicant list; 503 + Retry-After retried with
    the key, never another 5xx."""
    users = [f"s{i}" for i in range(1000)]
    jobs = [(token(sw, u), f"{u}-a") for u in users]
    shed: list[int] = []

    async def answered(tok: str, key: str) -> Any:
        return await answered_despite_503(lambda: apply(sw, tok, key), shed, key)

    started = time.monotonic()
    results = await asyncio.gather(*[answered(t, k) for t, k in jobs + jobs[::10]])
    print(f"{len(results)} applySample in {time.monotonic() - started:.2f} s, "
          f"503 retried: {len(shed)}")
    assert [r.status for r in results] == [200] * 1100
    assert (await public_view(sw))["applicants"] == 1000

    sw.clock.set(CLOSES + DRAW_GRACE_S)
    result = await ok(await draw(sw))
    assert (result["winners"], result["applicants"]) == (20, 1000)
    assert result["applicants_hash"] == applicants_hash(users)
    winners = (await admin_view(sw))["winner_users"]
    assert len(set(winners)) == 20
    assert winners == lottery(result["seed"], "nuts", users, 20).winners
    won = {u for u in users
           if verify_ticket(result["seed"], result["seed_hash"], "nuts", u, result["cutoff"])}
    assert won == set(winners)
    assert sorted(await won_events(sw)) == sorted(f"sample-won:squirrel:nuts:{u}"
                                                  for u in winners)


async def test_an_apply_keeps_its_key(sw: World) -> None:
    """An application owes the shopper nothing (its reply is the campaign's), yet its key
    is taken: another request under it is 422 and changes nothing; a retry replays."""
    ann = token(sw, "ann")
    first = await ok(await apply(sw, ann, "k1"))
    other_campaign = await apply(sw, ann, "k1", "tea")
    assert await error(other_campaign, 422) == "idempotency_mismatch"
    other_route = await sw.client.post(f"{GAME}/checkin", json={}, headers=headers(ann, "k1"))
    assert await error(other_route, 422) == "idempotency_mismatch"
    again = await apply(sw, ann, "k1")
    assert await ok(again) == first and again.headers["Idempotent-Replayed"] == "true"
    assert ((await public_view(sw))["applicants"], (await public_view(sw, "tea"))["applicants"]) \
        == (1, 0)


async def test_one_key_sent_to_two_campaigns_at_once_applies_once(sw: World) -> None:
    """The key is claimed before either campaign changes: of two requests racing under
    one key, one applies and the other is 422, never both."""
    for n in range(8):
        tok = token(sw, f"s{n}")
        await ok(await sw.client.post(f"{GAME}/tasks/follow/complete", json={},
                                      headers=headers(tok, f"f{n}")))
        nuts, tea = await asyncio.gather(apply(sw, tok, f"race{n}"),
                                         apply(sw, tok, f"race{n}", "tea"))
        assert sorted([nuts.status, tea.status]) == [200, 422], (nuts.status, tea.status)
    assert ((await public_view(sw))["applicants"]
            + (await public_view(sw, "tea"))["applicants"]) == 8
