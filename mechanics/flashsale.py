"""Flash sales (限时抢购) and early purchase (提前购): pure rules, time and randomness as
arguments.

- :func:`claim_flashsale` holds one unit of a sale for the shopper until ``pay_by``;
  :func:`reserve_presale` holds one reservation until the presale's ``convert_until``.
  Both put a :class:`StockHold` on the sale's ref and a :class:`ValueGrant` of it in
  the outcome: the value tier reserves the unit in the Redis gate and in SQL before
  the commit, so no unit is sold twice and SQL holds every acknowledged claim.
- :mod:`mechanics.flashsalepay` is ``ingestOrder``'s part: a paid order with a sale's
  SKU pays the shopper's hold of it (a presale's ``deposit_sku`` marks the deposit paid).
- :func:`expire_sale_hold` is the sweeper's commit for one hold past its deadline:
  it ends the hold unless it was paid, and says which (the server then gives the unit
  back to the stock, or counts it sold, in SQL).

Refusals are checked in this order: unknown, not started, ended, eligibility, the
per-shopper limit, sold out. A refusal changes nothing and reserves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from types import MappingProxyType
from typing import Any, NamedTuple

from economy.config import GameConfig
from economy.flashsale import (
    FLASH_KIND,
    PRESALE_KIND,
    Eligibility,
    FlashSale,
    NotEligible,
    NotStarted,
    PerShopperLimit,
    Presale,
    SaleEnded,
    SaleNotFound,
    SoldOut,
)
from mechanics.flashsalestate import (
    EXPIRED,
    FLASH,
    HELD,
    PAID,
    PRESALE,
    SaleHold,
    bought_key,
)
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState, Rng, new_player

SETTLED_KEEP_S = 30 * 86_400
"""Paid and expired holds stay in the shopper's state this long after their deadline
(a paid one then leaves only its count in ``sale_bought``)."""
HOLD_ID_BITS = 64


@dataclass(frozen=True)
class Claim:
    """``claimFlashSale`` / ``reservePresale``: one unit of ``sale``."""

    sale: str


@dataclass(frozen=True)
class ExpireHold:
    """The sweeper's action on one hold whose deadline passed."""

    hold: str


class Chance(NamedTuple):
    """What a claim rule takes in the chance place: the server RNG (hold ids), the refs
    the value tier's view says have nothing left, and the units of those that claims in
    flight still hold (they may come back: a claim that fails gives its unit back)."""

    rng: Rng
    out: frozenset[str]
    pending: Mapping[str, int] = MappingProxyType({})


# -- checks --------------------------------------------------------------------------


def _did_task(state: PlayerState, task: str) -> bool:
    """The shopper completed ``task`` (in its current or last recorded period)."""
    progress = state.tasks.get(task)
    return progress is not None and progress.count > 0


def paid_orders(state: PlayerState) -> int:
    """Paid, not refunded orders the shopper's state remembers (30 days, ≤ 500)."""
    return sum(1 for o in state.orders.values() if o.live)


def check_eligible(state: PlayerState, sale: str, rules: Eligibility) -> None:
    """Raise :class:`NotEligible` naming the first condition the shopper misses."""
    if rules.member_task and not _did_task(state, rules.member_task):
        raise NotEligible(sale, "member", task=rules.member_task)
    if rules.task and not _did_task(state, rules.task):
        raise NotEligible(sale, "task", task=rules.task)
    if rules.min_orders and paid_orders(state) < rules.min_orders:
        raise NotEligible(sale, "orders", min_orders=rules.min_orders,
                          orders=paid_orders(state))


def held_or_bought(state: PlayerState, kind: str, sale: str, now: int) -> int:
    """Units of ``sale`` the shopper holds (not expired) or ever bought: the paid holds
    still kept and those dropped since (counted in ``sale_bought``)."""
    kept = sum(1 for h in state.sale_holds.values()
               if h.kind == kind and h.sale == sale and h.status_at(now) in (HELD, PAID))
    return kept + state.sale_bought.get(bought_key(kind, sale), 0)


def find_flash_sale(config: GameConfig, sale_id: str) -> FlashSale:
    sale = config.flashsales.get(sale_id)
    if sale is None:
        raise SaleNotFound("flash sale", sale_id)
    return sale


def find_presale(config: GameConfig, presale_id: str) -> Presale:
    presale = config.presales.get(presale_id)
    if presale is None:
        raise SaleNotFound("presale", presale_id)
    return presale


def new_hold_id(rng: Rng, taken: dict[str, SaleHold]) -> str:
    """A fresh hold id (64 random bits, hex), not one the shopper has."""
    while True:
        hid = f"{rng.randrange(0, 2**HOLD_ID_BITS):016x}"
        if hid not in taken:
            return hid


def _configured(config: GameConfig, key: str) -> bool:
    """The config still has the sale of a :func:`bought_key`."""
    kind, _, sale = key.partition(":")
    return sale in (config.flashsales if kind == FLASH else config.presales)


def _prune(state: PlayerState, now: int, config: GameConfig) -> None:
    """Keep the state bounded: drop holds settled more than ``SETTLED_KEEP_S`` ago. A
    paid one still counts against ``per_shopper`` for the sale's whole life (a sale
    with no ``ends_at`` outlives any window), so it leaves a count in ``sale_bought``.
    Counts of sales the config no longer has are dropped: at most one per configured
    sale remains."""
    oldest = now - SETTLED_KEEP_S
    kept: dict[str, SaleHold] = {}
    bought = state.sale_bought
    for hid, h in state.sale_holds.items():
        if h.status == HELD or h.until >= oldest:
            kept[hid] = h
        elif h.status == PAID:
            key = bought_key(h.kind, h.sale)
            bought[key] = bought.get(key, 0) + 1
    state.sale_holds = kept
    state.sale_bought = {k: n for k, n in bought.items() if _configured(config, k)}


# -- claims --------------------------------------------------------------------------


def _hold(state: PlayerState | None, kind: str, sale_id: str, ref: str, grant_kind: str,
          until: int, now: int, chance: Chance, config: GameConfig,
          detail: dict[str, Any], shown: dict[str, Any] | None = None) -> Outcome:
    """The common end of a claim: a new hold, its unit reserved and granted; ``detail``
    goes with the grant row and the response, ``shown`` with the response only."""
    new = state.copy() if state else new_player(config, now)
    _prune(new, now, config)
    hid = new_hold_id(chance.rng, new.sale_holds)
    new.sale_holds[hid] = SaleHold(kind, sale_id, now, until)
    new.last_seen = now
    grant = ValueGrant(ref, grant_kind, f"{grant_kind}:{sale_id}",
                       {"hold": hid, "sale": sale_id, "until": until, **detail})
    response = {"hold": hid, "sale": sale_id, "status": HELD, "claimed_at": now,
                "until": until, **detail, **(shown or {})}
    return Outcome(state=new, response=response, reservations=[StockHold(ref, 1)],
                   grants=[grant], events=[{"type": grant_kind, "sale": sale_id, "hold": hid}])


def _limits(state: PlayerState | None, kind: str, sale_id: str, ref: str,
            eligibility: Eligibility, per_shopper: int, now: int, chance: Chance) -> None:
    """Eligibility, the per-shopper limit and the stock, in that order."""
    if state is not None:
        check_eligible(state, sale_id, eligibility)
        if held_or_bought(state, kind, sale_id, now) >= per_shopper:
            raise PerShopperLimit(sale_id, per_shopper)
    elif eligibility.member_task or eligibility.task or eligibility.min_orders:
        raise NotEligible(sale_id, "new_shopper")
    if ref in chance.out:
        raise SoldOut(sale_id, chance.pending.get(ref, 0))


def claim_flashsale(state: PlayerState | None, action: Claim, now: int, chance: Chance,
                    config: GameConfig) -> Outcome:
    """``claimFlashSale``: hold one unit until ``pay_by`` = now + ``pay_seconds``.

    Refused before ``starts_at`` (:class:`NotStarted`: not queued), from ``ends_at``
    on, for shoppers not eligible, over the per-shopper limit, and when sold out."""
    sale = find_flash_sale(config, action.sale)
    if now < sale.starts_at:
        raise NotStarted(sale.id, sale.starts_at, now)
    if sale.ends_at and now >= sale.ends_at:
        raise SaleEnded(sale.id, sale.ends_at)
    _limits(state, FLASH, sale.id, sale.ref, sale.eligibility, sale.per_shopper, now, chance)
    pay_by = now + sale.pay_seconds
    return _hold(state, FLASH, sale.id, sale.ref, FLASH_KIND, pay_by, now, chance, config,
                 {"sku": sale.sku, "price_fen": sale.price_fen}, {"pay_by": pay_by})


def reserve_presale(state: PlayerState | None, action: Claim, now: int, chance: Chance,
                    config: GameConfig) -> Outcome:
    """``reservePresale``: hold one reservation until ``convert_until``, between
    ``reserve_from`` and ``reserve_until``."""
    p = find_presale(config, action.sale)
    if now < p.reserve_from:
        raise NotStarted(p.id, p.reserve_from, now)
    if now >= p.reserve_until:
        raise SaleEnded(p.id, p.reserve_until)
    _limits(state, PRESALE, p.id, p.ref, p.eligibility, p.per_shopper, now, chance)
    return _hold(state, PRESALE, p.id, p.ref, PRESALE_KIND, p.convert_until, now, chance,
                 config, presale_terms(p))


def presale_terms(p: Presale) -> dict[str, Any]:
    """What a reservation gives at the event (shown with it and in getPresale)."""
    terms: dict[str, Any] = {"sku": p.sku, "price_fen": p.price_fen,
                             "deposit_fen": p.deposit_fen, "benefit": p.benefit,
                             "event_at": p.event_at}
    if p.benefit == "priority":
        terms["priority_until"] = p.event_at + p.priority_seconds
    else:
        terms["deposit_value_fen"] = p.deposit_value_fen
    return terms


# -- expiry (the sweeper) ----------------------------------------------------------------


def expire_sale_hold(state: PlayerState | None, action: ExpireHold, now: int, rng: Rng,
                     config: GameConfig) -> Outcome:
    """End one hold whose deadline passed, unless it was paid. Never refuses (the
    sweeper must learn the answer): ``result`` is ``expired`` (now or before: the unit
    goes back), ``paid`` (sold), ``held`` (not past its deadline: nothing to do) or
    ``missing`` (the shopper's state has no such hold: nothing can pay it)."""
    new = state.copy() if state else new_player(config, now)
    hold = new.sale_holds.get(action.hold)
    if hold is None:
        return Outcome(state=new, response={"hold": action.hold, "result": "missing"})
    if hold.status == HELD and now > hold.until:
        hold.status = EXPIRED
    response: dict[str, Any] = {"hold": action.hold, "result": hold.status}
    if hold.kind == PRESALE:
        response["deposit_order"] = hold.deposit_order or None
    return Outcome(state=new, response=response)


# -- views --------------------------------------------------------------------------


def flash_status(sale: FlashSale, now: int, left: int) -> str:
    """``upcoming``, ``live``, ``sold_out`` or ``ended`` at ``now``."""
    if now < sale.starts_at:
        return "upcoming"
    if sale.ends_at and now >= sale.ends_at:
        return "ended"
    return "live" if left > 0 else "sold_out"


def _eligibility_view(e: Eligibility) -> dict[str, Any]:
    return {"member_task": e.member_task or None, "task": e.task or None,
            "min_orders": e.min_orders}


def flash_view(sale: FlashSale, now: int, left: int, pending: int = 0) -> dict[str, Any]:
    """``getFlashSale``: the countdown in server time, the stock left and, once none is
    left, the units claims in flight still hold (``sold_out`` may yet turn ``live``)."""
    return {"sale": sale.id, "title": sale.title, "sku": sale.sku,
            "price_fen": sale.price_fen, "list_price_fen": sale.list_price_fen or None,
            "starts_at": sale.starts_at, "ends_at": sale.ends_at or None,
            "server_time": now, "starts_in": max(0, sale.starts_at - now),
            "status": flash_status(sale, now, left), "stock": sale.stock,
            "stock_left": max(0, left), "stock_pending": max(0, pending),
            "per_shopper": sale.per_shopper, "pay_seconds": sale.pay_seconds,
            "eligibility": _eligibility_view(sale.eligibility)}


def presale_status(p: Presale, now: int, left: int) -> str:
    """``upcoming``, ``reserving``, ``sold_out`` (no reservation left), ``waiting`` (for
    the event), ``buying`` or ``ended``."""
    if now < p.reserve_from:
        return "upcoming"
    if now < p.reserve_until:
        return "reserving" if left > 0 else "sold_out"
    if now < p.event_at:
        return "waiting"
    return "buying" if now <= p.convert_until else "ended"


def presale_view(p: Presale, now: int, left: int, pending: int = 0) -> dict[str, Any]:
    """``getPresale``: windows, terms, server time, reservations left and (none left)
    those claims in flight still hold."""
    return {"presale": p.id, "title": p.title, "reserve_from": p.reserve_from,
            "reserve_until": p.reserve_until, "convert_until": p.convert_until,
            "server_time": now, "starts_in": max(0, p.reserve_from - now),
            "event_in": max(0, p.event_at - now), "status": presale_status(p, now, left),
            "stock": p.stock, "stock_left": max(0, left), "stock_pending": max(0, pending),
            "per_shopper": p.per_shopper,
            "eligibility": _eligibility_view(p.eligibility), **presale_terms(p)}


def _hold_view(hid: str, h: SaleHold, config: GameConfig, now: int) -> dict[str, Any]:
    kind = "flash_sale" if h.kind == FLASH else "presale"
    sale = (config.flashsales.get(h.sale) if h.kind == FLASH else config.presales.get(h.sale))
    return {"hold": hid, "kind": kind, "sale": h.sale,
            "title": sale.title if sale else None,
            "price_fen": sale.price_fen if sale else None, "claimed_at": h.at,
            "until": h.until, "status": h.status_at(now), "order": h.order or None}


def sale_holds_view(state: PlayerState, config: GameConfig, now: int,
                    tz: tzinfo | None) -> list[dict[str, Any]] | None:
    """``getPlayer``'s ``sale_holds``: the shopper's holds and reservations, newest
    first; None (left out) when there are none."""
    if not state.sale_holds:
        return None
    ordered = sorted(state.sale_holds.items(), key=lambda kv: (-kv[1].at, kv[0]))
    return [_hold_view(hid, h, config, now) for hid, h in ordered]
