"""Group buy (拼团): pure rules of a group and of each member's side, time as argument.

A group is an aggregate (kind ``groupbuy``, id = its share code). Every action on it is
a two-commit action (docs/architecture.md, "Aggregates"):

- the **gate** rules (:func:`open_group`, :func:`join_group`, :func:`leave_group`,
  :func:`expire_group`) change the group and say what each shopper is owed: the acting
  shopper (``owed``) and, when a group completes or fails, every other member
  (``others``, each under a key of its own, so each member's side applies once);
- the **member** rules (:func:`apply_effect`) apply one owed record to one shopper:
  pay to join, get the reward on completion, get the payment back on failure or leave.
  They never refuse (a commit that follows a gate must not): a cost the wallet no
  longer covers becomes a debt, a reward over a balance's maximum is clamped, a coupon
  or offer unit that is gone is skipped and reported.

A member's records may arrive in any order after a crash (the completion before the
join that led to it, say): each rule reads the member's entry for the group and does
only what is still due, so the result is the same in every order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from economy.config import GameConfig
from economy.errors import InsufficientFunds, InvalidInput
from economy.groupbuy import (
    AlreadyInGroup,
    CannotLeaveGroup,
    GroupExpired,
    GroupFull,
    GroupLimitReached,
    GroupNotFound,
    GroupOffer,
    GroupOfferSoldOut,
)
from economy.rewards import Reward, build_reward
from mechanics.aggregate import OwedOther, SharedOutcome
from mechanics.grants import Effects, charge, clawback, give_back, grant
from mechanics.groupbuystate import MyGroup
from mechanics.masking import masked_id
from mechanics.outcome import Outcome, StockHold, ValueGrant
from mechanics.state import PlayerState, new_player

KIND = "groupbuy"
"""The aggregate kind of a group."""
JOIN, DONE, FAILED, LEAVE = ("groupbuy_join", "groupbuy_done", "groupbuy_failed",
                             "groupbuy_leave")
"""The owed records' effects: joined (or opened), completed, failed, left."""
SYSTEM_USER = "~system"
"""Who the expiry sweep acts as at the group (not a valid shopper id: no clash)."""
EXPIRE_KEY = "groupbuy.expire"
"""The sweep's key at a group: every host's pass of one group is one commit."""
KEEP_CLOSED = 20
"""Failed, left and refunded groups a shopper's slice keeps for their view (the newest);
complete ones are kept apart (:func:`_needed`)."""
COMPLETE_KEEP_S = 30 * 86_400
"""A complete group of an offer the config no longer has stays this long after its
deadline (the flash sale's window for settled holds): should the offer come back, its
limit still counts the group. A complete group of a configured offer is never dropped."""


def member_key(group: str, effect: str) -> str:
    """The key a member's side of a completion or failure commits under: one per group
    and effect (``.`` is outside the client keys' alphabet: no clash with a request)."""
    return f"{effect}.{group}"


@dataclass
class Group:
    """One group: who is in it, until when, and how it ended."""

    offer: str
    opener: str
    size: int
    created_at: int
    expires_at: int
    members: list[tuple[str, int]] = field(default_factory=list)
    """(user, joined at), the opener first"""
    state: str = "open"
    """``open``, ``complete`` or ``failed``"""
    closed_at: int = 0
    system: int = 0
    """seats filled with system members on expiry (``auto_complete``)"""
    gone: list[str] = field(default_factory=list)
    """members who left: they may not join again (their side already gave back)"""

    def to_wire(self) -> dict[str, Any]:
        return {"o": self.offer, "u": self.opener, "n": self.size, "c": self.created_at,
                "e": self.expires_at, "m": [list(m) for m in self.members], "s": self.state,
                "x": self.closed_at, "y": self.system, "g": self.gone}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Group:
        return cls(raw["o"], raw["u"], raw["n"], raw["c"], raw["e"],
                   [(m[0], m[1]) for m in raw["m"]], raw["s"], raw["x"], raw["y"],
                   list(raw.get("g", ())))

    def users(self) -> list[str]:
        return [u for u, _ in self.members]

    def seats_left(self) -> int:
        return max(0, self.size - len(self.members) - self.system)

    def settled_state(self, auto_complete: bool, now: int) -> str:
        """The state as decided at ``now``: an open group past its expiry has failed
        (or, with auto-complete, completed) even before the sweep records it."""
        if self.state == "open" and now >= self.expires_at:
            return "complete" if auto_complete else "failed"
        return self.state


def group_view(group: Group, gid: str, offer: GroupOffer, now: int,
               me: str | None = None) -> dict[str, Any]:
    """What ``getGroupBuy`` (and the gate's response) shows of a group."""
    state = group.settled_state(offer.auto_complete, now)
    members = [{"user": masked_id(u), "joined_at": at, "opener": u == group.opener,
                "me": u == me} for u, at in group.members]
    members += [{"user": "system", "joined_at": group.closed_at, "opener": False,
                 "me": False, "system": True}] * group.system
    return {"group": gid, "code": gid, "offer": group.offer, "title": offer.title,
            "size": group.size, "members": members, "member_count": len(members),
            "seats_left": group.seats_left() if state == "open" else 0, "state": state,
            "created_at": group.created_at, "expires_at": group.expires_at,
            "price_fen": offer.price_fen, "server_time": now}


def groups_in(state: PlayerState | None, offer: str) -> int:
    """Groups of ``offer`` the shopper is in (open or complete): what ``per_shopper``
    bounds, for the offer's whole life (the slice never drops a complete group of a
    configured offer, see :func:`_needed`)."""
    if state is None:
        return 0
    return sum(1 for g in state.groupbuys.values()
               if g.offer == offer and g.state in ("open", "complete"))


def check_join(state: PlayerState | None, offer: GroupOffer, config: GameConfig,
               now: int) -> int:
    """Refuse, before the gate, a shopper who cannot pay or is at the per-shopper limit
    (as their committed state says); returns the groups of the offer they are in."""
    wallet = state.wallet if state is not None else new_player(config, now).wallet
    for cid, amount in sorted(offer.cost.items()):
        if wallet.get(cid, 0) < amount:
            raise InsufficientFunds(cid, wallet.get(cid, 0), amount)
    mine = groups_in(state, offer.id)
    if mine >= offer.per_shopper:
        raise GroupLimitReached(offer.id, offer.per_shopper)
    return mine


def check_stock(offer: GroupOffer, left: int | None, pending: int = 0) -> None:
    """Refuse to open a group the offer's stock could not reward in full; ``pending``
    units, held by grants in flight, may come back (the refusal says so)."""
    if offer.stock is not None and left is not None and left < offer.size:
        raise GroupOfferSoldOut(offer.id, left, pending)


def _owed(effect: str, gid: str, offer: GroupOffer, group: Group,
          **extra: Any) -> dict[str, Any]:
    return {"effect": effect, "group": gid, "offer": offer.id,
            "expires_at": group.expires_at, **extra}


def _reward_json(offer: GroupOffer) -> dict[str, Any]:
    return offer.reward.to_json()


def _others(group: Group, gid: str, offer: GroupOffer, effect: str,
            but: str | None = None) -> tuple[OwedOther, ...]:
    extra = {"reward": _reward_json(offer)} if effect == DONE else {}
    return tuple(OwedOther(u, member_key(gid, effect), _owed(effect, gid, offer, group, **extra))
                 for u in group.users() if u != but)


def open_group(current: Group | None, gid: str, offer: GroupOffer, user: str,
               now: int) -> SharedOutcome:
    """The gate of ``createGroupBuy``: a new group with its opener as first member."""
    if current is not None:  # the id comes from the request's key: a clash is a bug
        raise InvalidInput("this group id is taken; retry with another Idempotency-Key",
                           field="Idempotency-Key")
    group = Group(offer.id, user, offer.size, now, now + offer.duration_s, [(user, now)])
    response = group_view(group, gid, offer, now, user)
    owed = _owed(JOIN, gid, offer, group, role="opener", cost=dict(offer.cost),
                 complete=False, response=response)
    return SharedOutcome(group, response, {"ev": "open", "u": user}, owed)


def join_group(current: Group | None, gid: str, offer: GroupOffer, user: str,
               now: int) -> SharedOutcome:
    """The gate of ``joinGroupBuy``: take a seat; the last seat completes the group and
    owes every member the reward."""
    if current is None or current.offer != offer.id:
        raise GroupNotFound(gid)
    if user in current.users() or user in current.gone:
        raise AlreadyInGroup(gid)
    if current.state == "complete" or current.seats_left() == 0:
        raise GroupFull(gid, current.size)
    if current.state == "failed" or now >= current.expires_at:
        raise GroupExpired(gid, current.expires_at)
    group = Group(current.offer, current.opener, current.size, current.created_at,
                  current.expires_at, [*current.members, (user, now)], gone=current.gone)
    complete = group.seats_left() == 0
    others: tuple[OwedOther, ...] = ()
    if complete:
        group.state, group.closed_at = "complete", now
        others = _others(group, gid, offer, DONE, but=user)
    response = group_view(group, gid, offer, now, user)
    owed = _owed(JOIN, gid, offer, group, role="member", cost=dict(offer.cost),
                 complete=complete, response=response,
                 reward=_reward_json(offer) if complete else None)
    record = {"ev": "complete" if complete else "join", "u": user}
    return SharedOutcome(group, response, record, owed, others)


def leave_group(current: Group | None, gid: str, offer: GroupOffer, user: str,
                now: int) -> SharedOutcome:
    """The gate of ``leaveGroupBuy``: a member other than the opener gives their seat
    back while the group is open; what they paid is given back."""
    if current is None or current.offer != offer.id or user not in current.users():
        raise GroupNotFound(gid)
    if current.state != "open":
        raise CannotLeaveGroup(gid, f"the group is {current.state}")
    if now >= current.expires_at:
        raise GroupExpired(gid, current.expires_at)
    if user == current.opener:
        raise CannotLeaveGroup(gid, "the opener stays until the group fills or expires")
    group = Group(current.offer, current.opener, current.size, current.created_at,
                  current.expires_at, [m for m in current.members if m[0] != user],
                  gone=[*current.gone, user])
    response = group_view(group, gid, offer, now, user)
    owed = _owed(LEAVE, gid, offer, group, response=response)
    return SharedOutcome(group, response, {"ev": "leave", "u": user}, owed)


class NotDue(Exception):
    """The sweep found nothing to do at a group (not expired yet, already closed, gone)."""


def expire_group(current: Group | None, gid: str, offer: GroupOffer,
                 now: int) -> SharedOutcome:
    """The sweep's gate: an open group past its expiry fails (every member is owed their
    payment back), or with ``auto_complete`` is filled with system members and completes
    (every member is owed the reward). Raises :class:`NotDue` otherwise."""
    if current is None or current.state != "open" or now < current.expires_at:
        raise NotDue(gid)
    group = Group(current.offer, current.opener, current.size, current.created_at,
                  current.expires_at, list(current.members), closed_at=now,
                  gone=current.gone)
    if offer.auto_complete:
        group.state, group.system = "complete", current.seats_left()
        others = _others(group, gid, offer, DONE)
    else:
        group.state = "failed"
        others = _others(group, gid, offer, FAILED)
    response = {"group": gid, "offer": offer.id, "state": group.state,
                "members": group.users(), "system": group.system}
    return SharedOutcome(group, response, {"ev": group.state, "u": SYSTEM_USER}, None, others)


# -- the member's side (the second commit) ---------------------------------------------


@dataclass(frozen=True)
class Scarce:
    """Limited refs the value tier says are gone (coupons, offers' stock)."""

    coupons: frozenset[str] = frozenset()
    offers: frozenset[str] = frozenset()


def apply_effect(state: PlayerState | None, owed: dict[str, Any], now: int,
                 config: GameConfig, scarce: Scarce = Scarce()) -> Outcome:
    """Apply one owed record of a group to its shopper. Never refuses."""
    new = state.copy() if state is not None else new_player(config, now)
    fx = Effects()
    effect = owed["effect"]
    entry = new.groupbuys.get(owed["group"])
    body: dict[str, Any]
    if effect == JOIN:
        body = _joined(new, entry, owed, now, config, fx, scarce)
    elif effect == DONE:
        body = _completed(new, entry, owed, now, config, fx, scarce)
    else:  # FAILED, LEAVE: the payment goes back
        body = _ended(new, entry, owed, now, "failed" if effect == FAILED else "left", fx)
    _prune(new, now, config)
    new.last_seen = now
    body["wallet"] = dict(new.wallet)
    return Outcome(state=new, response=body, ledger=fx.ledger, events=fx.events,
                   reservations=fx.reservations, grants=fx.grants)


def _reward(new: PlayerState, entry: MyGroup, owed: dict[str, Any], config: GameConfig,
            fx: Effects, scarce: Scarce) -> dict[str, Any]:
    """Grant the completion reward once; the offer's unit comes from the value tier."""
    if entry.rewarded:
        return {"granted": False, "reason": "already"}
    offer = config.groupbuys.get(owed["offer"])
    reason = f"groupbuy:{owed['group']}"
    if offer is not None and offer.stock is not None:
        if offer.id in scarce.offers:
            fx.events.append({"type": "groupbuy_sold_out", "group": owed["group"]})
            return {"granted": False, "reason": "sold_out"}
        fx.reservations.append(StockHold(offer.stock_ref, 1))
        fx.grants.append(ValueGrant(offer.stock_ref, "groupbuy", reason,
                                    {"group": owed["group"], "offer": offer.id}))
    reward: Reward = build_reward({"currency": {}, "items": {}, "coupon": "",
                                   **(owed.get("reward") or {})})
    granted = grant(new, reward, reason, config, fx, coupons_out=scarce.coupons)
    entry.rewarded = True
    entry.given = Reward(dict(granted["currency"]), dict(granted["items"]),
                         reward.coupon if "coupons" in granted else "").to_json()
    return {"granted": True, **granted}


def _joined(new: PlayerState, entry: MyGroup | None, owed: dict[str, Any], now: int,
            config: GameConfig, fx: Effects, scarce: Scarce) -> dict[str, Any]:
    body = dict(owed["response"])
    if entry is None:
        entry = MyGroup(owed["offer"], owed["role"], "open", owed["expires_at"], now, {})
        new.groupbuys[owed["group"]] = entry
    if entry.state in ("open", "complete") and not entry.paid:
        # charged in full, debt included: a refund gives back the lot, the debt first
        charge(new, owed["cost"], f"groupbuy:{owed['group']}", fx)
        entry.paid = dict(owed["cost"])
    # else: the group failed or the shopper left before this record applied: no charge
    if owed["complete"]:
        entry.state = "complete"
        body["reward"] = _reward(new, entry, owed, config, fx, scarce)
    return body


def _completed(new: PlayerState, entry: MyGroup | None, owed: dict[str, Any], now: int,
               config: GameConfig, fx: Effects, scarce: Scarce) -> dict[str, Any]:
    if entry is None:  # the join's own record has not applied yet: it will charge
        entry = MyGroup(owed["offer"], "member", "complete", owed["expires_at"], now, {})
        new.groupbuys[owed["group"]] = entry
    entry.state = "complete"
    return {"group": owed["group"], "state": "complete",
            "reward": _reward(new, entry, owed, config, fx, scarce)}


def _ended(new: PlayerState, entry: MyGroup | None, owed: dict[str, Any], now: int,
           state: str, fx: Effects) -> dict[str, Any]:
    if entry is None:  # the join's record comes later and then charges nothing
        new.groupbuys[owed["group"]] = MyGroup(owed["offer"], "member", state,
                                               owed["expires_at"], now, {})
        return _ended_body(owed, state, {})
    refunded: dict[str, int] = {}
    if entry.state == "open":
        refunded = dict(entry.paid)
        give_back(new, entry.paid, f"groupbuy:{owed['group']}:{state}", fx)
        entry.paid, entry.state = {}, state
    return _ended_body(owed, state, refunded)


def _ended_body(owed: dict[str, Any], state: str, refunded: dict[str, int]) -> dict[str, Any]:
    """A leave's reply is the group as the leave left it (still open), with what came
    back; a failure's record has no reply of its own."""
    body = dict(owed.get("response") or {"group": owed["group"], "state": state})
    body["refunded"] = refunded
    return body


def _needed(group: MyGroup, now: int, config: GameConfig) -> bool:
    """The entry is still needed by a rule, not only by the shopper's view: an open group
    (its failure or leave refunds from it) and a complete one (``per_shopper`` counts it
    for the offer's whole life, and a refund of its purchase takes the reward back from
    it). Complete entries stay bounded: the limit keeps them to ``per_shopper`` per
    offer, refunded ones no longer count, and those of a removed offer go after
    :data:`COMPLETE_KEEP_S`."""
    if group.state == "open":
        return True
    if group.state != "complete":
        return False
    return group.offer in config.groupbuys or now < group.expires_at + COMPLETE_KEEP_S


def _prune(new: PlayerState, now: int, config: GameConfig) -> None:
    """Keep what a rule needs (:func:`_needed`) and the newest other closed groups."""
    closed = sorted((g.at, gid) for gid, g in new.groupbuys.items()
                    if not _needed(g, now, config))
    for _, gid in closed[:-KEEP_CLOSED] if len(closed) > KEEP_CLOSED else []:
        del new.groupbuys[gid]


def refund_completed(state: PlayerState | None, group: str, now: int,
                     config: GameConfig) -> Outcome:
    """A completed group's purchase was refunded (``ingestOrder``, status refunded, with
    the sku ``groupbuy:<group>``): what the reward gave is taken back as far as it is
    unspent (the rest becomes a debt; nothing a limit kept it from giving, no coupon that
    was out of stock, whatever the offer's reward says now) and the group no longer
    counts toward the per-shopper limit.
    Honoured at any time while the config has the offer (the entry is kept for it).
    Idempotent: a second refund of the group changes nothing."""
    new = state.copy() if state is not None else new_player(config, now)
    fx = Effects()
    entry = new.groupbuys.get(group)
    if entry is None or entry.state != "complete":
        return Outcome(state=new, response={"group": group, "refunded": False})
    offer = config.groupbuys.get(entry.offer)
    debt: dict[str, int] = {}
    reason = f"groupbuy:{group}:refund"
    if entry.rewarded and entry.given is not None:
        debt = clawback(new, build_reward({"currency": {}, "items": {}, "coupon": "",
                                           **entry.given}), 1, reason, fx)
    elif entry.rewarded and offer is not None:  # rewarded before ``given`` was kept
        debt = clawback(new, offer.reward, 1, reason, fx)
    entry.state, entry.rewarded = "refunded", False
    new.last_seen = now
    return Outcome(state=new, response={"group": group, "refunded": True, "debt": debt},
                   ledger=fx.ledger, events=fx.events)


SKU_PREFIX = "groupbuy:"
"""An order of a group's purchase names the group among its skus: ``groupbuy:<code>``."""


def order_refunded(state: PlayerState, skus: tuple[str, ...], now: int,
                   config: GameConfig) -> Outcome | None:
    """``ingestOrder``'s hook: a refunded order naming a complete group
    (sku ``groupbuy:<code>``) takes that group's reward back (:func:`refund_completed`).
    A group named more than once is refunded and answered once, in the order first
    named: a member has one seat in a group, so a repeat is the same seat (a second
    answer would say ``"refunded": false`` and read as a failure).
    None for anything else (no such sku, a game without group buy)."""
    groups = list(dict.fromkeys(s[len(SKU_PREFIX):] for s in skus if s.startswith(SKU_PREFIX)))
    if not groups or not config.groupbuys:
        return None
    ledger: list[Any] = []
    events: list[dict[str, Any]] = []
    done = []
    for gid in groups:
        out = refund_completed(state, gid, now, config)
        state, ledger, events = out.state, ledger + out.ledger, events + out.events
        done.append(out.response)
    return Outcome(state=state, response={"groups": done}, ledger=ledger, events=events)


def groupbuys_view(state: PlayerState, config: GameConfig, now: int,
                   tz: Any) -> list[dict[str, Any]] | None:
    """``getPlayer``'s ``groupbuys``: the shopper's groups, open ones first (None in a
    game without group buy)."""
    if not config.groupbuys:
        return None
    rows = sorted(state.groupbuys.items(), key=lambda kv: (kv[1].state != "open", -kv[1].at))
    return [{"group": gid, "offer": g.offer, "role": g.role, "state": g.state,
             "expires_at": g.expires_at, "joined_at": g.at, "paid": dict(g.paid),
             "rewarded": g.rewarded} for gid, g in rows]


def rename_member(group: Group, user: str, alias: str) -> Group | None:
    """``group`` naming ``alias`` wherever it named ``user`` (opener, member, gone), or None
    when it does not name them (``erasePlayer``, docs/privacy.md)."""
    if user != group.opener and user not in group.users() and user not in group.gone:
        return None

    def swap(u: str) -> str:
        return alias if u == user else u

    return replace(group, opener=swap(group.opener),
                   members=[(swap(u), at) for u, at in group.members],
                   gone=[swap(u) for u in group.gone])
