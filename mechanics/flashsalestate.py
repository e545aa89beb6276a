"""A shopper's flash-sale holds and presale reservations: the ``sale_holds`` slice of
player state (wire key ``fs``). The rules are in :mod:`mechanics.flashsale`.

Kept apart from the rules because :class:`~mechanics.state.PlayerState` imports this
module and the rules import the player state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mechanics.slices import (
    Slice,
    StateSlots,
    copy_dict,
    decode_dict,
    is_empty,
    records_slice,
    same,
)

if TYPE_CHECKING:
    from mechanics.state import PlayerState

FLASH = "f"
PRESALE = "p"

HELD = "held"
PAID = "paid"
EXPIRED = "expired"


@dataclass
class SaleHold:
    """One unit a shopper holds: of a flash sale (``kind`` f, until ``pay_by``) or a
    presale reservation (``kind`` p, until the presale's ``convert_until``)."""

    kind: str
    sale: str
    at: int
    """claimed at (unix s)"""
    until: int
    """paid (or converted) by then, or it expires"""
    status: str = HELD
    """held | paid | expired (as last committed; a held one past ``until`` shows expired)"""
    order: str = ""
    """the order that paid it"""
    deposit_order: str = ""
    """presale: the order that paid the deposit"""

    def copy(self) -> SaleHold:
        return SaleHold(self.kind, self.sale, self.at, self.until, self.status, self.order,
                        self.deposit_order)

    def to_wire(self) -> list[Any]:
        return [self.kind, self.sale, self.at, self.until, self.status, self.order,
                self.deposit_order]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> SaleHold:
        kind, sale, at, until, status, order, deposit_order = (
            [*list(raw), "", ""])[:7]
        return cls(kind, sale, at, until, status, order, deposit_order)

    def status_at(self, now: int) -> str:
        """The status as of ``now``: a held unit past its deadline is expired."""
        return EXPIRED if self.status == HELD and now > self.until else self.status


def bought_key(kind: str, sale: str) -> str:
    """A sale's key in ``sale_bought``: ``<kind>:<sale>`` (a sale id has no colon)."""
    return f"{kind}:{sale}"


@dataclass(kw_only=True)
class SaleHoldsSlots(StateSlots):
    """What flash sales and presales add to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        records_slice("sale_holds", "fs", SaleHold.from_wire, omit_empty=True),
        # Added after stored states had "fs": absent means no count, and a state with
        # no count keeps its exact bytes.
        Slice("sale_bought", "fb", same, decode_dict, copy_dict, omit=is_empty))
    sale_holds: dict[str, SaleHold] = field(default_factory=dict)
    """hold id → hold (bounded: settled ones older than 30 days are dropped)"""
    sale_bought: dict[str, int] = field(default_factory=dict)
    """:func:`bought_key` → units bought whose paid holds were dropped: the per-shopper
    limit still counts them, for as long as the config has the sale (an open-ended sale
    may outlive a hold by years; one count per configured sale keeps this bounded)"""


def held_units(state: PlayerState, now: int) -> list[str]:
    """Flash-sale and presale units the shopper holds and may still pay for (limited
    stock, unsettled until paid or expired: ``erasePlayer`` waits for them)."""
    return sorted(f"sale_hold:{hid}" for hid, h in state.sale_holds.items()
                  if h.status_at(now) == HELD)
