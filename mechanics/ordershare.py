"""Which paid orders hold a spend task's completions (the order records' side of
:func:`mechanics.tasks.take_back`).

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

After its period a refund takes back only what its order holds (the period's spend
is gone), so the records are the whole account then. Known limit: a completion passed
on keeps no coupon state of its own: whether its refund owes the reward's coupon is
the receiving order's (``OrderRecord.no_coupon``: its coupon was out of stock).
"""

from __future__ import annotations

from economy.rewards import Reward
from mechanics.orderstate import OrderRecord
from mechanics.state import PlayerState

Share = tuple[OrderRecord | None, int]
"""Completions taken back from one order's record (None: no record holds them, e.g. a
state from before records were kept this way)."""


def per_time(reward: Reward) -> dict[str, int]:
    """What one completion of ``reward`` gives, keyed as ``OrderRecord.given``."""
    per = {f"currency:{k}": v for k, v in reward.currency.items()}
    return per | {f"item:{k}": v for k, v in reward.items.items()}


def less(given: dict[str, int], reward: Reward, times: int) -> dict[str, int]:
    """``given`` less what :func:`mechanics.grants.clawback` charges for ``times`` ×
    ``reward`` (taken back or owed: it counts no key beyond what was given)."""
    per = per_time(reward)
    return {k: v - min(v, per.get(k, 0) * times) for k, v in given.items()}


def _holders(new: PlayerState, tid: str, period: int, order_id: str) -> list[OrderRecord]:
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
    for rec in _holders(new, tid, period, order_id):
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
    share (``given``; a record from before it was kept, or none: what the reward says)."""
    most: dict[str, int] = {}
    for rec, k in shares:
        given = rec.given.get(tid) if rec is not None else None
        for key, v in per_time(reward).items():
            cap = v * k if given is None else min(v * k, given.get(key, 0))
            most[key] = most.get(key, 0) + cap
    return most


def lower(rec: OrderRecord, tid: str, reward: Reward, times: int) -> None:
    """The record holds ``times`` fewer completions of the task, and its ``given`` no
    longer counts what they gave."""
    period, n = rec.tasks[tid]
    rec.tasks[tid] = [period, max(0, n - times)]
    given = rec.given.get(tid)
    if given is not None:
        rec.given[tid] = less(given, reward, times)


def hand_on(new: PlayerState, tid: str, period: int, order_id: str, times: int,
            given: dict[str, int] | None, spend_fen: int, reward: Reward, count: int) -> None:
    """Pass ``times`` completions the refunded ``order_id`` held, and what they gave
    (``given``: what its record's ``given`` has left; None: not kept), to the other
    orders that still count, as far as the period's ``count`` is not held by them."""
    holders = _holders(new, tid, period, order_id)
    times = min(times, count - sum(rec.tasks[tid][1] for rec in holders))
    if not holders or times <= 0:
        return
    parts: list[int] = []
    for rec in holders:
        room = max(0, rec.left_fen // spend_fen - rec.tasks[tid][1])
        parts.append(min(room, times - sum(parts)))
    parts[0] += times - sum(parts)
    for rec, k in zip(holders, parts, strict=True):
        if k <= 0:
            continue
        if given is None:  # an order from before ``given`` was kept: what the reward says
            moved = {key: v * k for key, v in per_time(reward).items()}
        else:
            after = less(given, reward, k)
            moved = {key: v - after[key] for key, v in given.items()}
            given = after
        p, n = rec.tasks[tid]
        theirs = rec.given.get(tid)
        if theirs is not None or n == 0:  # n > 0 and none kept: unbounded already
            theirs = dict(theirs or {})
            for key, v in moved.items():
                theirs[key] = theirs.get(key, 0) + v
            rec.given[tid] = theirs
        rec.tasks[tid] = [p, n + k]
