"""Typed domain errors: facts about a refusal, never transport codes.

Every error a client can cause is a :class:`DomainError` subclass with a stable
``code``, a human ``message``, the facts of the refusal in ``details``, and a
:class:`Refusal` ``kind`` saying what sort of refusal it is. The server turns a
kind into an HTTP status in one table (``gameserver.http.errors.HTTP_STATUS``); nothing
here knows about HTTP. Rules raise these before they have changed anything.

A mechanic declares its own errors next to its config (``economy/<mechanic>.py``)
by subclassing :class:`DomainError` with a new ``code`` and one of the kinds below;
no shared table needs a new line.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, TypeVar


class Refusal(StrEnum):
    """What sort of refusal an error is: the fact the transport maps to its own codes."""

    MALFORMED = "malformed"
    """the request could not be read at all"""
    INVALID = "invalid"
    """readable, but a value breaks a documented rule (shape, range, window)"""
    UNAUTHENTICATED = "unauthenticated"
    """nobody we know is asking"""
    FORBIDDEN = "forbidden"
    """who is asking may not do this (a forged ticket, an age band)"""
    NOT_FOUND = "not_found"
    """it refers to something the game or the server does not have"""
    CONFLICT = "conflict"
    """the current state does not allow it (not enough, already done, closed)"""
    LIMITED = "limited"
    """a rate or per-period cap: the same request may succeed later"""
    UNAVAILABLE = "unavailable"
    """a transient condition on the server's side; retry"""


class DomainError(Exception):
    """A refusal caused by the client's request; never a server fault."""

    code: ClassVar[str] = "bad_request"
    kind: ClassVar[Refusal] = Refusal.MALFORMED

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_body(self) -> dict[str, Any]:
        """The JSON error body of API.md."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def stock_pending_details(pending: int) -> dict[str, int]:
    """What a "sold out" of limited stock says of the units grants in flight hold (they may
    fail and give them back): how many, and while there are some, when to look again
    (``retry_after``: the refusal is only for now)."""
    return {"stock_pending": pending, "retry_after": 1} if pending > 0 else {"stock_pending": 0}


class InvalidInput(DomainError):
    """A body or parameter that does not have the documented shape.

    Its details always list ``problems`` (``[{"path", "message"}]``, as a body that
    fails its schema does): a refusal naming one ``field`` gets that one problem, the
    ``field`` kept beside it for clients that read it."""

    code = "invalid_input"
    kind = Refusal.INVALID

    def __init__(self, message: str, **details: Any) -> None:
        if "problems" not in details:
            where = details.get("field")
            details["problems"] = [{"path": f"$.{where}" if where else "$",
                                    "message": message}]
        super().__init__(message, **details)


class ConfigInvalid(DomainError):
    """A game config with problems; ``details['problems']`` lists each with its JSON path."""

    code = "config_invalid"
    kind = Refusal.INVALID

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"game config has {len(problems)} problem(s)", problems=problems)
        self.problems = problems


class NotFound(DomainError):
    code = "not_found"
    kind = Refusal.NOT_FOUND


class UnknownItem(DomainError):
    """A reference to a food, species, item, task or offer the game does not define."""

    code = "unknown_item"
    kind = Refusal.NOT_FOUND


T = TypeVar("T")


def known_item(items: Mapping[str, T], item_id: str, noun: str, kind: str | None = None,
               *, in_order: bool = False) -> T:
    """``items[item_id]``, or :class:`UnknownItem` ("unknown <noun> '<id>'", kind ``kind``
    or the noun) listing the ids there are: sorted, or as configured with ``in_order``
    (where the order means something, as a rain's rounds)."""
    item = items.get(item_id)
    if item is None:
        raise UnknownItem(f"unknown {noun} {item_id!r}", kind=kind or noun, id=item_id,
                          known=list(items) if in_order else sorted(items))
    return item


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    kind = Refusal.CONFLICT

    def __init__(self, currency: str, have: int, need: int) -> None:
        super().__init__(
            f"not enough {currency}: have {have}, need {need}",
            currency=currency,
            have=have,
            need=need,
        )


class InsufficientItems(DomainError):
    code = "insufficient_items"
    kind = Refusal.CONFLICT

    def __init__(self, item: str, have: int, need: int) -> None:
        super().__init__(f"not enough {item}: have {have}, need {need}", item=item, have=have,
                         need=need)


class BalanceLimit(DomainError):
    """A grant would push a balance over the currency's configured maximum."""

    code = "balance_limit"
    kind = Refusal.CONFLICT

    def __init__(self, currency: str, have: int, add: int, limit: int) -> None:
        super().__init__(f"{currency} would exceed its limit of {limit}", currency=currency,
                         have=have, add=add, limit=limit)


class NoPet(DomainError):
    code = "no_pet"
    kind = Refusal.CONFLICT

    def __init__(self) -> None:
        super().__init__("adopt a pet first")


class PetAlreadyAdopted(DomainError):
    code = "pet_already_adopted"
    kind = Refusal.CONFLICT

    def __init__(self, species: str) -> None:
        super().__init__(f"this player already has a {species}", species=species)


class Cooldown(DomainError):
    """An action repeated before its cooldown ended."""

    code = "cooldown"
    kind = Refusal.LIMITED

    def __init__(self, action: str, ready_at: int, now: int) -> None:
        super().__init__(f"{action} is cooling down for {ready_at - now} s more", action=action,
                         ready_at=ready_at, retry_after=max(0, ready_at - now))


class SpeciesRetired(DomainError):
    """The pet's species is not in the game's config any more (removed by a version
    published before removals were refused): the pet cannot be fed, played with,
    cleaned or collected from, but nothing it earned is lost, and its owner may adopt
    a pet of a species the game has."""

    code = "species_retired"
    kind = Refusal.CONFLICT

    def __init__(self, species: str) -> None:
        super().__init__(f"this game no longer has the pet's species {species!r}",
                         species=species)


class FeatureDisabled(DomainError):
    """The game's config does not have this feature (no check-in, no play, no produce...)."""

    code = "feature_disabled"
    kind = Refusal.NOT_FOUND

    def __init__(self, feature: str) -> None:
        super().__init__(f"this game has no {feature}", feature=feature)


class NothingToCollect(DomainError):
    code = "nothing_to_collect"
    kind = Refusal.CONFLICT

    def __init__(self, pending_milli: int) -> None:
        super().__init__("the pet has not produced a whole unit yet",
                         pending_milli=pending_milli)


class AlreadyCheckedIn(DomainError):
    code = "already_checked_in"
    kind = Refusal.CONFLICT

    def __init__(self, day: str, next_at: int) -> None:
        super().__init__(f"already checked in on {day}", day=day, next_at=next_at)


class MakeupNotAllowed(DomainError):
    """A makeup (补签) of a day that is not a missed day inside the window."""

    code = "makeup_not_allowed"
    kind = Refusal.CONFLICT

    def __init__(self, day: str, reason: str) -> None:
        super().__init__(f"cannot make up {day}: {reason}", day=day, reason=reason)


class MakeupLimitReached(DomainError):
    code = "makeup_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, day: str, limit: int) -> None:
        super().__init__(f"this cycle already has {limit} made-up day(s)", day=day, limit=limit)


class TaskLimitReached(DomainError):
    code = "task_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, task: str, limit: int, period: str) -> None:
        super().__init__(f"task {task} is done {limit} time(s) this period", task=task,
                         limit=limit, period=period)


class TaskDrivenByOrders(DomainError):
    """A purchase task advances with paid orders, never by a client call."""

    code = "task_driven_by_orders"
    kind = Refusal.CONFLICT

    def __init__(self, task: str) -> None:
        super().__init__(f"task {task} completes with orders", task=task)


class TicketInvalid(DomainError):
    """A task ticket that is missing, forged, or for another task or player."""

    code = "ticket_invalid"
    kind = Refusal.FORBIDDEN

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid task ticket: {reason}", reason=reason)


class TicketTooEarly(DomainError):
    code = "ticket_too_early"
    kind = Refusal.CONFLICT

    def __init__(self, ready_at: int, now: int) -> None:
        super().__init__(f"browse {ready_at - now} s more", ready_at=ready_at,
                         retry_after=max(0, ready_at - now))


class TicketReused(DomainError):
    code = "ticket_reused"
    kind = Refusal.CONFLICT

    def __init__(self, nonce: str) -> None:
        super().__init__("this ticket was already used", nonce=nonce)


class TicketExpired(DomainError):
    code = "ticket_expired"
    kind = Refusal.CONFLICT

    def __init__(self, issued_at: int, reason: str) -> None:
        super().__init__(f"the ticket has expired: {reason}", issued_at=issued_at, reason=reason)


class OrderWrongMerchant(DomainError):
    """An order event whose merchant is not the one that signed it (raised by the server)."""

    code = "order_wrong_merchant"
    kind = Refusal.INVALID

    def __init__(self, merchant: str) -> None:
        super().__init__("the order belongs to another merchant", merchant=merchant)


class OrderTooOld(DomainError):
    """An order older than the window in which order ids are remembered."""

    code = "order_too_old"
    kind = Refusal.INVALID

    def __init__(self, order_id: str, paid_at: int, oldest: int) -> None:
        super().__init__("the order is too old to count", order_id=order_id, paid_at=paid_at,
                         oldest=oldest)


class PartialRefundsOff(InvalidInput):
    """A partial refund (``refund_id``) while this deployment does not accept them yet
    (``PETBOX_PARTIAL_REFUNDS`` off): nothing changes."""

    code = "partial_refunds_off"

    def __init__(self) -> None:
        super().__init__("partial refunds (refund_id) are not accepted yet: they are "
                         "turned on (PETBOX_PARTIAL_REFUNDS) once every host runs a release "
                         "that knows them; until then send a whole refund (no refund_id)",
                         field="refund_id")


class TooManyRefunds(DomainError):
    """A partial refund past the number one order may have (each is remembered)."""

    code = "too_many_refunds"
    kind = Refusal.CONFLICT

    def __init__(self, order_id: str, limit: int) -> None:
        super().__init__(f"this order already had {limit} partial refunds: send what is "
                         "left as a whole refund (no refund_id)", order_id=order_id,
                         limit=limit)


class OfferUnavailable(DomainError):
    code = "offer_unavailable"
    kind = Refusal.CONFLICT

    def __init__(self, offer: str, starts_at: int, ends_at: int) -> None:
        super().__init__(f"offer {offer} is not open now", offer=offer, starts_at=starts_at,
                         ends_at=ends_at)


class OfferSoldOut(DomainError):
    """The offer's global limit, or the stock of the coupon it gives, is used up."""

    code = "offer_sold_out"
    kind = Refusal.CONFLICT

    def __init__(self, offer: str, ref: str) -> None:
        super().__init__(f"offer {offer} is sold out", offer=offer, ref=ref)


class ExchangeLimitReached(DomainError):
    code = "exchange_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, offer: str, limit: int, period: str) -> None:
        super().__init__(f"offer {offer} is limited to {limit} per {period}", offer=offer,
                         limit=limit, period=period)


class InsufficientDuplicates(DomainError):
    code = "insufficient_duplicates"
    kind = Refusal.CONFLICT

    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"not enough duplicates: have {have}, need {need}", have=have,
                         need=need)


# ---- blind boxes (mechanics.boxes)


class SeriesClosed(DomainError):
    """A draw outside the series' open window."""

    code = "series_closed"
    kind = Refusal.CONFLICT

    def __init__(self, series: str, opens_at: int, closes_at: int, now: int) -> None:
        super().__init__(f"series {series!r} is not open now", series=series,
                         opens_at=opens_at, closes_at=closes_at, now=now)


class DrawLimit(DomainError):
    """A per-player daily or total draw cap would be exceeded."""

    code = "draw_limit"
    kind = Refusal.LIMITED

    def __init__(self, series: str, scope: str, cap: int, used: int, asked: int,
                 resets_at: int | None = None, now: int = 0) -> None:
        # A daily cap says when it resets (the next local midnight): without it the
        # answer's Retry-After was 1 s, and clients that honour it asked again and again.
        reset = {} if resets_at is None else {"resets_at": resets_at,
                                              "retry_after": max(1, resets_at - now)}
        super().__init__(f"{scope} draw limit of {cap} reached for {series!r}", series=series,
                         scope=scope, cap=cap, used=used, asked=asked, **reset)


class TotalDrawLimit(DrawLimit):
    """The per-player total draw cap would be exceeded: the same ``draw_limit`` with
    ``scope`` ``total``, but a conflict, not a "slow down". Waiting never lifts it, so it
    must not carry a Retry-After that tells clients to ask again in a second."""

    kind = Refusal.CONFLICT


class SeriesExhausted(DomainError):
    """Duplicate control leaves nothing this player may still draw from the series."""

    code = "series_exhausted"
    kind = Refusal.CONFLICT

    def __init__(self, series: str) -> None:
        super().__init__(f"nothing left for this player to draw in {series!r}", series=series)


class AgeRestricted(DomainError):
    """The session's age band may not draw blind boxes in this game."""

    code = "age_restricted"
    kind = Refusal.FORBIDDEN

    def __init__(self, age_band: str) -> None:
        super().__init__("blind boxes are not available for this age", age_band=age_band)


class GuardianConsentRequired(DomainError):
    """A minor's session needs a guardian's consent before drawing."""

    code = "guardian_consent_required"
    kind = Refusal.FORBIDDEN

    def __init__(self, age_band: str) -> None:
        super().__init__("a guardian's consent is needed to draw", age_band=age_band)
