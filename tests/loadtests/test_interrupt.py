"""Ctrl-C in the middle of a replay: the run stops at once and reports what it did."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from loadtests.trace import Header, Record, write_trace
from tests.loadtests.conftest import BareServer

ROOT = Path(__file__).resolve().parents[2]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def workers_of(pid: int) -> list[psutil.Process]:
    """The replay worker processes (multiprocessing spawn children) of ``pid``."""
    return [c for c in psutil.Process(pid).children()
            if any("spawn_main" in part for part in c.cmdline())]


def gone(procs: list[psutil.Process], within: float) -> bool:
    """Whether every one of ``procs`` has ended (or is a zombie) within ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        alive = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def interrupt_replay(server: BareServer, records: list[Record], tmp_path: Path,
                     after_seen: int, timeout: str, signum: int = signal.SIGINT,
                     group: bool = False, workers: int = 1,
                     ) -> tuple[int, str, float, dict[str, Any], list[psutil.Process]]:
    """Replay ``records``; ``signum`` (to the replay, or with ``group`` to its whole
    process group) once the target has answered ``after_seen`` requests. Returns the exit
    code, the output, the seconds from the interrupt to the exit, the summary and the
    worker processes there were.

    The replay starts with SIGINT ignored, as a command started in the background of a
    script (``cmd &``) inherits it: it must still stop on SIGINT (it went on to its end,
    and this test passed or failed with how the suite itself was started)."""
    trace = tmp_path / "t.pbt"
    write_trace(trace, Header.new(defaults={"game": "g"}), records)
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"merchant": "loadshop", "signing_secret": "s3cret"}))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtests", "replay", str(trace), "--target", server.base,
         "--credentials", str(creds), "--workers", str(workers), "--no-progress",
         "--timeout", timeout, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_ignore_sigint, start_new_session=group)
    try:
        deadline = time.monotonic() + 60
        while server.seen().get("GET me", 0) < after_seen:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.05)
        workers = workers_of(proc.pid)
        interrupted = time.monotonic()
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        output = proc.communicate(timeout=60)[0]
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = out / "summary.json"
    return (proc.returncode, output, took,
            json.loads(summary.read_text()) if summary.exists() else {}, workers)


def test_ctrl_c_mid_run_writes_a_partial_report_of_what_was_sent(tmp_path: Path) -> None:
    """A sparse trace (one request every half second for two minutes) interrupted once
    requests flow: the replay ends within a few seconds with exit 4 (PARTIAL), and its
    report counts exactly the requests the target saw, offered over the time the run
    had (not over the whole trace). The dispatcher used to look at the stop flag only
    every 128 records (a minute here), so the parent ended the workers and the partial
    report said 0 requests."""
    server = BareServer()
    try:
        code, output, took, summary, _ = interrupt_replay(
            server, [Record(i * 500, f"p{i % 4}", "getPlayer") for i in range(240)],
            tmp_path, after_seen=6, timeout="2s")
        seen = server.seen()
    finally:
        server.stop()
    assert code == 4, output
    assert took < 5.0, output
    assert summary["verdict"] == "PARTIAL" and summary["failures"] == ["interrupted"]
    assert summary["sent"] == seen["GET me"] >= 6
    assert summary["requests"] == seen["GET me"]  # the logins are apart
    assert summary["logins"]["requests"] == seen["createSession"] - 1  # less the probe
    assert summary["classes"]["ok"] == summary["requests"]
    assert summary["offered"]["requests"] == summary["requests"]
    # offered over the seconds the run had: about two requests a second, as the trace
    assert summary["offered"]["span_s"] < 10.0
    assert 1.0 < summary["offered"]["rps"] < 4.0


def test_ctrl_c_while_slow_players_drain_reports_what_was_answered(tmp_path: Path) -> None:
    """Ten requests of one player due at once, a target that takes 1.5 s each: the trace
    has ended and the player's lane drains (15 s). Ctrl-C after the first answer: the
    request in flight comes back, the ones still queued are withdrawn, and the worker
    reports at once. The drain waited out its bound (--timeout + 31 s) without looking
    at the stop flag, so the parent ended the worker after --timeout + 5 s and the
    report said 0 requests."""
    slow = BareServer("1500")
    try:
        code, output, took, summary, _ = interrupt_replay(
            slow, [Record(i, "p0", "getPlayer") for i in range(10)], tmp_path,
            after_seen=1, timeout="5s")
        time.sleep(0.5)
        seen = slow.seen()
    finally:
        slow.stop()
    assert code == 4, output
    assert took < 4.0, output
    assert summary["failures"] == ["interrupted"]
    # the first answer, and the second request if it left before the stop was seen
    assert summary["sent"] == seen["GET me"] in (1, 2)
    assert summary["classes"]["ok"] == summary["requests"] == summary["sent"]
    assert summary["logins"]["requests"] == 1
    assert summary["offered"]["requests"] == summary["requests"]


@pytest.mark.parametrize("group", [False, True], ids=["replay", "process-group"])
def test_sigterm_stops_like_ctrl_c_and_leaves_no_worker(tmp_path: Path, group: bool) -> None:
    """SIGTERM (``kill``, systemd, a container stop; to the replay alone or, as
    ``timeout`` sends it, to its whole process group) is Ctrl-C: the run stops at once,
    its two workers are reaped, and the report is PARTIAL (exit 4) with what was sent.
    It ended the replay with 143 and no report, its workers went on firing the trace at
    the target (re-parented to init); to the group, the workers died with every
    measurement (and the semaphores leaked)."""
    server = BareServer()
    try:
        code, output, took, summary, workers = interrupt_replay(
            server, [Record(i * 100, f"p{i % 8}", "getPlayer") for i in range(1200)],
            tmp_path, after_seen=10, timeout="2s", signum=signal.SIGTERM, group=group,
            workers=2)
        assert len(workers) == 2 and gone(workers, within=0.0), output
        sent = server.seen()["GET me"]
        time.sleep(0.5)
        assert server.seen()["GET me"] == sent  # nothing more went out
    finally:
        server.stop()
    assert code == 4, output
    assert took < 5.0, output
    assert "leaked" not in output, output
    assert summary["verdict"] == "PARTIAL" and summary["failures"] == ["interrupted (SIGTERM)"]
    assert summary["sent"] == sent >= 10


def test_workers_end_when_the_replay_is_killed(tmp_path: Path) -> None:
    """A replay killed outright (SIGKILL, an OOM kill) cannot stop its workers: they see
    their parent gone and end at once instead of firing the rest of the trace at the
    target and then hanging, re-parented to init."""
    server = BareServer()
    try:
        code, _, _, _, workers = interrupt_replay(
            server, [Record(i * 100, f"p{i % 8}", "getPlayer") for i in range(1200)],
            tmp_path, after_seen=10, timeout="2s", signum=signal.SIGKILL, workers=2)
        assert code == -signal.SIGKILL and len(workers) == 2
        assert gone(workers, within=2.0), [w.pid for w in workers]
        sent = server.seen()["GET me"]
        time.sleep(0.5)
        assert server.seen()["GET me"] == sent
    finally:
        server.stop()
