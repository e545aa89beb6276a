"""The orders' slice of player state: paid (or refunded) orders the merchant sent
through ``ingestOrder``, remembered for idempotency and refunds. Rules: the order
handling in :mod:`mechanics.tasks` and :mod:`mechanics.refunds` (partial refunds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, padded, records_slice


@dataclass
class OrderRecord:
    """A paid (or refunded) order, remembered for idempotency and refunds.

    An order whose partial refunds came before its payment (``awaiting_payment``) is
    kept with ``amount`` 0 and what those refunds returned, so its late payment counts
    only what is left of it (:func:`mechanics.tasks.apply_order`)."""

    at: int
    amount: int
    refunded: bool = False
    """wholly refunded: a refund without ``refund_id``, or partial ones that reached
    ``amount``"""
    tasks: dict[str, list[int]] = field(default_factory=dict)
    """task → [period, completions this order earned]"""
    no_coupon: list[str] = field(default_factory=list)
    """tasks whose coupon was out of stock when the order came, or that hold a
    completion passed on from another order that issued none: what a release from
    before ``given`` kept coupons reads (it then owes none for the task's completions);
    this one reads ``given``, and this only for a record without its coupon"""
    given: dict[str, dict[str, int]] = field(default_factory=dict)
    """task → what its reward gave for the completions this order holds
    (``currency:<id>`` / ``item:<id>`` → amount, ``coupon:<id>`` → coupons issued: 0
    when out of stock; ``coupon:`` 0 when the reward had none): a refund takes back or
    owes no more, whatever a limit kept back or the reward says now (absent for orders
    recorded before it was kept; no coupon key in it for those recorded before coupons
    were); a refund lowers it by what it took back
    or recorded as debt, and completions passed to another order take theirs along"""
    refunded_fen: int = 0
    """what partial refunds returned so far (at most ``amount`` once the order is paid)"""
    refunds: list[str] = field(default_factory=list)
    """the ``refund_id`` of every partial refund applied: each applies once"""
    terms: dict[str, list[int]] = field(default_factory=dict)
    """task → its ``[limit, spend_fen, min_order_fen]`` when the order counted for it:
    what a refund measures what the order earned against, whatever the merchant set
    since (absent for orders recorded before it was kept, or written back by a host of
    such a release: the refund then goes by today's, bounded)"""

    @property
    def awaiting_payment(self) -> bool:
        """Only partial refunds of this order came so far, not its payment (a paid
        order's refunds never pass its amount)."""
        return not self.refunded and self.refunded_fen > self.amount

    @property
    def left_fen(self) -> int:
        """What is left of the paid amount after its refunds (0 when wholly refunded)."""
        return 0 if self.refunded else max(0, self.amount - self.refunded_fen)

    @property
    def live(self) -> bool:
        """Paid and not wholly refunded: an order that counts (eligibility)."""
        return not self.refunded and not self.awaiting_payment

    def copy(self) -> OrderRecord:
        return OrderRecord(self.at, self.amount, self.refunded,
                           {k: list(v) for k, v in self.tasks.items()}, list(self.no_coupon),
                           {k: dict(v) for k, v in self.given.items()}, self.refunded_fen,
                           list(self.refunds), {k: list(v) for k, v in self.terms.items()})

    def to_wire(self) -> list[Any]:
        wire = [self.at, self.amount, int(self.refunded), self.tasks, self.no_coupon,
                self.given, self.refunded_fen, self.refunds, self.terms]
        while len(wire) > 4 and not wire[-1]:  # a field absent on the wire is its default
            wire.pop()
        return wire

    @classmethod
    def from_wire(cls, raw: list[Any]) -> OrderRecord:
        at, amount, refunded, tasks, no_coupon, given, refunded_fen, refunds, terms = padded(
            raw, [0, 0, 0, {}, [], {}, 0, [], {}])
        return cls(at=at, amount=amount, refunded=bool(refunded),
                   tasks={k: list(v) for k, v in tasks.items()}, no_coupon=list(no_coupon),
                   given={k: dict(v) for k, v in given.items()}, refunded_fen=refunded_fen,
                   refunds=list(refunds), terms={k: list(v) for k, v in terms.items()})


def seen_paid(record: OrderRecord) -> bool:
    """The order's payment was seen: not a tombstone of partial refunds awaiting it,
    nor one a whole refund of an order petbox did not know left (nothing paid, nothing
    earned; a 0-fen order wholly refunded reads the same, and returns nothing either)."""
    if record.awaiting_payment:
        return False
    return not (record.refunded and record.amount == 0 and not record.tasks)


@dataclass(kw_only=True)
class OrdersSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("orders", "od", OrderRecord.from_wire),)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    """order id → record, for idempotency and refunds (bounded by age and count)"""
