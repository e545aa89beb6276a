"""The coupon wallet's part of the player view (the wallet itself: ``listMyCoupons``)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from mechanics.couponstate import COUPON_KIND
from mechanics.state import PlayerState


def grants_coupons(config: GameConfig) -> bool:
    """Whether a game can grant coupons at all: a ``coupons`` entry or a blind-box
    prize of kind coupon (else there is no wallet to show)."""
    return bool(config.coupons) or any(
        e.prize is not None and e.prize.kind == COUPON_KIND
        for s in config.boxes.series.values() for e in s.prizes)


def coupons_view(state: PlayerState, config: GameConfig, now: int,
                 tz: tzinfo | None) -> dict[str, Any] | None:
    """``getPlayer``'s ``coupons``: how many the shopper won (their states, code and
    expiry: ``listMyCoupons``); None in a game without coupons."""
    if not grants_coupons(config):
        return None
    return {"won": state.coupons_won}
