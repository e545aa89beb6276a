"""Voting (投票): pure rules of a poll, with time and timezone as arguments.

A vote is a two-commit action (docs/architecture.md, "Aggregates"):

- :func:`cast_vote` is the gate, on the shopper's poll bucket (``PollBucket``): it
  checks the poll is open, the option exists and the shopper has a vote left today,
  counts the vote, and returns what the shopper is owed (price, reward);
- :func:`apply_vote` is the shopper's side, driven only by that owed record: it pays
  the price and grants the reward. It never refuses (a commit that follows a gate must
  not): a price the wallet no longer covers (spent between the check and this commit)
  becomes a debt; the reward, free, first repays what the shopper owes of its currency
  (that debt or another, as every free reward does: :func:`mechanics.grants.grant`),
  and a reward over a balance's maximum is clamped.

Tallies are exact: a vote is counted by exactly one bucket commit; a read sums the
buckets (:func:`poll_view`). No vote is taken from ``closes_at`` on, so the result
read after the close is frozen.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from economy.errors import InsufficientFunds
from economy.poll import Poll, PollClosed, PollNotOpen, UnknownOption, VoteLimitReached
from economy.rewards import Reward
from mechanics.aggregate import SharedOutcome
from mechanics.calendar import local_day
from mechanics.grants import Effects, charge, grant
from mechanics.outcome import Outcome
from mechanics.state import PlayerState, new_player

KIND = "poll"
"""The aggregate kind of a poll's buckets."""
EFFECT = "poll_vote"
"""The owed record a vote leaves for the shopper's commit."""


@dataclass
class PollBucket:
    """One bucket of a poll's tallies, and its shoppers' votes today."""

    tallies: dict[str, int] = field(default_factory=dict)
    total: int = 0
    day: int = 0
    """The local day ``voters`` counts (older days are dropped on the next vote)."""
    voters: dict[str, int] = field(default_factory=dict)
    """user → votes cast on ``day``"""

    def to_wire(self) -> dict[str, Any]:
        return {"t": self.tallies, "n": self.total, "d": self.day, "u": self.voters}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> PollBucket:
        return cls(dict(raw["t"]), raw["n"], raw["d"], dict(raw["u"]))


def bucket_of(user: str, buckets: int) -> int:
    """The bucket a shopper always votes in (stable across processes)."""
    return zlib.crc32(user.encode()) % buckets


def bucket_id(poll: str, bucket: int) -> str:
    return f"{poll}-b{bucket}"


def _check_open(poll: Poll, now: int) -> None:
    if now < poll.opens_at:
        raise PollNotOpen(poll.id, poll.opens_at)
    if now >= poll.closes_at:
        raise PollClosed(poll.id, poll.closes_at)


def check_ballot(poll: Poll, option: str, now: int) -> None:
    """Refuse a vote that could never count (the poll not open, an option it does not
    have) before its price is looked at: a shopper who cannot pay is told about the
    bad request first, as with any other input."""
    _check_open(poll, now)
    if option not in poll.options:
        raise UnknownOption(poll.id, option)


def check_price(state: PlayerState | None, poll: Poll, config: GameConfig, now: int) -> None:
    """Refuse a vote the shopper cannot pay, before the gate counts it."""
    wallet = state.wallet if state is not None else new_player(config, now).wallet
    for cid, amount in sorted(poll.cost.items()):
        if wallet.get(cid, 0) < amount:
            raise InsufficientFunds(cid, wallet.get(cid, 0), amount)


def cast_vote(bucket: PollBucket | None, poll: Poll, user: str, option: str, now: int,
              tz: tzinfo) -> SharedOutcome:
    """The gate: count ``user``'s vote for ``option`` in their bucket."""
    check_ballot(poll, option, now)
    day = local_day(now, tz)
    old = bucket or PollBucket()
    voters = dict(old.voters) if old.day == day else {}
    used = voters.get(user, 0)
    if used >= poll.votes_per_day:
        raise VoteLimitReached(poll.id, poll.votes_per_day)
    voters[user] = used + 1
    tallies = dict(old.tallies)
    tallies[option] = tallies.get(option, 0) + 1
    new = PollBucket(tallies, old.total + 1, day, voters)
    response = {"poll": poll.id, "option": option, "votes_today": used + 1,
                "votes_left_today": poll.votes_per_day - used - 1}
    owed = {"effect": EFFECT, **response, "cost": dict(poll.cost),
            "reward": dict(poll.reward)}
    return SharedOutcome(new, response, {"u": user, "o": option, "d": day}, owed)


def apply_vote(state: PlayerState | None, owed: dict[str, Any], now: int,
               config: GameConfig) -> Outcome:
    """The shopper's side of a counted vote: pay, get the reward. Never refuses."""
    new = state.copy() if state is not None else new_player(config, now)
    reason = f"vote:{owed['poll']}"
    fx = Effects()
    charge(new, owed["cost"], reason, fx)  # checked at the gate: what is spent since, owed
    grant(new, Reward(currency=dict(owed["reward"])), reason, config, fx)  # repays first
    new.last_seen = now
    response = {"poll": owed["poll"], "option": owed["option"],
                "votes_today": owed["votes_today"],
                "votes_left_today": owed["votes_left_today"], "wallet": dict(new.wallet)}
    return Outcome(state=new, response=response, ledger=fx.ledger, events=fx.events)


def poll_view(poll: Poll, buckets: list[PollBucket | None], now: int) -> dict[str, Any]:
    """What ``getPoll`` shows: options with their tallies (Σ over buckets), the total,
    the status, and the result once closed."""
    tallies = dict.fromkeys(poll.options, 0)
    total = 0
    for b in buckets:
        if b is None:
            continue
        total += b.total
        for option, votes in b.tallies.items():
            tallies[option] = tallies.get(option, 0) + votes
    status = poll.status(now)
    view: dict[str, Any] = {
        "poll": poll.id, "title": poll.title, "status": status,
        "opens_at": poll.opens_at, "closes_at": poll.closes_at, "server_time": now,
        "votes_per_day": poll.votes_per_day, "cost": poll.cost, "reward": poll.reward,
        "options": [{"id": oid, "label": label, "votes": tallies[oid]}
                    for oid, label in poll.options.items()],
        "total": total, "result": None}
    if status == "closed":
        top = max(tallies.values(), default=0)
        view["result"] = {"frozen_at": poll.closes_at, "total": total,
                          "winners": [o for o, v in tallies.items() if v == top and top > 0]}
    return view


def rename_voter(bucket: PollBucket, user: str, alias: str) -> PollBucket | None:
    """``bucket`` counting ``user``'s votes of its day under ``alias``, or None when it
    does not name them (``erasePlayer``, docs/privacy.md). The tallies do not move."""
    if user not in bucket.voters:
        return None
    return PollBucket(dict(bucket.tallies), bucket.total, bucket.day,
                      {alias if u == user else u: n for u, n in bucket.voters.items()})
