"""The replay driver against a bare aiohttp server: schedule, headers, errors, bounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.replay import ReplayConfig, ReplayError, check_target, replay
from loadtests.report import summarize
from loadtests.trace import Header, Record, write_trace
from loadtests.verdict import Limits, judge
from tests.loadtests.conftest import BareServer

RATE = 2000
SECONDS = 3


def steady_trace(path: Path, rate: int = RATE, seconds: float = SECONDS,
                 players: int = 400) -> Path:
    """Requests at exactly ``rate``/s: every 1/rate s, players in turn (each player's
    requests wait for its previous reply, so each gets ``players / rate`` s for one)."""
    n = int(rate * seconds)
    write_trace(path, Header.new(defaults={"game": "g"}),
                (Record(i * 1000 // rate, f"p{i % players}", "getPlayer") for i in range(n)))
    return path


def config(server: BareServer, trace: Path, **kw: object) -> ReplayConfig:
    return ReplayConfig(traces=(str(trace),), base_url=server.base, merchant="loadshop",
                        signing_secret="s3cret", **kw)  # type: ignore[arg-type]


CONTROL = """
import asyncio, sys, time
async def main(seconds):
    late = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        due = time.monotonic() + 0.001
        await asyncio.sleep(0.001)
        late.append(time.monotonic() - due)
    late.sort()
    print(round(late[int(len(late) * 0.99)] * 1000, 3))
asyncio.run(main(float(sys.argv[1])))
"""


def control_timer() -> subprocess.Popen[str]:
    """A bare asyncio timer loop: how late this machine wakes any process right now."""
    return subprocess.Popen([sys.executable, "-c", CONTROL, str(SECONDS + 0.5)],
                            stdout=subprocess.PIPE, text=True)


def test_scheduler_keeps_its_schedule_at_2000_per_second(bare_server: BareServer,
                                                          tmp_path: Path) -> None:
    """Send-time error p99 < 5 ms at 2,000 req/s (issue 6), with the right verdict
    (issue 19): every attempt is judged as a run is, and the verdict must agree with
    what was measured: PASS when the schedule was kept, GENERATOR-BOUND (for its send
    lateness) when the generator fell more than 50 ms behind.

    The machine is shared (2 cores, other engineers' suites running), so each
    attempt runs beside a control: a bare asyncio timer loop in its own process.
    The claim is that the scheduler keeps its schedule whenever the machine lets
    a process run on time: one clean attempt of three passes; three attempts in
    which even the bare timer loop was starved (p99 > 2 ms) are inconclusive for
    the 5 ms claim and skip (after their verdicts were checked); anything else fails.
    """
    trace = steady_trace(tmp_path / "steady.pbt")
    attempts = []
    for _ in range(3):
        control = control_timer()
        result = replay(config(bare_server, trace, workers=2, premint=True))
        control_p99 = float(control.communicate(timeout=30)[0])
        summary = summarize(result)
        assert summary["requests"] == RATE * SECONDS  # sessions were minted before the start
        assert summary["errors"] == 0
        assert result.stats.lateness.get_total_count() == RATE * SECONDS
        assert SECONDS - 0.1 < result.meta["elapsed_s"] < SECONDS + 8.0  # a loaded box drains late
        late = summary["send_lateness_ms"]
        verdict = judge(summary, [], Limits())
        attempts.append({"p50": late["p50"], "p99": late["p99"], "control_p99": control_p99,
                         "load": round(os.getloadavg()[0], 2), "verdict": verdict.line(),
                         "cpu": round(summary["generator"]["cpu_max_share"], 2)})
        assert summary["classes"].get("backlog", 0) == 0
        if late["p99"] > 50.0:  # starved: the numbers describe the generator
            assert verdict.word == "GENERATOR-BOUND", attempts
            assert verdict.generator_bound[0].startswith(
                f"send lateness p99 {late['p99']:.1f} ms > 50 ms"), attempts
        elif summary["generator"]["cpu_max_share"] < 0.9:  # kept up: judged on the target
            assert verdict.generator_bound == [], attempts
            assert verdict.word == ("SATURATED" if verdict.saturated else "PASS"), attempts
        if late["p99"] < 5.0:
            break
    seen = bare_server.seen()
    assert seen["GET me"] >= RATE * SECONDS and seen.get("no_token", 0) == 0
    assert result.meta["premint"]["0"]["players"] + result.meta["premint"]["1"]["players"] == 400
    if attempts[-1]["p99"] >= 5.0 and all(a["control_p99"] > 2.0 for a in attempts):
        pytest.skip(f"machine too busy to judge a 5 ms schedule: {attempts}")
    assert attempts[-1]["p99"] < 5.0, f"send lateness per attempt: {attempts}"


def test_headers_sessions_and_errors_by_code(bare_server: BareServer, tmp_path: Path) -> None:
    trace = tmp_path / "mixed.pbt"
    write_trace(trace, Header.new(defaults={"game": "g"}), [
        Record(0, "a", "createSession", {}),
        Record(5, "a", "getPlayer"),
        Record(10, "a", "adoptPet", {"species": "squirrel", "name": "N"}),
        Record(20, "b", "feedPet", {"food": "snack"}),          # no session yet: minted first
        Record(30, "a", "checkIn", {}),                         # not served: 404 by code
        Record(40, "b", "drawBox", {"count": 1}, {"series": "s"}),
        Record(50, "b", "drawBox", {"count": 1}),               # no series: bad record
        Record(60, "b", "getLeaderboard", None, {"board": "x"}),  # filtered out below
    ])
    ops = frozenset({"createSession", "getPlayer", "adoptPet", "feedPet", "checkIn", "drawBox"})
    result = replay(config(bare_server, trace, workers=1, shadow=True, ops=ops))
    summary = summarize(result)
    seen = bare_server.seen()
    assert seen["createSession"] == 2 and seen.get("bad_sign", 0) == 0
    assert seen["POST pet"] == 1 and seen["POST pet/feed"] == 1
    assert seen["idempotency_key"] == 2 and seen["shadow"] == 3
    assert summary["skipped"] == 1
    opsum = summary["operations"]
    assert opsum["checkIn"]["codes"] == {"404 not_found": 1}
    assert opsum["drawBox"]["codes"] == {"404 not_found": 1, "bad_record missing_series": 1}
    assert opsum["createSession"]["codes"] == {"201": 2}
    assert summary["errors_by_code"] == {"404 not_found": 2, "bad_record missing_series": 1}
    assert summary["errors"] == 3 and summary["requests"] == 8


def test_time_limit_and_backlog_bound(bare_server: BareServer, tmp_path: Path) -> None:
    trace = steady_trace(tmp_path / "long.pbt", rate=200, seconds=30, players=5)
    result = replay(config(bare_server, trace, workers=1, max_duration=1.0))
    assert result.stats.completed == pytest.approx(200 + 5, abs=10)
    assert result.meta["elapsed_s"] < 5


def test_backlog_is_not_sent_and_counts_from_its_due_time(tmp_path: Path) -> None:
    """50 players at once, 10 slots, a target that takes 2 s: 10 go at 0 s, 10 at 2 s;
    the other 30 wait out the 3 s timeout for a slot and count as backlog."""
    slow = BareServer("2000")
    try:
        burst = tmp_path / "burst.pbt"
        write_trace(burst, Header.new(defaults={"game": "g"}),
                    [Record(0, f"p{i}", "getPlayer") for i in range(50)])
        result = replay(config(slow, burst, workers=1, max_in_flight=10, timeout=3.0,
                               premint=True))
    finally:
        slow.stop()
    codes = result.stats.codes["getPlayer"]
    assert codes == {"client_backlog": 30, "200": 20}
    assert result.stats.sent == 20  # backlogged requests were never sent
    # ... but they are in the latency, from their due time: about the 3 s they waited
    assert result.stats.all.get_total_count() == 50
    assert 2900 < result.stats.all.get_max_value() / 1000 < 4500


def test_only_loopback_targets_unless_allowed() -> None:
    assert check_target("http://127.0.0.1:8080/", False) == "http://127.0.0.1:8080"
    assert check_target("http://localhost:1", False) == "http://localhost:1"
    assert check_target("http://[::1]:1", False) == "http://[::1]:1"
    for bad in ("http://10.0.0.1:80", "http://example.com", "ftp://127.0.0.1",
                "http://127.0.0.1/prefix"):
        with pytest.raises(ReplayError):
            check_target(bad, False)
    assert check_target("https://example.com", True) == "https://example.com"


def test_results_file_round_trip(bare_server: BareServer, tmp_path: Path) -> None:
    from loadtests.replay import load_results, save_results

    result = replay(config(bare_server, steady_trace(tmp_path / "t.pbt", 100, 1, 3), workers=2))
    save_results(result, tmp_path / "results.json")
    again = load_results(tmp_path / "results.json")
    assert summarize(again) == summarize(result)
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["workers"] == 2
