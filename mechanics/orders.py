"""A paid order (``ingestOrder``): the purchase tasks (:func:`mechanics.tasks.apply_order`),
then every mechanic's part of it (``Mechanic.on_order``, in registry order), in one
commit. A duplicate order (its id already known) changes nothing anywhere.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import tzinfo

from economy.config import GameConfig
from mechanics.outcome import Outcome
from mechanics.registry import ORDER_HOOKS
from mechanics.state import PlayerState, Rng
from mechanics.tasks import Order, apply_order


def apply_paid_order(state: PlayerState | None, action: Order, now: int, rng: Rng,
                     config: GameConfig, *, tz: tzinfo,
                     coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """Purchase tasks, then the mechanics' order hooks on the same new state; a hook's
    response keys join the response (none: the response is the tasks' own)."""
    outcome = apply_order(state, action, now, rng, config, tz=tz, coupons_out=coupons_out)
    if outcome.response.get("duplicate"):
        return outcome
    extra: dict[str, object] = {}
    for hook in ORDER_HOOKS:
        part = hook(outcome.state, action, now, config)
        if part:
            extra.update(part)
    return replace(outcome, response={**outcome.response, **extra}) if extra else outcome
