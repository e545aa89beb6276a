"""Ctrl-C in the middle of a replay: the run stops at once and reports what it did."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadtests.trace import Header, Record, write_trace
from tests.loadtests.conftest import BareServer

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_mid_run_writes_a_partial_report_of_what_was_sent(tmp_path: Path) -> None:
    """A sparse trace (one request every half second for two minutes) interrupted once
    requests flow: the replay ends within a few seconds with exit 4 (PARTIAL), and its
    report counts exactly the requests the target saw, offered over the time the run
    had (not over the whole trace). The dispatcher used to look at the stop flag only
    every 128 records (a minute here), so the parent ended the workers and the partial
    report said 0 requests."""
    server = BareServer()
    trace = tmp_path / "sparse.pbt"
    write_trace(trace, Header.new(defaults={"game": "g"}),
                (Record(i * 500, f"p{i % 4}", "getPlayer") for i in range(240)))
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"merchant": "loadshop", "signing_secret": "s3cret"}))
    out = tmp_path / "run"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests", "replay", str(trace), "--target", server.base,
             "--credentials", str(creds), "--workers", "1", "--no-progress",
             "--timeout", "2s", "--out", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while server.seen().get("GET me", 0) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.1)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
        took = time.monotonic() - interrupted
        seen = server.seen()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert proc.returncode == 4, output
    assert took < 5.0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "PARTIAL" and summary["failures"] == ["interrupted"]
    assert summary["sent"] == seen["GET me"] >= 6
    assert summary["requests"] == seen["GET me"] + seen["createSession"] - 1  # less the probe
    assert summary["classes"]["ok"] == summary["requests"]
    assert summary["offered"]["requests"] == summary["requests"]
    # offered over the seconds the run had: about two requests a second, as the trace
    assert summary["offered"]["span_s"] < 10.0
    assert 1.0 < summary["offered"]["rps"] < 4.0
