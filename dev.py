#!/usr/bin/env python3
"""petbox developer entry point; needs nothing but Python 3.11+.

    python3 dev.py demo     set up .venv and run `petbox demo` (embedded Redis + SQLite)
    python3 dev.py test     set up .venv and run the whole test suite (two pytest worker
                            processes, a file per worker at a time; PETBOX_TEST_WORKERS=0
                            runs it in one process)
    python3 dev.py lint     ruff and mypy (strict on mechanics/ and economy/)
    python3 dev.py bench    the feedPet benchmark (see docs/benchmarks.md)

Extra arguments go to the underlying command (`python3 dev.py test -k idempotency`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXTRAS = "test,embedded"


def _stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()


def ensure_env() -> None:
    """Create .venv and install petbox with its extras, unless already up to date."""
    if sys.version_info < (3, 11):  # noqa: UP036 - say it plainly on an older Python
        sys.exit("petbox needs Python 3.11 or newer")
    stamp_file = VENV / ".petbox-installed"
    if stamp_file.exists() and stamp_file.read_text() == _stamp():
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("installing petbox and its dependencies into .venv ...", flush=True)
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f".[{EXTRAS}]"], check=True, cwd=ROOT)
    stamp_file.write_text(_stamp())


def ensure_js() -> None:
    """TypeScript for the JS client's type check (clients/js, from its package-lock)."""
    js = ROOT / "clients" / "js"
    if (js / "node_modules" / ".bin" / "tsc").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: the JS client's type check (tests/integration/"
              "test_js_client.py) needs `npm ci` in clients/js", flush=True)
        return
    print("installing the JS client's dev dependencies (npm ci in clients/js) ...", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], check=True,
                   cwd=js)


def _workers(rest: list[str]) -> list[str]:
    """pytest-xdist's options for the suite: two workers by default (most tests wait on
    real servers, so a second process roughly halves the wall time on two cores), each
    taking a whole file at a time (a file's fixtures, such as a Redis Cluster, start
    once per worker). Not when the caller chose (``-n``) or PETBOX_TEST_WORKERS=0."""
    n = os.environ.get("PETBOX_TEST_WORKERS", "2")
    if n == "0" or any(a.startswith(("-n", "--numprocesses")) for a in rest):
        return []
    return ["-n", n, "--dist", "loadfile"]


def run(*cmd: str) -> int:
    return subprocess.run(cmd, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "lint", "bench", "setup"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env()
    if command in ("test", "setup"):
        ensure_js()
    py = str(BIN / "python")
    if command == "demo":
        return run(str(BIN / "petbox"), "demo", *rest)
    if command == "test":
        return run(py, "-m", "pytest", *_workers(rest), *rest)
    if command == "lint":
        return (run(py, "-m", "ruff", "check", ".")
                or run(py, "-m", "mypy", "mechanics", "economy", "gameserver", "loadtests",
                           "clients/python"))
    if command == "bench":
        return run(py, "bench/feed_bench.py", *rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
