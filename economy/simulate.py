"""Monte Carlo over a blind-box series with the real draw code.

``K`` simulated players each draw ``N`` times (in 1- or 10-draws), round-robin
so that a limited prize's global stock runs out the way it would at a launch.
Every draw goes through :func:`economy.fairness.draw_entry` — the function the
``drawBox`` rule uses — with per-player server seeds derived from the
simulation seed, so a run is reproducible and exercises the same HMAC mapping,
pity, fallback and duplicate-control code as real draws.

Reported: draws per entry and tier, pity trigger rates, the merchant's prize
cost per draw in fen (with stock running out), what a draw costs the player,
draws to complete the set (p50/p90/p99, ``None`` when fewer players than that
completed), and the global draw number at which each limited prize sold out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from economy.boxes import Series
from economy.fairness import draw_entry, out_of_stock


@dataclass(frozen=True)
class SimResult:
    players: int
    draws: int
    batch: int
    items: dict[str, int]
    tiers: dict[str, int]
    forced: int
    """draws a guarantee forced (hard pity or the 10-draw guarantee)"""
    boosted: int
    """draws with a soft-pity boost"""
    prize_cost_fen: int
    """face value of every limited prize won"""
    completed: int
    """players who completed the set"""
    complete_draws: dict[str, int | None]
    sold_out_at: dict[str, int | None]
    """limited prize → global draw number (1-based) that took the last unit"""
    price: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The report of ``simulateGame`` / ``petbox simulate``."""
        n = max(1, self.draws)
        return {
            "players": self.players, "draws": self.draws, "batch": self.batch,
            "items": {k: {"count": v, "rate": v / n} for k, v in self.items.items()},
            "tiers": {k: {"count": v, "rate": v / n} for k, v in self.tiers.items()},
            "pity": {"forced_rate": self.forced / n, "boosted_rate": self.boosted / n},
            "prize_cost_fen_per_draw": self.prize_cost_fen / n,
            "price_per_draw": self.price,
            "complete_set": {"players": self.completed, "draws": self.complete_draws,
                             "price_total_p50": _times(self.complete_draws["p50"],
                                                       self.price["amount"])},
            "sold_out_at_draw": self.sold_out_at,
        }


def _times(draws: int | None, amount: int) -> int | None:
    return None if draws is None else draws * amount


def player_seed(seed: str, player: int) -> bytes:
    """The server seed of simulated player ``player`` (32 bytes)."""
    return hashlib.sha256(f"petbox-sim:{seed}:{player}".encode()).digest()


def percentile(sorted_values: list[int], q: float, population: int) -> int | None:
    """Nearest-rank percentile over ``population`` players; missing ones count as ∞."""
    rank = max(1, -(-int(q * population * 1000) // 1000))
    return sorted_values[rank - 1] if rank <= len(sorted_values) else None


def simulate(series: Series, players: int, draws: int, seed: str = "0", *,
             batch: int = 1, stock: Mapping[str, int] | None = None,
             on_round: Callable[[int], None] | None = None) -> SimResult:
    """Simulate ``players`` × ``draws`` draws (``draws`` a multiple of ``batch``: 1 or 10).

    ``stock``: limited prize → stock at the start (default: the configured stock).
    ``on_round`` is called with the number of draws done after each round (every
    player drew one batch) — the caller's progress bar; it must not change anything.
    """
    if batch not in (1, 10) or draws % batch or players < 1 or draws < 0:
        raise ValueError("players ≥ 1, batch 1 or 10, draws a multiple of batch")
    run = _Run(series, players, seed, stock)
    for _ in range(draws // batch):
        for p in range(players):
            run.batch(p, batch)
        if on_round is not None:
            on_round(run.total)
    return run.result(draws, batch)


class _Run:
    """Mutable simulation state; per-player arrays indexed by player number."""

    def __init__(self, series: Series, players: int, seed: str,
                 stock: Mapping[str, int] | None) -> None:
        self.series = series
        self.players = players
        self.keys = [player_seed(seed, p) for p in range(players)]
        self.hard = [0] * players
        self.soft = [0] * players
        self.nonce = [0] * players
        self.owned: list[dict[int, int]] = [{} for _ in range(players)]
        self.blocked: list[frozenset[int]] = [frozenset()] * players
        self.set_have = [0] * players
        self.complete_at: list[int] = []
        self.counts = [0] * len(series.entries)
        self.stock = {e.id: (stock or {}).get(e.id, e.prize.stock)
                      for e in series.entries if e.prize is not None}
        self.out = out_of_stock(series, self.stock)
        # a prize with no stock at the start is sold out before the first draw
        self.sold_out: dict[str, int | None] = {
            p: 0 if left <= 0 else None for p, left in self.stock.items()}
        self.total = 0
        self.forced = self.boosted = self.cost = 0
        self.caps = [e.max_copies for e in series.entries]
        self.ranks = [e.rank for e in series.entries]
        self.ten_rank = series.ten_draw.rank if series.ten_draw else None

    def batch(self, p: int, size: int) -> None:
        hit_ten = False
        for pos in range(size):
            rank = self.one(p, size == 10 and pos == 9 and not hit_ten)
            if self.ten_rank is not None and rank >= self.ten_rank:
                hit_ten = True

    def one(self, p: int, ten_needed: bool) -> int:
        s = self.series
        owned = self.owned[p]
        skipped = self._skipped(p) if s.no_repeat_until_complete else frozenset()
        step = draw_entry(s, self.keys[p], "sim", self.nonce[p], hard=self.hard[p],
                          soft=self.soft[p], ten_needed=ten_needed, out=self.out,
                          blocked=self.blocked[p], skipped=skipped)
        i = step.entry
        rank = self.ranks[i]
        self.nonce[p] += 1
        self.total += 1
        self.counts[i] += 1
        self.forced += step.forced_rank >= 0
        self.boosted += step.level > 0
        self.hard[p], self.soft[p] = s.after(self.hard[p], self.soft[p], rank)
        n = owned.get(i, 0) + 1
        owned[i] = n
        if n == 1 and i in s.set_ids:
            self.set_have[p] += 1
            if self.set_have[p] == len(s.set_ids):
                self.complete_at.append(self.nonce[p])
        if self.caps[i] and n >= self.caps[i]:
            self.blocked[p] = self.blocked[p] | {i}
        if s.entries[i].prize is not None:
            self._take_prize(i)
        return rank

    def _skipped(self, p: int) -> frozenset[int]:
        if self.set_have[p] == len(self.series.set_ids):
            return frozenset()
        return frozenset(i for i in self.owned[p] if i in self.series.set_ids)

    def _take_prize(self, i: int) -> None:
        entry = self.series.entries[i]
        assert entry.prize is not None
        self.cost += entry.prize.face_value_fen
        self.stock[entry.id] -= 1
        if self.stock[entry.id] <= 0:
            self.sold_out[entry.id] = self.total
            self.out = out_of_stock(self.series, self.stock)

    def result(self, draws: int, batch: int) -> SimResult:
        s = self.series
        items = {e.id: self.counts[i] for i, e in enumerate(s.entries)}
        tiers = dict.fromkeys(s.tiers, 0)
        for e in s.entries:
            tiers[e.tier] += items[e.id]
        done = sorted(self.complete_at)
        pct = {name: percentile(done, q, self.players)
               for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        price = {s.price.kind: s.price.unit, "amount": s.price.amount, "paid": s.price.paid}
        return SimResult(self.players, self.total, batch, items, tiers, self.forced,
                         self.boosted, self.cost, len(done), pct, self.sold_out, price)
