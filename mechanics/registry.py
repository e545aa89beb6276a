"""The mechanic registry: one entry per mechanic, the one list shared code iterates.

An entry names a mechanic and what it declares in its own modules:

- ``section``: its part of the game config (:mod:`economy.section`; listed in
  :class:`economy.config.GameConfig`'s bases, because economy is the lowest room
  and cannot import this module);
- ``slots``: its slice of player state (:mod:`mechanics.slices`; listed in
  :class:`mechanics.state.PlayerState`'s bases, because the rules import
  ``PlayerState`` and this module imports the rules' views: the state cannot
  import the registry);
- ``views``: its parts of the player view, shown by :func:`mechanics.view.player_view`
  in registry order;
- ``api``: the module of its HTTP operations.

**Route convention** (for the route table in ``gameserver/app.py``): an entry
whose ``api`` is not None has a module ``gameserver/api/<api>.py`` exporting
``OPERATIONS`` (a list of ``Operation`` rows); ``api`` defaults to the entry's
``name``. The route table takes :data:`API_ROOMS` and never names a mechanic.
The registry is pure: it imports no server code.

``tests/unit/test_registry.py`` checks that the registry, GameConfig's bases and
PlayerState's bases agree, so a mechanic half-registered fails a test by name.
Adding a mechanic: docs/adding-a-mechanic.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from economy.assist import ASSISTS
from economy.boxes import BOXES
from economy.checkin import CHECKIN
from economy.config import GameConfig
from economy.energy import ENERGY
from economy.exchange import EXCHANGE
from economy.experiments import EXPERIMENTS
from economy.flashsale import FLASHSALES
from economy.groupbuy import GROUPBUYS
from economy.leaderboards import LEADERBOARDS
from economy.pet import PET
from economy.poll import POLLS
from economy.rains import RAINS
from economy.reminders import REMINDERS
from economy.rewards import COUPONS
from economy.samples import SAMPLES
from economy.section import Section
from economy.tasks import TASKS
from economy.teams import TEAMS
from mechanics import assist, groupbuy, poll, rains, samples, teamaggregates
from mechanics.assist import Assist, assists_view, rename_helper
from mechanics.assiststate import AssistSlots, open_assists
from mechanics.boxes import boxes_part
from mechanics.boxstate import BoxesSlots
from mechanics.checkinstate import CheckinSlots
from mechanics.coupons import coupons_view
from mechanics.couponstate import CouponSlots
from mechanics.energy import energy_view
from mechanics.energystate import EnergySlots
from mechanics.exchangestate import ExchangeSlots
from mechanics.experiments import experiments_view
from mechanics.experimentstate import ExperimentSlots
from mechanics.flashsale import sale_holds_view
from mechanics.flashsalepay import deposit_refunded, pay_sale_holds
from mechanics.flashsalestate import SaleHoldsSlots, held_units
from mechanics.groupbuy import Group, groupbuys_view, order_refunded
from mechanics.groupbuy import rename_member as rename_group_member
from mechanics.groupbuystate import GroupBuySlots, open_groups
from mechanics.orderstate import OrdersSlots
from mechanics.outcome import Outcome
from mechanics.petstate import PetSlots
from mechanics.poll import PollBucket, rename_voter
from mechanics.rains import PoolBucket, rename_grabber
from mechanics.reminderstate import RemindersSlots
from mechanics.samples import AppBucket, rename_applicant
from mechanics.slices import StateSlots
from mechanics.state import PlayerState, Rng
from mechanics.tasks import Order
from mechanics.taskstate import TasksSlots
from mechanics.teamaggregates import Team
from mechanics.teamaggregates import rename_member as rename_team_member
from mechanics.teams import contribute, teams_view
from mechanics.teamstate import TeamsSlots
from mechanics.view import (
    ViewFn,
    checkin_view,
    cooldowns_part,
    exchange_view,
    pet_part,
    tasks_view,
)

RefundHook = Callable[[PlayerState, tuple[str, ...], int, GameConfig], Outcome | None]
"""A mechanic's part of a refunded order: ``(state after the refund's rule, the order's
skus, now, config) -> outcome`` (its state, ledger and events follow the refund's), or
None when the order means nothing to the mechanic."""


@dataclass(frozen=True)
class View:
    """One key of the player view and the function that shows it."""

    key: str
    show: ViewFn
    omit_none: bool = False
    """leave the key out when ``show`` gives None (a mechanic added later does, so
    games without it answer exactly as before)"""


OrderHook = Callable[[PlayerState, Order, int, Rng, GameConfig, frozenset[str]],
                     Outcome | None]
"""A mechanic's part of a paid order (``ingestOrder``): ``(state, order, now, rng,
config, out)`` changes the order commit's own copy of the state and returns an outcome
on it: its response keys join the order's response, its ledger, events, reservations,
grants and records join the order's (``out``: the limited-stock refs the value tier
says have nothing left; a unit that comes up short applies the order again). None when
the order is none of its business (the response stays as it was)."""


Unsettled = Callable[[PlayerState, int], list[str]]
"""``(state, now) -> ids``: what the shopper holds of a mechanic that is not settled yet
(an open group, a held flash-sale unit): its end still owes them something, so erasing
them now would lose it or bring them back (docs/privacy.md)."""
Rename = Callable[[Any, str, str], Any]
"""``(aggregate state, user, pseudonym) -> state or None``: the state naming the pseudonym
wherever it named the user (a member, a helper, a voter), or None when it does not name
them. Pure; ``erasePlayer`` commits it on every aggregate the shopper's shared plays
touched, through the aggregates' own commit (docs/privacy.md)."""


@dataclass(frozen=True)
class SharedKind:
    """A kind of aggregate a mechanic keeps whose state names shoppers."""

    kind: str
    """the aggregate kind (``keys.AggregateRef.kind``)"""
    from_wire: Callable[[Any], Any]
    """the state class's ``from_wire`` (its states are msgpack of ``to_wire()``)"""
    rename: Rename


Follow = Callable[[Any, Outcome, int, GameConfig], Outcome]
"""``(action, outcome, now, config) -> outcome``: a mechanic's pure follow-up to every
player action the server binds (``gameserver.services.bind``), applied in the same
commit; it returns the outcome, with its own slice of the state changed if the action
means something to it (a member's feed earns team points)."""


@dataclass(frozen=True)
class Mechanic:
    """One mechanic: its name and the parts it declares (see the module docstring)."""

    name: str
    section: Section | None = None
    slots: type[StateSlots] | None = None
    views: tuple[View, ...] = ()
    api: str | None = ""
    """module name under ``gameserver/api/``; "" means ``name``; None: no operations"""
    @property
    def api_module(self) -> str | None:
        """The dotted module of its operations, or None."""
        if self.api is None:
            return None
        return f"gameserver.api.{self.api or self.name}"

    on_order: OrderHook | None = None
    """its part of a paid order, after the purchase tasks (:mod:`mechanics.orders`)"""
    on_refund: RefundHook | None = None
    """its part of a refunded order, after the refund's rule, in the same commit"""
    follows: Follow | None = None
    """its follow-up to other mechanics' actions (None: it has none)"""
    unsettled: Unsettled | None = None
    """what a shopper holds of it that cannot be settled yet (``erasePlayer`` waits)"""
    shared: tuple[SharedKind, ...] = ()
    """its kinds of aggregate that name shoppers (``erasePlayer`` renames them)"""


MECHANICS: tuple[Mechanic, ...] = (
    Mechanic("pet", PET, PetSlots, (View("pet", pet_part), View("cooldowns", cooldowns_part)),
             api="pets"),
    Mechanic("produce", api=None),  # config in the species, state and routes in the pet's
    # the wallet's routes: gameserver/api/coupons.py
    Mechanic("coupons", COUPONS, CouponSlots, (View("coupons", coupons_view, omit_none=True),)),
    Mechanic("checkin", CHECKIN, CheckinSlots, (View("checkin", checkin_view),)),
    Mechanic("tasks", TASKS, TasksSlots, (View("tasks", tasks_view),)),
    Mechanic("exchange", EXCHANGE, ExchangeSlots, (View("exchanges", exchange_view),)),
    Mechanic("orders", None, OrdersSlots),
    Mechanic("reminders", REMINDERS, RemindersSlots, api=None),
    Mechanic("boxes", BOXES, BoxesSlots, (View("boxes", boxes_part, omit_none=True),)),
    Mechanic("leaderboards", LEADERBOARDS),
    # its tallies are aggregates (mechanics/aggregate.py), no slice
    Mechanic("poll", POLLS, shared=(SharedKind(poll.KIND, PollBucket.from_wire, rename_voter),)),
    Mechanic("energy", ENERGY, EnergySlots, (View("energy", energy_view, omit_none=True),)),
    Mechanic("experiments", EXPERIMENTS, ExperimentSlots,
             (View("experiments", experiments_view, omit_none=True),)),
    Mechanic("flashsale", FLASHSALES, SaleHoldsSlots,
             (View("sale_holds", sale_holds_view, omit_none=True),), on_order=pay_sale_holds,
             on_refund=deposit_refunded, unsettled=held_units),
    # its pools and seeds are aggregates, no slice (the seeds name nobody)
    Mechanic("rains", RAINS,
             shared=(SharedKind(rains.KIND, PoolBucket.from_wire, rename_grabber),)),
    # applications and results are aggregates, no slice (a lottery's result is its
    # proof and names its winners: kept, like draws)
    Mechanic("samples", SAMPLES,
             shared=(SharedKind(samples.KIND, AppBucket.from_wire, rename_applicant),)),
    Mechanic("assist", ASSISTS, AssistSlots, (View("assists", assists_view, omit_none=True),),
             unsettled=open_assists,
             shared=(SharedKind(assist.KIND, Assist.from_wire, rename_helper),)),
    Mechanic("groupbuy", GROUPBUYS, GroupBuySlots,
             (View("groupbuys", groupbuys_view, omit_none=True),), on_refund=order_refunded,
             unsettled=open_groups,
             shared=(SharedKind(groupbuy.KIND, Group.from_wire, rename_group_member),)),
    Mechanic("teams", TEAMS, TeamsSlots, (View("teams", teams_view, omit_none=True),),
             follows=contribute,
             shared=(SharedKind(teamaggregates.KIND, Team.from_wire, rename_team_member),)),
)
"""Every mechanic, in the order the player view shows them."""

FOLLOWERS: tuple[Follow, ...] = tuple(m.follows for m in MECHANICS if m.follows is not None)
"""Every mechanic's follow-up to player actions, in registry order."""

UNSETTLED: tuple[Unsettled, ...] = tuple(
    m.unsettled for m in MECHANICS if m.unsettled is not None)
"""What each mechanic says a shopper holds unsettled (:data:`Unsettled`)."""

SHARED_KINDS: dict[str, SharedKind] = {k.kind: k for m in MECHANICS for k in m.shared}
"""Aggregate kind → how its state names shoppers (:class:`SharedKind`)."""

BY_NAME: dict[str, Mechanic] = {m.name: m for m in MECHANICS}

ORDER_HOOKS: tuple[OrderHook, ...] = tuple(
    m.on_order for m in MECHANICS if m.on_order is not None)
"""Mechanics that act on paid orders, in registry order (:mod:`mechanics.orders`)."""

REFUND_HOOKS: tuple[tuple[str, RefundHook], ...] = tuple(
    (m.name, m.on_refund) for m in MECHANICS if m.on_refund is not None)
"""Mechanics that act on refunded orders, in registry order (``ingestOrder``)."""

API_ROOMS: tuple[str, ...] = tuple(
    m.api or m.name for m in MECHANICS if m.api is not None)
"""The mechanics' API modules (``gameserver/api/<room>.py``), in registry order: the
mechanic part of the route table."""
