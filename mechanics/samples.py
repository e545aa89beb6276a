"""Sampling (派样): pure rules of a campaign, with time, seeds and states as arguments.

State lives in aggregates (docs/architecture.md, "Aggregates"):

- the campaign's **meta** (``CampaignMeta``, one aggregate): the lottery seed (made by
  the server's RNG on the first read, its hash public from then on) and, once drawn,
  the result;
- its **application buckets** (``AppBucket``, ``buckets`` aggregates): a shopper always
  applies in the bucket of their user id, so "one application per shopper" is checked
  in one place. First come: bucket ``b`` gives away its share of the stock
  (``Campaign.share``) to its first applicants; Σ of the shares is the stock.

:func:`apply` (the gate of ``applySample``) owes the shopper nothing, so an application
is one commit. :func:`review` (the follow-up task) is a two-commit action: the bucket
records the report once, and :func:`apply_review` grants the reward on the shopper.
:func:`draw` picks exactly ``min(stock, applicants)`` winners by
:func:`economy.samples.lottery`, once: a second draw answers the first result.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from economy.config import GameConfig
from economy.fairness import seed_hash
from economy.rewards import Reward
from economy.samples import (
    DRAW_GRACE_S,
    REPORT_MAX,
    AlreadyApplied,
    AlreadyReviewed,
    ApplicationsClosed,
    ApplicationsNotOpen,
    Campaign,
    DrawNotDue,
    LotteryResult,
    NotALottery,
    NotAWinner,
    NotEligible,
    ReviewClosed,
    lottery,
)
from mechanics.aggregate import SharedOutcome
from mechanics.grants import Effects, grant
from mechanics.outcome import Outcome
from mechanics.state import PlayerState, new_player

KIND = "sample"
"""The aggregate kind of a campaign's application buckets."""
META_KIND = "samplemeta"
"""The aggregate kind of a campaign's seed and result."""
EFFECT = "sample_review"
"""The owed record a review leaves for the shopper's commit."""


@dataclass
class Drawn:
    """A lottery's result, as committed."""

    at: int
    result: LotteryResult

    def to_wire(self) -> list[Any]:
        r = self.result
        return [self.at, r.winners, r.cutoff, r.applicants, r.applicants_hash]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> Drawn:
        return cls(raw[0], LotteryResult(list(raw[1]), raw[2], raw[3], raw[4]))


@dataclass
class CampaignMeta:
    """The lottery seed of a campaign and, once drawn, its result."""

    seed: str
    drawn: Drawn | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"s": self.seed, "d": self.drawn.to_wire() if self.drawn else None}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> CampaignMeta:
        return cls(raw["s"], Drawn.from_wire(raw["d"]) if raw["d"] is not None else None)


@dataclass
class AppBucket:
    """One bucket of a campaign: applications, first-come wins, review reports."""

    applicants: dict[str, int] = field(default_factory=dict)
    """user → unix s applied"""
    winners: dict[str, int] = field(default_factory=dict)
    """first come: user → unix s won"""
    reviews: dict[str, list[Any]] = field(default_factory=dict)
    """user → [unix s reviewed, report]"""

    def to_wire(self) -> dict[str, Any]:
        return {"a": self.applicants, "w": self.winners, "r": self.reviews}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> AppBucket:
        return cls(dict(raw["a"]), dict(raw["w"]), {u: list(v) for u, v in raw["r"].items()})


def bucket_of(user: str, buckets: int) -> int:
    """The bucket a shopper always applies in (stable across processes)."""
    return zlib.crc32(user.encode()) % buckets


def bucket_id(campaign: str, bucket: int) -> str:
    return f"{campaign}-b{bucket}"


def make_meta(meta: CampaignMeta | None, seed: str) -> SharedOutcome:
    """Commit ``seed`` (64 hex from the server's RNG) unless the campaign has one."""
    kept = meta if meta is not None else CampaignMeta(seed)
    return SharedOutcome(kept, {"seed_hash": seed_hash(kept.seed)})


def missing_conditions(state: PlayerState | None, campaign: Campaign) -> list[str]:
    """What the shopper lacks of the campaign's eligibility (empty: eligible)."""
    rules = campaign.eligibility
    tasks = state.tasks if state is not None else {}
    missing = []
    if rules.member_task is not None and _done(tasks, rules.member_task) == 0:
        missing.append("member")
    if rules.follow_task is not None and _done(tasks, rules.follow_task) == 0:
        missing.append("follow")
    orders = state.orders if state is not None else {}
    if sum(1 for o in orders.values() if o.live) < rules.min_orders:
        missing.append("orders")
    return missing


def _done(tasks: Mapping[str, Any], task: str) -> int:
    progress = tasks.get(task)
    return 0 if progress is None else int(progress.count)


def apply(bucket: AppBucket | None, campaign: Campaign, index_of: int, user: str,
          state: PlayerState | None, now: int) -> SharedOutcome:
    """The gate of ``applySample``: one application per shopper, in the window, if
    eligible; first come, it wins while the bucket's share lasts."""
    if now < campaign.opens_at:
        raise ApplicationsNotOpen(campaign.id, campaign.opens_at, now)
    if now >= campaign.closes_at:
        raise ApplicationsClosed(campaign.id, campaign.closes_at)
    missing = missing_conditions(state, campaign)
    if missing:
        raise NotEligible(campaign.id, missing)
    old = bucket or AppBucket()
    if user in old.applicants:
        raise AlreadyApplied(campaign.id)
    winners = dict(old.winners)
    status = "applied"
    if campaign.mode == "first_come":
        status = "waitlisted"
        if len(winners) < campaign.share(index_of):
            winners[user] = now
            status = "won"
    new = AppBucket({**old.applicants, user: now}, winners, old.reviews)
    response = {"campaign": campaign.id, "status": status, "applied_at": now}
    return SharedOutcome(new, response, {"u": user, "s": status})


def check_draw(campaign: Campaign, now: int) -> None:
    """Refuse a draw of a first-come campaign, or before the window and its grace end."""
    if campaign.mode != "lottery":
        raise NotALottery(campaign.id)
    due = campaign.closes_at + DRAW_GRACE_S
    if now < due:
        raise DrawNotDue(campaign.id, due, now)


def draw(meta: CampaignMeta | None, campaign: Campaign, applicants: Sequence[str],
         now: int) -> SharedOutcome:
    """The lottery, once: ``min(stock, applicants)`` winners by the committed seed; a
    campaign already drawn answers its result unchanged."""
    check_draw(campaign, now)
    if meta is None:  # the caller commits a seed first; a campaign without one is a bug
        raise DrawNotDue(campaign.id, campaign.closes_at + DRAW_GRACE_S, now)
    if meta.drawn is not None:
        return SharedOutcome(meta, result_view(campaign, meta) or {})
    drawn = Drawn(now, lottery(meta.seed, campaign.id, applicants, campaign.stock))
    new = CampaignMeta(meta.seed, drawn)
    return SharedOutcome(new, result_view(campaign, new) or {},
                         {"winners": len(drawn.result.winners),
                          "applicants": drawn.result.applicants})


def won_at(campaign: Campaign, bucket: AppBucket | None, meta: CampaignMeta | None,
           user: str) -> int | None:
    """When ``user`` won (first come: applied; lottery: the draw), or None."""
    if campaign.mode == "first_come":
        return bucket.winners.get(user) if bucket is not None else None
    if meta is None or meta.drawn is None or user not in meta.drawn.result.winners:
        return None
    return meta.drawn.at


def review(bucket: AppBucket | None, campaign: Campaign, user: str, report: str,
           won: int | None, now: int) -> SharedOutcome:
    """The gate of ``reviewSample``: a winner's report, once, within the review window;
    owes the shopper the reward."""
    if campaign.review is None:
        raise ReviewClosed(campaign.id, None)
    if won is None:
        raise NotAWinner(campaign.id)
    until = won + campaign.review.within_s
    if now >= until:
        raise ReviewClosed(campaign.id, until)
    old = bucket or AppBucket()
    if user in old.reviews:
        raise AlreadyReviewed(campaign.id)
    kept = report[:REPORT_MAX]
    new = AppBucket(old.applicants, old.winners, {**old.reviews, user: [now, kept]})
    response = {"campaign": campaign.id, "reviewed_at": now}
    owed = {"effect": EFFECT, **response, "reward": dict(campaign.review.reward)}
    return SharedOutcome(new, response, {"u": user, "n": len(kept)}, owed)


def apply_review(state: PlayerState | None, owed: dict[str, Any], now: int,
                 config: GameConfig) -> Outcome:
    """The shopper's side of a review: the reward, free, first repays what the shopper
    owes of its currency, then is clamped at a balance's max
    (:func:`mechanics.grants.grant`). Never refuses."""
    new = state.copy() if state is not None else new_player(config, now)
    fx = Effects()
    grant(new, Reward(currency=dict(owed["reward"])), f"review:{owed['campaign']}", config, fx)
    new.last_seen = now
    response = {"campaign": owed["campaign"], "reviewed_at": owed["reviewed_at"],
                "reward": dict(owed["reward"]), "wallet": dict(new.wallet)}
    return Outcome(state=new, response=response, ledger=fx.ledger, events=fx.events)


# -- views -----------------------------------------------------------------------------


def result_view(campaign: Campaign, meta: CampaignMeta | None) -> dict[str, Any] | None:
    """A drawn lottery's public result: the revealed seed, cutoff and applicant digest."""
    if meta is None or meta.drawn is None:
        return None
    r = meta.drawn.result
    return {"campaign": campaign.id, "drawn_at": meta.drawn.at, "seed": meta.seed,
            "seed_hash": seed_hash(meta.seed), "winners": len(r.winners), "cutoff": r.cutoff,
            "applicants": r.applicants, "applicants_hash": r.applicants_hash}


def _totals(buckets: Sequence[AppBucket | None]) -> tuple[int, int, int]:
    present = [b for b in buckets if b is not None]
    return (sum(len(b.applicants) for b in present), sum(len(b.winners) for b in present),
            sum(len(b.reviews) for b in present))


def campaign_view(campaign: Campaign, meta: CampaignMeta | None,
                  buckets: Sequence[AppBucket | None], now: int) -> dict[str, Any]:
    """What ``getSampleCampaign`` shows (public)."""
    applicants, first_won, _ = _totals(buckets)
    e = campaign.eligibility
    drawn = meta is not None and meta.drawn is not None
    winners = first_won if campaign.mode == "first_come" else (
        len(meta.drawn.result.winners) if meta is not None and meta.drawn is not None else 0)
    return {"campaign": campaign.id, "title": campaign.title, "sku": campaign.sku,
            "stock": campaign.stock, "mode": campaign.mode,
            "status": "drawn" if drawn else campaign.status(now),
            "opens_at": campaign.opens_at, "closes_at": campaign.closes_at,
            "server_time": now,
            "eligibility": {"member": e.member_task is not None,
                            "follow": e.follow_task is not None, "min_orders": e.min_orders},
            "review_reward": dict(campaign.review.reward) if campaign.review else None,
            "applicants": applicants, "winners": winners,
            "stock_left": max(0, campaign.stock - winners),
            "seed_hash": seed_hash(meta.seed) if meta is not None else None,
            "result": result_view(campaign, meta)}


def admin_view(campaign: Campaign, meta: CampaignMeta | None,
               buckets: Sequence[AppBucket | None], now: int) -> dict[str, Any]:
    """What ``getSampleCampaignAdmin`` shows: the public view, the winners by name, the
    review rate and the reports."""
    view = campaign_view(campaign, meta, buckets, now)
    present = [b for b in buckets if b is not None]
    if campaign.mode == "first_come":
        winners = sorted(u for b in present for u in b.winners)
    else:
        winners = list(meta.drawn.result.winners) if meta is not None and meta.drawn else []
    reviews = sorted(([u, *v] for b in present for u, v in b.reviews.items()),
                     key=lambda r: (r[1], r[0]))
    view.update({"winner_users": winners, "reviews": len(reviews),
                 "review_rate": round(len(reviews) / len(winners), 4) if winners else 0.0,
                 "reports": [{"user": u, "at": at, "report": text} for u, at, text in reviews]})
    return view


def my_samples(campaigns: Sequence[Campaign], metas: Sequence[CampaignMeta | None],
               buckets: Sequence[AppBucket | None], user: str) -> list[dict[str, Any]]:
    """``listMySamples``: the campaigns ``user`` applied to, with where each stands
    (``applied``, ``waitlisted``, ``won``, ``lost``) and whether they reviewed."""
    out = []
    for campaign, meta, bucket in zip(campaigns, metas, buckets, strict=True):
        if bucket is None or user not in bucket.applicants:
            continue
        won = won_at(campaign, bucket, meta, user)
        if won is not None:
            status = "won"
        elif campaign.mode == "first_come":
            status = "waitlisted"
        else:
            status = "lost" if meta is not None and meta.drawn is not None else "applied"
        review_until = (won + campaign.review.within_s
                        if won is not None and campaign.review is not None else None)
        out.append({"campaign": campaign.id, "sku": campaign.sku, "status": status,
                    "applied_at": bucket.applicants[user], "won_at": won,
                    "reviewed": user in bucket.reviews, "review_until": review_until})
    return out


def rename_applicant(bucket: AppBucket, user: str, alias: str) -> AppBucket | None:
    """``bucket`` naming ``alias`` wherever it named ``user`` (application, first-come
    win, review), or None when it does not name them (``erasePlayer``,
    docs/privacy.md). The review's text stays: the merchant's record of what the sample
    brought."""
    if user not in bucket.applicants and user not in bucket.winners \
            and user not in bucket.reviews:
        return None

    def swapped(d: dict[str, Any]) -> dict[str, Any]:
        return {alias if u == user else u: v for u, v in d.items()}

    return AppBucket(swapped(bucket.applicants), swapped(bucket.winners),
                     swapped(bucket.reviews))
