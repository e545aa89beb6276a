"""Player state as rules see it, and its compact msgpack wire form.

The wire form is what Redis and the SQL ``players.state`` column hold. Each
mechanic owns a *slice* of it (:mod:`mechanics.slices`): :class:`PlayerState`'s
base classes are the registry of slices, and :meth:`PlayerState.to_wire`,
:meth:`~PlayerState.from_wire` and :meth:`~PlayerState.copy` iterate
:data:`SLICES` without naming a mechanic. A slice absent from a stored map
decodes to its default, so a state written by an older server version loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mechanics.assiststate import AssistSlots
from mechanics.boxstate import BoxesSlots
from mechanics.checkinstate import CheckinSlots
from mechanics.couponstate import CouponSlots
from mechanics.energystate import EnergySlots
from mechanics.exchangestate import ExchangeSlots
from mechanics.experimentstate import ExperimentSlots
from mechanics.flashsalestate import SaleHoldsSlots
from mechanics.groupbuystate import GroupBuySlots
from mechanics.orderstate import OrdersSlots
from mechanics.petstate import PetSlots, PetState
from mechanics.reminderstate import RemindersSlots
from mechanics.slices import Slice, StateSlots, compile_codecs, decode_dict, same, slices_of
from mechanics.taskstate import TasksSlots
from mechanics.teamstate import TeamsSlots

if TYPE_CHECKING:
    from economy.config import GameConfig

__all__ = ["SLICES", "CoreSlots", "PetState", "PlayerState", "Rng", "first_played",
           "new_player"]


class Rng(Protocol):
    """The randomness a rule may use; the server passes a seeded generator."""

    def random(self) -> float: ...

    def randrange(self, start: int, stop: int) -> int: ...


def _created_at(raw: int | None) -> int:
    if raw is None:  # every state ever written has it: a map without it is not a state
        raise KeyError("c")
    return raw


def _is_none(value: Any) -> bool:
    return value is None


@dataclass(kw_only=True)
class CoreSlots(StateSlots):
    """What every player has, whatever the game: balances, debts, when they came."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("created_at", "c", same, _created_at, same),
        Slice("wallet", "w", same, decode_dict, dict),
        Slice("inventory", "i", same, decode_dict, dict),
        Slice("last_seen", "ls", same, lambda raw: raw or 0, same),
        Slice("debts", "db", same, decode_dict, dict),
        Slice("played_at", "pa", same, same, same, omit=_is_none),
    )
    created_at: int
    wallet: dict[str, int] = field(default_factory=dict)
    inventory: dict[str, int] = field(default_factory=dict)
    last_seen: int = 0
    debts: dict[str, int] = field(default_factory=dict)
    """``currency:<id>`` / ``item:<id>`` / ``coupon:<id>`` → what a refund could not take back"""
    played_at: int | None = None
    """When the shopper first acted themselves (:func:`first_played`): ``None`` since
    ``created_at`` (a player their own action created, and every state written before
    this slice existed), ``0`` not yet (created by a commit made for them: an order, a
    merchant's grant), else the time of their first own commit."""


@dataclass(kw_only=True)
class PlayerState(CoreSlots, PetSlots, CheckinSlots, TasksSlots, OrdersSlots, ExchangeSlots,
                  RemindersSlots, BoxesSlots, EnergySlots, ExperimentSlots, SaleHoldsSlots,
                  AssistSlots, GroupBuySlots, CouponSlots, TeamsSlots):
    """Everything a player has in one game: the core and one slice per mechanic.

    Adding a mechanic with player state adds its slots mixin to these bases (and
    an entry to ``mechanics/registry.py``); nothing else here changes.
    """

    def to_wire(self) -> dict[str, Any]:
        return _CODECS.to_wire(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> PlayerState:
        state: PlayerState = _CODECS.from_wire(raw)
        return state

    def copy(self) -> PlayerState:
        """A deep copy for a rule to change; the loaded state stays as it was.

        It is on every action's path, so it is compiled from the slices
        (:func:`mechanics.slices.compile_codecs`): as fast as a hand-written copy,
        about twice a wire round trip and ten times ``copy.deepcopy``.
        ``tests/unit/test_state.py`` checks that every field is copied and that no
        mutable object is shared.
        """
        twin: PlayerState = _CODECS.copy(self)
        return twin


SLICES: tuple[Slice, ...] = slices_of(PlayerState)
"""Every slice of the player state, core first, in :class:`PlayerState`'s base order."""

_CODECS = compile_codecs(PlayerState, SLICES)


def new_player(config: GameConfig, now: int) -> PlayerState:
    """The state of a player who has never played this game."""
    return PlayerState(created_at=now, wallet=config.initial_wallet(), last_seen=now)


def first_played(state: PlayerState, before: PlayerState | None, now: int,
                 by_shopper: bool) -> PlayerState:
    """``state`` as a commit leaves it, with :attr:`~CoreSlots.played_at` kept: a player
    that a commit made for them creates has not played (0), and their first commit of
    their own says when they did. ``by_shopper``: the commit is the shopper's own
    (``gameserver.state.keys.by_shopper``); ``before``: the state it was applied to.
    Only a new player or one who has not played can change, so the server calls this
    for those alone (every other commit costs one comparison); a change is made on a
    copy (once in a player's life), never on ``state``."""
    if before is None and not by_shopper:
        played: int | None = 0
    elif by_shopper and state.played_at == 0:
        played = now
    else:
        return state
    new = state.copy()
    new.played_at = played
    return new
