"""Odds disclosure: base and consolidated probabilities of a blind-box series.

*Base* probability: an entry's weight over the total weight, full stock, no
pity — exact :class:`~fractions.Fraction`.

*Consolidated* probability: the long-run share of single draws that give an
entry when pity is in play (hard and soft pity), i.e. the stationary
distribution of the Markov chain over the pity counters ``(hard, soft)``. The
chain renews whenever a draw reaches the higher of the two pity tiers (both
counters go back to 0), so by renewal theory

    consolidated(e) = E[draws of e in a cycle] / E[cycle length]

which :func:`consolidated` computes by propagating the cycle's state
distribution step by step with exactly the tables the draws use
(:meth:`economy.boxes.Series.table`). Arithmetic is exact rationals unless the
chain has more than :data:`EXACT_STATE_LIMIT` state-steps, in which case it is
done in doubles (accumulated relative error below 1e-12 for the bounded pity
lengths that validation allows). Published numbers are those values rounded to
the nearest double. Assumptions: full stock (when a prize is out its weight goes
to its fallback, as disclosed), no duplicate control (it depends on what each
player owns) and single draws (a 10-draw adds its own guarantee on top).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Final

from economy.boxes import Series, Table, soft_certain_at

EXACT_STATE_LIMIT: Final = 20_000

Number = Fraction | float


@dataclass(frozen=True)
class Consolidated:
    """Stationary per-draw probabilities under pity."""

    items: dict[str, Number]
    tiers: dict[str, Number]
    cycle_draws: Number
    """expected draws between two draws of the top pity tier (or 1 with no pity)"""
    forced_rate: Number
    """share of draws that a guarantee (hard pity) forced"""
    boosted_rate: Number
    """share of draws with a soft-pity boost"""
    exact: bool


def base(series: Series) -> dict[str, Fraction]:
    """Entry → weight / total weight (full stock, no pity)."""
    total = sum(e.weight for e in series.entries)
    return {e.id: Fraction(e.weight, total) for e in series.entries}


def base_tiers(series: Series) -> dict[str, Fraction]:
    """Tier → sum of its entries' base probabilities."""
    probs = base(series)
    out = dict.fromkeys(series.tiers, Fraction(0))
    for e in series.entries:
        out[e.tier] += probs[e.id]
    return out


def _cycle_bound(series: Series) -> int:
    """Longest possible cycle (draws until the top pity tier is certain)."""
    bounds = []
    if series.hard is not None:
        bounds.append(series.hard.within)
    certain = soft_certain_at(series)
    if certain is not None:
        bounds.append(certain)
    return max(bounds) if bounds else 1


def _state_steps(series: Series) -> int:
    """Upper bound of the chain's (step, state) pairs: cycle length × the other counter."""
    hard = series.hard.within if series.hard else 1
    soft = soft_certain_at(series) or 1
    return max(hard, soft) * min(hard, soft)


def _ranks(series: Series, table: Table) -> dict[int, int]:
    """Rank → weight in ``table``."""
    out: dict[int, int] = defaultdict(int)
    for i, w in zip(table.ids, table.weights, strict=True):
        out[series.entries[i].rank] += w
    return out


def consolidated(series: Series, exact: bool | None = None) -> Consolidated:
    """Stationary probabilities under hard and soft pity (see the module docstring).

    ``exact=None`` chooses rationals when the chain is small enough.
    """
    if exact is None:
        exact = _state_steps(series) <= EXACT_STATE_LIMIT
    one: Number = Fraction(1) if exact else 1.0
    if series.hard is None and series.soft is None:
        plain: dict[str, Number] = {k: v if exact else float(v)
                                    for k, v in base(series).items()}
        return Consolidated(plain, _tiers(series, plain, one), one, one * 0, one * 0, exact)
    use = _cycle_use(series, one)
    cycle = sum(use.values(), one * 0)
    items: dict[str, Number] = {e.id: one * 0 for e in series.entries}
    forced = boosted = one * 0
    for (rank, level), mass in use.items():
        table = series.table(rank, level)
        assert table is not None
        for i, w in zip(table.ids, table.weights, strict=True):
            items[series.entries[i].id] += mass * w / table.total
        forced += mass if rank >= 0 else 0
        boosted += mass if level > 0 else 0
    items = {k: v / cycle for k, v in items.items()}
    return Consolidated(items, _tiers(series, items, one), cycle, forced / cycle,
                        boosted / cycle, exact)


def _tiers(series: Series, items: Mapping[str, Number], one: Number) -> dict[str, Number]:
    out: dict[str, Number] = dict.fromkeys(series.tiers, one * 0)
    for e in series.entries:
        out[e.tier] += items[e.id]
    return out


def _cycle_use(series: Series, one: Number) -> dict[tuple[int, int], Number]:
    """(forced rank, soft level) → expected draws per renewal cycle that use that table."""
    use: dict[tuple[int, int], Number] = defaultdict(lambda: one * 0)
    dist: dict[tuple[int, int], Number] = {(0, 0): one}
    while dist:
        nxt: dict[tuple[int, int], Number] = defaultdict(lambda: one * 0)
        for (h, s), mass in dist.items():
            key = (series.forced_rank(h, False), series.soft_level(s))
            if series.soft is not None:
                key = (key[0], min(key[1], series.soft.max_level))
            use[key] += mass
            table = series.table(*key)
            assert table is not None
            for rank, w in _ranks(series, table).items():
                after = series.after(h, s, rank)
                if after != (0, 0):
                    nxt[after] += mass * w / table.total
        dist = dict(nxt)
    return dict(use)


@lru_cache(maxsize=256)
def odds(series: Series) -> tuple[dict[str, Fraction], Consolidated]:
    """Base and consolidated odds of a (published, immutable) series, cached."""
    return base(series), consolidated(series)


def _f(x: Number) -> float:
    return float(x)


def disclose(series: Series, stock_left: Mapping[str, int]) -> dict[str, Any]:
    """``getBoxSeries``: everything a shopper must see before buying (Apple, SAMR).

    ``stock_left``: limited prize → stock left now (from the server's counters).
    """
    probs, cons = odds(series)
    tiers_base = base_tiers(series)
    value = series.value_range_fen()
    return {
        "series": series.id, "name": series.name, "table": series.table_hash,
        "price": {series.price.kind: series.price.unit, "amount": series.price.amount},
        "opens_at": series.opens_at, "closes_at": series.closes_at,
        "caps": {"daily": series.daily_cap, "total": series.total_cap},
        "tiers": [{"id": t.id, "name": t.name, "rank": t.rank,
                   "base_probability": _f(tiers_base[t.id]),
                   "consolidated_probability": _f(cons.tiers[t.id])}
                  for t in sorted(series.tiers.values(), key=lambda t: t.rank)],
        "items": [_entry_view(series, i, probs, cons, stock_left)
                  for i in range(len(series.entries))],
        "pity": _pity_view(series, cons),
        "duplicates": {"no_repeat_until_complete": series.no_repeat_until_complete},
        "completion_reward": series.completion_reward,
        "prize_value_fen": {"min": value[0], "max": value[1]} if value else None,
        "stock_left": {e.id: max(0, stock_left.get(e.id, 0)) for e in series.prizes},
        "precision": ("base_probability_exact is exact; probabilities are rounded to the "
                      "nearest double; consolidated ones assume full stock and single draws"
                      + ("" if cons.exact else ", computed in doubles (error < 1e-12)")),
    }


def _entry_view(series: Series, i: int, probs: Mapping[str, Fraction], cons: Consolidated,
                stock_left: Mapping[str, int]) -> dict[str, Any]:
    e = series.entries[i]
    p = probs[e.id]
    out: dict[str, Any] = {
        "id": e.id, "rarity": e.tier, "kind": e.prize.kind if e.prize else "item",
        "weight": e.weight, "base_probability": float(p),
        "base_probability_exact": f"{p.numerator}/{p.denominator}",
        "consolidated_probability": _f(cons.items[e.id]), "max_copies": e.max_copies,
    }
    if e.prize is not None:
        out["prize"] = {**e.prize.grant(), "stock": e.prize.stock,
                        "stock_left": max(0, stock_left.get(e.id, 0)),
                        "fallback": e.prize.fallback}
    return out


def _pity_view(series: Series, cons: Consolidated) -> dict[str, Any]:
    hard, soft, ten = series.hard, series.soft, series.ten_draw
    return {
        "hard": {"tier": hard.tier, "within": hard.within} if hard else None,
        "soft": {"tier": soft.tier, "from": soft.start, "step": soft.step_ppm / 1_000_000,
                 "certain_by": soft_certain_at(series)} if soft else None,
        "ten_draw": {"tier": ten.id} if ten else None,
        "expected_draws_per_top_tier": _f(cons.cycle_draws) if hard or soft else None,
        "forced_rate": _f(cons.forced_rate),
        "boosted_rate": _f(cons.boosted_rate),
    }
