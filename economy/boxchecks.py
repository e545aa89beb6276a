"""Cross-checks and compliance of the blind-box config section (see :mod:`economy.boxes`).

They read the cleaned config as plain data, before anything is built, and report
every problem with its JSON path.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from economy.boxspec import _LEGAL_MINIMUM, _STRICTNESS, MAX_PITY_DRAWS, PPM, _paid_units
from economy.schema import Problems


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
