"""The action path's shape: one caller of ``Store.run``, one binder, rooms that import
only the shared handler module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GAMESERVER = ROOT / "gameserver"


def _calls_of(attr: str) -> dict[str, list[int]]:
    """Files (relative) and lines of every ``<something>.store.run(`` / ``store.run(``."""
    found: dict[str, list[int]] = {}
    for path in sorted(GAMESERVER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "run"):
                continue
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == attr:
                found.setdefault(str(path.relative_to(ROOT)), []).append(node.lineno)
    return found


def test_only_services_calls_store_run() -> None:
    calls = _calls_of("store")
    assert list(calls) == ["gameserver/services.py"], calls
    assert len(calls["gameserver/services.py"]) == 1


def test_one_binder_and_one_rng() -> None:
    """``bind`` and the server's RNG live in services.py; the old binders are gone."""
    for path in sorted(GAMESERVER.rglob("*.py")):
        if path.name == "services.py":
            continue
        text = path.read_text()
        # demo_history.py plays simulated shoppers over HTTP: its seeded RNG picks what
        # the shoppers do (a client's choices), never an outcome of a rule.
        banned = ("def bind(", "def loop_rule(", "def mark_rule(") + (
            () if path.name == "demo_history.py" else ("random.Random(",))
        for old in banned:
            assert old not in text, (path.name, old)


def test_handler_modules_import_only_the_shared_ones() -> None:
    """A room (api/<mechanic>.py) never imports another room; it may import its own
    parts (api/<mechanic>_<part>.py, a large room split along a seam)."""
    shared = {"gameserver.api.common", "gameserver.api.admin_keys",
              "gameserver.api.schemas",  # the response schemas several rooms share
              "gameserver.api.serial",  # one shopper's actions on shared state in turn
              "gameserver.api.merchant_work"}  # merchants' simulations, bounded
    for path in sorted((GAMESERVER / "api").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module
                    and n.module.startswith("gameserver.api.")}
        own = {m for m in imported if m.startswith(f"gameserver.api.{path.stem}_")}
        assert imported - own <= shared, (path.name, imported - own - shared)


def test_the_route_table_lists_every_room() -> None:
    """Every API module exporting Operation rows is in ``ROOMS`` (and only those)."""
    from gameserver.app import ROOMS, all_operations

    with_rows = sorted(p.stem for p in (GAMESERVER / "api").glob("*.py")
                       if "\nOPERATIONS = [" in p.read_text())
    assert sorted(ROOMS) == with_rows
    ids = [op.operation_id for op in all_operations()]
    assert len(ids) == len(set(ids))


def test_cli_modules_do_not_import_each_other_in_a_circle() -> None:
    """cli/main.py registers the command groups' commands; no group imports main."""
    groups = [p for p in (GAMESERVER / "cli").glob("*.py") if p.stem not in ("main", "__main__")]
    assert {p.stem for p in groups} >= {"admin", "common", "experiments", "merchants"}
    for path in groups:
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "gameserver.cli.main" not in modules, path.name


def test_no_sql_in_a_handler() -> None:
    """Handlers call the db layer (gameserver/db/*); none builds or runs a query."""
    for path in sorted((GAMESERVER / "api").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "sqlalchemy" not in modules, path.name
        names = {n.names[0].name for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module == "gameserver.db"}
        assert "models" not in names, path.name


def test_only_a_key_a_shopper_can_send_marks_a_commit_as_theirs() -> None:
    """Who made a player commit is told by its key (analytics count the shopper's own
    commits only): every writer but the shopper commits under a key outside the
    shopper's alphabet, an order's, a merchant's grant, a reminder's, a rule's for
    another shopper (a group's reward, an assist's)."""
    from gameserver.state.keys import by_shopper, system_key
    from mechanics.assist import reward_key
    from mechanics.groupbuy import member_key

    assert by_shopper("feed-1") and by_shopper("Az09_-" * 10)
    made_for = [system_key("order", "refunded-o1"), system_key("merchant", "k" * 64),
                system_key("rem", "hungry-5"), system_key("hold", "end-h1"),
                reward_key("abcdefghij"), member_key("g1", "groupbuy_done")]
    assert not any(by_shopper(key) for key in made_for), made_for
