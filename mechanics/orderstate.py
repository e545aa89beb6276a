"""The orders' slice of player state: paid (or refunded) orders the merchant sent
through ``ingestOrder``, remembered for idempotency and refunds. Rules: the order
handling in :mod:`mechanics.tasks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, padded, records_slice


@dataclass
class OrderRecord:
    """A paid (or refunded) order, remembered for idempotency and refunds."""

    at: int
    amount: int
    refunded: bool = False
    tasks: dict[str, list[int]] = field(default_factory=dict)
    """task → [period, completions this order earned]"""
    no_coupon: list[str] = field(default_factory=list)
    """tasks whose coupon was out of stock when the order came: a refund owes none"""
    given: dict[str, dict[str, int]] = field(default_factory=dict)
    """task → what its reward gave for this order (``currency:<id>`` / ``item:<id>`` →
    amount): a refund takes back no more, whatever a limit kept back or the reward says
    now (absent for orders recorded before it was kept)"""

    def copy(self) -> OrderRecord:
        return OrderRecord(self.at, self.amount, self.refunded,
                           {k: list(v) for k, v in self.tasks.items()}, list(self.no_coupon),
                           {k: dict(v) for k, v in self.given.items()})

    def to_wire(self) -> list[Any]:
        wire = [self.at, self.amount, int(self.refunded), self.tasks]
        if self.given:
            return [*wire, self.no_coupon, self.given]
        return [*wire, self.no_coupon] if self.no_coupon else wire

    @classmethod
    def from_wire(cls, raw: list[Any]) -> OrderRecord:
        at, amount, refunded, tasks, no_coupon, given = padded(raw, [0, 0, 0, {}, [], {}])
        return cls(at=at, amount=amount, refunded=bool(refunded),
                   tasks={k: list(v) for k, v in tasks.items()}, no_coupon=list(no_coupon),
                   given={k: dict(v) for k, v in given.items()})


@dataclass(kw_only=True)
class OrdersSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("orders", "od", OrderRecord.from_wire),)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    """order id → record, for idempotency and refunds (bounded by age and count)"""
