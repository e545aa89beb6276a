"""Granting rewards, taking costs and clawing back, always through the wallet.

Every balance and inventory change of the loop rules goes through
:func:`economy.wallet.apply_currency` / :func:`economy.wallet.apply_items`, so it
is ledgered with before/after values and never goes negative. A coupon is a
value-tier prize: granting one only adds a ``coupon:<id>`` stock hold and a typed
:class:`~mechanics.outcome.ValueGrant`; the server reserves stock and writes the grant
to SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from economy.config import GameConfig
from economy.rewards import Cost, Reward
from economy.wallet import LedgerEntry, apply_currency, apply_items
from mechanics.outcome import StockHold, ValueGrant
from mechanics.state import PlayerState


@dataclass
class Effects:
    """What a rule has done so far: ledger, stock holds, value grants, events
    (collected, then put into the Outcome)."""

    ledger: list[LedgerEntry] = field(default_factory=list)
    reservations: list[StockHold] = field(default_factory=list)
    grants: list[ValueGrant] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def currency_limits(config: GameConfig) -> dict[str, int]:
    return {cid: c.max for cid, c in config.currencies.items()}


def item_limits(config: GameConfig) -> dict[str, int]:
    return {iid: i.max for iid, i in config.items.items()}


def pay(state: PlayerState, cost: Cost, reason: str, config: GameConfig, fx: Effects) -> None:
    """Take ``cost`` from ``state`` (a rule's copy); raises before changing anything."""
    wallet, c_entries = apply_currency(state.wallet, {k: -v for k, v in cost.currency.items()},
                                       reason, currency_limits(config))
    inventory, i_entries = apply_items(state.inventory, {k: -v for k, v in cost.items.items()},
                                       reason, item_limits(config))
    state.wallet, state.inventory = wallet, inventory
    fx.ledger += c_entries + i_entries


def _repay(state: PlayerState, amounts: dict[str, int], kind: str,
           repaid: dict[str, int]) -> dict[str, int]:
    """``amounts`` less what repays ``state.debts`` of the same ``kind`` (``currency`` or
    ``item``); the debts shrink and ``repaid`` records it (keyed as the debts)."""
    left = dict(amounts)
    for k, v in amounts.items():
        key = f"{kind}:{k}"
        take = min(state.debts.get(key, 0), v)
        if take <= 0:
            continue
        left[k] = v - take
        repaid[key] = take
        if state.debts[key] == take:
            del state.debts[key]
        else:
            state.debts[key] -= take
    return left


def charge(state: PlayerState, cost: Mapping[str, int], reason: str, fx: Effects) -> None:
    """Take a price that a commit may not refuse (the shopper's side of a two-commit
    action, whose gate checked the price against the peeked state): what the wallet
    covers, the rest recorded as a debt."""
    pay = {cid: min(amount, state.wallet.get(cid, 0)) for cid, amount in cost.items()}
    for cid, amount in cost.items():
        if amount > pay[cid]:
            key = f"currency:{cid}"
            state.debts[key] = state.debts.get(key, 0) + amount - pay[cid]
    state.wallet, entries = apply_currency(state.wallet, {c: -a for c, a in pay.items()},
                                           reason, {})
    fx.ledger += entries


def give_back(state: PlayerState, paid: Mapping[str, int], reason: str, fx: Effects) -> None:
    """Return what :func:`charge` took: first the debt it left, then into the wallet,
    never clamped at a maximum (it restores a balance the shopper had)."""
    back = _repay(state, dict(paid), "currency", {})
    state.wallet, entries = apply_currency(state.wallet, back, reason, {})
    fx.ledger += entries


def _clamped(balances: dict[str, int], deltas: dict[str, int],
             limits: dict[str, int]) -> dict[str, int]:
    return {k: min(v, max(0, limits.get(k, v + balances.get(k, 0)) - balances.get(k, 0)))
            for k, v in deltas.items()}


def grant(state: PlayerState, reward: Reward, reason: str, config: GameConfig, fx: Effects,
          *, strict: bool = False, times: int = 1,
          coupons_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Give ``reward`` ``times`` times; returns what was actually granted.

    Free rewards (check-in, stages, tasks) first repay what the shopper owes of the
    same currency or item (``state.debts``: a refund of a reward already spent, a
    price a two-commit action could not take; a ``debt_repaid`` event), and what is
    left is clamped at each balance's limit, the excess lost and reported in an event;
    ``strict`` (a purchase) repays nothing and raises
    :class:`~economy.errors.BalanceLimit` instead, before changing anything.
    A coupon in ``coupons_out`` (its stock is gone, as the server says) is skipped
    with a ``coupon_unavailable`` event: the rest of the reward still counts. The
    answer's ``currency`` and ``items`` count what repaid a debt too (it was given);
    ``repaid`` says how much did.
    """
    cur = {k: v * times for k, v in reward.currency.items()}
    items = {k: v * times for k, v in reward.items.items()}
    c_lim, i_lim = currency_limits(config), item_limits(config)
    repaid: dict[str, int] = {}
    if not strict:
        cur = _repay(state, cur, "currency", repaid)
        items = _repay(state, items, "item", repaid)
        if repaid:
            fx.events.append({"type": "debt_repaid", "reason": reason, "repaid": repaid})
        cur_ok = _clamped(state.wallet, cur, c_lim)
        items_ok = _clamped(state.inventory, items, i_lim)
        lost = {k: cur[k] - cur_ok[k] for k in cur if cur[k] != cur_ok[k]}
        lost |= {k: items[k] - items_ok[k] for k in items if items[k] != items_ok[k]}
        if lost:
            fx.events.append({"type": "grant_capped", "reason": reason, "lost": lost})
        cur, items = cur_ok, items_ok
    wallet, c_entries = apply_currency(state.wallet, cur, reason, c_lim)
    inventory, i_entries = apply_items(state.inventory, items, reason, i_lim)
    state.wallet, state.inventory = wallet, inventory
    fx.ledger += c_entries + i_entries
    given_c = {k: v + repaid.get(f"currency:{k}", 0) for k, v in cur.items()}
    given_i = {k: v + repaid.get(f"item:{k}", 0) for k, v in items.items()}
    out: dict[str, Any] = {"currency": {k: v for k, v in given_c.items() if v},
                           "items": {k: v for k, v in given_i.items() if v}}
    if repaid:
        out["repaid"] = repaid
    if reward.coupon and times > 0 and reward.coupon in coupons_out:
        fx.events.append({"type": "coupon_unavailable", "coupon": reward.coupon,
                          "count": times, "reason": reason})
        out["coupons_unavailable"] = {reward.coupon: times}
    elif reward.coupon and times > 0:
        granted = {"coupon": reward.coupon, "count": times, "reason": reason}
        fx.reservations.append(StockHold(f"coupon:{reward.coupon}", times))
        # The row keeps the coupon as configured now (name, template, face value,
        # validity), so the wallet shows what was granted whatever later versions say.
        coupon = config.coupons.get(reward.coupon)
        detail = {**granted, **(coupon.wallet_detail() if coupon else {})}
        fx.grants.append(ValueGrant(f"coupon:{reward.coupon}", "coupon", reason, detail,
                                    times))
        fx.events.append({"type": "coupon_granted", **granted})
        out["coupons"] = {reward.coupon: times}
    return out


def given_amounts(granted: dict[str, Any]) -> dict[str, int]:
    """What :func:`grant` answered it gave (what repaid a debt included; not what a
    limit kept back), keyed as debts (``currency:<id>``, ``item:<id>``, and
    ``coupon:<id>``: the coupons issued, 0 when it was out of stock): kept by a mechanic
    that may take the reward back later, as :func:`clawback`'s ``most``."""
    given = {f"currency:{k}": v for k, v in granted["currency"].items()}
    given |= {f"item:{k}": v for k, v in granted["items"].items()}
    given |= {f"coupon:{k}": 0 for k in granted.get("coupons_unavailable", {})}
    given |= {f"coupon:{k}": v for k, v in granted.get("coupons", {}).items()}
    return given


def _take_back(balances: dict[str, int], wanted: dict[str, int]) -> dict[str, int]:
    return {k: min(v, balances.get(k, 0)) for k, v in wanted.items()}


def clawback(state: PlayerState, reward: Reward, times: int, reason: str,
             fx: Effects, *, most: Mapping[str, int] | None = None,
             coupons: Mapping[str, int] | None = None) -> dict[str, int]:
    """Take back ``times`` × ``reward`` as far as it is unspent; record the rest as debt.

    Balances never go negative: what cannot be taken is added to ``state.debts``
    (``currency:<id>``, ``item:<id>``, ``coupon:<id>``: an issued coupon cannot be
    revoked, so it is always owed) and returned. ``most``, when given, is what the grant
    really gave (:func:`given_amounts`; a currency or item not listed: none): nothing is
    taken back or owed beyond it, whatever the reward says now (a limit kept some back,
    the merchant changed the reward since). Its coupon, when listed, bounds the coupons
    owed (those issued); not listed (what was given from before coupons were kept in
    it), ``times`` are owed: the caller leaves the coupon out of ``reward`` for none.
    ``coupons``, when given, are the coupons owed (id → count: those the grant issued,
    whatever coupon ``reward`` has now) instead.
    """
    if times <= 0:
        return {}

    def bounded(key: str, amount: int) -> int:
        return amount if most is None else max(0, min(amount, most.get(key, 0)))

    cur = {k: bounded(f"currency:{k}", v * times) for k, v in reward.currency.items()}
    items = {k: bounded(f"item:{k}", v * times) for k, v in reward.items.items()}
    take_c, take_i = _take_back(state.wallet, cur), _take_back(state.inventory, items)
    wallet, c_entries = apply_currency(state.wallet, {k: -v for k, v in take_c.items()},
                                       reason, {})
    inventory, i_entries = apply_items(state.inventory, {k: -v for k, v in take_i.items()},
                                       reason, {})
    state.wallet, state.inventory = wallet, inventory
    fx.ledger += c_entries + i_entries
    debt = {f"currency:{k}": cur[k] - take_c[k] for k in cur if cur[k] > take_c[k]}
    debt |= {f"item:{k}": items[k] - take_i[k] for k in items if items[k] > take_i[k]}
    if coupons is None:
        coupon = f"coupon:{reward.coupon}"
        owed = times if most is None or coupon not in most else bounded(coupon, times)
        coupons = {reward.coupon: owed} if reward.coupon else {}
    for cid, count in coupons.items():
        if count > 0:
            debt[f"coupon:{cid}"] = count
            fx.events.append({"type": "coupon_clawback", "coupon": cid, "count": count,
                              "reason": reason})
    for key, amount in debt.items():
        state.debts[key] = state.debts.get(key, 0) + amount
    if debt:
        fx.events.append({"type": "debt_recorded", "reason": reason, "debt": debt})
    return debt
