"""Domain errors carry facts; the one HTTP table gives every one the status it had.

The expected statuses below are the ones each error carried itself before the
mapping moved to ``gameserver.http.errors.HTTP_STATUS``: a response's status must not
change because of where the number is kept.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from economy.errors import DomainError, Refusal
from gameserver.http.errors import HTTP_STATUS, http_status

# Every module of the three packages is imported, so an error defined anywhere is checked.
PACKAGES = ("economy", "mechanics", "gameserver")

EXPECTED = {
    "bad_request": 400,  # DomainError itself
    "invalid_input": 422,
    "config_invalid": 422,
    "experiment_not_found": 404,
    "experiment_locked": 409,
    "experiment_closed": 409,
    "unknown_arm": 422,
    "not_found": 404,
    "unknown_item": 404,
    "insufficient_funds": 409,
    "insufficient_items": 409,
    "balance_limit": 409,
    "no_pet": 409,
    "pet_already_adopted": 409,
    "cooldown": 429,
    "feature_disabled": 404,
    "species_retired": 409,
    "action_in_progress": 409,
    "nothing_to_collect": 409,
    "already_checked_in": 409,
    "makeup_not_allowed": 409,
    "makeup_limit_reached": 409,
    "task_limit_reached": 409,
    "task_driven_by_orders": 409,
    "ticket_invalid": 403,
    "ticket_too_early": 409,
    "ticket_reused": 409,
    "ticket_expired": 409,
    "order_wrong_merchant": 422,
    "order_too_old": 422,
    "partial_refunds_off": 422,
    "too_many_refunds": 409,
    "offer_unavailable": 409,
    "offer_sold_out": 409,
    "exchange_limit_reached": 409,
    "insufficient_duplicates": 409,
    "series_closed": 409,
    "draw_limit": 429,
    "series_exhausted": 409,
    "age_restricted": 403,
    "guardian_consent_required": 403,
    "unauthorized": 401,
    "forbidden": 403,
    "idempotency_key_required": 400,
    "idempotency_mismatch": 422,
    "idempotency_in_progress": 409,
    "response_unavailable": 503,
    "busy": 503,
    "overloaded": 503,
    "rate_limited": 429,
    "malformed_json": 400,
    "body_timeout": 400,
    "provision_failed": 409,
    "no_draft": 409,
    "stock_below_taken": 409,
    "idempotency_already_applied": 409,
    "player_not_found": 404,
    "player_erased": 409,
    "erase_unsettled": 409,
    "erase_pending": 409,
    "poll_not_open": 409,
    "poll_closed": 409,
    "unknown_option": 422,
    "vote_limit_reached": 409,
    "not_enough_energy": 409,  # economy.energy, the worked example of a new mechanic
    "coupon_not_found": 404,  # the coupon wallet (gameserver.db.coupons)
    "coupon_expired": 409,
    "coupon_already_redeemed": 409,
    "coupon_void": 409,
    "sale_not_found": 404,  # economy.flashsale
    "not_started": 409,
    "sale_ended": 409,
    "sold_out": 409,
    "not_eligible": 403,
    "purchase_limit_reached": 409,
    "round_not_open": 409,  # economy.rains
    "round_ended": 409,
    "pool_empty": 409,
    "grab_limit_reached": 409,
    "applications_not_open": 409,  # economy.samples
    "applications_closed": 409,
    "already_applied": 409,
    "draw_not_due": 409,
    "not_a_lottery": 409,
    "not_a_winner": 409,
    "already_reviewed": 409,
    "review_closed": 409,
    "assist_not_found": 404,  # economy.assist
    "assist_campaign_closed": 409,
    "assist_open": 409,
    "assist_starts_used": 409,
    "self_assist": 403,
    "assist_complete": 409,
    "assist_expired": 409,
    "already_helped": 409,
    "help_limit_reached": 409,
    "not_new_fan": 403,
    "session_too_young": 429,
    "group_not_found": 404,  # economy.groupbuy
    "group_full": 409,
    "group_expired": 409,
    "already_in_group": 409,
    "group_limit_reached": 409,
    "cannot_leave_group": 409,
    "groupbuy_sold_out": 409,
    "groupbuy_in_progress": 409,
    "season_not_open": 409,  # economy.teams
    "team_full": 409,
    "already_in_team": 409,
    "not_in_team": 409,
    "leave_not_allowed": 409,
    "team_limit_reached": 409,
    "rejoin_too_soon": 429,
    "team_not_found": 404,
    "team_code_required": 422,
}

SPLIT = {("draw_limit", 409)}
"""One code, two statuses: ``draw_limit`` is 429 past the daily cap (Retry-After until
the next local midnight) and 409 past the total cap (waiting never lifts it)."""


def all_domain_errors() -> list[type[DomainError]]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)
    found, todo = [DomainError], [DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in PACKAGES:  # not a test's own error class
                found.append(sub)
    return found


def test_every_kind_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(Refusal)


def test_every_error_keeps_its_status() -> None:
    got = {(cls.code, HTTP_STATUS[cls.kind]) for cls in all_domain_errors()}
    assert got == set(EXPECTED.items()) | SPLIT


@pytest.mark.parametrize("cls", all_domain_errors(), ids=lambda c: c.__name__)
def test_no_error_carries_an_http_status(cls: type[DomainError]) -> None:
    assert not hasattr(cls, "status")


def test_http_status_reads_the_kind_of_an_instance() -> None:
    from economy.errors import InsufficientFunds
    assert http_status(InsufficientFunds("acorn", 1, 2)) == 409
