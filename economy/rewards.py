"""Rewards and costs: what a rule grants or takes, as configured by the merchant.

A :class:`Reward` is currency, items (a blind-box ticket is an item) and at most
one coupon; a coupon costs the merchant money, so it is a *value-tier* prize
(DESIGN.md): the rule only reserves it and the server writes the grant to SQL.
A :class:`Cost` is currency and items. Both are validated by the same specs that
publish the JSON Schema, and cross-checked against the game's currencies, items
and coupons by :func:`reward_problems` / :func:`cost_problems`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from economy.schema import Int, Map, Obj, Problems, Str
from economy.section import Cleaned, ConfigPart, Section

if TYPE_CHECKING:
    from economy.config import GameConfig

MAX_GRANT = 10**9

REWARD_SPEC = Obj(description="What a player receives.", default={
    "currency": {}, "items": {}, "coupon": ""}, fields={
    "currency": Map(values=Int(minimum=0, maximum=MAX_GRANT), default={},
                    description="currency → amount"),
    "items": Map(values=Int(minimum=0, maximum=MAX_GRANT), default={},
                 description="item → count (a blind-box ticket is an item)"),
    "coupon": Str(pattern=r"^$|^[a-z0-9][a-z0-9_-]{0,63}$", max_length=64, default="",
                  description="a coupon of `coupons`, or empty"),
})

COST_SPEC = Obj(description="What a player pays.", default={"currency": {}, "items": {}}, fields={
    "currency": Map(values=Int(minimum=0, maximum=MAX_GRANT), default={}),
    "items": Map(values=Int(minimum=0, maximum=MAX_GRANT), default={}),
})

COUPON_SPEC = Obj(description="A merchant coupon: a value-tier prize with limited stock.",
                  fields={
    "name": Str(min_length=1, max_length=60),
    "template": Str(max_length=64, default="", description="merchant coupon template id"),
    "value_fen": Int(minimum=0, maximum=10**9, default=0,
                     description="face value in fen (¥0.01), for cost reports"),
    "stock": Int(minimum=0, maximum=10**9, description="initial stock"),
    "valid_days": Int(minimum=0, maximum=3650, default=0,
                      description="days a granted coupon stays usable; 0 = no expiry"),
})

@dataclass(frozen=True)
class Reward:
    """A grant; ``coupon`` is empty when there is none."""

    currency: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    coupon: str = ""

    def is_empty(self) -> bool:
        return not any(self.currency.values()) and not any(self.items.values()) \
            and not self.coupon

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"currency": dict(self.currency), "items": dict(self.items)}
        if self.coupon:
            out["coupon"] = self.coupon
        return out


@dataclass(frozen=True)
class Cost:
    """A price in currency and items."""

    currency: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"currency": dict(self.currency), "items": dict(self.items)}


@dataclass(frozen=True)
class Coupon:
    id: str
    name: str
    template: str
    value_fen: int
    stock: int
    valid_days: int = 0
    """Days a granted coupon stays usable (0: no expiry); stamped on each grant row."""

    def wallet_detail(self) -> dict[str, Any]:
        """What a grant row keeps for the shopper's wallet (``listMyCoupons``)."""
        return {"coupon": self.id, "name": self.name, "template": self.template,
                "face_value_fen": self.value_fen, "valid_days": self.valid_days}


def build_reward(d: dict[str, Any]) -> Reward:
    return Reward(currency={k: v for k, v in d["currency"].items() if v},
                  items={k: v for k, v in d["items"].items() if v}, coupon=d["coupon"])


def build_cost(d: dict[str, Any]) -> Cost:
    return Cost(currency={k: v for k, v in d["currency"].items() if v},
                items={k: v for k, v in d["items"].items() if v})


def _refs(d: dict[str, Any], path: str, game: dict[str, Any]) -> Problems:
    problems: Problems = []
    for cur in d["currency"]:
        if cur not in game["currencies"]:
            problems.append({"path": f"{path}.currency.{cur}", "message": "unknown currency"})
    for item in d["items"]:
        if item not in game["items"]:
            problems.append({"path": f"{path}.items.{item}", "message": "unknown item"})
    return problems


def reward_problems(d: dict[str, Any], path: str, game: dict[str, Any]) -> Problems:
    """Dangling references of a reward at ``path`` in the cleaned game config ``game``."""
    problems = _refs(d, path, game)
    if d["coupon"] and d["coupon"] not in game.get("coupons", {}):
        problems.append({"path": f"{path}.coupon", "message": "unknown coupon"})
    return problems


def cost_problems(d: dict[str, Any], path: str, game: dict[str, Any]) -> Problems:
    """Dangling references of a cost at ``path``."""
    return _refs(d, path, game)


# -- the coupons section (economy/section.py) -------------------------------------


def _build_coupons(d: Cleaned) -> dict[str, Any]:
    return {"coupons": {k: Coupon(id=k, **v) for k, v in d["coupons"].items()}}


def _coupons_stock(config: GameConfig) -> dict[str, int]:
    return {f"coupon:{cid}": c.stock for cid, c in config.coupons.items()}


COUPONS = Section(name="coupons",
                  fields={"coupons": Map(values=COUPON_SPEC, default={}, max_items=200)},
                  build=_build_coupons, stock=_coupons_stock)


@dataclass(frozen=True, kw_only=True)
class CouponsPart(ConfigPart):
    """The coupons of :class:`~economy.config.GameConfig`: value-tier prizes with stock."""

    SECTION: ClassVar[Section] = COUPONS
    coupons: dict[str, Coupon] = field(default_factory=dict)
