"""A recorded session of 500+ requests replays causally with 0 unexpected errors, at
``--speed 1`` and ``--speed 5``, and scaled up with cloned players. It holds the share
plays: helpers and group members send codes their friends got back, which the replay
swaps for the codes it got.

A real ``petbox serve`` records real-data traffic of a load-test merchant (rate limits
on: the load-test exemption lets one IP play hundreds of shoppers); the recording is
then replayed on shadow data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from loadtests.cli import loadtest
from loadtests.trace import read_trace
from tests.integration.test_process import Server
from tests.loadtests.conftest import serve_loadshop, server_env
from tests.loadtests.test_end_to_end import SHARED_BOX, _plays_game, generate_steady

pytestmark = pytest.mark.slow


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    env = server_env(tmp_path / "data", "loadtest-record-secret-123")
    env.update({"PETBOX_RECORD_DIR": str(tmp_path / "traces"), "PETBOX_RECORD_SAMPLE": "1"})
    config = _plays_game(int(time.time()))  # a short browse keeps the test short
    game_file = tmp_path / "quick.json"
    game_file.write_text(json.dumps(config))
    cred_file = tmp_path / "loadshop.json"
    server = serve_loadshop(env, "quick", game_file, cred_file)
    yield server, cred_file, game_file
    server.terminate()


def test_recorded_session_replays_with_no_unexpected_errors(
        recorder: tuple[Server, Path, Path], tmp_path: Path) -> None:
    server, creds, game_file = recorder
    runner = CliRunner()
    trace = tmp_path / "drive.pbt"
    generate_steady(runner, trace, game_file, 50, "120s", 150, 9)  # a seed with assists
    # Real shopper traffic to record: real data (of a load-test merchant) is recorded,
    # shadow traffic never is.
    drive = runner.invoke(loadtest, [
        "replay", str(trace), "--target", server.base, "--credentials", str(creds),
        "--real-data", "--yes", "--out", str(tmp_path / "drive"), "--no-progress",
        *SHARED_BOX, "--slo", "errors=0"])
    assert drive.exit_code == 0, drive.output
    time.sleep(1.5)  # the recorder flushes every second
    recording = sorted((tmp_path / "traces").iterdir())
    header, records = read_trace(recording)
    recorded = list(records)
    assert header.source == "record"
    assert len(recorded) >= 500
    assert {"createSession", "getBoxSeries", "startTask", "completeTask",
            "drawBox"} <= {r.op for r in recorded}
    assert {r.expect for r in recorded} <= {"200", "201"}
    shares = [r for r in recorded if r.op in ("startAssist", "createGroupBuy")]
    assert shares and all(r.gave and len(r.gave["code"]) == 10 for r in shares)
    codes = {r.gave["code"] for r in shares if r.gave}
    used = [r for r in recorded if r.op in ("giveAssist", "joinGroupBuy")]
    assert used and all(r.body["code"] in codes for r in used)

    for speed, clones in (("1", "1"), ("5", "1"), ("1", "2")):
        out = tmp_path / f"replay-{speed}-{clones}"
        run = runner.invoke(loadtest, [
            "replay", *map(str, recording), "--target", server.base, "--credentials",
            str(creds), "--speed", speed, "--clones", clones, "--out", str(out),
            "--no-progress", *SHARED_BOX,
            "--slo", "unexpected=0", "--slo", "5xx=0"])
        assert run.exit_code == 0, run.output
        summary = json.loads((out / "summary.json").read_text())
        assert summary["unexpected"] == 0 and summary["errors"] == 0, summary["errors_by_code"]
        assert summary["requests"] == len(recorded) * int(clones)
        assert summary["shadow"] is True
        tasks = summary["operations"]["completeTask"]
        assert tasks["codes"] == {"200": tasks["requests"]}  # tickets fed, browse waited
        helps = summary["operations"]["giveAssist"]  # codes swapped for the replay's own
        assert helps["codes"] == {"200": helps["requests"]} and helps["requests"] == sum(
            1 for r in recorded if r.op == "giveAssist") * int(clones)
