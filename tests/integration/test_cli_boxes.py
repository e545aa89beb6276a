"""``petbox simulate`` and ``petbox verify-draw`` through click, on the demo config."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from gameserver.cli.main import main
from gameserver.games import parse_config
from mechanics import boxes
from mechanics.pet import new_player

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "gameserver" / "examples" / "squirrel-omg.json"
SEED_A, SEED_B = "a" * 64, "b" * 64


def test_simulate_json_is_reproducible() -> None:
    runner = CliRunner()
    args = ["simulate", str(EXAMPLE), "--players", "50", "--draws", "20", "--batch", "10",
            "--seed", "s1", "--json"]
    first = runner.invoke(main, args)
    second = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output == second.output
    report = json.loads(first.output)
    assert report["draws"] == 1000 and report["players"] == 50 and report["batch"] == 10
    assert sum(row["count"] for row in report["items"].values()) == 1000


def test_simulate_refuses_bad_sizes() -> None:
    runner = CliRunner()
    odd = runner.invoke(main, ["simulate", str(EXAMPLE), "--draws", "15", "--batch", "10"])
    assert odd.exit_code == 2 and "multiple of 10" in odd.output
    huge = runner.invoke(main, ["simulate", str(EXAMPLE), "--players", "10000000",
                                "--draws", "100"])
    assert huge.exit_code == 2


def _drawn_and_revealed() -> list[dict[str, object]]:
    config = parse_config(json.loads(EXAMPLE.read_text()))
    ctx = boxes.BoxContext(fresh_seed=SEED_A, stock_left={"coupon_10off": 100},
                           tz=ZoneInfo("Asia/Shanghai"))
    rich = new_player(config, 1_767_225_600)
    rich.wallet["acorn"] = 10_000
    drawn = boxes.draw(rich, boxes.DrawBox("forest_friends", 10, "client"), 1_767_225_600,
                       ctx, config)
    rotated = boxes.rotate_seed(drawn.state, boxes.RotateSeed(), 1_767_225_601,
                                boxes.BoxContext(SEED_B, {}, ZoneInfo("Asia/Shanghai")), config)
    assert rotated.response["revealed"]["server_seed"] == SEED_A
    return [dict(r, server_seed=SEED_A) for r in drawn.response["draws"]]


def test_verify_draw_accepts_real_and_rejects_tampered(tmp_path: Path) -> None:
    records = _drawn_and_revealed()
    good = tmp_path / "draws.json"
    good.write_text(json.dumps({"draws": records}))
    runner = CliRunner()
    ok = runner.invoke(main, ["verify-draw", str(EXAMPLE), str(good)])
    assert ok.exit_code == 0, ok.output
    assert "10 of 10 draws verified" in ok.output

    tampered = [dict(r) for r in records]
    tampered[3]["item"] = "fig_golden_tail" if records[3]["item"] != "fig_golden_tail" \
        else "fig_acorn_kid"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered))
    failed = runner.invoke(main, ["verify-draw", str(EXAMPLE), str(bad)])
    assert failed.exit_code == 1
    assert "9 of 10 draws verified" in failed.output
    wrong_seed = runner.invoke(main, ["verify-draw", str(EXAMPLE), str(good), "--seed",
                                      SEED_B])
    assert wrong_seed.exit_code == 1 and "published seed hash" in wrong_seed.output
