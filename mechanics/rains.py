"""Red-envelope rain (红包雨): pure rules of a round's pool, time and seeds as arguments.

State lives in aggregates (docs/architecture.md, "Aggregates"):

- the rain's **seeds** (``RainSeeds``, one aggregate per rain): per round, a secret seed
  made by the server's RNG and the round's terms frozen with it. Its SHA-256 is
  public from the first read; the seed itself is shown from the round's end on;
- a round's **pool buckets** (``PoolBucket``, ``B`` aggregates per round, where ``B`` is
  :func:`economy.rains.round_buckets`: the rain's ``buckets``, fewer for a small pool):
  bucket ``b`` hands out envelopes ``b, b + B, …`` of the round's split in order, and
  counts each shopper's grabs (a shopper always grabs in the bucket of their user id,
  so the per-shopper limit is checked in one place).

A grab is a two-commit action: :func:`grab` is the gate on the shopper's bucket (it
takes the next envelope and records it), :func:`apply_grab` the shopper's side, driven
by the gate's owed record alone (it credits the amount; it never refuses).

An amount is never answered that is not credited. The config keeps the currency's max
above its initial plus all one shopper can grab from every rain on it
(:func:`economy.rains.check_rains`), so the rains alone never fill a wallet; a balance
raised by other means is refused at the gate (``balance_limit``, nothing taken) as the
shopper was peeked, and if it grew between the peek and the shopper's commit, that
commit credits what fits and answers and records the rest as ``uncredited_fen``.

Σ granted never exceeds the pool: each envelope index is handed out by exactly one
bucket commit, and the split sums to the pool. A bucket whose envelopes are all taken
refuses (``pool_empty``); what buckets still hold at the round's end is returned to the
merchant (shown as ``returned_fen``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from economy.config import GameConfig
from economy.errors import BalanceLimit, InvalidInput, known_item
from economy.fairness import seed_hash
from economy.rains import (
    GrabLimitReached,
    PoolEmpty,
    Rain,
    Round,
    RoundEnded,
    RoundNotOpen,
    RoundTerms,
    bucket_envelopes,
    round_buckets,
    stock_ref,
)
from economy.wallet import apply_currency
from mechanics.aggregate import SharedOutcome
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState, new_player

KIND = "rain"
"""The aggregate kind of a round's pool buckets."""
SEEDS_KIND = "rainseed"
"""The aggregate kind of a rain's seeds."""
EFFECT = "rain_grab"
"""The owed record a grab leaves for the shopper's commit."""


@dataclass
class SeedEntry:
    """A round's committed seed and the terms frozen with it."""

    seed: str
    terms: RoundTerms

    @property
    def hash(self) -> str:
        return seed_hash(self.seed)


@dataclass
class RainSeeds:
    """round id → its seed entry (rounds get one the first time the rain is read)."""

    rounds: dict[str, SeedEntry] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {r: [e.seed, e.terms.to_wire()] for r, e in self.rounds.items()}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> RainSeeds:
        return cls({r: SeedEntry(str(v[0]), RoundTerms.from_wire(v[1])) for r, v in raw.items()})


@dataclass
class PoolBucket:
    """One bucket of a round's pool: envelopes taken, fen granted, grabs per shopper."""

    taken: int = 0
    granted_fen: int = 0
    grabs: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"n": self.taken, "g": self.granted_fen, "u": self.grabs}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> PoolBucket:
        return cls(raw["n"], raw["g"], dict(raw["u"]))


def bucket_of(user: str, buckets: int) -> int:
    """The bucket a shopper always grabs in (stable across processes)."""
    return zlib.crc32(user.encode()) % buckets


def bucket_id(rain: str, round_id: str, bucket: int) -> str:
    return f"{rain}-{round_id}-b{bucket}"


def seeds_id(rain: str) -> str:
    return rain


def missing_rounds(rain: Rain, seeds: RainSeeds | None) -> list[str]:
    """Rounds of ``rain`` without a seed yet, in config order."""
    have = seeds.rounds if seeds is not None else {}
    return [r for r in rain.rounds if r not in have]


def add_seeds(seeds: RainSeeds | None, rain: Rain, fresh: Mapping[str, str]) -> SharedOutcome:
    """Commit ``fresh`` seeds (round → 64 hex, from the server's RNG) for the rounds that
    have none; a round that has one keeps it (a concurrent reader may have committed
    first). Each seed freezes its round's current terms."""
    rounds = dict(seeds.rounds) if seeds is not None else {}
    for round_id in missing_rounds(rain, seeds):
        rounds[round_id] = SeedEntry(fresh[round_id], rain.rounds[round_id].terms())
    return SharedOutcome(RainSeeds(rounds), {"rain": rain.id, "rounds": sorted(rounds)})


def round_of(rain: Rain, round_id: str) -> Round:
    """The round a grab names. A grab always names its round, so a retry of it (same
    key, same body) reaches the same bucket whenever it comes; whether the round is
    open is the gate's to say (:func:`grab`), after a grab it already took is replayed."""
    return known_item(rain.rounds, round_id, "round", in_order=True)


def check_open(rain: Rain, r: Round, now: int) -> None:
    """Refuse a grab before the round's start or from its end on."""
    if now < r.starts_at:
        raise RoundNotOpen(rain.id, r.id, r.starts_at, now)
    if now >= r.ends_at:
        raise RoundEnded(rain.id, r.id, r.ends_at)


def balance_of(state: PlayerState | None, config: GameConfig,
               currency: str) -> tuple[int, int]:
    """``(balance, max)`` of ``currency`` for a shopper as peeked (a new one: initial)."""
    wallet = state.wallet if state is not None else config.initial_wallet()
    return wallet.get(currency, 0), config.currencies[currency].max


def grab(bucket: PoolBucket | None, rain: Rain, r: Round, entry: SeedEntry, index_of: int,
         user: str, amounts: Sequence[int] | None, now: int,
         balance: tuple[int, int] | None = None) -> SharedOutcome:
    """The gate: ``user`` takes the next envelope of their bucket ``index_of``.

    ``amounts`` is the round's split (:func:`economy.rains.split_pool` of ``entry``);
    the caller computes it once per seed, and only for a round it saw open (None
    otherwise: a round that opened since is refused with ``retry_after`` 0).
    ``balance`` is the shopper's ``(balance, max)`` of the rain's currency as peeked
    (:func:`balance_of`): an envelope it cannot hold whole is refused, and stays."""
    check_open(rain, r, now)
    if amounts is None:
        raise RoundNotOpen(rain.id, r.id, r.starts_at, now)
    if len(amounts) != entry.terms.envelopes:
        raise InvalidInput("the split does not match the round's terms", field="amounts")
    old = bucket or PoolBucket()
    used = old.grabs.get(user, 0)
    if used >= r.grab_limit:
        raise GrabLimitReached(rain.id, r.id, r.grab_limit)
    mine = bucket_envelopes(entry.terms.envelopes, index_of,
                            round_buckets(rain.buckets, entry.terms))
    if old.taken >= len(mine):
        raise PoolEmpty(rain.id, r.id)
    index = mine[old.taken]
    amount = amounts[index]
    if balance is not None and balance[0] + amount > balance[1]:
        raise BalanceLimit(rain.currency, balance[0], amount, balance[1])
    new = PoolBucket(old.taken + 1, old.granted_fen + amount, {**old.grabs, user: used + 1})
    response = {"rain": rain.id, "round": r.id, "amount_fen": amount, "nonce": index,
                "kind": rain.kind, "currency": rain.currency, "seed_hash": entry.hash,
                "reveal_at": r.ends_at, "grabs_left": r.grab_limit - used - 1}
    owed = {"effect": EFFECT, **response}
    record = {"u": user, "r": r.id, "i": index, "a": amount}
    return SharedOutcome(new, response, record, owed)


def apply_grab(state: PlayerState | None, owed: dict[str, Any], now: int,
               config: GameConfig, *, void: bool = False) -> Outcome:
    """The shopper's side of a grabbed envelope: the amount goes to the rain's currency,
    through the value tier (one unit of the round's counter and one grant row holding
    the amount, in SQL before the reply). Never refuses: ``void`` (the round's counter
    in SQL has no unit left: only after Redis lost commits and dealt an envelope again)
    credits nothing and says so. A balance that grew past what the gate saw (module
    docstring) gets what fits: the reply's and the grant row's ``amount_fen`` are what
    was credited, ``uncredited_fen`` the rest of the envelope (absent when 0)."""
    new = state.copy() if state is not None else new_player(config, now)
    new.last_seen = now
    response = {k: owed[k] for k in ("rain", "round", "amount_fen", "nonce", "kind",
                                     "currency", "seed_hash", "reveal_at", "grabs_left")}
    if void:
        response.update(amount_fen=0, void=True, wallet=dict(new.wallet))
        return Outcome(state=new, response=response)
    reason = f"envelope:{owed['rain']}:{owed['round']}:{owed['nonce']}"
    cid = owed["currency"]
    limits = {c: cur.max for c, cur in config.currencies.items()}
    room = max(0, limits.get(cid, owed["amount_fen"]) - new.wallet.get(cid, 0))
    credited = min(owed["amount_fen"], room)
    new.wallet, ledger = apply_currency(new.wallet, {cid: credited}, reason, limits)
    response.update(amount_fen=credited, wallet=dict(new.wallet))
    detail = {"rain": owed["rain"], "round": owed["round"], "nonce": owed["nonce"],
              "amount_fen": credited, "currency": cid}
    if credited < owed["amount_fen"]:
        response["uncredited_fen"] = detail["uncredited_fen"] = owed["amount_fen"] - credited
    ref = stock_ref(owed["rain"], owed["round"])
    grant = ValueGrant(ref=ref, kind=owed["kind"], reason=reason, detail=detail)
    return Outcome(state=new, response=response, ledger=ledger,
                   reservations=[StockHold(ref, 1)], grants=[grant])


def round_view(rain: Rain, r: Round, entry: SeedEntry | None,
               buckets: Sequence[PoolBucket | None], now: int) -> dict[str, Any]:
    """One round as ``getEnvelopeRain`` shows it: terms, status, what is left, the seed
    hash, and from the end on the seed and what was returned."""
    terms = entry.terms if entry is not None else r.terms()
    taken = sum(b.taken for b in buckets if b is not None)
    granted = sum(b.granted_fen for b in buckets if b is not None)
    status = r.status(now)
    if status == "open" and taken >= terms.envelopes:
        status = "empty"
    ended = now >= r.ends_at
    return {"round": r.id, "status": status, "buckets": round_buckets(rain.buckets, terms),
            "starts_at": r.starts_at, "ends_at": r.ends_at,
            "pool_fen": terms.pool_fen, "envelopes": terms.envelopes,
            "min_fen": terms.min_fen, "grab_limit": r.grab_limit,
            "envelopes_left": terms.envelopes - taken, "pool_left_fen": terms.pool_fen - granted,
            "granted_fen": granted,
            "returned_fen": terms.pool_fen - granted if ended else 0,
            "seed_hash": entry.hash if entry is not None else None,
            "seed": entry.seed if entry is not None and ended else None}


def rain_view(rain: Rain, seeds: RainSeeds | None,
              buckets: Mapping[str, Sequence[PoolBucket | None]], now: int) -> dict[str, Any]:
    """What ``getEnvelopeRain`` shows: every round (config order) and the server time."""
    entries = seeds.rounds if seeds is not None else {}
    return {"rain": rain.id, "title": rain.title, "kind": rain.kind,
            "currency": rain.currency, "server_time": now,
            "rounds": [round_view(rain, r, entries.get(rid), buckets.get(rid, ()), now)
                       for rid, r in rain.rounds.items()]}


def rename_grabber(bucket: PoolBucket, user: str, alias: str) -> PoolBucket | None:
    """``bucket`` counting ``user``'s grabs under ``alias``, or None when it does not name
    them (``erasePlayer``, docs/privacy.md). What was taken and granted does not move."""
    if user not in bucket.grabs:
        return None
    return PoolBucket(bucket.taken, bucket.granted_fen,
                      {alias if u == user else u: n for u, n in bucket.grabs.items()})
