"""A flash sale's and a presale's part of a merchant's order (``ingestOrder``): pure
rules, like :mod:`mechanics.flashsale` (claims, expiry, views), beside which they live.

- :func:`pay_sale_holds` (a paid order): each SKU naming a sale pays the shopper's
  oldest open hold of it made at or before the order's ``paid_at``; one paid too late
  for every open hold pays a lapsed hold, taking its unit again if the sweeper gave it
  back (or answers ``refund``); a presale's ``deposit_sku`` marks the deposit paid, or
  is recognised as the deposit of a reservation already converted.
- :func:`deposit_refunded` (a refunded order): a refunded deposit unmarks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from economy.config import GameConfig
from economy.flashsale import FLASH_KIND, FlashSale, Presale
from mechanics.flashsale import held_or_bought, new_hold_id
from mechanics.flashsalestate import EXPIRED, FLASH, HELD, PAID, PRESALE, SaleHold
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState, Rng
from mechanics.tasks import Order

PAID_CLOCK_SKEW_S = 60
"""An order's ``paid_at`` comes from the merchant's clock: one that far behind ours
still pays a hold made just before the payment (an older order never does)."""


def _oldest_open(state: PlayerState, kind: str, sale: str, at: int,
                 want_deposit: bool = False) -> str | None:
    """The oldest held hold an order paid ``at`` can pay: made at or before ``at`` (give
    or take the merchant's clock, ``PAID_CLOCK_SKEW_S``) and due at or after it. An order
    paid before the claim was bought without the hold (at full price, or already paying
    another): it must never pay a later one."""
    open_ = sorted((h.at, hid) for hid, h in state.sale_holds.items()
                   if h.kind == kind and h.sale == sale and h.status == HELD
                   and h.at - PAID_CLOCK_SKEW_S <= at <= h.until
                   and (not want_deposit or not h.deposit_order))
    return open_[0][1] if open_ else None


def _pay_flash(state: PlayerState, sale: FlashSale, order: Order, at: int,
               late: _Late) -> dict[str, Any]:
    hid = _oldest_open(state, FLASH, sale.id, at)
    if hid is None:
        return _pay_lapsed(state, sale, order, at, late)
    hold = state.sale_holds[hid]
    hold.status, hold.order = PAID, order.order_id
    return {"kind": "flash_sale", "sale": sale.id, "hold": hid, "result": "paid"}


@dataclass
class _Late:
    """What paying lapsed holds needs and adds: hold ids, the refs with nothing left,
    and the units it takes again (reserved before the order's commit)."""

    rng: Rng
    out: frozenset[str]
    now: int
    config: GameConfig
    reservations: list[StockHold] = field(default_factory=list)
    grants: list[ValueGrant] = field(default_factory=list)


def _lapsed(state: PlayerState, sale: str, at: int) -> str | None:
    """The hold of ``sale`` an order paid ``at`` came too late for: claimed at or before
    ``at`` (the merchant's clock allowance), unpaid past its deadline, and not made good
    by another order yet. One the sweeper has not ended comes first (its unit is still
    the shopper's: paying an ended one instead would take a unit again, or refund,
    while the sweeper gave that one back), then the oldest."""
    lapsed = sorted((h.status != HELD, h.at, hid) for hid, h in state.sale_holds.items()
                    if h.kind == FLASH and h.sale == sale and h.status in (HELD, EXPIRED)
                    and not h.order and h.at - PAID_CLOCK_SKEW_S <= at)
    return lapsed[0][2] if lapsed else None


def _pay_lapsed(state: PlayerState, sale: FlashSale, order: Order, at: int, late: _Late
                ) -> dict[str, Any]:
    """An order paid (or reported) after its hold's ``pay_by``: the shopper has paid, so
    the order is honoured when a unit can be. A hold the sweeper has not ended yet still
    has its unit and is simply paid; an expired one's unit went back, so one unit is
    taken again (a new hold, paid, that the sweeper then counts sold), if any is left
    and the shopper is within ``per_shopper``. Otherwise ``refund``: the merchant must
    give the money back (the answer's ``refund_due`` says so too)."""
    answer: dict[str, Any] = {"kind": "flash_sale", "sale": sale.id}
    hid = _lapsed(state, sale.id, at)
    if hid is None:
        return {**answer, "hold": None, "result": "no_hold"}
    old = state.sale_holds[hid]
    if old.status == HELD:  # not ended yet: its unit is still the shopper's
        old.status, old.order = PAID, order.order_id
        return {**answer, "hold": hid, "result": "paid", "late": True}
    if sale.ref in late.out:
        return {**answer, "hold": hid, "result": "refund", "reason": "sold_out"}
    if held_or_bought(state, FLASH, sale.id, late.now) >= sale.per_shopper:
        return {**answer, "hold": hid, "result": "refund", "reason": "purchase_limit_reached"}
    old.order = order.order_id  # made good once: no other order can take it again
    new = new_hold_id(late.rng, state.sale_holds)
    state.sale_holds[new] = SaleHold(FLASH, sale.id, old.at, old.until, PAID, order.order_id)
    late.reservations.append(StockHold(sale.ref, 1))
    late.grants.append(ValueGrant(sale.ref, FLASH_KIND, f"{FLASH_KIND}:{sale.id}", {
        "hold": new, "sale": sale.id, "until": old.until, "sku": sale.sku,
        "price_fen": sale.price_fen, "replaces": hid, "order": order.order_id}))
    return {**answer, "hold": new, "result": "paid", "late": True, "replaces": hid}


def _convert(state: PlayerState, p: Presale, order: Order, at: int) -> dict[str, Any]:
    hid = _oldest_open(state, PRESALE, p.id, at) if at >= p.event_at else None
    if hid is None:
        return {"kind": "presale", "sale": p.id, "hold": None, "result": "no_reservation"}
    hold = state.sale_holds[hid]
    hold.status, hold.order = PAID, order.order_id
    deposit_fen = p.deposit_value_fen if (hold.deposit_order or not p.deposit_sku) else 0
    return {"kind": "presale", "sale": p.id, "hold": hid, "result": "converted",
            "deposit_value_fen": deposit_fen if p.deposit_fen else 0}


def _deposit(state: PlayerState, p: Presale, order: Order, at: int) -> dict[str, Any]:
    hid = _oldest_open(state, PRESALE, p.id, at, want_deposit=True)
    if hid is None:
        return _deposit_after_conversion(state, p, order, at)
    state.sale_holds[hid].deposit_order = order.order_id
    return {"kind": "presale", "sale": p.id, "hold": hid, "result": "deposit_paid"}


def _deposit_after_conversion(state: PlayerState, p: Presale, order: Order, at: int
                              ) -> dict[str, Any]:
    """A deposit order that finds its reservation already converted (webhooks come in
    any order: the final payment's may overtake the deposit's). It is that
    reservation's deposit, recorded on it once (a second deposit order finds none), and
    answered ``already_converted`` with the conversion's order and the
    ``deposit_value_fen`` it deducted: 0, since it knew of no deposit, so the deposit
    is the merchant's to refund or credit under its terms."""
    done = sorted((h.at, hid) for hid, h in state.sale_holds.items()
                  if h.kind == PRESALE and h.sale == p.id and h.status == PAID
                  and not h.deposit_order and h.at - PAID_CLOCK_SKEW_S <= at)
    if not done:
        return {"kind": "presale", "sale": p.id, "hold": None, "result": "no_reservation"}
    hold = state.sale_holds[done[0][1]]
    hold.deposit_order = order.order_id
    return {"kind": "presale", "sale": p.id, "hold": done[0][1], "result": "already_converted",
            "order": hold.order, "deposit_value_fen": 0}


def pay_sale_holds(state: PlayerState, order: Order, now: int, rng: Rng, config: GameConfig,
                   out: frozenset[str] = frozenset()) -> Outcome | None:
    """``ingestOrder``'s part (the state is the order commit's own copy): each SKU of
    the order that names a sale pays one open hold of it, oldest first; a hold counts
    as paid by ``paid_at`` (now if 0) if that is neither before the claim nor after
    its deadline (an order paid before the claim finds no hold, as one with no claim).
    An order too late for every open hold pays a lapsed one (:func:`_pay_lapsed`:
    units taken again need the value tier, ``out`` says which refs have none left).
    Returns the outcome whose response keys join the order's, or None when no SKU
    names a sale (other orders answer as before)."""
    at = min(order.paid_at or now, now)
    late = _Late(rng, out, now, config)
    results = []
    for sku in order.skus:
        for sale in config.flashsales.values():
            if sale.sku == sku:
                results.append(_pay_flash(state, sale, order, at, late))
        for p in config.presales.values():
            if p.sku == sku:
                results.append(_convert(state, p, order, at))
            elif p.deposit_sku == sku:
                results.append(_deposit(state, p, order, at))
    if not results:
        return None
    response: dict[str, Any] = {"sale_holds": results}
    due = [_refund_due(r, config) for r in results if r["result"] == "refund"]
    if due:
        response["refund_due"] = due
    return Outcome(state=state, response=response, reservations=late.reservations,
                   grants=late.grants)


def _refund_due(result: dict[str, Any], config: GameConfig) -> dict[str, Any]:
    """A ``refund_due`` entry of the order's answer: what to give back, and why."""
    sale = config.flashsales[result["sale"]]
    return {"kind": result["kind"], "sale": sale.id, "sku": sale.sku,
            "price_fen": sale.price_fen, "reason": result["reason"]}


def deposit_refunded(state: PlayerState, skus: tuple[str, ...], now: int,
                     config: GameConfig) -> Outcome | None:
    """``ingestOrder``'s refund hook: a refunded deposit order no longer pays the deposit
    of the open reservation it marked, so converting it later answers
    ``deposit_value_fen`` 0 (the merchant must not deduct a deposit it gave back); a new
    deposit order may mark it again. ``state`` is the refund commit's own copy, where the
    refund's rule has just marked the order refunded; the order is matched by its id,
    whatever SKUs the refund names. A reservation already converted keeps its answer.
    None when the refund unmarks nothing (the answer stays as without presales)."""
    if not config.presales:
        return None
    unmarked = []
    for hid, hold in sorted(state.sale_holds.items()):
        record = state.orders.get(hold.deposit_order) if hold.deposit_order else None
        if hold.kind == PRESALE and hold.status == HELD and record is not None \
                and record.refunded:
            hold.deposit_order = ""
            unmarked.append(hid)
    if not unmarked:
        return None
    return Outcome(state=state, response={"deposits_refunded": unmarked})
