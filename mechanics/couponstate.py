"""The coupon wallet's slice of player state: how many coupons the shopper has won.

A coupon is a value-tier grant (a ``grants`` row of kind ``coupon``, SQL the truth);
``listMyCoupons`` reads those rows. This count lets ``getPlayer`` say how many a
shopper won without reading SQL on every call (``getPlayer`` is the hottest read of a
midnight): it is raised in the same commit that grants them (:func:`note_won`), so it
never counts a coupon whose grant did not commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mechanics.slices import Slice, StateSlots, same

if TYPE_CHECKING:  # the outcome module imports the state, which imports this slice
    from mechanics.outcome import Outcome

COUPON_KIND = "coupon"
"""The value-tier grant kind of a coupon (the wallet lists these)."""


def _decode(raw: Any) -> int:
    return int(raw or 0)


def _unused(won: int) -> bool:
    return won == 0


@dataclass(kw_only=True)
class CouponSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("coupons_won", "cw", same, _decode, same, omit=_unused),)
    coupons_won: int = 0
    """coupons granted to this shopper, ever (redeemed and expired ones included)"""


def note_won(outcome: Outcome) -> Outcome:
    """``outcome`` with its coupon grants counted on its state (the commit's own copy)."""
    won = sum(g.units for g in outcome.grants if g.kind == COUPON_KIND)
    if won:
        outcome.state.coupons_won += won
    return outcome
