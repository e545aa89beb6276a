"""Merchant-side rules: customer-support and campaign grants."""

from __future__ import annotations

from dataclasses import dataclass, field

from economy.config import GameConfig
from economy.errors import NotFound, UnknownItem
from economy.wallet import apply_currency, apply_items
from mechanics.outcome import Outcome
from mechanics.pet import new_player
from mechanics.state import PlayerState, Rng


class PlayerNotFound(NotFound):
    """A grant to a user who has never played, without ``create``."""

    code = "player_not_found"


@dataclass(frozen=True)
class GrantPlayer:
    """Currency and items to add, with the merchant's reason; ``create`` allows a user
    who has never played (the grant then creates the player)."""

    reason: str
    wallet: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    create: bool = False


def grant(state: PlayerState | None, action: GrantPlayer, now: int, rng: Rng,
          config: GameConfig) -> Outcome:
    """``grantPlayer``: ledgered as ``admin:<reason>``; limits and balances hold as always.

    Amounts are never negative (the handler refuses them): a grant does not take back.
    No player and no ``create``: :class:`PlayerNotFound`, nothing created."""
    if state is None and not action.create:
        raise PlayerNotFound("this user has never played; send \"create\": true to "
                             "create the player with the grant")
    for cid in action.wallet:
        if cid not in config.currencies:
            raise UnknownItem(f"unknown currency {cid!r}", kind="currency", id=cid,
                              known=sorted(config.currencies))
    for iid in action.items:
        if iid not in config.items:
            raise UnknownItem(f"unknown item {iid!r}", kind="item", id=iid,
                              known=sorted(config.items))
    new = state.copy() if state else new_player(config, now)
    reason = f"admin:{action.reason}"
    new.wallet, ledger = apply_currency(new.wallet, action.wallet, reason,
                                        {c: v.max for c, v in config.currencies.items()})
    new.inventory, more = apply_items(new.inventory, action.items, reason,
                                      {i: v.max for i, v in config.items.items()})
    return Outcome(state=new, ledger=ledger + more,
                   response={"wallet": dict(new.wallet), "inventory": dict(new.inventory),
                             "reason": action.reason})
