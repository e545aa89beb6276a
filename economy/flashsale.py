"""Flash sales (限时抢购) and early purchase (提前购 / presale): config section, frozen
models, cross-checks and typed refusals. Rules: :mod:`mechanics.flashsale`.

A **flash sale** sells ``stock`` units at ``price_fen`` from ``starts_at``. A claim
holds one unit for the shopper until ``pay_by`` (claim time + ``pay_seconds``); the
merchant's paid order carrying the sale's ``sku`` (``ingestOrder``) confirms it, and a
hold still unpaid at ``pay_by`` expires and its unit goes back to the stock.

A **presale** takes reservations between ``reserve_from`` and ``reserve_until``
(``stock`` of them, limited per shopper), optionally against a deposit. From
``event_at`` a reservation is a purchase right: with priority (the shopper may buy
until ``priority_until`` before everyone else) or, with a deposit, a deposit
multiplier (定金膨胀: the deposit counts ``multiplier_pct`` % at the final payment).
A reservation converted by a paid order with the presale's ``sku`` before
``convert_until`` is done; one not converted by then is released (its unit back to
the stock) and the merchant is told by a signed webhook.

Every unit is limited stock of the value tier (refs ``flash:<sale>`` and
``presale:<presale>``): SQL is the truth, nothing is sold twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from economy.errors import DomainError, Refusal, stock_pending_details
from economy.schema import MAX_TIME, Enum, Int, Map, Obj, Problems, Str
from economy.section import (
    Cleaned,
    ConfigPart,
    Section,
    removed_while_running,
    started_in_both,
)

SALE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
SKU_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_PRICE = 10**10
MAX_STOCK = 1_000_000
FLASH_REF = "flash:"
PRESALE_REF = "presale:"
FLASH_KIND = "flash_hold"
PRESALE_KIND = "presale_hold"
"""The value tier's grant kinds of a flash-sale hold and a presale reservation."""

ELIGIBILITY_SPEC = Obj(description="Who may claim; every condition set must hold.",
                       default={"member_task": "", "task": "", "min_orders": 0}, fields={
    "member_task": Str(default="", max_length=64,
                       description="members only: the task by which a shopper joins the "
                                   "shop's membership (入会); '' = anyone"),
    "task": Str(default="", max_length=64,
                description="shoppers who did this task; '' = no task needed"),
    "min_orders": Int(minimum=0, maximum=500, default=0,
                      description="paid orders (ingestOrder, last 30 days) needed before"),
})

FLASH_SPEC = Obj(description="A flash sale: limited units at a price, from a start time.",
                 fields={
    "title": Str(min_length=1, max_length=120),
    "sku": Str(pattern=SKU_PATTERN, max_length=64,
               description="the merchant's SKU: a paid order with it pays the shopper's hold"),
    "price_fen": Int(minimum=0, maximum=MAX_PRICE, description="the flash price (fen)"),
    "list_price_fen": Int(minimum=0, maximum=MAX_PRICE, default=0,
                          description="the usual price, shown struck through (0: none)"),
    "starts_at": Int(minimum=0, maximum=MAX_TIME, description="unix s the first claim is taken"),
    "ends_at": Int(minimum=0, maximum=MAX_TIME, default=0,
                   description="unix s from which no claim is taken (0: until sold out)"),
    "stock": Int(minimum=1, maximum=MAX_STOCK, description="units for sale"),
    "per_shopper": Int(minimum=1, maximum=100, default=1,
                       description="units one shopper may hold or have bought"),
    "pay_seconds": Int(minimum=30, maximum=86_400, default=900,
                       description="a claim holds its unit this long for the payment"),
    "eligibility": ELIGIBILITY_SPEC,
})

PRESALE_SPEC = Obj(description="An early purchase (提前购): reserve before the event, buy at "
                               "it with priority or a multiplied deposit.", fields={
    "title": Str(min_length=1, max_length=120),
    "sku": Str(pattern=SKU_PATTERN, max_length=64,
               description="the merchant's SKU: a paid order with it converts a reservation"),
    "deposit_sku": Str(pattern=r"^([A-Za-z0-9_.:-]{1,64})?$", max_length=64, default="",
                       description="the deposit's SKU: a paid order with it marks the deposit "
                                   "paid ('' : the deposit is not tracked)"),
    "price_fen": Int(minimum=0, maximum=MAX_PRICE, description="the final price (fen)"),
    "deposit_fen": Int(minimum=0, maximum=MAX_PRICE, default=0,
                       description="deposit to reserve (0: reserve for free)"),
    "benefit": Enum(values=("priority", "deposit_multiplier"), default="priority",
                    description="what a reservation gives at the event"),
    "multiplier_pct": Int(minimum=100, maximum=1000, default=100,
                          description="deposit_multiplier: the deposit counts this % of "
                                      "itself at the final payment (200: 定金翻倍)"),
    "priority_seconds": Int(minimum=0, maximum=86_400, default=3600,
                            description="priority: reservers buy alone this long from the event"),
    "reserve_from": Int(minimum=0, maximum=MAX_TIME),
    "reserve_until": Int(minimum=1, maximum=MAX_TIME),
    "event_at": Int(minimum=1, maximum=MAX_TIME, description="unix s the purchase opens"),
    "convert_until": Int(minimum=1, maximum=MAX_TIME,
                         description="unix s by which a reservation must be bought; after "
                                     "it, unconverted ones are released"),
    "stock": Int(minimum=1, maximum=MAX_STOCK, description="reservations available"),
    "per_shopper": Int(minimum=1, maximum=100, default=1),
    "eligibility": ELIGIBILITY_SPEC,
})

FLASHSALES_SPEC = Map(values=FLASH_SPEC, default={}, max_items=100, key_pattern=SALE_ID_PATTERN,
                      description="sale id → flash sale (getFlashSale, claimFlashSale)")
PRESALES_SPEC = Map(values=PRESALE_SPEC, default={}, max_items=100, key_pattern=SALE_ID_PATTERN,
                    description="presale id → presale (getPresale, reservePresale)")


@dataclass(frozen=True)
class Eligibility:
    member_task: str = ""
    task: str = ""
    min_orders: int = 0


@dataclass(frozen=True)
class FlashSale:
    """One validated flash sale."""

    id: str
    title: str
    sku: str
    price_fen: int
    list_price_fen: int
    starts_at: int
    ends_at: int
    """0: no end but the stock"""
    stock: int
    per_shopper: int
    pay_seconds: int
    eligibility: Eligibility

    @property
    def ref(self) -> str:
        return FLASH_REF + self.id


@dataclass(frozen=True)
class Presale:
    """One validated presale."""

    id: str
    title: str
    sku: str
    deposit_sku: str
    price_fen: int
    deposit_fen: int
    benefit: str
    multiplier_pct: int
    priority_seconds: int
    reserve_from: int
    reserve_until: int
    event_at: int
    convert_until: int
    stock: int
    per_shopper: int
    eligibility: Eligibility

    @property
    def ref(self) -> str:
        return PRESALE_REF + self.id

    @property
    def deposit_value_fen(self) -> int:
        """What the deposit counts for at the final payment."""
        if self.benefit != "deposit_multiplier":
            return self.deposit_fen
        return self.deposit_fen * self.multiplier_pct // 100


def _eligibility(raw: Mapping[str, Any]) -> Eligibility:
    return Eligibility(raw["member_task"], raw["task"], raw["min_orders"])


def build_flashsales(d: Mapping[str, Any]) -> dict[str, FlashSale]:
    return {sid: FlashSale(id=sid, **{**s, "eligibility": _eligibility(s["eligibility"])})
            for sid, s in (d.get("flashsales") or {}).items()}


def build_presales(d: Mapping[str, Any]) -> dict[str, Presale]:
    return {pid: Presale(id=pid, **{**p, "eligibility": _eligibility(p["eligibility"])})
            for pid, p in (d.get("presales") or {}).items()}


def _p(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _eligibility_problems(path: str, raw: Mapping[str, Any], tasks: Mapping[str, Any]
                          ) -> Problems:
    return [_p(f"{path}.eligibility.{name}", f"unknown task {raw[name]!r}")
            for name in ("member_task", "task") if raw[name] and raw[name] not in tasks]


def _flash_problems(sid: str, s: Mapping[str, Any], tasks: Mapping[str, Any]) -> Problems:
    path = f"$.flashsales.{sid}"
    problems = _eligibility_problems(path, s["eligibility"], tasks)
    if s["ends_at"] and s["ends_at"] <= s["starts_at"]:
        problems.append(_p(f"{path}.ends_at", "a sale must end after it starts (0: no end)"))
    if s["list_price_fen"] and s["list_price_fen"] < s["price_fen"]:
        problems.append(_p(f"{path}.list_price_fen", "below the flash price"))
    return problems


def _presale_problems(pid: str, p: Mapping[str, Any], tasks: Mapping[str, Any]) -> Problems:
    path = f"$.presales.{pid}"
    problems = _eligibility_problems(path, p["eligibility"], tasks)
    order = ("reserve_from", "reserve_until", "event_at", "convert_until")
    for earlier, later in itertools.pairwise(order):
        if p[later] < p[earlier] or (later != "event_at" and p[later] == p[earlier]):
            problems.append(_p(f"{path}.{later}", f"must be after {earlier}"))
    if p["benefit"] == "deposit_multiplier" and not p["deposit_fen"]:
        problems.append(_p(f"{path}.deposit_fen", "a deposit multiplier needs a deposit"))
    if p["deposit_sku"] and p["deposit_sku"] == p["sku"]:
        problems.append(_p(f"{path}.deposit_sku", "must differ from sku"))
    return problems


def check_sales(d: Mapping[str, Any]) -> Problems:
    """Times in order, eligibility tasks known, SKUs not shared by two sales (an order
    pays the one hold its SKU names)."""
    tasks = d.get("tasks") or {}
    problems: Problems = []
    for sid, s in (d.get("flashsales") or {}).items():
        problems += _flash_problems(sid, s, tasks)
    for pid, p in (d.get("presales") or {}).items():
        problems += _presale_problems(pid, p, tasks)
    seen: dict[str, str] = {}
    for section in ("flashsales", "presales"):
        for sid, s in (d.get(section) or {}).items():
            for name in ("sku", "deposit_sku"):
                sku = s.get(name)
                if not sku:
                    continue
                path = f"$.{section}.{sid}.{name}"
                if sku in seen:
                    problems.append(_p(path, f"SKU {sku!r} is already used by {seen[sku]}"))
                seen.setdefault(sku, path)
    return problems


def _stock(config: Any) -> dict[str, int]:
    refs = {s.ref: s.stock for s in config.flashsales.values()}
    refs.update({p.ref: p.stock for p in config.presales.values()})
    return refs


def follow_sales(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """What holds and reservations were made under stays: a flash sale that started
    keeps its ``sku`` (a hold is paid by an order naming it) and is not removed while
    claims may hold units; a presale whose
    reservations opened keeps its ``sku`` and ``deposit_sku`` and its ``convert_until``
    (each reservation holds until the deadline it was made under; the sweeper releases
    it then), and is not removed before then."""
    problems = removed_while_running(
        live, new, "presales", now,
        lambda p: (int(p["reserve_from"]), int(p["convert_until"])),
        "reservations hold until its convert_until")
    problems += removed_while_running(
        live, new, "flashsales", now, _sale_window,
        "claims hold units for orders of its sku until they are paid or expire")
    problems += _skus_kept(live, new, "flashsales", "starts_at", now)
    problems += _skus_kept(live, new, "presales", "reserve_from", now)
    problems += [{"path": f"$.presales.{pid}.convert_until", "message": (
                     f"is {old['convert_until']} in the live version and reservations "
                     "opened under it: they hold until then, so it cannot change")}
                 for pid, old, p in started_in_both(live, new, "presales", now,
                                                    lambda p: int(p["reserve_from"]))
                 if p["convert_until"] != old["convert_until"]]
    return problems


def _sale_window(sale: Cleaned) -> tuple[int, int | None]:
    """From its start until its last claim's hold has expired (no end: none)."""
    ends = int(sale["ends_at"])
    return int(sale["starts_at"]), (ends + int(sale["pay_seconds"]) if ends else None)


def _skus_kept(live: Cleaned, new: Cleaned, key: str, start: str,
               now: int | None) -> Problems:
    """A started sale's or presale's SKUs stay: its holds are paid by orders naming
    them, and an order of the old SKU would pay nothing."""
    return [{"path": f"$.{key}.{item_id}.{f}", "message": (
                f"is {old.get(f)!r} in the live version and holds were made for orders "
                "of it: it cannot change once the sale started")}
            for item_id, old, item in started_in_both(live, new, key, now,
                                                      lambda x: int(x[start]))
            for f in ("sku", "deposit_sku") if item.get(f) != old.get(f)]


FLASHSALES = Section(
    name="flashsale", fields={"flashsales": FLASHSALES_SPEC, "presales": PRESALES_SPEC},
    build=lambda d: {"flashsales": build_flashsales(d), "presales": build_presales(d)},
    check=check_sales, stock=_stock, follow=follow_sales)


@dataclass(frozen=True, kw_only=True)
class FlashSalesPart(ConfigPart):
    """The flash sales and presales of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = FLASHSALES
    flashsales: dict[str, FlashSale] = field(default_factory=dict)
    presales: dict[str, Presale] = field(default_factory=dict)


# -- refusals ------------------------------------------------------------------------


class SaleNotFound(DomainError):
    code = "sale_not_found"
    kind = Refusal.NOT_FOUND

    def __init__(self, kind: str, sale: str) -> None:
        super().__init__(f"no such {kind}", kind=kind, id=sale)


class NotStarted(DomainError):
    """A claim (or reservation) before the start: refused, not queued."""

    code = "not_started"
    kind = Refusal.CONFLICT

    def __init__(self, sale: str, starts_at: int, now: int) -> None:
        super().__init__("not started yet", sale=sale, starts_at=starts_at, server_time=now,
                         retry_after=max(1, starts_at - now))


class SaleEnded(DomainError):
    code = "sale_ended"
    kind = Refusal.CONFLICT

    def __init__(self, sale: str, ended_at: int) -> None:
        super().__init__("this sale is over", sale=sale, ended_at=ended_at)


class SoldOut(DomainError):
    """Nothing left to claim. ``pending`` units are held by claims still being settled:
    those may fail and give their unit back, so with ``pending`` the answer is not final
    (``Retry-After`` says when to look again, cheaply through the public view)."""

    code = "sold_out"
    kind = Refusal.CONFLICT

    def __init__(self, sale: str, pending: int = 0) -> None:
        message = ("sold out for now: every unit is held by claims still being settled, "
                   "and some may come back") if pending > 0 else "sold out"
        super().__init__(message, sale=sale, stock_left=0, **stock_pending_details(pending))


class NotEligible(DomainError):
    """The shopper does not meet the sale's eligibility."""

    code = "not_eligible"
    kind = Refusal.FORBIDDEN

    def __init__(self, sale: str, requirement: str, **facts: Any) -> None:
        super().__init__("this sale is for eligible shoppers only", sale=sale,
                         requirement=requirement, **facts)


class PerShopperLimit(DomainError):
    code = "purchase_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, sale: str, limit: int) -> None:
        super().__init__("you already hold or bought as many as one shopper may",
                         sale=sale, per_shopper=limit)
