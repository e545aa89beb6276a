"""Exchange (换购): offers turning currency, items or duplicate collectibles into rewards.

Per-player limits live in the state (per ``once``/``daily``/``weekly`` period);
a global limit is the server's: the outcome carries an ``offer:<id>``
reservation the commit must take from the offer's global counter, and a coupon
reward carries a ``coupon:<id>`` reservation (value tier, DESIGN.md). The reward
of a paid exchange is strict: it is refused rather than clamped at a limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo

from economy.config import GameConfig
from economy.errors import (
    ExchangeLimitReached,
    InsufficientDuplicates,
    InvalidInput,
    OfferSoldOut,
    OfferUnavailable,
    known_item,
)
from economy.exchange import Duplicates, Offer
from economy.rewards import Cost
from mechanics.calendar import period_key
from mechanics.grants import Effects, grant, pay
from mechanics.outcome import Outcome, StockHold
from mechanics.state import PlayerState, Rng, new_player
from mechanics.view import player_view


@dataclass(frozen=True)
class Exchange:
    offer: str
    duplicates: dict[str, int] = field(default_factory=dict)
    """which spare copies to give for a duplicates offer; empty = the most plentiful first"""


def _offer(config: GameConfig, offer_id: str, now: int) -> Offer:
    offer = known_item(config.offers, offer_id, "offer")
    if now < offer.starts_at or (offer.ends_at and now >= offer.ends_at):
        raise OfferUnavailable(offer.id, offer.starts_at, offer.ends_at)
    return offer


def spares(inventory: dict[str, int], dup: Duplicates) -> dict[str, int]:
    """Spare copies (beyond the first) of each item of ``dup`` the player holds."""
    return {i: inventory.get(i, 0) - 1 for i in dup.items if inventory.get(i, 0) > 1}


def _pick(inventory: dict[str, int], dup: Duplicates, chosen: dict[str, int]) -> dict[str, int]:
    """The copies to take: the player's choice, checked, or the most plentiful first."""
    have = spares(inventory, dup)
    total = sum(have.values())
    if chosen:
        if any(i not in dup.items or n < 0 for i, n in chosen.items()) \
                or sum(chosen.values()) != dup.count:
            raise InvalidInput(f"choose {dup.count} copies of this offer's items",
                               field="duplicates")
        short = {i: n for i, n in chosen.items() if n > have.get(i, 0)}
        if short:
            raise InsufficientDuplicates(total, dup.count)
        return {i: n for i, n in chosen.items() if n}
    if total < dup.count:
        raise InsufficientDuplicates(total, dup.count)
    picked: dict[str, int] = {}
    need = dup.count
    for item, n in sorted(have.items(), key=lambda kv: (-kv[1], kv[0])):
        take = min(n, need)
        picked[item], need = take, need - take
        if need == 0:
            break
    return picked


def _check_stock(offer: Offer, offers_out: frozenset[str], coupons_out: frozenset[str]) -> None:
    """A paid exchange is refused, not granted without its coupon, once stock is gone."""
    if offer.global_limit and offer.id in offers_out:
        raise OfferSoldOut(offer.id, f"offer:{offer.id}")
    if offer.gives.coupon and offer.gives.coupon in coupons_out:
        raise OfferSoldOut(offer.id, f"coupon:{offer.gives.coupon}")


def exchange(state: PlayerState | None, action: Exchange, now: int, rng: Rng,
             config: GameConfig, *, tz: tzinfo, offers_out: frozenset[str] = frozenset(),
             coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """``exchange``: pay the offer's cost (and duplicates), receive its reward.

    ``offers_out`` / ``coupons_out``: offers and coupons the server says have no
    stock left; an exchange needing one is refused with :class:`OfferSoldOut`.
    """
    offer = _offer(config, action.offer, now)
    _check_stock(offer, offers_out, coupons_out)
    new = state.copy() if state else new_player(config, now)
    key = period_key(offer.period, now, tz)
    period, used = new.exchanges.get(offer.id, [key, 0])
    used = used if period == key else 0
    if offer.per_player and used >= offer.per_player:
        raise ExchangeLimitReached(offer.id, offer.per_player, offer.period)
    items = dict(offer.cost.items)
    dups = _pick(new.inventory, offer.duplicates, action.duplicates) if offer.duplicates else {}
    for item, n in dups.items():
        items[item] = items.get(item, 0) + n
    fx = Effects()
    reason = f"exchange:{offer.id}"
    pay(new, Cost(currency=offer.cost.currency, items=items), reason, config, fx)
    granted = grant(new, offer.gives, reason, config, fx, strict=True)
    if offer.global_limit:
        fx.reservations.insert(0, StockHold(f"offer:{offer.id}", 1))
    new.exchanges[offer.id] = [key, used + 1]
    new.last_seen = now
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants,
                   response={"offer": offer.id, "paid": {"currency": dict(offer.cost.currency),
                                                         "items": items},
                             "granted": granted, "player": player_view(new, config, now, tz)})
