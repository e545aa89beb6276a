"""What a refund (whole or partial) of an order takes back of the purchase tasks it
counted for: :func:`take_back`, the rule :func:`mechanics.tasks.apply_refund` and
:mod:`mechanics.refunds` share. Whose completions they are when a spend task's period
has several orders: :mod:`mechanics.ordershare`.

A refund measures what the order earned against the task's terms when the order
counted for it (``OrderRecord.terms``: its ``limit``, ``spend_fen`` and
``min_order_fen`` then), not today's: a merchant who lowers a limit or raises a price
after a payment does not make a 1-fen refund take back completions the order's
amount still pays for. A spend task's refund of ``r`` fen takes back at most
``ceil(r / spend_fen)`` completions (what ``r`` could have paid for at most; with the
same terms throughout, the rule below never reaches it). A record from a release that
did not keep the terms goes by today's, within that bound, and a ``min_order_fen``
the order does not reach (raised since it counted; the one it counted under is not
known) as none.
"""

from __future__ import annotations

from dataclasses import replace

from economy.config import GameConfig
from economy.tasks import Task
from mechanics.grants import Effects, clawback
from mechanics.ordershare import (
    Share,
    bound,
    hand_on,
    held,
    holders,
    less,
    lower,
    owed_coupons,
    take_shares,
)
from mechanics.orderstate import OrderRecord
from mechanics.state import PlayerState
from mechanics.taskstate import TaskProgress


def terms(task: Task) -> list[int]:
    """What ``OrderRecord.terms`` keeps of the task when an order counts for it."""
    return [task.limit, task.spend_fen, task.min_order_fen]


def as_counted(task: Task, record: OrderRecord) -> Task:
    """The task with the terms it had when the order counted for it (its reward is
    today's: what the order's completions gave is in ``given``). Not kept (an older
    release wrote the record): today's, but no ``min_order_fen`` above the order's
    amount, which the order met when it counted."""
    kept = record.terms.get(task.id)
    if kept is not None and len(kept) >= 3:
        return replace(task, limit=kept[0], spend_fen=kept[1], min_order_fen=kept[2])
    if task.min_order_fen > record.amount:
        return replace(task, min_order_fen=0)
    return task


def _account(new: PlayerState, tid: str, period: int, order_id: str, record: OrderRecord,
             n: int, returned: int) -> TaskProgress:
    """The task's account of ``period`` before this refund: its progress while the
    period lasts; after it, what its orders' records say: the completions they hold and
    the spend of those that still count for it (this one's as it was before the refund),
    so a completion the period's orders paid for together is measured against them all,
    as it was in the period, not against the order that happens to hold it (the
    account is not kept: the period's progress is gone)."""
    prog = new.tasks.get(tid)
    if prog is not None and prog.period == period:
        return prog
    others = holders(new, tid, period, order_id)
    return TaskProgress(period, count=n + sum(rec.tasks[tid][1] for rec in others),
                        spend=returned + record.left_fen + sum(rec.left_fen for rec in others))


def _undo(prog: TaskProgress, task: Task, n: int, returned: int, left: int) -> int:
    """Roll the task's account (:func:`_account`) back for ``returned`` fen of an order
    refunded, ``left`` fen of it still paid; returns completions to take back (the
    order holds ``n``). ``task`` has the terms the order counted with
    (:func:`as_counted`).

    A spend task loses ``returned`` from the period's spend and gives back completions
    the rest no longer supports, however many of them this order holds (whose they
    were: :mod:`mechanics.ordershare`), never more than ``returned`` pays for. A
    per-order task keeps its completion while ``left`` qualifies."""
    if task.spend_fen:
        prog.spend = max(0, prog.spend - returned)
        excess = max(0, prog.count - min(task.limit, prog.spend // task.spend_fen))
        excess = min(excess, -(-returned // task.spend_fen))
        prog.count -= excess
        return excess
    if left and left >= task.min_order_fen:
        return 0
    prog.count = max(0, prog.count - n)
    return n


def take_back(new: PlayerState, order_id: str, record: OrderRecord, returned: int,
              config: GameConfig, fx: Effects,
              partial: bool = False) -> tuple[dict[str, int], dict[str, int]]:
    """Take back what ``returned`` fen of the order refunded (``record.left_fen`` of it
    is still paid: set it first) no longer earns: per task, the completions taken back,
    and in all what could not be (debt). Never more than the orders that held them
    gave (``given``; a coupon, which is never taken back but owed, only for completions
    that issued one), which, like the completions they hold, their records then lower.

    A spend task's completions in the period are the period's spend's: a refund takes
    back what the rest no longer supports, whole or partial alike (those beyond what
    this order holds from the other orders' records; those it held that the rest still
    supports pass to them when it no longer counts: :mod:`mechanics.ordershare`), so
    partial refunds that return all of an order take back what a whole refund does.
    A ``partial`` refund that leaves the order below a spend task's ``min_order_fen``
    returns the whole order's amount from that task (what is left no longer qualifies)
    and the record forgets the task, so a later refund does not return it twice. The
    terms are those the order counted with (:func:`as_counted`)."""
    taken: dict[str, int] = {}
    debt: dict[str, int] = {}
    for tid, (period, n) in list(record.tasks.items()):
        task = config.tasks.get(tid)
        if task is None:
            continue  # the task left the config: nothing to compare against
        task = as_counted(task, record)
        left = record.left_fen
        gone = partial and task.spend_fen > 0 and left < task.min_order_fen
        prog = _account(new, tid, period, order_id, record, n, returned)
        times = _undo(prog, task, n, returned + left if gone else returned,
                      0 if gone else left)
        own = min(n, times)
        shares: list[Share] = [(record, own)]
        if times > own:
            shares += take_shares(new, tid, period, order_id, times - own)
        # at most what the orders holding them gave, a coupon only where one was issued
        most = bound(tid, task.reward, shares)
        for key, amount in clawback(new, task.reward, sum(k for _, k in shares),
                                    f"refund:{order_id}:{tid}", fx, most=most,
                                    coupons=owed_coupons(most)).items():
            debt[key] = debt.get(key, 0) + amount
        for rec, k in shares[1:]:
            if rec is not None:
                lower(rec, tid, task.reward, k)
        taken[tid] = times
        if task.spend_fen and n > own and (gone or not record.left_fen):  # no longer counts
            rest = less(held(record, tid, task.reward), task.reward, own)
            hand_on(new, tid, period, order_id, n - own, rest, task.spend_fen,
                    task.reward, prog.count)
        if gone:
            del record.tasks[tid]
            record.given.pop(tid, None)
            record.terms.pop(tid, None)
        elif own and record.left_fen:  # what is left may be refunded later: keep count
            lower(record, tid, task.reward, own)
    return taken, debt
