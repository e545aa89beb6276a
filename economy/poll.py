"""Polls (投票): config section, frozen model, cross-checks and typed refusals.

A poll has options, an open and a close time, a number of votes each shopper may
cast per day (in the game's timezone), an optional price in currency and an optional
reward for voting. Its tallies are split over ``buckets`` aggregates (a shopper
always votes in the same bucket, chosen from their user id, so the per-day cap is
checked in one place); a read sums the buckets. Keep ``buckets`` unchanged once a
poll has opened: moving shoppers to other buckets would reset their daily counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from economy.errors import DomainError, Refusal
from economy.schema import MAX_TIME, Int, Map, Obj, Problems, Str
from economy.section import (
    Cleaned,
    ConfigPart,
    Section,
    removed_while_running,
    started_in_both,
    unknown_currencies,
    window_status,
)

POLL_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
"""Shorter than other ids: a bucket's aggregate id is ``<poll>-b<i>``."""
MAX_AMOUNT = 10**12

OPTION_SPEC = Obj(description="One answer shoppers can vote for.", fields={
    "label": Str(min_length=1, max_length=80),
})

POLL_SPEC = Obj(description="A poll: options, when it is open, and what a vote costs and earns.",
                fields={
    "title": Str(min_length=1, max_length=120),
    "options": Map(values=OPTION_SPEC, min_items=2, max_items=50,
                   description="option id → option"),
    "opens_at": Int(minimum=0, maximum=MAX_TIME, description="unix s the first vote is taken"),
    "closes_at": Int(minimum=1, maximum=MAX_TIME,
                     description="unix s from which no vote is taken; the result is frozen"),
    "votes_per_day": Int(minimum=1, maximum=100, default=1,
                         description="votes one shopper may cast per day (game timezone)"),
    "cost": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={}, max_items=4,
                description="currency → amount paid per vote (empty: free)"),
    "reward": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={}, max_items=4,
                  description="currency → amount granted per vote"),
    "buckets": Int(minimum=1, maximum=64, default=8,
                   description="aggregates the tallies are split over (hot polls: more)"),
})

POLLS_SPEC = Map(values=POLL_SPEC, default={}, max_items=50, key_pattern=POLL_ID_PATTERN,
                 description="poll id → poll (castVote, getPoll)")


@dataclass(frozen=True)
class Poll:
    """One validated poll."""

    id: str
    title: str
    options: dict[str, str]
    """option id → label, in config order"""
    opens_at: int
    closes_at: int
    votes_per_day: int
    cost: dict[str, int]
    reward: dict[str, int]
    buckets: int

    def status(self, now: int) -> str:
        """``upcoming``, ``open`` or ``closed`` at ``now``."""
        return window_status(now, self.opens_at, self.closes_at, after="closed")


def build_polls(d: Mapping[str, Any]) -> dict[str, Poll]:
    """The polls of an already validated and cross-checked game config."""
    return {pid: Poll(id=pid, title=p["title"],
                      options={oid: o["label"] for oid, o in p["options"].items()},
                      opens_at=p["opens_at"], closes_at=p["closes_at"],
                      votes_per_day=p["votes_per_day"], cost=dict(p["cost"]),
                      reward=dict(p["reward"]), buckets=p["buckets"])
            for pid, p in (d.get("polls") or {}).items()}


def check_polls(d: Mapping[str, Any]) -> Problems:
    """The poll closes after it opens, and its currencies exist."""
    problems: Problems = []
    currencies = d.get("currencies", {})
    for pid, poll in (d.get("polls") or {}).items():
        path = f"$.polls.{pid}"
        if poll["closes_at"] <= poll["opens_at"]:
            problems.append({"path": f"{path}.closes_at",
                             "message": "a poll must close after it opens"})
        for section in ("cost", "reward"):
            problems += unknown_currencies(poll[section], currencies, f"{path}.{section}")
    return problems


def follow_polls(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """A poll that opened keeps its options (votes were cast for them) and its
    ``buckets`` (its tallies and each shopper's votes are split by them). An open poll
    is not removed either: added again with other ``buckets``, its view would lose the
    votes of the buckets it no longer reads and its shoppers would vote again that day
    (close it first)."""
    problems = removed_while_running(
        live, new, "polls", now, lambda p: (int(p["opens_at"]), int(p["closes_at"])),
        "votes were split by its buckets: added again, it would count them differently")
    for pid, old, p in started_in_both(live, new, "polls", now, lambda p: int(p["opens_at"])):
        problems += [{"path": f"$.polls.{pid}.options.{oid}", "message": "is in the live "
                      "version and votes may be cast for it: it cannot be removed once the "
                      "poll opened"} for oid in old["options"] if oid not in p["options"]]
        if p["buckets"] != old["buckets"]:
            problems.append({"path": f"$.polls.{pid}.buckets", "message": (
                f"is {old['buckets']} in the live version and votes were split by it: it "
                "cannot change once the poll opened")})
    return problems


POLLS = Section(name="poll", fields={"polls": POLLS_SPEC},
                build=lambda d: {"polls": build_polls(d)}, check=check_polls,
                follow=follow_polls)


@dataclass(frozen=True, kw_only=True)
class PollsPart(ConfigPart):
    """The polls of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = POLLS
    polls: dict[str, Poll] = field(default_factory=dict)


class PollNotOpen(DomainError):
    """A vote before the poll opens."""

    code = "poll_not_open"
    kind = Refusal.CONFLICT

    def __init__(self, poll: str, opens_at: int) -> None:
        super().__init__("this poll is not open yet", poll=poll, opens_at=opens_at)


class PollClosed(DomainError):
    """A vote at or after the close: the result is frozen."""

    code = "poll_closed"
    kind = Refusal.CONFLICT

    def __init__(self, poll: str, closes_at: int) -> None:
        super().__init__("this poll is closed", poll=poll, closes_at=closes_at)


class UnknownOption(DomainError):
    code = "unknown_option"
    kind = Refusal.INVALID

    def __init__(self, poll: str, option: str) -> None:
        super().__init__("no such option in this poll", poll=poll, option=option)


class VoteLimitReached(DomainError):
    """The shopper cast every vote they have today."""

    code = "vote_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, poll: str, limit: int) -> None:
        super().__init__("no votes left today", poll=poll, votes_per_day=limit)
