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

Compliance checks live in :func:`check_boxes` (called by the game config parse).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd
from typing import Any, Final

from economy.schema import ID_PATTERN, Bool, Enum, Int, Map, Num, Obj, Problems, Str, validate

MAX_AMOUNT: Final = 10**12
"""Same bound as :data:`economy.config.MAX_AMOUNT` (not imported: config imports us)."""
MAX_WEIGHT: Final = 10**9
MAX_PITY_DRAWS: Final = 1000
"""Hard pity window, soft pity start and soft ramp length are bounded so the
disclosure's Markov chain stays small (and no merchant hides a 10⁶-draw pity)."""
PPM: Final = 1_000_000
AGE_BANDS: Final = ("under_8", "8_17", "18_plus")
POLICIES: Final = ("allow", "guardian", "deny")
_STRICTNESS: Final = {"allow": 0, "guardian": 1, "deny": 2}
_LEGAL_MINIMUM: Final = {"under_8": "deny", "8_17": "guardian"}
"""SAMR 2023: no sales to under-8s; 8–17 only with a guardian's consent. Stricter is fine."""
_TABLE_CACHE_MAX: Final = 4096

TIER_SPEC = Obj(description="A rarity tier; a higher rank is rarer.", fields={
    "name": Str(min_length=1, max_length=40),
    "rank": Int(minimum=0, maximum=100),
})

BOX_ITEM_SPEC = Obj(description="A collectible in a series; its id is an item of `$.items`.",
                    fields={
    "tier": Str(pattern=ID_PATTERN),
    "weight": Int(minimum=0, maximum=MAX_WEIGHT, description="relative weight (integer)"),
    "max_copies": Int(minimum=0, maximum=1_000_000, default=0,
                      description="most copies a player can draw; 0 = no limit"),
})

PRIZE_SPEC = Obj(description="A limited real prize with a global stock.", fields={
    "name": Str(min_length=1, max_length=60),
    "kind": Enum(values=("coupon", "goods")),
    "tier": Str(pattern=ID_PATTERN),
    "weight": Int(minimum=0, maximum=MAX_WEIGHT),
    "stock": Int(minimum=0, maximum=10**9, description="initial global stock"),
    "fallback": Str(pattern=ID_PATTERN,
                    description="collectible of this series that gets the weight when out"),
    "template": Str(max_length=64, default="", description="merchant coupon template (coupon)"),
    "sku": Str(max_length=64, default="", description="merchant goods SKU (goods)"),
    "face_value_fen": Int(minimum=0, maximum=MAX_AMOUNT,
                          description="value to the shopper in fen (1/100 CNY)"),
    "max_copies": Int(minimum=0, maximum=1_000_000, default=1,
                      description="most a player can win; 0 = no limit"),
})

PRICE_SPEC = Obj(description="Price of one draw: exactly one of `currency` or `item`.", fields={
    "currency": Str(pattern=ID_PATTERN, default="", max_length=64),
    "item": Str(pattern=ID_PATTERN, default="", max_length=64, description="a ticket item"),
    "amount": Int(minimum=1, maximum=MAX_AMOUNT),
})

PITY_SPEC = Obj(description="Pity rules; counters are per player per series.", fields={
    "hard": Obj(default=None, description="within `within` draws at least one of tier ≥ `tier`",
                fields={"tier": Str(pattern=ID_PATTERN),
                        "within": Int(minimum=1, maximum=MAX_PITY_DRAWS)}),
    "soft": Obj(default=None,
                description="from draw `from` since the last tier ≥ `tier`, its chance rises "
                            "by `step` per draw",
                fields={"tier": Str(pattern=ID_PATTERN),
                        "from": Int(minimum=1, maximum=MAX_PITY_DRAWS),
                        "step": Num(minimum=1e-6, maximum=1.0,
                                    description="probability added per draw (0.06 = 6 points)")}),
    "ten_draw": Obj(default=None, description="a 10-draw has at least one of tier ≥ `tier`",
                    fields={"tier": Str(pattern=ID_PATTERN)}),
})

REWARD_SPEC = Obj(description="Granted once when a player owns every collectible of the series.",
                  fields={
    "currencies": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={}),
    "items": Map(values=Int(minimum=1, maximum=1_000_000), default={}),
})

SERIES_SPEC = Obj(description="A blind-box series.", fields={
    "name": Str(min_length=1, max_length=80),
    "price": PRICE_SPEC,
    "opens_at": Int(minimum=0, default=0, description="unix s; 0 = open"),
    "closes_at": Int(minimum=0, default=0, description="unix s; 0 = never closes"),
    "daily_cap": Int(minimum=0, maximum=100_000, default=0,
                     description="draws per player per game-timezone day; 0 = none"),
    "total_cap": Int(minimum=0, maximum=10_000_000, default=0,
                     description="draws per player ever; 0 = none"),
    "tiers": Map(values=TIER_SPEC, min_items=1, max_items=10),
    "items": Map(values=BOX_ITEM_SPEC, min_items=1, max_items=200),
    "prizes": Map(values=PRIZE_SPEC, default={}, max_items=50),
    "no_repeat_until_complete": Bool(default=False, description="owned collectibles are skipped "
                                     "until the player owns the whole set"),
    "pity": PITY_SPEC,
    "completion_reward": Obj(default=None, fields=REWARD_SPEC.fields,
                             description=REWARD_SPEC.description),
})

AGE_GATE_FIELDS: dict[str, Any] = {
    "unknown": Enum(values=POLICIES, default="allow", description="sessions without an age band"),
    "under_8": Enum(values=POLICIES, default="deny"),
    "8_17": Enum(values=POLICIES, default="guardian"),
    "18_plus": Enum(values=POLICIES, default="allow"),
}
AGE_GATE_SPEC = Obj(description="Who may draw, by the session's age band.",
                    fields=AGE_GATE_FIELDS,
                    default=validate(Obj(fields=AGE_GATE_FIELDS), {})[0])

_BOXES_FIELDS: dict[str, Any] = {
    "max_price": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={},
                     description="most one draw may cost, per currency or ticket item"),
    "default_max_price": Int(minimum=1, maximum=MAX_AMOUNT, default=100_000,
                             description="cap for a price unit not in `max_price`"),
    "age_gate": AGE_GATE_SPEC,
    "draw_records_days": Int(minimum=90, maximum=3650, default=90,
                             description="how long draw records are kept"),
    "series": Map(values=SERIES_SPEC, default={}, max_items=100),
}
BOXES_DEFAULT: Final = validate(Obj(fields=_BOXES_FIELDS), {})[0]
BOXES_SPEC = Obj(description="Blind boxes (盲盒).", fields=_BOXES_FIELDS, default=BOXES_DEFAULT)


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


def _build_series(sid: str, s: dict[str, Any], paid: Mapping[str, bool]) -> Series:
    tiers = {k: Tier(k, v["name"], v["rank"]) for k, v in s["tiers"].items()}
    entries: list[Entry] = [
        Entry(k, v["tier"], tiers[v["tier"]].rank, v["weight"], v["max_copies"], None)
        for k, v in s["items"].items()
    ]
    for k, v in s["prizes"].items():
        prize = Prize(v["kind"], v["name"], v["template"], v["sku"], v["face_value_fen"],
                      v["stock"], v["fallback"])
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
        table_hash=_canonical_hash(s), index={e.id: i for i, e in enumerate(entries)},
        set_ids=frozenset(i for i, e in enumerate(entries) if e.prize is None and e.weight > 0),
    )


def _paid_units(d: Mapping[str, Any]) -> dict[str, bool]:
    """Currency and item ids → bought with real money (``paid: true``)."""
    out = {k: bool(v.get("paid", False)) for k, v in d.get("items", {}).items()}
    out.update({k: bool(v.get("paid", False)) for k, v in d.get("currencies", {}).items()})
    return out


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


# ---------------------------------------------------------------- cross-checks


class _Problems:
    def __init__(self) -> None:
        self.items: Problems = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"path": path, "message": message})


def check_boxes(d: Mapping[str, Any]) -> Problems:
    """Cross-references and compliance of ``d['boxes']`` (``d`` = the whole cleaned config).

    Compliance: no complete-the-set reward on a series bought with a paid
    currency or item (kompu gacha); no tier without weight; no limited prize
    without stock; no price above the cap; an age gate at least as strict as
    the legal minimum; a pity guarantee that never depends on stock.
    """
    p = _Problems()
    b = d.get("boxes")
    if not b:
        return p.items
    for band, minimum in _LEGAL_MINIMUM.items():
        if _STRICTNESS[b["age_gate"][band]] < _STRICTNESS[minimum]:
            p.add(f"$.boxes.age_gate.{band}", f"must be at least as strict as {minimum!r}")
    units = set(d.get("currencies", {})) | set(d.get("items", {}))
    for unit in b["max_price"]:
        if unit not in units:
            p.add(f"$.boxes.max_price.{unit}", "unknown currency or item")
    prize_owner: dict[str, str] = {}
    for sid, s in b["series"].items():
        base = f"$.boxes.series.{sid}"
        _check_series(p, base, s, d, b)
        for pid in s["prizes"]:
            if pid in prize_owner:
                p.add(f"{base}.prizes.{pid}",
                      f"prize ids are global (stock); already used by series {prize_owner[pid]}")
            prize_owner[pid] = sid
    return p.items


def _check_series(p: _Problems, base: str, s: dict[str, Any], d: Mapping[str, Any],
                  b: Mapping[str, Any]) -> None:
    _check_price(p, base, s, d, b)
    if s["closes_at"] and s["closes_at"] <= s["opens_at"]:
        p.add(f"{base}.closes_at", "must be after opens_at")
    ranks: dict[int, str] = {}
    for tid, t in s["tiers"].items():
        if t["rank"] in ranks:
            p.add(f"{base}.tiers.{tid}.rank", f"same rank as tier {ranks[t['rank']]}")
        ranks[t["rank"]] = tid
    tier_weight = dict.fromkeys(s["tiers"], 0)
    for kind in ("items", "prizes"):
        for eid, e in s[kind].items():
            if e["tier"] not in s["tiers"]:
                p.add(f"{base}.{kind}.{eid}.tier", "unknown tier")
            else:
                tier_weight[e["tier"]] += e["weight"]
    for eid in s["items"]:
        if eid not in d.get("items", {}):
            p.add(f"{base}.items.{eid}", "not an item of $.items")
    for tid, total in tier_weight.items():
        if total == 0:
            p.add(f"{base}.tiers.{tid}", "no weight: every item of this tier has weight 0")
    for pid, prize in s["prizes"].items():
        _check_prize(p, f"{base}.prizes.{pid}", pid, prize, s)
    if s["completion_reward"] is not None:
        _check_reward(p, base, s, d)
    _check_pity(p, base, s)


def _check_price(p: _Problems, base: str, s: dict[str, Any], d: Mapping[str, Any],
                 b: Mapping[str, Any]) -> None:
    price = s["price"]
    if bool(price["currency"]) == bool(price["item"]):
        p.add(f"{base}.price", "needs exactly one of currency or item")
        return
    unit = price["currency"] or price["item"]
    known = d.get("currencies", {}) if price["currency"] else d.get("items", {})
    if unit not in known:
        p.add(f"{base}.price", f"unknown {'currency' if price['currency'] else 'item'} {unit!r}")
    cap = b["max_price"].get(unit, b["default_max_price"])
    if price["amount"] > cap:
        p.add(f"{base}.price.amount", f"exceeds the price cap of {cap} {unit}")


def _check_prize(p: _Problems, path: str, pid: str, prize: dict[str, Any],
                 s: dict[str, Any]) -> None:
    if pid in s["items"]:
        p.add(path, "same id as a collectible of the series")
    if prize["stock"] <= 0:
        p.add(f"{path}.stock", "a limited prize needs stock > 0")
    if prize["fallback"] not in s["items"]:
        p.add(f"{path}.fallback", "must be a collectible (not a prize) of this series")
    if prize["kind"] == "coupon" and not prize["template"]:
        p.add(f"{path}.template", "a coupon needs its merchant coupon template")


def _check_reward(p: _Problems, base: str, s: dict[str, Any], d: Mapping[str, Any]) -> None:
    if _paid_units(d).get(s["price"]["currency"] or s["price"]["item"], False):
        p.add(f"{base}.completion_reward",
              "a complete-the-set reward on a series bought with a paid currency or item is "
              "forbidden (kompu gacha)")
    for cur in s["completion_reward"]["currencies"]:
        if cur not in d.get("currencies", {}):
            p.add(f"{base}.completion_reward.currencies.{cur}", "unknown currency")
    for item in s["completion_reward"]["items"]:
        if item not in d.get("items", {}):
            p.add(f"{base}.completion_reward.items.{item}", "unknown item")


def _check_pity(p: _Problems, base: str, s: dict[str, Any]) -> None:
    pity = s["pity"]
    rank = {tid: t["rank"] for tid, t in s["tiers"].items()}
    for name in ("hard", "soft", "ten_draw"):
        rule = pity[name]
        if rule is None:
            continue
        path = f"{base}.pity.{name}"
        if rule["tier"] not in rank:
            p.add(f"{path}.tier", "unknown tier")
            continue
        floor = rank[rule["tier"]]
        if not any(rank.get(e["tier"], -1) >= floor and e["weight"] > 0
                   for e in s["items"].values()):
            p.add(f"{path}.tier", "tiers at or above it have no collectible with weight: "
                                  "the guarantee would depend on prize stock")
        if name == "soft" and floor == min(rank.values()):
            p.add(f"{path}.tier", "soft pity on the lowest tier does nothing")
    soft = pity["soft"]
    if soft is not None and soft["tier"] in rank:
        _check_soft_ramp(p, f"{base}.pity.soft", s, rank[soft["tier"]], soft)


def _check_soft_ramp(p: _Problems, path: str, s: dict[str, Any], floor: int,
                     soft: dict[str, Any]) -> None:
    weights = [(e["tier"], e["weight"]) for k in ("items", "prizes") for e in s[k].values()]
    hi = sum(w for t, w in weights if t in s["tiers"] and s["tiers"][t]["rank"] >= floor)
    total = sum(w for _, w in weights)
    step = round(soft["step"] * PPM)
    if step < 1:
        p.add(f"{path}.step", "must be at least 0.000001")
        return
    base = Fraction(hi, total) if total else Fraction(1)
    ramp = -(-((1 - base) * PPM) // step)  # levels until the boosted chance reaches 1
    if ramp > MAX_PITY_DRAWS:
        p.add(f"{path}.step", f"certainty would take {ramp} boosted draws; at most "
                              f"{MAX_PITY_DRAWS} allowed")


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
    "BOXES_DEFAULT",
    "BOXES_SPEC",
    "EMPTY_BOXES",
    "SERIES_SPEC",
    "BoxesConfig",
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
