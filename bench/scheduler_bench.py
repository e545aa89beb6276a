"""The replay scheduler's own timing: send lateness at a steady 2,000 requests/s.

``petbox loadtest replay`` claims (docs/loadtesting.md, "Three clocks") that its
send lateness — actual send minus the moment a request could leave — stays in the
low milliseconds: p99 < 5 ms at 2,000 req/s with two workers. This bench measures
that claim; tests only check behaviour (tests/loadtests/test_replay.py).

The target is the bare aiohttp server of the replay tests (answers at once, does
nothing), so what is measured is the generator alone. Beside each attempt runs a
control: a bare asyncio timer loop in its own process, which tells how late this
machine wakes any process at that moment (a busy machine shows there first).

    .venv/bin/python bench/scheduler_bench.py [--rate 2000] [--seconds 3]
        [--players 400] [--workers 2] [--attempts 3] [--json PATH]

Prints one line per attempt (lateness p50/p99/max, control p99, load average,
generator CPU share, verdict) and the best attempt. Run it on a quiet machine; the
figures and the command are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtests.replay import ReplayConfig, replay  # noqa: E402
from loadtests.report import summarize  # noqa: E402
from loadtests.trace import Header, Record, write_trace  # noqa: E402
from loadtests.verdict import Limits, judge  # noqa: E402
from tests.loadtests.conftest import BareServer  # noqa: E402

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


def steady_trace(path: Path, rate: int, seconds: float, players: int) -> int:
    """Requests at exactly ``rate``/s, players in turn; returns how many."""
    n = int(rate * seconds)
    write_trace(path, Header.new(defaults={"game": "g"}),
                (Record(i * 1000 // rate, f"p{i % players}", "getPlayer") for i in range(n)))
    return n


def attempt(server: BareServer, trace: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One replay beside a control timer loop; its figures."""
    control = subprocess.Popen([sys.executable, "-c", CONTROL, str(args.seconds + 0.5)],
                               stdout=subprocess.PIPE, text=True)
    cfg = ReplayConfig(traces=(str(trace),), base_url=server.base, merchant="loadshop",
                       signing_secret="s3cret", workers=args.workers, premint=True)
    summary = summarize(replay(cfg))
    control_p99 = float(control.communicate(timeout=60)[0])
    late = summary["send_lateness_ms"]
    return {"requests": summary["requests"], "errors": summary["errors"],
            "lateness_p50_ms": late["p50"], "lateness_p99_ms": late["p99"],
            "lateness_max_ms": late["max"], "control_p99_ms": control_p99,
            "load_1m": round(os.getloadavg()[0], 2),
            "generator_cpu_share": summary["generator"]["cpu_max_share"],
            "verdict": judge(summary, [], Limits()).line()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--players", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--json", help="also write the attempts here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "steady.pbt"
        n = steady_trace(trace, args.rate, args.seconds, args.players)
        print(f"{n} getPlayer at {args.rate}/s over {args.seconds} s, {args.players} players, "
              f"{args.workers} workers, {args.attempts} attempts")
        server = BareServer()
        try:
            runs = []
            for i in range(args.attempts):
                run = attempt(server, trace, args)
                runs.append(run)
                print(f"attempt {i + 1}: send lateness p50 {run['lateness_p50_ms']} ms, "
                      f"p99 {run['lateness_p99_ms']} ms, max {run['lateness_max_ms']} ms; "
                      f"control p99 {run['control_p99_ms']} ms; load {run['load_1m']}; "
                      f"generator CPU {run['generator_cpu_share']:.0%}; "
                      f"{run['requests']} requests, {run['errors']} errors; {run['verdict']}")
        finally:
            server.stop()
    best = min(runs, key=lambda r: r["lateness_p99_ms"])
    print(f"best: send lateness p50 {best['lateness_p50_ms']} ms, p99 "
          f"{best['lateness_p99_ms']} ms, max {best['lateness_max_ms']} ms "
          f"(claim: p99 < 5 ms at 2,000/s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "attempts": runs}, indent=1))


if __name__ == "__main__":
    main()
