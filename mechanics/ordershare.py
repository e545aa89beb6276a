"""Which paid orders hold a spend task's completions (the order records' side of
:func:`mechanics.takeback.take_back`).

A spend task's completions in a period come from the period's spend, not from one
order: each order's record holds those its payment finished (``OrderRecord.tasks``)
and what they gave (``OrderRecord.given``). A refund in the period takes back what the
rest of the spend no longer supports, which may be more than the refunded order
holds (its amount counted toward a completion another order finished) or fewer (the
other orders' spend still supports them). Either way every completion still granted
stays held by exactly one order that still counts for it, so no refund takes one back
twice and refunding every order takes back each one:

- the completions taken beyond what the order holds come from the other orders'
  records, the newest holders first (the latest completions are those the spend no
  longer reaches), with what they gave (:func:`take_shares`);
- the completions a refunded order holds that the rest of the spend still supports
  pass to the other orders, the newest first up to what each one's own amount
  supports, the rest to the newest (:func:`hand_on`).

After its period (its progress is gone) the records are the whole account: a refund
measures the rest against the spend of the period's orders that still count for the
task and the completions they hold (:func:`mechanics.takeback.take_back`), as in the
period, so a completion handed on to an order that does not pay for it alone stays
while the orders that pay for it together are left. The coupons a record's
completions issued travel with them (``given``'s ``coupon:<id>``, 0 for one out of
stock), so a refund owes a coupon for a completion only if one was issued for it,
whichever order held it then, and the coupon owed is the one issued, whatever coupon
the reward has by the refund (``coupon:`` 0, :data:`NONE_ISSUED`: the reward had none).
A record from before coupons were kept in ``given`` (no ``coupon:`` key at all) counts
one of the reward's for each completion it holds unless its coupon was out of stock
(``OrderRecord.no_coupon``), as those releases owed them (:func:`held`).
"""

from __future__ import annotations

from typing import Any

from economy.rewards import Reward
from mechanics.grants import given_amounts
from mechanics.orderstate import OrderRecord
from mechanics.state import PlayerState

Share = tuple[OrderRecord | None, int]
"""Completions taken back from one order's record (None: no record holds them, e.g. a
state from before records were kept this way)."""


def per_time(reward: Reward) -> dict[str, int]:
    """What one completion of ``reward`` gives, keyed as ``OrderRecord.given`` (one
    coupon, if the reward has one)."""
    per = {f"currency:{k}": v for k, v in reward.currency.items()}
    per |= {f"item:{k}": v for k, v in reward.items.items()}
    return per | ({f"coupon:{reward.coupon}": 1} if reward.coupon else {})


NONE_ISSUED = "coupon:"
"""The key in a completion's ``given`` that says coupons are kept there and the reward
issued none (it had no coupon): a record without any ``coupon:`` key is from before
coupons were kept. Older releases read it as a coupon they never look up."""


def kept_given(granted: dict[str, Any]) -> dict[str, int]:
    """What an order's completions gave, as ``OrderRecord.given`` keeps it
    (:func:`mechanics.grants.given_amounts`), with :data:`NONE_ISSUED` when the reward
    issued no coupon: a refund then owes none, whatever coupon the reward has by then."""
    given = given_amounts(granted)
    if not any(k.startswith("coupon:") for k in given):
        given[NONE_ISSUED] = 0
    return given


def _coupons_of(given: dict[str, int], times: int) -> dict[str, int]:
    """The coupons ``times`` of the completions ``given`` counts issued: one each at most,
    from the coupon ids it lists (in order of id: a record lists more than one only when
    completions passed on from an order whose reward had another coupon)."""
    out: dict[str, int] = {}
    for key in sorted(k for k in given if k.startswith("coupon:") and k != NONE_ISSUED):
        k = min(given[key], times - sum(out.values()))
        if k > 0:
            out[key] = k
    return out


def less(given: dict[str, int], reward: Reward, times: int) -> dict[str, int]:
    """``given`` less what :func:`mechanics.grants.clawback` charges for ``times`` ×
    ``reward`` (taken back or owed: it counts no key beyond what was given), and less
    the coupons of ``times`` completions (those it lists: :func:`bound` owed them)."""
    per = per_time(reward)
    coupons = _coupons_of(given, times)
    return {k: v - coupons[k] if k in coupons else
            v if k.startswith("coupon:") else v - min(v, per.get(k, 0) * times)
            for k, v in given.items()}


def _said(reward: Reward, times: int, out: bool) -> dict[str, int]:
    """What ``times`` completions of ``reward`` gave as it says now, no coupon if it
    was ``out`` of stock."""
    return {key: 0 if out and key.startswith("coupon:") else v * times
            for key, v in per_time(reward).items()}


def held(rec: OrderRecord, tid: str, reward: Reward) -> dict[str, int]:
    """What the completions the record holds of the task gave: its ``given`` (not kept:
    what the reward says), with the coupons they issued (the ids it lists, whatever
    coupon the reward has now) never above the completions. A record from before
    coupons were kept in ``given`` (no ``coupon:`` key, not even :data:`NONE_ISSUED`)
    issued one of the reward's for each unless the coupon was out of stock
    (``no_coupon``); an older release's partial refund lowered its completions, not its
    coupons (it owed them, or none for ``no_coupon``)."""
    n = rec.tasks[tid][1] if tid in rec.tasks else 0
    out = tid in rec.no_coupon
    given = rec.given.get(tid)
    if given is None:
        return _said(reward, n, out)
    if any(k.startswith("coupon:") for k in given):  # kept: those it lists, n at most
        issued = _coupons_of(given, n)
        return {k: issued.get(k, 0) if k.startswith("coupon:") and k != NONE_ISSUED else v
                for k, v in given.items()}
    if not reward.coupon:
        return dict(given)
    return {**given, f"coupon:{reward.coupon}": 0 if out else n}


def holders(new: PlayerState, tid: str, period: int, order_id: str) -> list[OrderRecord]:
    """The other orders that still count for the task in ``period``, newest first."""
    found = [(rec.at, oid) for oid, rec in new.orders.items()
             if oid != order_id and rec.live and tid in rec.tasks
             and rec.tasks[tid][0] == period]
    return [new.orders[oid] for _, oid in sorted(found, reverse=True)]


def take_shares(new: PlayerState, tid: str, period: int, order_id: str,
                surplus: int) -> list[Share]:
    """Who gave the ``surplus`` completions a refund of ``order_id`` takes back beyond
    what it holds: the other orders' holders, newest first (None for what none holds).
    The records are not changed yet: :func:`lower` them once their ``given`` bounded
    the clawback."""
    shares: list[Share] = []
    for rec in holders(new, tid, period, order_id):
        if surplus <= 0:
            break
        k = min(surplus, rec.tasks[tid][1])
        if k > 0:
            shares.append((rec, k))
            surplus -= k
    if surplus > 0:
        shares.append((None, surplus))
    return shares


def bound(tid: str, reward: Reward, shares: list[Share]) -> dict[str, int]:
    """The most the clawback of ``shares`` may charge: what each record gave for its
    share (:func:`held`), and the coupons its completions issued (``coupon:<id>``: those
    to owe). For completions no record holds (left by an older release's refunds),
    what the reward says and no coupon: whether one was issued for them is not known,
    and an issued coupon owed back is a debt the shopper may never have had."""
    most: dict[str, int] = {}
    for rec, k in shares:
        gave = held(rec, tid, reward) if rec is not None else _said(reward, k, True)
        for key, v in per_time(reward).items():
            if not key.startswith("coupon:"):
                most[key] = most.get(key, 0) + min(v * k, gave.get(key, 0))
        for key, v in _coupons_of(gave, k).items():
            most[key] = most.get(key, 0) + v
    return most


def owed_coupons(most: dict[str, int]) -> dict[str, int]:
    """The coupons (id → count) :func:`bound` found issued: what a clawback owes."""
    return {k.split(":", 1)[1]: v for k, v in most.items()
            if k.startswith("coupon:") and k != NONE_ISSUED and v > 0}


def lower(rec: OrderRecord, tid: str, reward: Reward, times: int) -> None:
    """The record holds ``times`` fewer completions of the task, and its ``given`` (if
    kept) no longer counts what they gave (the coupons first, as :func:`bound` charged
    them)."""
    gave = held(rec, tid, reward)
    period, n = rec.tasks[tid]
    rec.tasks[tid] = [period, max(0, n - times)]
    if tid in rec.given:
        rec.given[tid] = less(gave, reward, times)


def hand_on(new: PlayerState, tid: str, period: int, order_id: str, times: int,
            given: dict[str, int], spend_fen: int, reward: Reward, count: int) -> None:
    """Pass ``times`` completions the refunded ``order_id`` held, and what they gave
    (``given``: what its record's :func:`held` has left), to the other orders that
    still count, as far as the period's ``count`` is not held by them.

    A receiving order that now holds a completion that issued no coupon is listed in
    its ``no_coupon``, which older releases read: they owe none for its completions
    rather than one for each (this release reads the coupons in ``given``)."""
    others = holders(new, tid, period, order_id)
    times = min(times, count - sum(rec.tasks[tid][1] for rec in others))
    if not others or times <= 0:
        return
    parts: list[int] = []
    for rec in others:
        room = max(0, rec.left_fen // spend_fen - rec.tasks[tid][1])
        parts.append(min(room, times - sum(parts)))
    parts[0] += times - sum(parts)
    for rec, k in zip(others, parts, strict=True):
        if k <= 0:
            continue
        after = less(given, reward, k)
        moved = {key: v - after[key] for key, v in given.items()}
        given = after
        p, n = rec.tasks[tid]
        if tid in rec.given or n == 0:  # n > 0 and none kept: unbounded already
            theirs = held(rec, tid, reward) if tid in rec.given else {}
            for key, v in moved.items():
                theirs[key] = theirs.get(key, 0) + v
            rec.given[tid] = theirs
        issued = sum(_coupons_of(moved, k).values())
        if reward.coupon and issued < k and tid not in rec.no_coupon:
            rec.no_coupon.append(tid)
        rec.tasks[tid] = [p, n + k]
