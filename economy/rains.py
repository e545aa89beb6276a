"""Red-envelope rain (红包雨): config section, frozen model, the split, typed refusals.

A rain is a schedule of rounds. Each round has a start, a duration, a pool in fen split
into ``envelopes`` envelopes of at least ``min_fen`` each, and a grab limit per shopper.
Grabbed amounts are credited to a wallet currency counted in fen (``kind`` says whether
the merchant pays it out as cash or honours it as coupon credit).

**The split** (:func:`split_pool`) is the "double mean" algorithm with a minimum, driven
by a committed seed (docs/fairness.md, "Red-envelope rain"): envelope ``i`` gets a
uniform amount between ``min_fen`` and twice the mean of what is left, never so much
that the envelopes after it could not get their minimum, and the last one gets the
rest. So Σ of all envelopes is exactly the pool, and every amount is recomputable
offline from the revealed seed and the round's frozen parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

from economy.errors import DomainError, Refusal
from economy.fairness import check_server_seed, roll
from economy.schema import MAX_TIME, Enum, Int, Map, Obj, Problems, Str
from economy.section import (
    Cleaned,
    ConfigPart,
    Section,
    removed_while_running,
    started_in_both,
    window_status,
)

RAIN_ID_PATTERN = r"^[a-z0-9][a-z0-9_]{0,23}$"
"""Short and without ``-``: a pool bucket's aggregate id is ``<rain>-<round>-b<i>``."""
ROUND_ID_PATTERN = r"^[a-z0-9][a-z0-9_]{0,23}$"
MAX_POOL_FEN = 10**10
"""¥100,000,000.00: far above any real pool, small enough for exact integer sums."""
MAX_ENVELOPES = 100_000
"""A split is computed whole (one HMAC per envelope), so it stays bounded."""
KINDS = ("cash", "coupon")

ROUND_SPEC = Obj(description="One round of the rain.", fields={
    "starts_at": Int(minimum=0, maximum=MAX_TIME, description="unix s the first grab is taken"),
    "duration_s": Int(minimum=1, maximum=3600,
                      description="seconds the round lasts: grabs from starts_at to "
                                  "starts_at + duration_s (excluded)"),
    "pool_fen": Int(minimum=1, maximum=MAX_POOL_FEN, description="the pool, in fen"),
    "envelopes": Int(minimum=1, maximum=MAX_ENVELOPES,
                     description="envelopes the pool is split into (double mean)"),
    "min_fen": Int(minimum=1, maximum=MAX_POOL_FEN, default=1,
                   description="the smallest envelope, in fen"),
    "grab_limit": Int(minimum=1, maximum=100, default=1,
                      description="envelopes one shopper may grab in this round"),
})

RAIN_SPEC = Obj(description="A red-envelope rain: rounds, each a pool split among grabbers.",
                fields={
    "title": Str(min_length=1, max_length=120),
    "kind": Enum(values=KINDS, default="cash",
                 description="how the merchant pays the fen out: cash, or coupon credit"),
    "currency": Str(min_length=1, max_length=40,
                    description="the wallet currency (counted in fen) grabbed amounts go to"),
    "rounds": Map(values=ROUND_SPEC, min_items=1, max_items=48, key_pattern=ROUND_ID_PATTERN,
                  description="round id → round (config order; rounds must not overlap)"),
    "buckets": Int(minimum=1, maximum=64, default=8,
                   description="aggregates a round's pool is split over (a shopper always "
                               "grabs in the same one); at most one per 50 envelopes"),
})

RAINS_SPEC = Map(values=RAIN_SPEC, default={}, max_items=20, key_pattern=RAIN_ID_PATTERN,
                 description="rain id → red-envelope rain (getEnvelopeRain, grabEnvelope)")


@dataclass(frozen=True)
class Round:
    """One validated round."""

    id: str
    starts_at: int
    duration_s: int
    pool_fen: int
    envelopes: int
    min_fen: int
    grab_limit: int

    @property
    def ends_at(self) -> int:
        """The first second no grab is taken."""
        return self.starts_at + self.duration_s

    def status(self, now: int) -> str:
        """``upcoming``, ``open`` or ``ended`` at ``now``."""
        return window_status(now, self.starts_at, self.ends_at)

    def terms(self) -> RoundTerms:
        return RoundTerms(self.pool_fen, self.envelopes, self.min_fen)


@dataclass(frozen=True)
class RoundTerms:
    """What a round's split depends on; frozen with its seed when the seed is made, so a
    config published later cannot change envelopes already promised."""

    pool_fen: int
    envelopes: int
    min_fen: int

    def to_wire(self) -> list[int]:
        return [self.pool_fen, self.envelopes, self.min_fen]

    @classmethod
    def from_wire(cls, raw: list[int]) -> RoundTerms:
        return cls(int(raw[0]), int(raw[1]), int(raw[2]))


@dataclass(frozen=True)
class Rain:
    """One validated rain."""

    id: str
    title: str
    kind: str
    currency: str
    rounds: dict[str, Round]
    buckets: int


def build_rains(d: Mapping[str, Any]) -> dict[str, Rain]:
    """The rains of an already validated and cross-checked game config."""
    return {rid: Rain(id=rid, title=r["title"], kind=r["kind"], currency=r["currency"],
                      rounds={oid: Round(id=oid, **o) for oid, o in r["rounds"].items()},
                      buckets=r["buckets"])
            for rid, r in (d.get("rains") or {}).items()}


def most_grabbed(r: Mapping[str, Any]) -> int:
    """The most fen one shopper can grab in round ``r`` (raw config): ``g`` envelopes at
    most (``min(grab_limit, envelopes)``), and every other envelope keeps at least its
    minimum, so ``pool − (envelopes − g) × min_fen``."""
    g = min(r["grab_limit"], r["envelopes"])
    return int(r["pool_fen"] - (r["envelopes"] - g) * r["min_fen"])


def rain_exposure(d: Mapping[str, Any]) -> dict[str, int]:
    """currency → the most one shopper can grab from every round of every rain on it."""
    totals: dict[str, int] = {}
    for rain in (d.get("rains") or {}).values():
        totals[rain["currency"]] = totals.get(rain["currency"], 0) + sum(
            most_grabbed(r) for r in rain["rounds"].values())
    return totals


def _currency_problems(d: Mapping[str, Any]) -> Problems:
    """A rain's currency must hold its ``initial`` plus everything one shopper can grab
    from every rain credited to it: then the rains alone never push a balance past
    ``max``, and a grabbed amount is credited whole (a balance raised by other means is
    the only case left, refused by the grab or recorded as ``uncredited_fen``)."""
    problems: Problems = []
    currencies = d.get("currencies", {})
    exposure = rain_exposure(d)
    for rid, rain in (d.get("rains") or {}).items():
        currency = currencies.get(rain["currency"])
        if currency is None:
            continue
        initial, most = currency.get("initial", 0), exposure[rain["currency"]]
        if initial + most > currency.get("max", 0):
            problems.append({"path": f"$.rains.{rid}.currency", "message": (
                f"the currency's max ({currency.get('max', 0)} fen) must hold its initial "
                f"({initial} fen) plus the most one shopper can grab from every rain on it "
                f"({most} fen): grabs are never clamped")})
    return problems


def check_rains(d: Mapping[str, Any]) -> Problems:
    """Each pool covers its minimums, rounds do not overlap, the currency exists and
    can hold what one shopper may grab from every rain on it."""
    problems: Problems = _currency_problems(d)
    currencies = d.get("currencies", {})
    for rid, rain in (d.get("rains") or {}).items():
        path = f"$.rains.{rid}"
        currency = currencies.get(rain["currency"])
        if currency is None:
            problems.append({"path": f"{path}.currency",
                             "message": f"unknown currency {rain['currency']!r}"})
        for oid, r in rain["rounds"].items():
            if r["pool_fen"] < r["envelopes"] * r["min_fen"]:
                problems.append({"path": f"{path}.rounds.{oid}.pool_fen",
                                 "message": "the pool must cover every envelope's minimum "
                                            f"({r['envelopes']} × {r['min_fen']} fen)"})
        spans = sorted((r["starts_at"], r["starts_at"] + r["duration_s"], oid)
                       for oid, r in rain["rounds"].items())
        for (_, end, _), (start, _, oid) in pairwise(spans):
            if start < end:
                problems.append({"path": f"{path}.rounds.{oid}.starts_at",
                                 "message": "rounds of one rain must not overlap"})
    return problems


def stock_ref(rain: str, round_id: str) -> str:
    """The value tier's counter of a round's envelopes (``rain:<rain>:<round>``)."""
    return f"rain:{rain}:{round_id}"


def _rains_stock(config: Any) -> dict[str, int]:
    """Every round's envelopes are limited stock of the value tier: SQL holds one grant
    row per envelope credited and never more than ``envelopes`` of them."""
    return {stock_ref(rid, oid): r.envelopes for rid, rain in config.rains.items()
            for oid, r in rain.rounds.items()}


def _rain_window(rain: Cleaned) -> tuple[int, int]:
    """From its first round's start to its last round's end."""
    rounds = rain["rounds"].values()
    return (min(int(o["starts_at"]) for o in rounds),
            max(int(o["starts_at"]) + int(o["duration_s"]) for o in rounds))


def follow_rains(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """A rain whose first round started keeps its ``buckets``: an envelope's nonce and
    its pool bucket come from them, so another split deals nonces twice. Nor is it removed
    while its rounds run."""
    return removed_while_running(
        live, new, "rains", now, _rain_window,
        "envelopes were dealt by its buckets: added again with others, it would deal "
        "nonces twice") + [{"path": f"$.rains.{rid}.buckets", "message": (
                f"is {old['buckets']} in the live version and a round started under it: "
                "envelopes were dealt by it, so it cannot change")}
            for rid, old, r in started_in_both(live, new, "rains", now,
                                               lambda r: _rain_window(r)[0])
            if r["buckets"] != old["buckets"]]


RAINS = Section(name="rains", fields={"rains": RAINS_SPEC},
                build=lambda d: {"rains": build_rains(d)}, check=check_rains,
                stock=_rains_stock, follow=follow_rains)


@dataclass(frozen=True, kw_only=True)
class RainsPart(ConfigPart):
    """The red-envelope rains of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = RAINS
    rains: dict[str, Rain] = field(default_factory=dict)


# -- the split -------------------------------------------------------------------------


def split_message(round_id: str) -> str:
    """The HMAC message prefix of a round's rolls: ``"<round>"``; envelope ``i`` rolls
    with ``"<round>:<i>"`` (economy.fairness.roll)."""
    return round_id


def split_pool(seed: str, round_id: str, terms: RoundTerms) -> list[int]:
    """Every envelope of a round, in grab order: the double-mean split of the pool.

    Envelope ``i`` (of ``n``), with ``left`` fen and ``k = n − i`` envelopes left:
    ``upper = max(min, min(2·left // k, left − min·(k − 1)))`` and the amount is
    ``min + roll(upper − min + 1)``, where ``roll`` is the exactly uniform HMAC roll of
    the draws with message ``"<round>:<i>"``; the last envelope takes what is left.
    Σ = pool exactly, each ≥ min (the config guarantees pool ≥ n·min)."""
    key = check_server_seed(seed)
    left, out = terms.pool_fen, []
    for i in range(terms.envelopes):
        k = terms.envelopes - i
        if k == 1:
            out.append(left)
            break
        upper = max(terms.min_fen, min(2 * left // k, left - terms.min_fen * (k - 1)))
        amount = terms.min_fen + roll(key, split_message(round_id), i, upper - terms.min_fen + 1)
        out.append(amount)
        left -= amount
    return out


def verify_envelope(seed: str, seed_hash: str, round_id: str, terms: RoundTerms,
                    index: int, amount_fen: int) -> bool:
    """True if ``seed`` is the committed one and envelope ``index`` is ``amount_fen``."""
    if hashlib.sha256(check_server_seed(seed)).hexdigest() != seed_hash:
        return False
    amounts = split_pool(seed, round_id, terms)
    return 0 <= index < len(amounts) and amounts[index] == amount_fen


MIN_PER_BUCKET = 50
"""A round is split over at most ``envelopes // MIN_PER_BUCKET`` buckets (at least one):
a shopper grabs only in their own bucket, so a small pool split thin would leave
shoppers refused while other buckets still hold envelopes."""


def round_buckets(buckets: int, terms: RoundTerms) -> int:
    """The buckets one round uses: the rain's ``buckets``, fewer for a small pool."""
    return max(1, min(buckets, terms.envelopes // MIN_PER_BUCKET))


def bucket_envelopes(envelopes: int, bucket: int, buckets: int) -> range:
    """The envelope indices bucket ``bucket`` hands out, in order: ``bucket``,
    ``bucket + buckets``, … (every envelope belongs to exactly one bucket)."""
    return range(bucket, envelopes, buckets)


# -- refusals --------------------------------------------------------------------------


class RoundNotOpen(DomainError):
    """A grab before the round starts, or in a rain with no round now."""

    code = "round_not_open"
    kind = Refusal.CONFLICT

    def __init__(self, rain: str, round_id: str, starts_at: int, now: int) -> None:
        super().__init__("this round has not started", rain=rain, round=round_id,
                         starts_at=starts_at, retry_after=max(0, starts_at - now))


class RoundEnded(DomainError):
    """A grab at or after the round's end."""

    code = "round_ended"
    kind = Refusal.CONFLICT

    def __init__(self, rain: str, round_id: str, ends_at: int) -> None:
        super().__init__("this round has ended", rain=rain, round=round_id, ends_at=ends_at)


class PoolEmpty(DomainError):
    """Every envelope this shopper could grab in the round is taken."""

    code = "pool_empty"
    kind = Refusal.CONFLICT

    def __init__(self, rain: str, round_id: str) -> None:
        super().__init__("no envelopes left in this round", rain=rain, round=round_id)


class GrabLimitReached(DomainError):
    """The shopper grabbed every envelope the round allows them."""

    code = "grab_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, rain: str, round_id: str, limit: int) -> None:
        super().__init__("no grabs left in this round", rain=rain, round=round_id,
                         grab_limit=limit)


# -- simulation ------------------------------------------------------------------------

SIM_MAX_ENVELOPES = 500_000
"""runs × envelopes per simulation: about a second of one core (one HMAC each)."""


def _percentile(values: list[int], q: float) -> int:
    return values[min(len(values) - 1, int(q * len(values)))]


def simulate_round(terms: RoundTerms, round_id: str, shoppers: int, grab_limit: int,
                   runs: int, seed: str) -> dict[str, Any]:
    """The distribution of envelope sizes over ``runs`` splits (seed ``i`` of a run is
    SHA-256 of ``"<seed>:<i>"``, so the same seed gives the same report), and what a round
    costs: ``min(envelopes, shoppers × grab_limit)`` envelopes are grabbed (every shopper
    grabs until their limit or the pool ends; the last shoppers of a bucket may find it
    empty while another still holds some, which only lowers the cost), Σ of the grabbed
    envelopes averaged over the runs, per shopper and per envelope."""
    grabbed = min(terms.envelopes, shoppers * grab_limit)
    sizes: list[int] = []
    paid = 0
    for i in range(runs):
        run_seed = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()
        amounts = split_pool(run_seed, round_id, terms)
        sizes += amounts
        paid += sum(amounts[:grabbed])
    sizes.sort()
    mean_paid = paid / runs
    return {
        "runs": runs, "shoppers": shoppers, "envelopes_grabbed": grabbed,
        "sizes_fen": {"min": sizes[0], "p10": _percentile(sizes, 0.1),
                      "p50": _percentile(sizes, 0.5), "p90": _percentile(sizes, 0.9),
                      "p99": _percentile(sizes, 0.99), "max": sizes[-1],
                      "mean": round(sum(sizes) / len(sizes), 2)},
        "at_minimum": round(sum(1 for s in sizes if s == terms.min_fen) / len(sizes), 4),
        "expected_cost_fen": round(mean_paid, 2),
        "expected_cost_per_shopper_fen": round(mean_paid / shoppers, 2),
        "returned_fen": round(terms.pool_fen - mean_paid, 2),
        "chance_of_envelope": round(min(1.0, grabbed / shoppers), 4),
    }
