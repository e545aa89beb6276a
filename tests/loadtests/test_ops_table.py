"""loadtests/ops.py mirrors the server by hand (loadtests never imports it): every
shopper operation the server routes is in the table with its method and path, so a
recording of any of them can be replayed."""

from __future__ import annotations

from gameserver.app import all_operations
from loadtests.ops import OPERATIONS, SERVED_NOW


def test_every_shopper_operation_is_in_the_table_as_the_server_routes_it() -> None:
    served = {o.operation_id: (o.method, o.path) for o in all_operations()
              if o.auth in ("player", "public")
              or (o.auth == "none" and o.path.startswith("/v1/games/"))}
    table = {k: (op.method, op.path) for k, op in OPERATIONS.items()}
    assert {k: table.get(k) for k in served} == served
    # and the two the load tester sends otherwise: a session, a merchant's signed order
    assert set(table) - set(served) == {"createSession", "ingestOrder"}
    assert set(SERVED_NOW) == set(table)
