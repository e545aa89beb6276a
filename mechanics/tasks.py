"""Tasks: daily/weekly/once with per-period limits; browse tickets; purchase tasks (追单).

Progress is kept per task for its current period and reset lazily when the
period (local day, ISO week, or ``once``) changes. A browse task is started by
:func:`start_task`, which returns the ticket data the server signs; completing
needs that ticket (verified by the server), ``browse_s`` seconds of server time,
and a nonce not used yet in the period the ticket was started in, which the
completion counts on (a browse across midnight is the day it started). Purchase
tasks only advance with paid orders (:func:`apply_order`, idempotent by order id);
:func:`apply_refund` takes back what an order earned, as far as it is unspent, and
records the rest as debt. Partial refunds (:mod:`mechanics.refunds`) take back what
the part returned no longer supports, through the same :func:`take_back`. A spend
task's completion is held by one order that still counts (:mod:`mechanics.ordershare`),
so whatever the refunds and their order, each is taken back once at most, and once
every order is refunded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from economy.config import GameConfig
from economy.errors import (
    InvalidInput,
    OrderTooOld,
    TaskDrivenByOrders,
    TaskLimitReached,
    TicketExpired,
    TicketInvalid,
    TicketReused,
    TicketTooEarly,
    known_item,
)
from economy.tasks import Task
from mechanics.calendar import period_key
from mechanics.grants import Effects, grant
from mechanics.ordershare import kept_given
from mechanics.orderstate import OrderRecord, seen_paid
from mechanics.outcome import Outcome, Record
from mechanics.state import PlayerState, Rng, new_player
from mechanics.takeback import take_back, terms
from mechanics.taskstate import TaskProgress
from mechanics.view import player_view

ORDER_KEEP_S = 30 * 86_400
"""Order ids are remembered this long; older orders are refused (so replays are too)."""
ORDER_KEEP_MAX = 500
"""At most this many order records per player (the oldest are dropped first)."""
NONCE_BITS = 64


@dataclass(frozen=True)
class StartTask:
    task: str
    player: str
    """the player id the ticket is bound to (from the session)"""


@dataclass(frozen=True)
class Ticket:
    """Browse ticket data; the server signs it in ``startTask`` and verifies it before
    passing it to :func:`complete_task`."""

    task: str
    player: str
    issued_at: int
    nonce: str

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "player": self.player, "issued_at": self.issued_at,
                "nonce": self.nonce}


@dataclass(frozen=True)
class CompleteTask:
    task: str
    ticket: Ticket | None = None
    player: str = ""
    """when given, the ticket must be bound to this player"""


@dataclass(frozen=True)
class Order:
    """A paid order of the merchant's shop (amounts in fen)."""

    order_id: str
    amount_fen: int
    skus: tuple[str, ...] = ()
    paid_at: int = 0
    """unix s; 0 = now"""


@dataclass(frozen=True)
class Refund:
    order_id: str


def _task(config: GameConfig, task_id: str) -> Task:
    return known_item(config.tasks, task_id, "task")


def _progress(state: PlayerState, task: Task, now: int, tz: tzinfo) -> TaskProgress:
    """The task's progress in the current period (a fresh one if the period changed)."""
    key = period_key(task.period, now, tz)
    prog = state.tasks.get(task.id)
    if prog is None or prog.period != key:
        prog = TaskProgress(period=key)
        state.tasks[task.id] = prog
    return prog


def _outcome(new: PlayerState, config: GameConfig, now: int, tz: tzinfo, fx: Effects,
             **response: Any) -> Outcome:
    new.last_seen = now
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants,
                   response={**response, "player": player_view(new, config, now, tz)})


def _as_is(ticket: dict[str, Any]) -> Any:
    return ticket


def start_task(state: PlayerState | None, action: StartTask, now: int, rng: Rng,
               config: GameConfig, *, tz: tzinfo,
               seal: Callable[[dict[str, Any]], Any] = _as_is) -> Outcome:
    """``startTask``: check the task can still be done; browse tasks get a ticket:
    its data passed through ``seal`` (the server signs it; by default the data as is).

    The state does not change: the ticket carries everything completion needs.
    """
    task = _task(config, action.task)
    if task.kind == "purchase":
        raise TaskDrivenByOrders(task.id)
    new = state.copy() if state else new_player(config, now)
    prog = new.tasks.get(task.id)
    if prog is not None and prog.period == period_key(task.period, now, tz) \
            and prog.count >= task.limit:
        raise TaskLimitReached(task.id, task.limit, task.period)
    ticket = None
    if task.kind == "browse":
        nonce = format(rng.randrange(0, 1 << NONCE_BITS), "016x")
        ticket = seal(Ticket(task.id, action.player, now, nonce).to_json())
    return Outcome(state=new, response={"task": task.id, "ticket": ticket,
                                        "complete_after": now + task.browse_s
                                        if ticket else now})


def _ticket(task: Task, action: CompleteTask, now: int) -> Ticket:
    """The ticket, if it is this task's and player's and not from the future."""
    ticket = action.ticket
    if ticket is None:
        raise TicketInvalid("missing")
    if ticket.task != task.id:
        raise TicketInvalid("other_task")
    if action.player and ticket.player != action.player:
        raise TicketInvalid("other_player")
    if ticket.issued_at > now:
        raise TicketInvalid("issued_in_the_future")
    return ticket


def _settled(prog: TaskProgress) -> TaskProgress:
    """``prog`` as a past period's record (a record keeps one earlier period only)."""
    return TaskProgress(prog.period, prog.count, prog.spend, list(prog.nonces))


def _ticket_progress(state: PlayerState, task: Task, ticket: Ticket,
                     tz: tzinfo) -> TaskProgress:
    """The progress of the period the ticket was started in, which its completion
    counts on: a browse started at 23:59:50 and completed after midnight is that day's
    (if that day's limit is not reached), and leaves today's limit alone.

    The record holds the newest period with completions and ``prev``, the latest
    earlier one (period 0: none): a period between the two had no completions. A ticket
    older than what the record can tell (a record from before ``prev`` was kept) is
    ``ticket_expired`` (``period_ended``): its nonce might have been used."""
    period = period_key(task.period, ticket.issued_at, tz)
    prog = state.tasks.get(task.id)
    if prog is None:
        prog = state.tasks[task.id] = TaskProgress(period, prev=TaskProgress(0))
    elif prog.period < period:
        prog = state.tasks[task.id] = TaskProgress(period, prev=_settled(prog))
    if prog.period == period:
        return prog
    if prog.prev is None or prog.prev.period > period:
        raise TicketExpired(ticket.issued_at, "period_ended")
    if prog.prev.period < period:
        prog.prev = TaskProgress(period)
    return prog.prev


def _check_ticket(task: Task, ticket: Ticket, prog: TaskProgress, now: int) -> None:
    if ticket.nonce in prog.nonces:
        raise TicketReused(ticket.nonce)
    if now - ticket.issued_at > task.ticket_ttl_s:
        raise TicketExpired(ticket.issued_at, "too_old")
    if now < ticket.issued_at + task.browse_s:
        raise TicketTooEarly(ticket.issued_at + task.browse_s, now)


def complete_task(state: PlayerState | None, action: CompleteTask, now: int, rng: Rng,
                  config: GameConfig, *, tz: tzinfo,
                  coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """``completeTask``: grant the reward once more within the period's limit. A browse
    task counts on the period its ticket was started in (``done`` is that period's)."""
    task = _task(config, action.task)
    if task.kind == "purchase":
        raise TaskDrivenByOrders(task.id)
    new = state.copy() if state else new_player(config, now)
    ticket = _ticket(task, action, now) if task.kind == "browse" else None
    prog = _progress(new, task, now, tz) if ticket is None \
        else _ticket_progress(new, task, ticket, tz)
    if prog.count >= task.limit:
        raise TaskLimitReached(task.id, task.limit, task.period)
    if ticket is not None:
        _check_ticket(task, ticket, prog, now)
        prog.nonces.append(ticket.nonce)
    prog.count += 1
    fx = Effects()
    granted = grant(new, task.reward, f"task:{task.id}", config, fx, coupons_out=coupons_out)
    return _outcome(new, config, now, tz, fx, task=task.id, granted=granted,
                    done=prog.count, limit=task.limit)


def _qualifies(task: Task, order: Order) -> bool:
    if task.kind != "purchase" or order.amount_fen < task.min_order_fen:
        return False
    return not task.skus or any(sku in task.skus for sku in order.skus)


def prune_orders(new: PlayerState, now: int) -> None:
    """Forget orders older than ``ORDER_KEEP_S`` and all but the newest ``ORDER_KEEP_MAX``."""
    oldest = now - ORDER_KEEP_S
    kept = sorted(((rec.at, oid) for oid, rec in new.orders.items() if rec.at >= oldest),
                  reverse=True)[:ORDER_KEEP_MAX]
    new.orders = {oid: new.orders[oid] for _, oid in sorted(kept)}


def apply_order(state: PlayerState | None, action: Order, now: int, rng: Rng,
                config: GameConfig, *, tz: tzinfo,
                coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """``ingestOrder`` (paid): advance the purchase tasks the order qualifies for.

    Idempotent by order id: a known order changes nothing. Orders count toward the
    period they are ingested in. An order whose partial refunds came first (their
    tombstone, :mod:`mechanics.refunds`) counts only what they left of it; nothing
    when they returned all of it (``"refunded": true``: the plays' order hooks skip it).
    """
    if action.amount_fen < 0 or not action.order_id:
        raise InvalidInput("an order needs an id and a non-negative amount", field="order")
    paid_at = action.paid_at or now
    if paid_at < now - ORDER_KEEP_S:
        raise OrderTooOld(action.order_id, paid_at, now - ORDER_KEEP_S)
    new = state.copy() if state else new_player(config, now)
    early = new.orders.get(action.order_id)
    if early is not None and not early.awaiting_payment:
        return Outcome(state=new, response={"order": action.order_id, "duplicate": True,
                                            "tasks": {}})
    fx, record = Effects(), OrderRecord(at=now, amount=action.amount_fen)
    if early is not None:  # refunded in part before it was paid: what is left counts
        record.refunded_fen = min(early.refunded_fen, action.amount_fen)
        # a 0-fen order has nothing they could return: it counts, as when paid first
        record.refunds = early.refunds
        record.refunded = action.amount_fen > 0 and record.left_fen == 0
    counted = replace(action, amount_fen=record.left_fen)
    earned: dict[str, int] = {}
    for task in config.tasks.values() if not record.refunded else ():
        if not _qualifies(task, counted):
            continue
        prog = _progress(new, task, now, tz)
        if task.spend_fen:
            prog.spend += counted.amount_fen
            n = max(0, min(task.limit, prog.spend // task.spend_fen) - prog.count)
        else:
            n = 1 if prog.count < task.limit else 0
        prog.count += n
        record.tasks[task.id] = [prog.period, n]
        record.terms[task.id] = terms(task)
        granted = grant(new, task.reward, f"order:{action.order_id}:{task.id}", config, fx,
                        times=n, coupons_out=coupons_out)
        if "coupons_unavailable" in granted:
            record.no_coupon.append(task.id)
        if n:
            record.given[task.id] = kept_given(granted)
        earned[task.id] = n
    new.orders[action.order_id] = record
    prune_orders(new, now)
    new.last_seen = now
    response: dict[str, Any] = {"order": action.order_id, "duplicate": False, "tasks": earned}
    if early is not None:
        response["refunded_fen"] = record.refunded_fen
        if record.refunded:
            response["refunded"] = True
    records = _paid_records(action.order_id, action.amount_fen, record)
    return Outcome(state=new, ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants, records=records, response=response)


def _paid_records(order_id: str, amount_fen: int, record: OrderRecord) -> list[Record]:
    """A paid order's SQL rows: its ``order_events`` row, and what partial refunds that
    came before it returned (they left a tombstone, no row: petbox did not know the
    order then, as a whole refund of an unknown order writes none)."""
    rows = [order_record(order_id, "paid", amount_fen)]
    if record.refunded_fen:
        rows.append(refund_record(order_id, EARLY_REFUNDS, record.refunded_fen))
    return rows


def order_record(order_id: str, kind: str, amount_fen: int) -> Record:
    """An order's row in ``order_events`` (orders and GMV in SQL, e.g. experiment results).
    Partial refunds have rows of their own (``order_refunds``, :mod:`mechanics.refunds`)."""
    return Record("order_events", {"order_id": order_id, "kind": kind,
                                   "amount_fen": amount_fen})


def refund_record(order_id: str, refund_id: str, amount_fen: int) -> Record:
    """A partial refund's row in ``order_refunds``: what it returned of the order."""
    return Record("order_refunds", {"order_id": order_id, "refund_id": refund_id,
                                    "amount_fen": amount_fen})


EARLY_REFUNDS = "~before-paid"
"""``order_refunds``' refund id for what partial refunds returned before the order was
paid (written with the payment: ``~`` is in no platform's id)."""


def apply_refund(state: PlayerState | None, action: Refund, now: int, rng: Rng,
                 config: GameConfig, *, tz: tzinfo) -> Outcome:
    """``ingestOrder`` (refunded): take back what the order earned.

    What is still in the wallet or inventory is taken back; what was spent is
    recorded in ``state.debts`` (balances never go negative). A refund of an
    unknown order leaves a tombstone, so a late "paid" event for it earns nothing (an
    order known only by partial refunds becomes one). Refunding twice changes
    nothing. After partial refunds, it takes back what is left (and its row in
    ``order_events`` has what was left of the amount).
    """
    new = state.copy() if state else new_player(config, now)
    record = new.orders.get(action.order_id)
    if record is None or record.awaiting_payment:
        if record is None:
            new.orders[action.order_id] = OrderRecord(at=now, amount=0, refunded=True)
            prune_orders(new, now)
        else:
            record.refunded = True
        return Outcome(state=new, response={"order": action.order_id, "known": False,
                                            "taken_back": {}, "debt": {}})
    if record.refunded:  # a replay: known as the first answer said
        return Outcome(state=new, response={"order": action.order_id,
                                            "known": seen_paid(record),
                                            "duplicate": True, "taken_back": {}, "debt": {}})
    fx, returned = Effects(), record.left_fen
    record.refunded = True
    taken, debt = take_back(new, action.order_id, record, returned, config, fx)
    new.last_seen = now
    return Outcome(state=new, ledger=fx.ledger, events=fx.events,
                   records=[order_record(action.order_id, "refunded", returned)],
                   response={"order": action.order_id, "known": True, "duplicate": False,
                             "taken_back": taken, "debt": debt})
