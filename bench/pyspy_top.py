"""Summarise ``py-spy record --format raw`` output: self and inclusive time by function.

    py-spy record -p PID -d 15 -r 200 --nonblocking --format raw -o w.txt
    python bench/pyspy_top.py w1.txt w2.txt [--top 30] [--match gameserver/]

Idle samples (the event loop waiting in select/epoll) are counted separately, so
percentages are of *busy* samples.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
ROOT = Path(__file__).resolve().parent.parent
"""The checkout: its prefix is cut from file names like site-packages' is."""
IDLE = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio/base_events.py")


def short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "python3.11/", "/src/", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--match", default="", help="only functions whose file contains this")
    p.add_argument("--main-only", action="store_true",
                   help="leave out the stacks of helper threads (aiosqlite, executors): in "
                        "py-spy's blocking mode their waits count as busy")
    a = p.parse_args(argv)
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    busy = idle = 0
    for name in a.files:
        with open(name) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack:
                    continue
                n = int(count)
                if a.main_only and "Thread._bootstrap" in stack:
                    continue
                frames = [short(x) for x in stack.split(";") if x]
                leaf = frames[-1]
                if any(leaf.startswith(i.split(" (")[0] + " (") and i.split(" (")[1] in leaf
                       for i in IDLE) or leaf.startswith(("select (", "poll (")):
                    idle += n
                    continue
                busy += n
                self_t[leaf] += n
                for fr in set(frames):
                    incl[fr] += n
    total = busy + idle
    print(f"samples: {total}, busy {busy} ({100 * busy / max(total, 1):.0f}%), idle {idle}")
    for title, table in (("self (busy %)", self_t), ("inclusive (busy %)", incl)):
        print(f"\n-- {title} --")
        shown = 0
        for fn, n in table.most_common():
            if a.match and a.match not in fn:
                continue
            print(f"{100 * n / max(busy, 1):6.1f}%  {fn}")
            shown += 1
            if shown >= a.top:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
