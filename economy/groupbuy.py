"""Group buy (拼团): config section, frozen model, cross-checks and typed refusals.

A merchant defines offers. A shopper opens a group of an offer and shares its code;
others join with the code, up to ``size`` members, before ``duration_s`` runs out.
A group that fills in time completes: every member gets ``reward`` once. A group that
expires unfilled fails: every member's ``cost`` (paid when joining) is given back and
the merchant is told through a signed webhook; with ``auto_complete`` it is filled
with system members instead (as Pinduoduo does) and completes. ``per_shopper`` bounds
the groups of one offer a shopper is in (open or complete), ``stock`` (optional) the
members that may be rewarded through the value tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from economy.errors import DomainError, Refusal, stock_pending_details
from economy.rewards import REWARD_SPEC, Reward, build_reward, reward_problems
from economy.schema import Bool, Int, Map, Obj, Problems, Str
from economy.section import ConfigPart, Section, unknown_currencies

if TYPE_CHECKING:
    from economy.config import GameConfig

OFFER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
MIN_SIZE, MAX_SIZE = 2, 50
MAX_DURATION_S = 7 * 86400
MAX_AMOUNT = 10**12
STOCK_PREFIX = "groupbuy:"
"""Value-tier ref of an offer's stock: ``groupbuy:<offer>``, one unit per rewarded member."""

OFFER_SPEC = Obj(description="A group-buy offer: group size, time limit, price and reward.",
                 fields={
    "title": Str(min_length=1, max_length=120),
    "size": Int(minimum=MIN_SIZE, maximum=MAX_SIZE,
                description="members a group needs to complete, the opener included"),
    "duration_s": Int(minimum=60, maximum=MAX_DURATION_S,
                      description="seconds from opening until an unfilled group expires"),
    "price_fen": Int(minimum=0, maximum=10**10, default=0,
                     description="the group price shown to members (fen); 0: none"),
    "cost": Map(values=Int(minimum=1, maximum=MAX_AMOUNT), default={}, max_items=4,
                description="currency → amount paid when joining; refunded if the group fails"),
    "reward": REWARD_SPEC,
    "per_shopper": Int(minimum=1, maximum=100, default=1,
                       description="groups of this offer one shopper may be in (open or "
                                   "complete); failed and left groups do not count"),
    "stock": Int(minimum=0, maximum=10**9, default=None,
                 description="members that may be rewarded (value tier); absent: unlimited"),
    "auto_complete": Bool(default=False,
                          description="fill an expired group with system members and "
                                      "complete it instead of failing it"),
})

GROUPBUYS_SPEC = Map(values=OFFER_SPEC, default={}, max_items=50, key_pattern=OFFER_ID_PATTERN,
                     description="offer id → group-buy offer (createGroupBuy, joinGroupBuy)")


@dataclass(frozen=True)
class GroupOffer:
    """One validated group-buy offer."""

    id: str
    title: str
    size: int
    duration_s: int
    price_fen: int
    cost: dict[str, int]
    reward: Reward
    per_shopper: int
    stock: int | None
    auto_complete: bool

    @property
    def stock_ref(self) -> str:
        return f"{STOCK_PREFIX}{self.id}"


def build_offers(d: Mapping[str, Any]) -> dict[str, GroupOffer]:
    """The offers of an already validated and cross-checked game config."""
    return {oid: GroupOffer(id=oid, title=o["title"], size=o["size"],
                            duration_s=o["duration_s"], price_fen=o["price_fen"],
                            cost=dict(o["cost"]), reward=build_reward(o["reward"]),
                            per_shopper=o["per_shopper"], stock=o["stock"],
                            auto_complete=o["auto_complete"])
            for oid, o in (d.get("groupbuys") or {}).items()}


def check_offers(d: Mapping[str, Any]) -> Problems:
    """Currencies, items and coupons an offer names exist."""
    problems: Problems = []
    currencies = d.get("currencies", {})
    for oid, offer in (d.get("groupbuys") or {}).items():
        path = f"$.groupbuys.{oid}"
        problems += unknown_currencies(offer["cost"], currencies, f"{path}.cost")
        problems += reward_problems(offer["reward"], f"{path}.reward", dict(d))
    return problems


def _stock(config: GameConfig) -> dict[str, int]:
    return {o.stock_ref: o.stock for o in config.groupbuys.values() if o.stock is not None}


GROUPBUYS = Section(name="groupbuy", fields={"groupbuys": GROUPBUYS_SPEC},
                    build=lambda d: {"groupbuys": build_offers(d)}, check=check_offers,
                    stock=_stock)


@dataclass(frozen=True, kw_only=True)
class GroupBuysPart(ConfigPart):
    """The group-buy offers of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = GROUPBUYS
    groupbuys: dict[str, GroupOffer] = field(default_factory=dict)


class GroupNotFound(DomainError):
    """No such group in this game (also: a code of another merchant or game)."""

    code = "group_not_found"
    kind = Refusal.NOT_FOUND

    def __init__(self, group: str) -> None:
        super().__init__("no such group", group=group)


class GroupFull(DomainError):
    """Every seat is taken (the group completed)."""

    code = "group_full"
    kind = Refusal.CONFLICT

    def __init__(self, group: str, size: int) -> None:
        super().__init__("this group is full", group=group, size=size)


class GroupExpired(DomainError):
    """The group's time ran out before it filled."""

    code = "group_expired"
    kind = Refusal.CONFLICT

    def __init__(self, group: str, expires_at: int) -> None:
        super().__init__("this group has expired", group=group, expires_at=expires_at)


class AlreadyInGroup(DomainError):
    code = "already_in_group"
    kind = Refusal.CONFLICT

    def __init__(self, group: str) -> None:
        super().__init__("you are already a member of this group", group=group)


class GroupLimitReached(DomainError):
    """The shopper is already in ``per_shopper`` groups of this offer."""

    code = "group_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, offer: str, limit: int) -> None:
        super().__init__("you are in as many groups of this offer as allowed",
                         offer=offer, per_shopper=limit)


class CannotLeaveGroup(DomainError):
    """Leaving is for members other than the opener, while the group is open."""

    code = "cannot_leave_group"
    kind = Refusal.CONFLICT

    def __init__(self, group: str, reason: str) -> None:
        super().__init__(f"you cannot leave this group: {reason}", group=group, reason=reason)


class GroupOfferSoldOut(DomainError):
    """The offer's stock cannot reward another full group."""

    code = "groupbuy_sold_out"
    kind = Refusal.CONFLICT

    def __init__(self, offer: str, left: int, pending: int = 0) -> None:
        message = ("this offer is sold out for now: some of its units are held by grants "
                   "still being settled") if pending > 0 else "this offer is sold out"
        super().__init__(message, offer=offer, left=left, **stock_pending_details(pending))


class GroupBuyBusy(DomainError):
    """Another group-buy action of this shopper on this offer is still running."""

    code = "groupbuy_in_progress"
    kind = Refusal.CONFLICT

    def __init__(self, offer: str) -> None:
        super().__init__("another group-buy action of yours on this offer is running; retry",
                         offer=offer, retry_after=1)
