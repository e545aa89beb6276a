"""Two generator processes (``replay --shard 0/2`` and ``1/2``, started together with
``--start-at``) merge into one report whose percentiles are those of all raw samples."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from loadtests.cli import loadtest
from loadtests.replay import load_results
from loadtests.stats import new_hist, record
from loadtests.trace import Header, Record, write_trace
from tests.loadtests.conftest import BareServer

ROOT = Path(__file__).resolve().parents[2]


def test_two_generators_merge_into_one_exact_report(tmp_path: Path) -> None:
    server = BareServer("3")  # a few ms per request: latencies worth comparing
    trace = tmp_path / "t.pbt"
    write_trace(trace, Header.new(defaults={"game": "g"}), (
        Record(i * 5, f"p{i % 120}", "getPlayer" if i % 3 else "feedPet",
               None if i % 3 else {"food": "f"}) for i in range(600)))
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"merchant": "loadshop", "signing_secret": "s3cret"}))
    start_at = time.time() + 4.0
    try:
        procs = [subprocess.Popen(
            [sys.executable, "-m", "loadtests", "replay", str(trace), "--target", server.base,
             "--credentials", str(creds), "--workers", "1", "--no-progress",
             "--shard", f"{i}/2", "--start-at", str(start_at), "--max-lateness", "250ms",
             "--out", str(tmp_path / f"g{i}"), "--samples", str(tmp_path / "samples")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(2)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        server.stop()
    assert [p.returncode for p in procs] == [0, 0], outputs
    parts = [load_results(tmp_path / f"g{i}" / "results.json") for i in range(2)]
    # each generator replayed its own players, together all of them
    assert 0 < parts[0].stats.completed < 600 + 120
    assert parts[0].stats.sent + parts[1].stats.sent == 600

    merged = CliRunner().invoke(loadtest, ["merge", str(tmp_path / "g0" / "results.json"),
                                           str(tmp_path / "g1" / "results.json"),
                                           "--out", str(tmp_path / "merged"),
                                           "--max-lateness", "250ms"])
    assert merged.exit_code == 0, merged.output
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert summary["sent"] == 600 and summary["merged_from"] == [
        p.meta["run_id"] for p in parts]

    samples: dict[str, list[int]] = {}
    for path in (tmp_path / "samples").iterdir():
        for line in path.read_text().splitlines():
            op, micros = line.split()
            samples.setdefault(op, []).append(int(micros))
    everything = sorted(v for values in samples.values() for v in values)
    assert len(everything) == summary["requests"]
    raw = new_hist()
    for v in everything:
        record(raw, v)
    for key, pct in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)):
        # Exactly the histogram of all samples: merging loses nothing ...
        assert summary["latency_ms"][key] == round(raw.get_value_at_percentile(pct) / 1000, 3)
        # ... and that is the raw percentile (HDR's rank: the sample at the rounded
        # pct·n-th place) to HDR's 3 significant digits.
        exact = everything[max(1, int(len(everything) * pct / 100 + 0.5)) - 1]
        assert abs(summary["latency_ms"][key] * 1000 - exact) <= exact * 0.002 + 1
    per_op = sorted(samples["feedPet"])
    assert summary["operations"]["feedPet"]["requests"] == len(per_op)
