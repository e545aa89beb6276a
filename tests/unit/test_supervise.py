"""The supervisor of ``petbox serve --workers N``: a child that dies is started again, one
that keeps dying is restarted with capped exponential back-off (never given up on), and
signals reach every child."""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.context import SpawnProcess
from pathlib import Path

import pytest

from gameserver.ops.supervise import restart_delay, supervise

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


def _exit_with_time(code: int, marker: str) -> None:
    with open(marker, "a") as f:
        f.write(f"{time.monotonic()}\n")
    os._exit(code)


def _stop_after(marker: Path, starts: int) -> threading.Thread:
    """SIGTERM to this process (what `kill <server pid>` does) once ``starts`` are seen."""
    def run() -> None:
        deadline = time.monotonic() + 30
        while _starts(marker) < starts and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _supervise_restoring_signals(*args: object, **kwargs: object) -> None:
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        supervise(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


@pytest.mark.parametrize(("streak", "delay"), [(1, 0.0), (2, 0.5), (3, 1.0), (4, 2.0),
                                               (8, 30.0), (9, 30.0), (500, 30.0)])
def test_restart_delay_doubles_up_to_the_cap(streak: int, delay: float) -> None:
    assert restart_delay(streak, 0.5, 30.0) == delay


def test_a_child_that_keeps_dying_is_restarted_with_backoff(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No giving up (that stopped every worker for one's fault): the restarts come
    ever later, capped, and the server still stops on SIGTERM."""
    marker = tmp_path / "starts"
    spawn = functools.partial(CTX.Process, target=_exit_with_time, args=(3, str(marker)),
                              name="petbox-wrk-0")
    exits: list[int] = []
    stopper = _stop_after(marker, 7)
    try:
        _supervise_restoring_signals([spawn], backoff=0.1, max_backoff=0.4,
                                     on_exit=exits.append)
    finally:
        stopper.join()
    times = [float(t) for t in marker.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 7 and exits[:6] == [0] * 6
    # back-offs 0, 0.1, 0.2, 0.4, 0.4, 0.4: each gap is at least its back-off (a process
    # start on top of it varies with the machine's load, so only the lower bound is exact)
    backoffs = [0.0, 0.1, 0.2, 0.4, 0.4, 0.4]
    assert all(gap >= wait for gap, wait in zip(gaps, backoffs, strict=False))
    assert max(gaps) < 0.4 + 3.0  # capped (a spawn on a busy machine can take seconds)
    messages = [r.getMessage() for r in caplog.records]
    assert "exited with code 3; starting it again" in messages[0]
    assert "starting it again in 0.1 s (2 exits in a row)" in messages[1]
    assert "starting it again in 0.2 s (3 exits in a row)" in messages[2]
    assert "starting it again in 0.4 s (4 exits in a row)" in messages[3]
    assert "starting it again in 0.4 s (6 exits in a row)" in messages[5]
    assert not any("giving up" in m for m in messages)


def test_a_stable_run_resets_the_backoff(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    spawn = functools.partial(CTX.Process, target=_exit_with_time, args=(3, str(marker)),
                              name="petbox-wrk-0")
    stopper = _stop_after(marker, 5)
    try:  # every run counts as stable: each restart is immediate, never 10 s
        _supervise_restoring_signals([spawn], backoff=10.0, stable_after=0.0)
    finally:
        stopper.join()
    assert _starts(marker) >= 5


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


class _ReapedElsewhere(SpawnProcess):
    """A child that something else in the parent reaps as soon as it exits (a ``waitpid``
    on its pid): its exit status is lost, so ``is_alive()`` answers True for ever."""

    def start(self) -> None:
        super().start()
        assert self.pid is not None
        os.waitpid(self.pid, 0)


def _supervise_children_reaped_elsewhere(marker: str) -> None:
    spawn = functools.partial(_ReapedElsewhere, target=_exit_with_time, args=(3, marker),
                              name="petbox-wrk-0")
    stopper = _stop_after(Path(marker), 3)
    supervise([spawn], backoff=0.05, max_backoff=0.1)
    stopper.join()


def test_a_child_reaped_elsewhere_is_still_seen_to_die(tmp_path: Path) -> None:
    """Seen in CI: an exit status taken by another ``waitpid`` in the process left the
    supervisor spinning at full CPU, never restarting the worker nor stopping on SIGTERM.
    The child's sentinel shows the death: it is started again, and SIGTERM stops it all.
    (Run in a process of its own so that a spinning supervisor can be killed.)"""
    marker = tmp_path / "starts"
    runner = CTX.Process(target=_supervise_children_reaped_elsewhere, args=(str(marker),))
    runner.start()
    runner.join(20)
    if runner.is_alive():
        runner.kill()
        runner.join()
    assert (runner.exitcode, _starts(marker) >= 3) == (0, True)
