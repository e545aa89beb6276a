"""A compressed singles-day trace replayed against a real ``petbox serve``.

The server runs as a process with embedded Redis and SQLite in a temporary data
directory (as in ``tests/integration/test_process.py``); the load tester only
knows its URL and a load-test merchant's credentials.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from loadtests.cli import loadtest
from loadtests.slo import BREACH_EXIT_CODE
from tests.integration.test_process import GAME_FILE, Server, petbox
from tests.loadtests.conftest import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> tuple[Server, Path]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
    env.update({"PETBOX_DATA_DIR": str(tmp_path / "data"), "PETBOX_ACCESS_LOG": "0",
                "PETBOX_TOKEN_SECRET": "loadtest-e2e-secret-123",
                "PETBOX_RATE_IP": "off"})  # one machine plays thousands of shoppers
    creds = json.loads(petbox(env, "merchant", "create", "loadshop", "--load-test", "--json"))
    petbox(env, "game", "publish", "loadshop", "squirrel-omg", str(GAME_FILE))
    cred_file = tmp_path / "loadshop.json"
    cred_file.write_text(json.dumps(creds))
    server = Server(env, free_port())
    server.start()
    yield server, cred_file
    server.terminate()


def test_compressed_singles_day_against_petbox(served: tuple[Server, Path],
                                               tmp_path: Path) -> None:
    server, creds = served
    trace, out = tmp_path / "sd.pbt", tmp_path / "report"
    runner = CliRunner()
    gen = runner.invoke(loadtest, [
        "generate", "--shape", "singles-day", "-B", "3", "--compress", "100",
        "--before", "10m", "--after", "5m", "--players", "400", "--seed", "11",
        "--game-config", str(GAME_FILE), "--ops", "createSession,getPlayer,adoptPet,feedPet",
        "-o", str(trace)])
    assert gen.exit_code == 0, gen.output
    generated = json.loads(gen.output)
    assert generated["duration_s"] == pytest.approx(9.0)
    assert set(generated["by_op"]) == {"createSession", "getPlayer", "adoptPet", "feedPet"}

    run = runner.invoke(loadtest, [
        "replay", str(trace), "--target", server.base, "--credentials", str(creds),
        "--workers", "2", "--out", str(out), "--no-progress", "--slo", "errors=50%"])
    assert run.exit_code == 0, run.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sent"] == generated["records"]  # plus sessions minted on first use
    assert summary["requests"] >= generated["records"]
    assert not summary["partial"] and summary["slo_ok"]
    ops = summary["operations"]
    assert ops["createSession"]["codes"].get("201", 0) == ops["createSession"]["requests"]
    assert ops["adoptPet"]["codes"].get("201", 0) > 0.9 * ops["adoptPet"]["requests"]
    assert ops["getPlayer"]["codes"].get("200", 0) > 0.9 * ops["getPlayer"]["requests"]
    # the spike: the busiest second around midnight (T0 = 6 s) dwarfs the quiet start
    rates = {p["t"]: p["rate"] for p in summary["timeline"]}
    quiet = [r for t, r in rates.items() if t < 2.0]
    assert summary["throughput"]["peak_rps"] > 5 * (sum(quiet) / len(quiet))
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 4 and "<script" not in html and "T0" in html
    assert (out / "results.json").exists()

    strict = runner.invoke(loadtest, ["report", str(out / "results.json"),
                                      "--slo", "p99=1us", "--slo", "errors=0%"])
    assert strict.exit_code == BREACH_EXIT_CODE, strict.output
    assert "FAIL  p99=1us" in strict.output
    lenient = runner.invoke(loadtest, ["report", str(out / "results.json"),
                                       "--slo", "p99=60s", "--slo", "getPlayer:errors=0%"])
    assert lenient.exit_code == 0, lenient.output


def _counts(db: Path, merchant: str) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = ?",
                                    (merchant,)).fetchone()[0]
                for table in ("players", "ledger", "draws", "grants", "prize_stock")}


def test_shadow_replay_leaves_real_data_untouched(served: tuple[Server, Path],
                                                  tmp_path: Path) -> None:
    server, creds = served
    trace, out = tmp_path / "sd.pbt", tmp_path / "report"
    runner = CliRunner()
    gen = runner.invoke(loadtest, [
        "generate", "--shape", "singles-day", "-B", "3", "--compress", "100",
        "--before", "10m", "--after", "5m", "--players", "300", "--seed", "5",
        "--game-config", str(GAME_FILE), "--hot-prize", "coupon_10off",
        "--ops", "createSession,getPlayer,adoptPet,feedPet,checkIn,getBoxSeries,drawBox",
        "-o", str(trace)])
    assert gen.exit_code == 0, gen.output
    run = runner.invoke(loadtest, [
        "replay", str(trace), "--target", server.base, "--credentials", str(creds),
        "--shadow", "--workers", "2", "--out", str(out), "--no-progress"])
    assert run.exit_code == 0, run.output
    ops = json.loads((out / "summary.json").read_text())["operations"]
    assert ops["createSession"]["codes"] == {"201": ops["createSession"]["requests"]}
    assert ops["drawBox"]["codes"].get("200", 0) > 0
    assert server.terminate() == 0  # graceful: the persisters flush everything

    data = tmp_path / "data"
    assert _counts(data / "petbox.db", "loadshop") == {
        "players": 0, "ledger": 0, "draws": 0, "grants": 0, "prize_stock": 0}
    shadow = _counts(data / "petbox-shadow.db", "loadshop")
    assert shadow["players"] > 0 and shadow["ledger"] > 0
    assert shadow["draws"] == ops["drawBox"]["codes"]["200"] * 1  # one draw per request
    assert shadow["prize_stock"] == 1
