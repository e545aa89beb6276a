"""``petbox game draft|publish-draft|versions|show|rollback|diff``, ``analytics``, ``export``.

The CLI runs its own event loop, so each command runs in a worker thread against
the test database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from gameserver.cli.main import main
from gameserver.db.database import Database
from gameserver.ops.provision import create_merchant, publish_config
from tests.conftest import BASIC_CONFIG


async def petbox(db_url: str, tmp_path: Path, *args: str) -> Result:
    env = {"PETBOX_DATABASE_URL": db_url, "PETBOX_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, list(args), env=env)


def write(tmp_path: Path, name: str, config: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


async def test_config_commands(db: Database, db_url: str, tmp_path: Path) -> None:
    await create_merchant(db, "shop", 1_767_225_600)
    await publish_config(db, "shop", "squirrel", BASIC_CONFIG, 1_767_225_600)
    bad = copy.deepcopy(BASIC_CONFIG)
    bad["foods"]["snack"]["price"] = {"gold": 1}
    better = copy.deepcopy(BASIC_CONFIG)
    better["foods"]["snack"]["xp"] = 7

    refused = await petbox(db_url, tmp_path, "game", "draft", "shop", "squirrel",
                           write(tmp_path, "bad.json", bad))
    assert refused.exit_code == 1 and "$.foods.snack.price.gold" in refused.output
    nobody = await petbox(db_url, tmp_path, "game", "draft", "ghost", "squirrel",
                          write(tmp_path, "ok.json", better))
    assert nobody.exit_code == 1 and "no merchant" in nobody.output
    stored = await petbox(db_url, tmp_path, "game", "draft", "shop", "squirrel",
                          write(tmp_path, "better.json", better))
    assert stored.exit_code == 0, stored.output
    published = await petbox(db_url, tmp_path, "game", "publish-draft", "shop", "squirrel",
                             "--note", "more xp")
    assert published.output == "published shop/squirrel version 2 (more xp)\n"
    diff = await petbox(db_url, tmp_path, "game", "diff", "shop", "squirrel", "1", "2")
    assert diff.output == "v1 → v2: 1 change(s)\n~ $.foods.snack.xp: 5 → 7\n"
    rolled = await petbox(db_url, tmp_path, "game", "rollback", "shop", "squirrel", "1")
    assert rolled.output == "published shop/squirrel version 3 (rollback to v1)\n"
    shown = await petbox(db_url, tmp_path, "game", "show", "shop", "squirrel", "live")
    assert json.loads(shown.output) == BASIC_CONFIG
    listing = await petbox(db_url, tmp_path, "game", "versions", "shop", "squirrel", "--json")
    body = json.loads(listing.output)
    assert (body["live_version"], [v["version"] for v in body["versions"]]) == (3, [3, 2, 1])
    text = await petbox(db_url, tmp_path, "game", "versions", "shop", "squirrel")
    assert text.output.splitlines()[0].startswith("* v3")
    missing = await petbox(db_url, tmp_path, "game", "rollback", "shop", "squirrel", "9")
    assert missing.exit_code == 1 and "game version not found" in missing.output


async def test_analytics_and_export_commands(db: Database, db_url: str, tmp_path: Path) -> None:
    from gameserver.db import models as m
    from tests.integration.test_analytics import insert_rows, ledger_row

    await create_merchant(db, "shop", 1_767_225_600)
    await publish_config(db, "shop", "squirrel", BASIC_CONFIG, 1_767_225_600)
    await insert_rows(db, m.ledger, [ledger_row(f"u{i}", 1_767_225_600 + i) for i in range(5)])

    report = await petbox(db_url, tmp_path, "analytics", "shop", "squirrel", "--days", "3",
                          "--end", "2026-01-01", "--json")
    assert report.exit_code == 0, report.output
    days = json.loads(report.output)["days"]
    assert [(d["date"], d["dau"]) for d in days] == [
        ("2025-12-30", 0), ("2025-12-31", 0), ("2026-01-01", 5)]
    table = await petbox(db_url, tmp_path, "analytics", "shop", "squirrel", "--days", "1",
                         "--end", "2026-01-01")
    assert "2026-01-01      5      5" in table.output

    first = await petbox(db_url, tmp_path, "export", "shop", "squirrel", "--limit", "3")
    lines = [json.loads(x) for x in first.stdout.splitlines()]
    assert [x["user"] for x in lines[:-1]] == ["u0", "u1", "u2"]
    assert lines[-1]["more"] is True
    assert first.stderr == f"next cursor: {lines[-1]['cursor']}\n"
    rest = await petbox(db_url, tmp_path, "export", "shop", "squirrel", "--cursor",
                        lines[-1]["cursor"])
    assert [json.loads(x).get("user") for x in rest.stdout.splitlines()] == ["u3", "u4", None]
