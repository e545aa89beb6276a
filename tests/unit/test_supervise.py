"""The supervisor of ``petbox serve --workers N``: a child that dies is started again, one
that keeps dying stops the server, and signals reach every child."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from gameserver.supervise import TooManyRestarts, supervise

CTX = multiprocessing.get_context("spawn")


def _exit_with(code: int, marker: str) -> None:
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    os._exit(code)


def _crash_once_then_wait(marker: str) -> None:
    """First start: exit 3. Later starts: run until signalled."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    if len(Path(marker).read_text().split()) == 1:
        os._exit(3)
    signal.pause()


def _starts(marker: Path) -> int:
    return len(marker.read_text().split()) if marker.exists() else 0


def test_a_child_that_keeps_dying_stops_the_server(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "starts"
    spawn = functools.partial(CTX.Process, target=_exit_with, args=(3, str(marker)),
                              name="petbox-wrk-0")
    with pytest.raises(TooManyRestarts, match="petbox-wrk-0 exited 3 times"):
        supervise([spawn], max_restarts=2, restart_window=60, backoff=0.01)
    assert _starts(marker) == 3
    assert [r.getMessage().split(" (pid")[0] for r in caplog.records] == ["petbox-wrk-0"] * 3
    assert "exited with code 3; starting it again" in caplog.records[0].getMessage()
    assert "giving up" in caplog.records[-1].getMessage()


def test_a_dead_child_is_started_again_and_signals_stop_all(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    spawn = functools.partial(CTX.Process, target=_crash_once_then_wait, args=(str(marker),),
                              name="petbox-wrk-0")

    def stop_when_restarted() -> None:
        deadline = time.monotonic() + 30
        while _starts(marker) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill <server pid>` does

    stopper = threading.Thread(target=stop_when_restarted)
    stopper.start()
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        supervise([spawn], backoff=0.01)  # returns once the restarted child got SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        stopper.join()
    assert _starts(marker) == 2
