"""Blind-box series: config spec, frozen model, cross-checks, compliance and draw tables.

A series is a list of *entries* — collectible items (inventory items of the game)
and limited prizes (coupons or goods with a global stock) — each with a rarity
tier and an integer weight. Everything a draw can depend on (pity counters,
prizes out of stock, duplicate control) is turned into an integer weight table
by :meth:`Series.table`; :mod:`economy.fairness` maps an HMAC roll onto that
table, for real draws and for the simulator alike.

Table construction, in this order (documented in ``docs/fairness.md``):

1. base weights, entries in config order: ``items`` then ``prizes``;
2. a limited prize that is out of stock gives its weight to its ``fallback``;
3. entries excluded by duplicate control get weight 0;
4. soft pity at level ``L ≥ 1`` sets P(tier ≥ X) to ``min(1, H/(H+O) + L·step)``
   (``H``/``O`` = weight of entries at/above and below tier X), scaling each side
   proportionally, with exact integers;
5. a guarantee (hard pity, 10-draw) keeps only entries of tier ≥ T — the
   distribution of step 4 *conditioned* on the guarantee;
6. all weights are divided by their gcd.

The section is split by concern: its shape in :mod:`economy.boxspec`, its
cross-checks and compliance in :mod:`economy.boxchecks`, the model and draw
tables here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd
from typing import TYPE_CHECKING, Any, ClassVar, Final

from economy.boxchecks import check_boxes
from economy.boxspec import (
    _TABLE_CACHE_MAX,
    AGE_BANDS,
    BOXES_DEFAULT,
    BOXES_SPEC,
    PPM,
    SERIES_SPEC,
    _paid_units,
)
from economy.section import ConfigPart, Section

if TYPE_CHECKING:
    from economy.config import GameConfig

# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class Tier:
    id: str
    name: str
    rank: int


@dataclass(frozen=True)
class Prize:
    """What a limited entry grants; the server writes it to SQL as a value grant."""

    kind: str  # coupon | goods
    name: str
    template: str
    sku: str
    face_value_fen: int
    stock: int
    fallback: str
    valid_days: int = 0
    """Days a won coupon stays usable (0: no expiry); stamped on each grant row."""

    def grant(self) -> dict[str, Any]:
        return {"type": self.kind, "name": self.name, "template": self.template,
                "sku": self.sku, "face_value_fen": self.face_value_fen}


@dataclass(frozen=True)
class Entry:
    """One line of the table: a collectible (``prize is None``) or a limited prize."""

    id: str
    tier: str
    rank: int
    weight: int
    max_copies: int
    prize: Prize | None


@dataclass(frozen=True)
class HardPity:
    tier: str
    rank: int
    within: int


@dataclass(frozen=True)
class SoftPity:
    tier: str
    rank: int
    start: int
    step_ppm: int

    @property
    def max_level(self) -> int:
        """A level at which ``L·step ≥ 1`` whatever the table (cache key cap)."""
        return -(-PPM // self.step_ppm)


@dataclass(frozen=True)
class Price:
    kind: str  # currency | item
    unit: str
    amount: int
    paid: bool


@dataclass(frozen=True, eq=False)
class Table:
    """An effective weight table: ``ids`` are entry indices with weight > 0, in order."""

    ids: tuple[int, ...]
    weights: tuple[int, ...]
    cum: tuple[int, ...]
    total: int
    limit: int
    """Largest multiple of ``total`` ≤ 2²⁵⁶ (rejection sampling bound)."""

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> Table | None:
        kept = [(i, w) for i, w in pairs if w > 0]
        if not kept:
            return None
        g = 0
        for _, w in kept:
            g = gcd(g, w)
        ids = tuple(i for i, _ in kept)
        weights = tuple(w // g for _, w in kept)
        cum: list[int] = []
        run = 0
        for w in weights:
            run += w
            cum.append(run)
        return cls(ids, weights, tuple(cum), run, (1 << 256) - (1 << 256) % run)


@dataclass(frozen=True, eq=False)
class Series:
    """A validated series; compared and hashed by identity (used as a cache key)."""

    id: str
    name: str
    price: Price
    opens_at: int
    closes_at: int
    daily_cap: int
    total_cap: int
    tiers: dict[str, Tier]
    entries: tuple[Entry, ...]
    no_repeat_until_complete: bool
    hard: HardPity | None
    soft: SoftPity | None
    ten_draw: Tier | None
    completion_reward: dict[str, dict[str, int]] | None
    table_hash: str
    """sha256 (hex, 16 chars) of the series' canonical JSON: names the published table."""
    index: dict[str, int] = field(repr=False)
    set_ids: frozenset[int] = field(repr=False)
    """Entries that make up the collectible set (collectibles with weight > 0)."""
    _cache: dict[tuple[int, int, frozenset[int], frozenset[int]], Table | None] = field(
        default_factory=dict, repr=False)

    @property
    def prizes(self) -> list[Entry]:
        return [e for e in self.entries if e.prize is not None]

    def table(self, forced_rank: int = -1, level: int = 0,
              out: frozenset[int] = frozenset(), excluded: frozenset[int] = frozenset()
              ) -> Table | None:
        """The effective table (see the module docstring); None when nothing can be drawn."""
        if self.soft is not None:
            level = min(level, self.soft.max_level)
        key = (forced_rank, level, out, excluded)
        try:
            return self._cache[key]
        except KeyError:
            pass
        if len(self._cache) >= _TABLE_CACHE_MAX:
            self._cache.clear()
        table = self._cache[key] = self._build_table(forced_rank, level, out, excluded)
        return table

    def _build_table(self, forced_rank: int, level: int, out: frozenset[int],
                     excluded: frozenset[int]) -> Table | None:
        w = [e.weight for e in self.entries]
        for i in sorted(out):
            prize = self.entries[i].prize
            assert prize is not None
            w[self.index[prize.fallback]] += w[i]
            w[i] = 0
        for i in excluded:
            w[i] = 0
        if self.soft is not None and level > 0:
            w = self._boost(w, level)
        if forced_rank >= 0:
            w = [x if e.rank >= forced_rank else 0 for x, e in zip(w, self.entries, strict=True)]
        return Table.of(enumerate(w))

    def _boost(self, w: list[int], level: int) -> list[int]:
        """Soft pity: P(tier ≥ X) = min(1, H/(H+O) + level·step), both sides scaled."""
        assert self.soft is not None
        rank = self.soft.rank
        hi = sum(x for x, e in zip(w, self.entries, strict=True) if e.rank >= rank)
        lo = sum(w) - hi
        if hi == 0 or lo == 0:
            return w
        q = Fraction(hi, hi + lo) + Fraction(self.soft.step_ppm * level, PPM)
        if q >= 1:
            return [x if e.rank >= rank else 0 for x, e in zip(w, self.entries, strict=True)]
        a, b = q.numerator, q.denominator
        return [x * a * lo if e.rank >= rank else x * (b - a) * hi
                for x, e in zip(w, self.entries, strict=True)]

    # -- pity bookkeeping shared by the rule, the simulator and the odds

    def soft_level(self, soft_counter: int) -> int:
        """Boost level of the next draw, ``soft_counter`` draws after the last tier ≥ X."""
        if self.soft is None:
            return 0
        return max(0, soft_counter + 2 - self.soft.start)

    def forced_rank(self, hard_counter: int, ten_needed: bool) -> int:
        """Lowest rank the next draw must reach (−1: none)."""
        rank = -1
        if self.hard is not None and hard_counter + 1 >= self.hard.within:
            rank = self.hard.rank
        if ten_needed and self.ten_draw is not None:
            rank = max(rank, self.ten_draw.rank)
        return rank

    def after(self, hard_counter: int, soft_counter: int, rank: int) -> tuple[int, int]:
        """Counters after drawing an entry of ``rank``."""
        # a counter without its rule stays 0, so pity states stay comparable across versions
        h = 0 if self.hard is None or rank >= self.hard.rank else hard_counter + 1
        s = 0 if self.soft is None or rank >= self.soft.rank else soft_counter + 1
        return h, s

    def value_range_fen(self) -> tuple[int, int] | None:
        values = [e.prize.face_value_fen for e in self.entries if e.prize is not None]
        return (min(values), max(values)) if values else None


@dataclass(frozen=True)
class BoxesConfig:
    max_price: dict[str, int]
    default_max_price: int
    age_gate: dict[str, str]
    draw_records_days: int
    series: dict[str, Series]


def _canonical_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _hashed(s: dict[str, Any]) -> dict[str, Any]:
    """The series as its table hash sees it: a prize's ``valid_days`` only when set, so
    the field's arrival (with its default 0) left the hash of every existing series, and
    so the verification of its past draws, unchanged."""
    prizes = {k: {f: x for f, x in v.items() if f != "valid_days" or x}
              for k, v in s.get("prizes", {}).items()}
    return {**s, "prizes": prizes} if "prizes" in s else s


def _build_series(sid: str, s: dict[str, Any], paid: Mapping[str, bool]) -> Series:
    tiers = {k: Tier(k, v["name"], v["rank"]) for k, v in s["tiers"].items()}
    entries: list[Entry] = [
        Entry(k, v["tier"], tiers[v["tier"]].rank, v["weight"], v["max_copies"], None)
        for k, v in s["items"].items()
    ]
    for k, v in s["prizes"].items():
        prize = Prize(v["kind"], v["name"], v["template"], v["sku"], v["face_value_fen"],
                      v["stock"], v["fallback"], v.get("valid_days", 0))
        entries.append(Entry(k, v["tier"], tiers[v["tier"]].rank, v["weight"], v["max_copies"],
                             prize))
    p = s["price"]
    kind, unit = ("currency", p["currency"]) if p["currency"] else ("item", p["item"])
    pity = s["pity"]
    hard = pity["hard"] and HardPity(pity["hard"]["tier"], tiers[pity["hard"]["tier"]].rank,
                                     pity["hard"]["within"])
    soft = pity["soft"] and SoftPity(pity["soft"]["tier"], tiers[pity["soft"]["tier"]].rank,
                                     pity["soft"]["from"], round(pity["soft"]["step"] * PPM))
    ten = pity["ten_draw"] and tiers[pity["ten_draw"]["tier"]]
    return Series(
        id=sid, name=s["name"], price=Price(kind, unit, p["amount"], paid.get(unit, False)),
        opens_at=s["opens_at"], closes_at=s["closes_at"], daily_cap=s["daily_cap"],
        total_cap=s["total_cap"], tiers=tiers, entries=tuple(entries),
        no_repeat_until_complete=s["no_repeat_until_complete"], hard=hard or None,
        soft=soft or None, ten_draw=ten or None, completion_reward=s["completion_reward"],
        table_hash=_canonical_hash(_hashed(s)), index={e.id: i for i, e in enumerate(entries)},
        set_ids=frozenset(i for i, e in enumerate(entries) if e.prize is None and e.weight > 0),
    )


def build_boxes(d: Mapping[str, Any]) -> BoxesConfig:
    """Build the boxes section of an already validated and cross-checked game config."""
    b = d["boxes"]
    paid = _paid_units(d)
    return BoxesConfig(
        max_price=dict(b["max_price"]), default_max_price=b["default_max_price"],
        age_gate=dict(b["age_gate"]), draw_records_days=b["draw_records_days"],
        series={k: _build_series(k, v, paid) for k, v in b["series"].items()},
    )


EMPTY_BOXES: Final = BoxesConfig({}, 100_000, dict(BOXES_DEFAULT["age_gate"]), 90, {})


def _prize_stock(config: GameConfig) -> dict[str, int]:
    return {f"prize:{e.id}": e.prize.stock for series in config.boxes.series.values()
            for e in series.prizes if e.prize is not None}


BOXES = Section(name="boxes", fields={"boxes": BOXES_SPEC},
                build=lambda d: {"boxes": build_boxes(d)}, check=check_boxes,
                stock=_prize_stock)


@dataclass(frozen=True, kw_only=True)
class BoxesPart(ConfigPart):
    """The blind boxes of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = BOXES
    boxes: BoxesConfig = EMPTY_BOXES


def soft_certain_at(series: Series) -> int | None:
    """Draw number (since the last tier ≥ X) at which soft pity makes X certain, full stock."""
    soft = series.soft
    if soft is None:
        return None
    for level in range(1, soft.max_level + 1):
        table = series.table(level=level)
        assert table is not None
        if all(series.entries[i].rank >= soft.rank for i in table.ids):
            return soft.start + level - 1
    return soft.start + soft.max_level - 1  # pragma: no cover - max_level guarantees it


__all__ = [
    "AGE_BANDS",
    "BOXES",
    "BOXES_DEFAULT",
    "BOXES_SPEC",
    "EMPTY_BOXES",
    "SERIES_SPEC",
    "BoxesConfig",
    "BoxesPart",
    "Entry",
    "HardPity",
    "Price",
    "Prize",
    "Series",
    "SoftPity",
    "Table",
    "Tier",
    "build_boxes",
    "check_boxes",
    "soft_certain_at",
]
