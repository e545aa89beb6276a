"""Partial refunds (部分退款) of an order (``ingestOrder`` with a ``refund_id``).

A shopper returns one item of a three-item order: the platform refunds part of the
amount under its own refund id. Each refund id applies once (the order's record keeps
the ids and the amount refunded so far). What the order earned is taken back as far as
what is left of it no longer supports it (:func:`mechanics.takeback.take_back`): a spend
task loses the refunded amount from its period's spend, a per-order task keeps its
completion while what is left still reaches ``min_order_fen``. Refunds are capped at
the paid amount: one beyond what is left is clamped to it (``"clamped": true``); once
they reach the paid amount the order is wholly refunded, as by a whole refund, and
they have taken back what its whole refund takes back (a spend task's completions in
the period are its spend's, whichever order held them: :mod:`mechanics.ordershare`).
One of a 0-fen order, which has nothing to return, changes nothing. A spend task
whose order is left below its ``min_order_fen`` loses the whole order. Known limit: a
purchase task's SKU filter is not looked at again (the order's SKUs are not kept):
returning the only qualifying SKU keeps the task's completion while anything is left
of the order.

A partial refund of an order not seen paid leaves a tombstone, as a whole refund does,
that remembers what it returned and writes no row: the late payment counts only what
is left of it (nothing when the refunds returned all of it), and writes what they
returned to ``order_refunds`` with its own row. An order petbox forgot (older than 30
days) is such a tombstone too, so its partial refunds, like its whole refund, write
no row. A whole refund of such an order makes
it today's tombstone (its late payment earns nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from economy.errors import InvalidInput, TooManyRefunds
from mechanics.grants import Effects
from mechanics.orderstate import OrderRecord, seen_paid
from mechanics.outcome import Outcome, Record
from mechanics.state import PlayerState, Rng, new_player
from mechanics.takeback import take_back
from mechanics.tasks import prune_orders, refund_record

MAX_REFUNDS = 32
"""Partial refunds one order may have (their ids are kept with it for 30 days)."""


@dataclass(frozen=True)
class PartialRefund:
    """Part of a paid order refunded: ``amount_fen`` of it, under the platform's
    ``refund_id`` (idempotent by order id and refund id)."""

    order_id: str
    refund_id: str
    amount_fen: int


def apply_partial_refund(state: PlayerState | None, action: PartialRefund, now: int,
                         rng: Rng, config: GameConfig, *, tz: tzinfo) -> Outcome:
    """``ingestOrder`` (refunded, with ``refund_id``): take back what the part returned
    no longer earns; unspent rewards are taken, the rest is recorded as debt.

    The answer: ``amount_fen`` (what this refund returned: clamped to what was left),
    ``clamped``, ``refunded_fen`` (all the order's refunds so far), ``remaining_fen``
    (what is still paid; absent while the order was not seen paid), ``refunded`` (now
    wholly refunded), ``taken_back`` (task → completions) and ``debt``. A refund id
    seen before changes nothing (``"duplicate": true``).
    """
    if action.amount_fen <= 0 or not action.order_id or not action.refund_id:
        raise InvalidInput("a partial refund needs an order id, a refund id and an amount "
                           "above 0", field="amount_fen")
    new = state.copy() if state else new_player(config, now)
    record = new.orders.get(action.order_id)
    if record is not None and action.refund_id in record.refunds:
        return _answer(new, action, record, duplicate=True)
    if record is not None and record.refunded:  # nothing is left to return
        return _answer(new, action, record)
    if record is not None and len(record.refunds) >= MAX_REFUNDS:
        raise TooManyRefunds(action.order_id, MAX_REFUNDS)
    if record is None or record.awaiting_payment:
        # A tombstone keeps what it returned, and writes no row (petbox does not know
        # the order: never paid yet, or paid so long ago it was forgotten, as a whole
        # refund of such an order writes none): the late payment writes it.
        if record is None:
            record = new.orders[action.order_id] = OrderRecord(at=now, amount=0)
        record.refunded_fen += action.amount_fen
        record.refunds.append(action.refund_id)
        prune_orders(new, now)
        return _answer(new, action, record, applied=action.amount_fen)
    applied = min(action.amount_fen, record.left_fen)
    if not applied:  # a 0-fen order: nothing to return, so nothing changes
        return _answer(new, action, record)
    fx = Effects()
    record.refunded_fen += applied
    record.refunds.append(action.refund_id)
    record.refunded = record.left_fen == 0
    taken, debt = take_back(new, action.order_id, record, applied, config, fx, partial=True)
    new.last_seen = now
    return _answer(new, action, record, applied=applied, taken=taken, debt=debt, fx=fx,
                   rows=[refund_record(action.order_id, action.refund_id, applied)])


def _answer(new: PlayerState, action: PartialRefund, record: OrderRecord, *,
            duplicate: bool = False, applied: int = 0, taken: dict[str, int] | None = None,
            debt: dict[str, int] | None = None, fx: Effects | None = None,
            rows: list[Record] | None = None) -> Outcome:
    known = seen_paid(record)
    response: dict[str, Any] = {
        "order": action.order_id, "refund": action.refund_id, "known": known,
        "duplicate": duplicate, "amount_fen": applied,
        "clamped": not duplicate and applied < action.amount_fen,
        "refunded_fen": record.amount if record.refunded and known else record.refunded_fen,
        "refunded": record.refunded, "taken_back": taken or {}, "debt": debt or {}}
    if known:
        response["remaining_fen"] = record.left_fen
    fx = fx or Effects()
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, records=rows or [],
                   response=response)
