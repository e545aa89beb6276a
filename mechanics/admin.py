"""Merchant-side rules: customer-support and campaign grants."""

from __future__ import annotations

from dataclasses import dataclass, field

from economy.config import GameConfig
from economy.errors import NotFound, known_item
from economy.wallet import apply_currency, apply_items
from mechanics.outcome import Outcome
from mechanics.pet import new_player
from mechanics.state import PlayerState, Rng


class PlayerNotFound(NotFound):
    """A grant to a user who has never played, without ``create``."""

    code = "player_not_found"


@dataclass(frozen=True)
class GrantPlayer:
    """Currency and items to add, and to take (``deduct_*``, an explicit field: a grant
    never takes back by a negative amount), with the merchant's reason; ``create``
    allows a user who has never played (the grant then creates the player)."""

    reason: str
    wallet: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    create: bool = False
    deduct_wallet: dict[str, int] = field(default_factory=dict)
    deduct_items: dict[str, int] = field(default_factory=dict)


def grant(state: PlayerState | None, action: GrantPlayer, now: int, rng: Rng,
          config: GameConfig) -> Outcome:
    """``grantPlayer``: ledgered as ``admin:<reason>``; limits and balances hold as always.

    Amounts are never negative (the handler refuses them): a grant does not take back.
    Deductions are their own fields, applied after the grant; one that would take more
    than the player has is :class:`~economy.errors.InsufficientFunds` (or
    ``InsufficientItems``) and nothing changes.
    No player and no ``create``: :class:`PlayerNotFound`, nothing created."""
    if state is None and not action.create:
        raise PlayerNotFound("this user has never played; send \"create\": true to "
                             "create the player with the grant")
    _known(config, [*action.wallet, *action.deduct_wallet], [*action.items, *action.deduct_items])
    new = state.copy() if state else new_player(config, now)
    reason = f"admin:{action.reason}"
    c_max = {c: v.max for c, v in config.currencies.items()}
    i_max = {i: v.max for i, v in config.items.items()}
    new.wallet, ledger = apply_currency(new.wallet, action.wallet, reason, c_max)
    new.inventory, more = apply_items(new.inventory, action.items, reason, i_max)
    new.wallet, taken = apply_currency(
        new.wallet, {k: -v for k, v in action.deduct_wallet.items()}, reason, c_max)
    new.inventory, taken_items = apply_items(
        new.inventory, {k: -v for k, v in action.deduct_items.items()}, reason, i_max)
    return Outcome(state=new, ledger=ledger + more + taken + taken_items,
                   response={"wallet": dict(new.wallet), "inventory": dict(new.inventory),
                             "reason": action.reason})


def _known(config: GameConfig, currencies: list[str], items: list[str]) -> None:
    """Refuse a currency or item the game does not have (404 unknown_item)."""
    for cid in currencies:
        known_item(config.currencies, cid, "currency")
    for iid in items:
        known_item(config.items, iid, "item")
