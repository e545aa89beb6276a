"""Fixtures for load-test tests: a bare aiohttp server in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_process import Server, petbox

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, secret: str) -> dict[str, str]:
    """The environment of a ``petbox`` child on ``data_dir``: none of this process's
    ``PETBOX_`` settings, no access log, and the token secret ``secret``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
    env.update({"PETBOX_DATA_DIR": str(data_dir), "PETBOX_ACCESS_LOG": "0",
                "PETBOX_TOKEN_SECRET": secret})
    return env


def serve_loadshop(env: dict[str, str], game: str, game_file: Path, cred_file: Path) -> Server:
    """Create the load-test merchant ``loadshop``, publish ``game_file`` as ``game``, write
    the merchant's credentials to ``cred_file`` and start ``petbox serve`` (the caller
    terminates it)."""
    creds = json.loads(petbox(env, "merchant", "create", "loadshop", "--load-test", "--json"))
    petbox(env, "game", "publish", "loadshop", game, str(game_file))
    cred_file.write_text(json.dumps(creds))
    server = Server(env, free_port())
    server.start()
    return server


class BareServer:
    """``bare_server.py`` in a child process (niced: the replay's timing is under test)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bare_server.py"), str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: os.nice(5))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()  # type: ignore[union-attr]
            try:
                self.seen()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("bare server did not start")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/_seen", timeout=2) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def bare_server() -> Iterator[BareServer]:
    server = BareServer()
    yield server
    server.stop()
