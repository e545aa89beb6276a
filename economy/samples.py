"""Sampling (派样 / trial): config section, frozen model, the lottery, typed refusals.

A campaign gives away ``stock`` free samples. Shoppers apply during a window
(``opens_at`` to ``closes_at``) if they are eligible: a member (they completed the
merchant's membership task), a follower (the follow-shop task), and at least
``min_orders`` paid orders. Winners are either the first applicants (``first_come``)
or drawn by a provably fair lottery after the window (``lottery``). A winner gets a
claim the merchant ships, and a follow-up review task that rewards a report.

**The lottery** (:func:`lottery`): each applicant's ticket is
``HMAC-SHA256(seed, "<campaign>:<user>")`` read as a 256-bit big-endian integer; the
``stock`` lowest tickets win (ties, which never happen in practice, by user id). The
seed's SHA-256 is public before the window closes and the seed is revealed with the
result, so every applicant can recompute their own ticket and compare it with the
published cutoff, and anybody holding the applicant list can recompute the winners.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from economy.errors import DomainError, Refusal
from economy.fairness import check_server_seed
from economy.schema import MAX_TIME, Enum, Int, Map, Obj, Problems, Str
from economy.section import (
    Cleaned,
    ConfigPart,
    Section,
    removed_while_running,
    started_in_both,
    unknown_currencies,
    window_status,
)

CAMPAIGN_ID_PATTERN = r"^[a-z0-9][a-z0-9_]{0,39}$"
"""Without ``-``: a bucket's aggregate id is ``<campaign>-b<i>``."""
MAX_STOCK = 100_000
MAX_AMOUNT = 10**12
MODES = ("first_come", "lottery")
DRAW_GRACE_S = 5
"""The lottery is drawn from ``closes_at + DRAW_GRACE_S`` on: an application whose rule
ran just before the close has committed by then, so the draw sees every applicant."""
FIRST_COME_PER_BUCKET = 50
REPORT_MAX = 500
"""Characters of a review report kept for the merchant."""

ELIGIBILITY_SPEC = Obj(description="Who may apply (all conditions must hold).",
                       default={"member_task": None, "follow_task": None, "min_orders": 0},
                       fields={
    "member_task": Str(min_length=1, max_length=64, default=None,
                       description="a task completing which makes a shopper a member "
                                   "(null: membership not required)"),
    "follow_task": Str(min_length=1, max_length=64, default=None,
                       description="the follow-shop task (null: following not required)"),
    "min_orders": Int(minimum=0, maximum=1000, default=0,
                      description="paid, unrefunded orders the shopper must have"),
})

REVIEW_SPEC = Obj(description="The follow-up review task of a winner.", default=None, fields={
    "reward": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), min_items=1, max_items=4,
                  description="currency → amount granted for a review report"),
    "within_s": Int(minimum=3600, maximum=90 * 86400, default=30 * 86400,
                    description="seconds after winning (the draw, or the application for "
                                "first come) a review is accepted"),
})

CAMPAIGN_SPEC = Obj(description="A sampling campaign.", fields={
    "title": Str(min_length=1, max_length=120),
    "sku": Str(min_length=1, max_length=64, description="the product sampled"),
    "stock": Int(minimum=1, maximum=MAX_STOCK, description="free samples to give away"),
    "opens_at": Int(minimum=0, maximum=MAX_TIME, description="unix s applications open"),
    "closes_at": Int(minimum=1, maximum=MAX_TIME,
                     description="unix s from which no application is taken"),
    "mode": Enum(values=MODES, default="lottery",
                 description="first_come: the first applicants win at once; lottery: a "
                             "provably fair draw after the window"),
    "eligibility": ELIGIBILITY_SPEC,
    "review": REVIEW_SPEC,
    "buckets": Int(minimum=1, maximum=64, default=8,
                   description="aggregates applications are split over (a shopper always "
                               "applies in the same one); first come: each bucket gives "
                               "away its share of the stock, at most one per 50 samples"),
})

SAMPLES_SPEC = Map(values=CAMPAIGN_SPEC, default={}, max_items=50, key_pattern=CAMPAIGN_ID_PATTERN,
                   description="campaign id → sampling campaign (getSampleCampaign, "
                               "applySample, drawSampleWinners)")


@dataclass(frozen=True)
class Eligibility:
    member_task: str | None = None
    follow_task: str | None = None
    min_orders: int = 0


@dataclass(frozen=True)
class Review:
    reward: dict[str, int]
    within_s: int


@dataclass(frozen=True)
class Campaign:
    """One validated sampling campaign."""

    id: str
    title: str
    sku: str
    stock: int
    opens_at: int
    closes_at: int
    mode: str
    eligibility: Eligibility
    review: Review | None
    buckets: int

    def status(self, now: int) -> str:
        """``upcoming``, ``open`` or ``closed`` at ``now`` (the application window)."""
        return window_status(now, self.opens_at, self.closes_at, after="closed")

    @property
    def lanes(self) -> int:
        """The application buckets in use: ``buckets``, but first come at most one per
        ``FIRST_COME_PER_BUCKET`` samples (a shopper applies only in their own bucket,
        so thin shares would waitlist early applicants while other buckets have stock)."""
        if self.mode == "first_come":
            return max(1, min(self.buckets, self.stock // FIRST_COME_PER_BUCKET))
        return self.buckets

    def share(self, bucket: int) -> int:
        """First come: the samples bucket ``bucket`` gives away (Σ over buckets = stock)."""
        return len(range(bucket, self.stock, self.lanes))


def build_samples(d: Mapping[str, Any]) -> dict[str, Campaign]:
    """The campaigns of an already validated and cross-checked game config."""
    out = {}
    for cid, c in (d.get("samples") or {}).items():
        review = c["review"]
        out[cid] = Campaign(
            id=cid, title=c["title"], sku=c["sku"], stock=c["stock"], opens_at=c["opens_at"],
            closes_at=c["closes_at"], mode=c["mode"], eligibility=Eligibility(**c["eligibility"]),
            review=Review(dict(review["reward"]), review["within_s"]) if review else None,
            buckets=c["buckets"])
    return out


def check_samples(d: Mapping[str, Any]) -> Problems:
    """The window closes after it opens; the named tasks and currencies exist."""
    problems: Problems = []
    currencies, tasks = d.get("currencies", {}), d.get("tasks") or {}
    for cid, c in (d.get("samples") or {}).items():
        path = f"$.samples.{cid}"
        if c["closes_at"] <= c["opens_at"]:
            problems.append({"path": f"{path}.closes_at",
                             "message": "applications must close after they open"})
        for name in ("member_task", "follow_task"):
            task = c["eligibility"][name]
            if task is not None and task not in tasks:
                problems.append({"path": f"{path}.eligibility.{name}",
                                 "message": f"unknown task {task!r}"})
        problems += unknown_currencies((c["review"] or {}).get("reward", {}), currencies,
                                       f"{path}.review.reward")
    return problems


SPLIT_FIELDS = ("stock", "mode", "buckets")
"""What splits a campaign's applications over its buckets and shares (``lanes``,
``share``): fixed once applications open, or buckets would hold applicants they no
longer count and give away shares twice."""


def follow_samples(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """A campaign that opened (at any time, for ``now`` None) keeps its split, and is not
    removed until its lottery may be drawn."""
    return removed_while_running(
        live, new, "samples", now,
        lambda c: (int(c["opens_at"]), int(c["closes_at"]) + DRAW_GRACE_S),
        "applications were split by its stock, mode and buckets") + [
        {"path": f"$.samples.{cid}.{f}", "message": f"is {old[f]!r} in the live "
         "version and applications opened under it: it cannot change (stock, mode and "
         "buckets split the applications)"}
        for cid, old, c in started_in_both(live, new, "samples", now,
                                           lambda c: int(c["opens_at"]))
        for f in SPLIT_FIELDS if c[f] != old[f]]


SAMPLES = Section(name="samples", fields={"samples": SAMPLES_SPEC},
                  build=lambda d: {"samples": build_samples(d)}, check=check_samples,
                  follow=follow_samples)


@dataclass(frozen=True, kw_only=True)
class SamplesPart(ConfigPart):
    """The sampling campaigns of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = SAMPLES
    samples: dict[str, Campaign] = field(default_factory=dict)


# -- the lottery -----------------------------------------------------------------------


def ticket(seed: str, campaign: str, user: str) -> int:
    """An applicant's lottery ticket: HMAC-SHA256(seed, "<campaign>:<user>") as an int."""
    digest = hmac.digest(check_server_seed(seed), f"{campaign}:{user}".encode(), "sha256")
    return int.from_bytes(digest, "big")


def applicants_hash(applicants: Iterable[str]) -> str:
    """hex SHA-256 of the applicants' user ids, sorted, one per line (UTF-8)."""
    return hashlib.sha256("\n".join(sorted(applicants)).encode()).hexdigest()


@dataclass(frozen=True)
class LotteryResult:
    """Who won, and what lets anybody check it."""

    winners: list[str]
    """user ids, best ticket first"""
    cutoff: str | None
    """the highest winning ticket (64 hex), None when every applicant won"""
    applicants: int
    applicants_hash: str


def lottery(seed: str, campaign: str, applicants: Iterable[str], stock: int) -> LotteryResult:
    """The ``stock`` applicants with the lowest tickets (all of them if fewer apply)."""
    users = sorted(set(applicants))
    ranked = sorted(users, key=lambda u: (ticket(seed, campaign, u), u))
    winners = ranked[:stock]
    cutoff = (f"{ticket(seed, campaign, winners[-1]):064x}"
              if len(users) > stock and winners else None)
    return LotteryResult(winners, cutoff, len(users), applicants_hash(users))


def verify_ticket(seed: str, seed_hash: str, campaign: str, user: str,
                  cutoff: str | None) -> bool | None:
    """Whether ``user`` won by the revealed ``seed`` and the published ``cutoff``; None if
    the seed is not the committed one."""
    if hashlib.sha256(check_server_seed(seed)).hexdigest() != seed_hash:
        return None
    return cutoff is None or ticket(seed, campaign, user) <= int(cutoff, 16)


# -- refusals --------------------------------------------------------------------------


class ApplicationsNotOpen(DomainError):
    code = "applications_not_open"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, opens_at: int, now: int) -> None:
        super().__init__("applications for this campaign are not open yet", campaign=campaign,
                         opens_at=opens_at, retry_after=max(0, opens_at - now))


class ApplicationsClosed(DomainError):
    code = "applications_closed"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, closes_at: int) -> None:
        super().__init__("applications for this campaign are closed", campaign=campaign,
                         closes_at=closes_at)


class NotEligible(DomainError):
    """The shopper does not meet the campaign's conditions (``missing`` says which)."""

    code = "not_eligible"
    kind = Refusal.FORBIDDEN

    def __init__(self, campaign: str, missing: list[str]) -> None:
        super().__init__("you are not eligible for this campaign", campaign=campaign,
                         missing=missing)


class AlreadyApplied(DomainError):
    code = "already_applied"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str) -> None:
        super().__init__("you have already applied to this campaign", campaign=campaign)


class DrawNotDue(DomainError):
    """The lottery is drawn only after the window (and its grace) is over."""

    code = "draw_not_due"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, due_at: int, now: int) -> None:
        super().__init__("the lottery can be drawn once applications are closed",
                         campaign=campaign, due_at=due_at, retry_after=max(0, due_at - now))


class NotALottery(DomainError):
    code = "not_a_lottery"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str) -> None:
        super().__init__("this campaign's winners are the first applicants; nothing to draw",
                         campaign=campaign)


class NotAWinner(DomainError):
    code = "not_a_winner"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str) -> None:
        super().__init__("only winners of this campaign can review it", campaign=campaign)


class AlreadyReviewed(DomainError):
    code = "already_reviewed"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str) -> None:
        super().__init__("you have already reviewed this sample", campaign=campaign)


class ReviewClosed(DomainError):
    code = "review_closed"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, until: int | None) -> None:
        super().__init__("this campaign takes no review now", campaign=campaign, until=until)
