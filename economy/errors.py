"""Typed domain errors.

Every error a client can cause is a :class:`DomainError` subclass that carries the
facts of the refusal in ``details``. The server maps them to HTTP in one place
(``gameserver.errors``) using ``status``; nothing here knows about HTTP beyond that
number, and rules raise these before they have changed anything.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal caused by the client's request; never a server fault."""

    code: str = "bad_request"
    status: int = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_body(self) -> dict[str, Any]:
        """The JSON error body of API.md."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(DomainError):
    """A body or parameter that does not have the documented shape."""

    code = "invalid_input"
    status = 400


class ConfigInvalid(DomainError):
    """A game config with problems; ``details['problems']`` lists each with its JSON path."""

    code = "config_invalid"
    status = 422

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"game config has {len(problems)} problem(s)", problems=problems)
        self.problems = problems


class NotFound(DomainError):
    code = "not_found"
    status = 404


class UnknownItem(DomainError):
    """A reference to a food, species, item, task or offer the game does not define."""

    code = "unknown_item"
    status = 404


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    status = 409

    def __init__(self, currency: str, have: int, need: int) -> None:
        super().__init__(
            f"not enough {currency}: have {have}, need {need}",
            currency=currency,
            have=have,
            need=need,
        )


class InsufficientItems(DomainError):
    code = "insufficient_items"
    status = 409

    def __init__(self, item: str, have: int, need: int) -> None:
        super().__init__(f"not enough {item}: have {have}, need {need}", item=item, have=have,
                         need=need)


class BalanceLimit(DomainError):
    """A grant would push a balance over the currency's configured maximum."""

    code = "balance_limit"
    status = 409

    def __init__(self, currency: str, have: int, add: int, limit: int) -> None:
        super().__init__(f"{currency} would exceed its limit of {limit}", currency=currency,
                         have=have, add=add, limit=limit)


class NoPet(DomainError):
    code = "no_pet"
    status = 409

    def __init__(self) -> None:
        super().__init__("adopt a pet first")


class PetAlreadyAdopted(DomainError):
    code = "pet_already_adopted"
    status = 409

    def __init__(self, species: str) -> None:
        super().__init__(f"this player already has a {species}", species=species)


class Cooldown(DomainError):
    """An action repeated before its cooldown ended."""

    code = "cooldown"
    status = 429

    def __init__(self, action: str, ready_at: int, now: int) -> None:
        super().__init__(f"{action} is cooling down for {ready_at - now} s more", action=action,
                         ready_at=ready_at, retry_after=max(0, ready_at - now))
