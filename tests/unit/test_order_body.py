"""``ingestOrder``'s body as the handler reads it (``decode_json``, then ``checked``
against ``ORDER_BODY``): integers as JSON Schema has them, the amount's limit named, and an
id's error states the length it really accepts."""

from __future__ import annotations

from typing import Any

import pytest

from economy.errors import InvalidInput
from gameserver.api.common import checked, decode_json
from gameserver.api.orders import ORDER_BODY

BASE = (b'{"merchant": "shop", "game": "squirrel", "user": "alice", "order_id": "o1", '
        b'"status": "paid"')


def problems(raw: bytes) -> tuple[str, list[dict[str, str]]]:
    """The 422's message and problems for ``raw`` (the handler's own two steps)."""
    with pytest.raises(InvalidInput) as err:
        checked(ORDER_BODY, decode_json(raw))
    return err.value.message, err.value.details["problems"]


@pytest.mark.parametrize(("number", "read"), [(b"100.0", 100), (b"1e3", 1000),
                                              (b"1E+3", 1000)])
def test_an_integral_float_reads_as_the_integer(number: bytes, read: int) -> None:
    """JSON Schema's integers, as every integer field: senders that already send
    ``100.0`` keep working (a retry of an applied order must not start failing)."""
    body = checked(ORDER_BODY, decode_json(BASE + b', "amount_fen": %s}' % number))
    assert body["amount_fen"] == read and type(body["amount_fen"]) is int


def test_a_fractional_amount_is_refused() -> None:
    message, found = problems(BASE + b', "amount_fen": 99.5}')
    assert [p["path"] for p in found] == ["$.amount_fen"]
    assert message.startswith("request body is invalid: $.amount_fen ")


def test_integers_are_read_as_before() -> None:
    body = checked(ORDER_BODY, decode_json(BASE + b', "amount_fen": 10000000000, '
                                                  b'"paid_at": 1700000000}'))
    assert (body["amount_fen"], body["paid_at"]) == (10**10, 1_700_000_000)


def test_an_amount_above_the_limit_is_refused_naming_field_and_limit() -> None:
    assert ORDER_BODY.schema()["properties"]["amount_fen"]["maximum"] == 10**10
    message, found = problems(BASE + b', "amount_fen": 10000000001}')
    assert found == [{"path": "$.amount_fen", "message": "must be ≤ 10000000000"}]
    assert message == "request body is invalid: $.amount_fen must be ≤ 10000000000"


@pytest.mark.parametrize(("field", "value", "said"), [
    ("refund_id", "R" * 65, "length must be 1..64, is 65"),
    ("refund_id", "", "length must be 1..64, is 0"),
    ("order_id", "o" * 65, "length must be 1..64, is 65"),
])
def test_an_id_of_the_wrong_length_is_told_the_real_range(field: str, value: str,
                                                          said: str) -> None:
    raw: dict[str, Any] = {"merchant": "shop", "game": "squirrel", "user": "alice",
                           "order_id": "o1", "status": "refunded", field: value}
    with pytest.raises(InvalidInput) as err:
        checked(ORDER_BODY, raw)
    assert err.value.details["problems"] == [{"path": f"$.{field}", "message": said}]
