"""A paid order (``ingestOrder``): the purchase tasks (:func:`mechanics.tasks.apply_order`),
then every mechanic's part of it (``Mechanic.on_order``, in registry order), in one
commit. A duplicate order (its id already known) changes nothing anywhere; an order
whose partial refunds came first and returned all of it (:mod:`mechanics.refunds`)
runs no hook either.
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
                     coupons_out: frozenset[str] = frozenset(),
                     stock_out: frozenset[str] = frozenset()) -> Outcome:
    """Purchase tasks, then the mechanics' order hooks on the same new state; a hook's
    response keys join the response (none: the response is the tasks' own), its
    effects (units to reserve, grants, ledger) join the order's. ``stock_out``: the
    limited-stock refs with nothing left, as the value tier last said."""
    outcome = apply_order(state, action, now, rng, config, tz=tz, coupons_out=coupons_out)
    if outcome.response.get("duplicate") or outcome.response.get("refunded"):
        return outcome  # partial refunds that came first returned all of it: as refunded
    for hook in ORDER_HOOKS:
        part = hook(outcome.state, action, now, rng, config, stock_out)
        if part is not None:
            outcome = _joined(outcome, part)
    return outcome


def _joined(outcome: Outcome, part: Outcome) -> Outcome:
    """The order's outcome with a hook's part (on the same state) added."""
    return replace(outcome, state=part.state, response={**outcome.response, **part.response},
                   ledger=outcome.ledger + part.ledger, events=outcome.events + part.events,
                   reservations=outcome.reservations + part.reservations,
                   grants=outcome.grants + part.grants, records=outcome.records + part.records)
