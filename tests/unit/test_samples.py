"""Sampling: config section, the lottery (exactly ``stock`` winners, verifiable, and fair
by a chi-square over many seeded lotteries), and the application, draw and review rules
at every boundary."""

from __future__ import annotations

import copy
import hashlib
import hmac
import random
from typing import Any

import pytest

from economy.config import parse_game_config
from economy.errors import ConfigInvalid
from economy.samples import (
    DRAW_GRACE_S,
    AlreadyApplied,
    AlreadyReviewed,
    ApplicationsClosed,
    ApplicationsNotOpen,
    Campaign,
    DrawNotDue,
    Eligibility,
    NotALottery,
    NotAWinner,
    NotEligible,
    Review,
    ReviewClosed,
    applicants_hash,
    lottery,
    ticket,
    verify_ticket,
)
from mechanics import samples as rules
from mechanics.orderstate import OrderRecord
from mechanics.pet import new_player
from mechanics.taskstate import TaskProgress
from tests.conftest import BASIC_CONFIG

OPENS, CLOSES = 1_000_000, 1_000_000 + 86400
SEED = "a7" * 32
LOT = Campaign(id="nuts", title="New nuts", sku="nuts-200g", stock=3, opens_at=OPENS,
               closes_at=CLOSES, mode="lottery", eligibility=Eligibility(),
               review=Review({"acorn": 50}, 7 * 86400), buckets=2)
FIRST = Campaign(id="tea", title="Tea", sku="tea", stock=150, opens_at=OPENS, closes_at=CLOSES,
                 mode="first_come", eligibility=Eligibility(), review=None, buckets=2)


def config(samples: dict[str, Any]) -> Any:
    raw = copy.deepcopy(BASIC_CONFIG)
    raw["tasks"] = {"follow": {"name": "Follow the shop", "kind": "follow", "period": "once",
                               "reward": {"currency": {"acorn": 1}}}}
    raw["samples"] = samples
    return parse_game_config(raw)


def camp_raw(**over: Any) -> dict[str, Any]:
    return {"title": "New nuts", "sku": "nuts-200g", "stock": 20, "opens_at": OPENS,
            "closes_at": CLOSES, **over}


# -- config ------------------------------------------------------------------------------


def test_config_defaults_and_model() -> None:
    cfg = config({"nuts": camp_raw(eligibility={"follow_task": "follow", "min_orders": 1},
                                   review={"reward": {"acorn": 5}})})
    assert cfg.samples == {"nuts": Campaign(
        id="nuts", title="New nuts", sku="nuts-200g", stock=20, opens_at=OPENS,
        closes_at=CLOSES, mode="lottery",
        eligibility=Eligibility(member_task=None, follow_task="follow", min_orders=1),
        review=Review({"acorn": 5}, 30 * 86400), buckets=8)}


@pytest.mark.parametrize(("camp", "path"), [
    (camp_raw(closes_at=OPENS), "$.samples.nuts.closes_at"),
    (camp_raw(eligibility={"member_task": "vip"}), "$.samples.nuts.eligibility.member_task"),
    (camp_raw(review={"reward": {"gold": 1}}), "$.samples.nuts.review.reward.gold"),
    (camp_raw(stock=0), "$.samples.nuts.stock"),
    (camp_raw(mode="raffle"), "$.samples.nuts.mode"),
])
def test_config_problems_name_their_path(camp: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        config({"nuts": camp})
    assert path in [p["path"] for p in err.value.details["problems"]]


# -- the lottery -------------------------------------------------------------------------


def offline_ticket(seed_hex: str, campaign: str, user: str) -> int:
    """docs/fairness.md's ticket, stdlib only."""
    mac = hmac.new(bytes.fromhex(seed_hex), f"{campaign}:{user}".encode(), hashlib.sha256)
    return int.from_bytes(mac.digest(), "big")


def test_lottery_exact_winners_and_verifiable() -> None:
    users = [f"u{i}" for i in range(50)]
    result = lottery(SEED, "nuts", reversed(users), 7)
    assert len(result.winners) == 7 and len(set(result.winners)) == 7
    assert result.applicants == 50 and result.applicants_hash == applicants_hash(users)
    ranked = sorted(users, key=lambda u: offline_ticket(SEED, "nuts", u))
    assert result.winners == ranked[:7]
    assert result.cutoff == f"{offline_ticket(SEED, 'nuts', ranked[6]):064x}"
    digest = hashlib.sha256(bytes.fromhex(SEED)).hexdigest()
    for u in users:
        assert verify_ticket(SEED, digest, "nuts", u, result.cutoff) is (u in result.winners)
    assert verify_ticket("a8" * 32, digest, "nuts", "u1", result.cutoff) is None
    assert lottery(SEED, "nuts", users + users[:5], 7) == result  # duplicates count once


def test_lottery_with_fewer_applicants_than_stock() -> None:
    result = lottery(SEED, "nuts", ["b", "a"], 3)
    assert sorted(result.winners) == ["a", "b"] and result.cutoff is None
    assert lottery(SEED, "nuts", [], 3).winners == []
    assert ticket(SEED, "nuts", "a") == offline_ticket(SEED, "nuts", "a")


def test_lottery_is_fair_chi_square() -> None:
    """1,500 lotteries with seeded seeds, 40 applicants, 8 winners: each applicant's
    wins against the uniform 1500·8/40 = 300 expected. χ² with 39 degrees of freedom
    stays under 72.05 (p = 0.001) for a fair draw; a draw biased by one position
    (say user order) would blow far past it."""
    rng = random.Random(2026)
    users = [f"shopper{i}" for i in range(40)]
    wins = dict.fromkeys(users, 0)
    for _ in range(1500):
        for u in lottery(rng.randbytes(32).hex(), "nuts", users, 8).winners:
            wins[u] += 1
    expected = 1500 * 8 / 40
    chi2 = sum((w - expected) ** 2 / expected for w in wins.values())
    assert sum(wins.values()) == 1500 * 8
    assert chi2 < 72.05, chi2


# -- applications ------------------------------------------------------------------------


def test_application_window_instants() -> None:
    with pytest.raises(ApplicationsNotOpen) as early:
        rules.apply(None, LOT, 0, "ann", None, OPENS - 1)
    assert early.value.details == {"campaign": "nuts", "opens_at": OPENS, "retry_after": 1}
    out = rules.apply(None, LOT, 0, "ann", None, OPENS)
    assert out.response == {"campaign": "nuts", "status": "applied", "applied_at": OPENS}
    assert out.owed is None and out.state.applicants == {"ann": OPENS}
    assert rules.apply(None, LOT, 0, "ann", None, CLOSES - 1).response["status"] == "applied"
    with pytest.raises(ApplicationsClosed):
        rules.apply(None, LOT, 0, "ann", None, CLOSES)


def test_one_application_per_shopper() -> None:
    state = rules.apply(None, LOT, 0, "ann", None, OPENS).state
    with pytest.raises(AlreadyApplied):
        rules.apply(state, LOT, 0, "ann", None, OPENS + 1)


def test_eligibility() -> None:
    cfg = config({"nuts": camp_raw(eligibility={"follow_task": "follow", "min_orders": 2})})
    camp = cfg.samples["nuts"]
    player = new_player(cfg, OPENS)
    with pytest.raises(NotEligible) as err:
        rules.apply(None, camp, 0, "ann", player, OPENS)
    assert err.value.details == {"campaign": "nuts", "missing": ["follow", "orders"]}
    player.tasks["follow"] = TaskProgress(period=0, count=1)
    player.orders = {"o1": OrderRecord(at=OPENS, amount=100),
                     "o2": OrderRecord(at=OPENS, amount=100, refunded=True)}
    assert rules.missing_conditions(player, camp) == ["orders"]
    player.orders["o3"] = OrderRecord(at=OPENS, amount=100)
    assert rules.apply(None, camp, 0, "ann", player, OPENS).response["status"] == "applied"


def test_first_come_bucket_shares_give_exactly_the_stock() -> None:
    """Stock 150 over 2 buckets: shares 75 and 75; later applicants are waitlisted."""
    assert (FIRST.lanes, FIRST.share(0), FIRST.share(1)) == (2, 75, 75)
    b0 = None
    statuses = []
    for n in range(76):
        out = rules.apply(b0, FIRST, 0, f"a{n}", None, OPENS + n)
        b0 = out.state
        statuses.append(out.response["status"])
    assert statuses == ["won"] * 75 + ["waitlisted"]
    b1 = rules.apply(None, FIRST, 1, "b0", None, OPENS).state
    view = rules.admin_view(FIRST, None, [b0, b1], OPENS + 5)
    assert len(view["winner_users"]) == 76 and view["stock_left"] == 74
    assert view["applicants"] == 77


def test_small_first_come_uses_one_bucket() -> None:
    """At most one bucket per 50 samples: stock 3 in 8 buckets is one bucket of 3."""
    small = Campaign(id="tea", title="Tea", sku="tea", stock=3, opens_at=OPENS,
                     closes_at=CLOSES, mode="first_come", eligibility=Eligibility(),
                     review=None, buckets=8)
    assert (small.lanes, small.share(0), LOT.lanes) == (1, 3, 2)


# -- the draw ----------------------------------------------------------------------------


def _applied(users: list[str]) -> list[rules.AppBucket | None]:
    buckets: list[rules.AppBucket | None] = [None, None]
    for u in users:
        b = rules.bucket_of(u, 2)
        buckets[b] = rules.apply(buckets[b], LOT, b, u, None, OPENS).state
    return buckets


def test_draw_instants_and_once() -> None:
    meta = rules.make_meta(None, SEED).state
    users = [f"u{i}" for i in range(10)]
    with pytest.raises(DrawNotDue) as err:
        rules.draw(meta, LOT, users, CLOSES + DRAW_GRACE_S - 1)
    assert err.value.details["retry_after"] == 1
    out = rules.draw(meta, LOT, users, CLOSES + DRAW_GRACE_S)
    drawn = out.state.drawn
    assert drawn is not None and drawn.result == lottery(SEED, "nuts", users, 3)
    assert out.response["winners"] == 3 and out.response["seed"] == SEED
    again = rules.draw(out.state, LOT, [*users, "late"], CLOSES + 999)
    assert again.state is out.state and again.response == out.response
    assert rules.CampaignMeta.from_wire(out.state.to_wire()) == out.state
    with pytest.raises(NotALottery):
        rules.draw(meta, FIRST, users, CLOSES + 999)


def test_make_meta_keeps_the_first_seed() -> None:
    meta = rules.make_meta(None, SEED).state
    assert rules.make_meta(meta, "00" * 32).state is meta


def test_my_samples_statuses() -> None:
    users = [f"u{i}" for i in range(10)]
    buckets = _applied(users)
    meta = rules.make_meta(None, SEED).state
    mine = {u: rules.my_samples([LOT], [meta], [buckets[rules.bucket_of(u, 2)]], u)
            for u in users}
    assert {m[0]["status"] for m in mine.values()} == {"applied"}
    drawn = rules.draw(meta, LOT, users, CLOSES + DRAW_GRACE_S).state
    assert drawn.drawn is not None
    winners = set(drawn.drawn.result.winners)
    for u in users:
        entry = rules.my_samples([LOT], [drawn], [buckets[rules.bucket_of(u, 2)]], u)[0]
        assert entry["status"] == ("won" if u in winners else "lost")
        assert entry["review_until"] == (CLOSES + DRAW_GRACE_S + 7 * 86400
                                         if u in winners else None)
    assert rules.my_samples([LOT], [drawn], [None], "nobody") == []


# -- reviews -----------------------------------------------------------------------------


def test_review_once_within_the_window_for_winners() -> None:
    bucket = rules.apply(None, LOT, 0, "ann", None, OPENS).state
    with pytest.raises(NotAWinner):
        rules.review(bucket, LOT, "ann", "tasty", None, CLOSES)
    won = CLOSES + DRAW_GRACE_S
    out = rules.review(bucket, LOT, "ann", "x" * 600, won, won + 7 * 86400 - 1)
    assert out.owed == {"effect": rules.EFFECT, "campaign": "nuts",
                        "reviewed_at": won + 7 * 86400 - 1, "reward": {"acorn": 50}}
    assert out.state.reviews["ann"][1] == "x" * 500
    with pytest.raises(AlreadyReviewed):
        rules.review(out.state, LOT, "ann", "again", won, won + 10)
    with pytest.raises(ReviewClosed) as late:
        rules.review(bucket, LOT, "ann", "late", won, won + 7 * 86400)
    assert late.value.details["until"] == won + 7 * 86400
    with pytest.raises(ReviewClosed):
        rules.review(bucket, FIRST, "ann", "none", OPENS, OPENS)


def test_apply_review_rewards_clamped() -> None:
    cfg = config({"nuts": camp_raw(review={"reward": {"acorn": 50}})})
    player = new_player(cfg, OPENS)
    player.wallet["acorn"] = 980
    owed = {"effect": rules.EFFECT, "campaign": "nuts", "reviewed_at": OPENS,
            "reward": {"acorn": 50}}
    out = rules.apply_review(player, owed, OPENS, cfg)
    assert out.state.wallet["acorn"] == 1000 and out.response["wallet"] == {"acorn": 1000}
    assert player.wallet["acorn"] == 980  # the loaded state is untouched


def test_a_review_reward_repays_a_debt_of_its_currency_first() -> None:
    cfg = config({"nuts": camp_raw(review={"reward": {"acorn": 50}})})
    owing = new_player(cfg, OPENS)
    owing.debts = {"currency:acorn": 30}  # a refund took back a reward already spent
    before = owing.wallet["acorn"]
    owed = {"effect": rules.EFFECT, "campaign": "nuts", "reviewed_at": OPENS,
            "reward": {"acorn": 50}}
    out = rules.apply_review(owing, owed, OPENS, cfg)
    assert (out.state.wallet["acorn"], out.state.debts) == (before + 20, {})
