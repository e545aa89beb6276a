"""``petbox experiment put|list|show|ship|stop|results`` against the test database (SQLite
and PostgreSQL), and ``petbox verify-draw`` on a draw an experiment arm decided."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner, Result

from gameserver.cli.main import main
from gameserver.db.database import Database
from gameserver.games import parse_config
from gameserver.ops.provision import create_merchant, publish_config
from mechanics import boxes
from mechanics.pet import new_player
from tests.integration.test_experiments_http import AB_CONFIG, EXPERIMENT, NOW, WEIGHT

SEED = "5e" * 32


async def petbox(db_url: str, tmp_path: Path, *args: str) -> Result:
    env = {"PETBOX_DATABASE_URL": db_url, "PETBOX_DATA_DIR": str(tmp_path / "data")}
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


async def test_experiment_commands(db: Database, db_url: str, tmp_path: Path) -> None:
    await create_merchant(db, "shop", NOW)
    await publish_config(db, "shop", "squirrel", AB_CONFIG, NOW)
    body = tmp_path / "exp.json"
    # the CLI runs on the real clock: a stops_at far ahead, so the list reads running
    body.write_text(json.dumps(EXPERIMENT | {"salt": "fixed-salt", "stops_at": 4_000_000_000}))

    put = await petbox(db_url, tmp_path, "experiment", "put", "shop", "squirrel", "scarce",
                       str(body))
    assert put.output == "shop/squirrel v2 published: experiment scarce: put\n", put.output
    listed = await petbox(db_url, tmp_path, "experiment", "list", "shop", "squirrel")
    assert listed.output == "scarce\trunning\tcontrol 50%, scarce 50%\tScarcer rare\n"
    shown = await petbox(db_url, tmp_path, "experiment", "show", "shop", "squirrel", "scarce")
    assert json.loads(shown.output)["salt"] == "fixed-salt"
    preview = await petbox(db_url, tmp_path, "experiment", "ship", "shop", "squirrel",
                           "scarce", "scarce")
    assert f"changed  {WEIGHT}: 50 → 10" in preview.output
    assert preview.output.endswith("(nothing published: run again with --confirm)\n")
    results = await petbox(db_url, tmp_path, "experiment", "results", "shop", "squirrel",
                           "scarce")
    assert json.loads(results.output)["exposed"] == {"control": 0, "scarce": 0}
    stopped = await petbox(db_url, tmp_path, "experiment", "stop", "shop", "squirrel",
                           "scarce")
    assert stopped.output == "shop/squirrel v3 published: experiment scarce: stop\n"
    shipped = await petbox(db_url, tmp_path, "experiment", "ship", "shop", "squirrel",
                           "scarce", "scarce", "--confirm")
    assert shipped.output == "shop/squirrel v4 published: experiment scarce: ship arm scarce\n"
    again = await petbox(db_url, tmp_path, "experiment", "stop", "shop", "squirrel", "scarce")
    assert again.exit_code == 1 and "shipped" in again.output


def test_verify_draw_uses_the_arm_table(tmp_path: Path) -> None:
    raw = AB_CONFIG | {"experiments": {"scarce": EXPERIMENT | {"salt": "fixed-salt"}}}
    config = parse_config(raw)
    arm = config.experiments["scarce"].configs["scarce"]
    tz = ZoneInfo("Asia/Shanghai")
    drawn = boxes.draw(new_player(arm, NOW), boxes.DrawBox("forest", 10, "c"), NOW,
                       boxes.BoxContext(SEED, {}, tz, arm="scarce/scarce"), arm)
    records = [dict(r, server_seed=SEED) for r in drawn.response["draws"]]
    assert {r["arm"] for r in records} == {"scarce/scarce"}
    cfg, recs = tmp_path / "config.json", tmp_path / "draws.json"
    cfg.write_text(json.dumps(raw))
    recs.write_text(json.dumps(records))
    ok = CliRunner().invoke(main, ["verify-draw", str(cfg), str(recs)])
    assert ok.exit_code == 0 and "10 of 10 draws verified" in ok.output, ok.output
    control = [dict(r, arm="scarce/control") for r in records]
    recs.write_text(json.dumps(control))
    wrong = CliRunner().invoke(main, ["verify-draw", str(cfg), str(recs)])
    assert wrong.exit_code == 1 and "0 of 10 draws verified" in wrong.output
