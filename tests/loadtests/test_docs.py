"""docs/loadtesting.md's quick start, run as written on a fresh demo: every command
succeeds, the replay PASSes, the real data stays untouched and the purge empties the
shadow side. The only change: a free port instead of 8080 (the machine is shared).

The server runs with its defaults (embedded Redis and SQLite in ``./petbox-data``,
rate limits on: the load-test exemption is what lets one IP play 500 shoppers).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.loadtests.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "loadtesting.md"


def quick_start_commands() -> list[str]:
    """The shell commands of the doc's "Quick start" section, continuation lines joined."""
    text = DOC.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        commands += [c.strip() for c in joined.splitlines()
                     if c.strip() and not c.strip().startswith("#")]
    return commands


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("petbox serve did not become ready")


def _rows(db: Path, table: str, merchant: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = ?",
                                (merchant,)).fetchone()[0])


def test_quick_start_runs_clean_and_passes(tmp_path: Path) -> None:
    commands = quick_start_commands()
    assert [c.split()[:3] for c in commands] == [
        ["petbox", "merchant", "create"], ["petbox", "game", "publish"],
        ["petbox", "serve", "--port"], ["petbox", "loadtest", "generate"],
        ["petbox", "loadtest", "replay"], ["petbox", "loadtest", "report"],
        ["petbox", "shadow", "purge"]]
    (tmp_path / "gameserver").mkdir()  # the docs run in a checkout: its example game
    (tmp_path / "gameserver" / "examples").symlink_to(ROOT / "gameserver" / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    port = str(free_port())
    server: subprocess.Popen[bytes] | None = None
    outputs = {}
    try:
        for command in commands:
            command = command.replace("8080", port)
            if command.startswith("petbox serve"):
                log = tmp_path / "serve.log"  # a file: a full pipe would stall the server
                with open(log, "wb") as sink:
                    server = subprocess.Popen(command.split(), cwd=tmp_path, env=env,
                                              stdout=sink, stderr=subprocess.STDOUT)
                _wait_ready(f"http://127.0.0.1:{port}", server, log)
                continue
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            outputs[command.split()[2]] = done.stdout
            if command.startswith("petbox loadtest replay"):
                data = tmp_path / "petbox-data"
                # Shadow data only: the real side of the merchant has no player yet.
                assert _rows(data / "petbox.db", "players", "loadshop") == 0
        assert outputs["replay"].rstrip().endswith("VERDICT PASS (5/5 gates pass)")
        assert "refusal 0, shed 0, 5xx 0, timeout 0, transport 0, backlog 0" in outputs["replay"]
        assert outputs["report"].rstrip().endswith("VERDICT PASS (1/1 gates pass)")
        assert (tmp_path / "runs" / "sd-1" / "report.html").exists()
        assert (tmp_path / "runs" / "sd-1-again" / "report.html").exists()
        assert re.search(r"purged [1-9]\d* shadow keys and [1-9]\d* shadow rows",
                         outputs["purge"]), outputs["purge"]
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    data = tmp_path / "petbox-data"
    assert _rows(data / "petbox-shadow.db", "players", "loadshop") == 0
    wal = data / "petbox-shadow.db-wal"
    assert not wal.exists() or wal.stat().st_size < 1 << 20  # checkpointed and truncated
