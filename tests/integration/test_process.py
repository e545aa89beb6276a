"""``petbox`` as a real process: CLI provisioning, SIGKILL and restart, FLUSHALL,
and the embedded defaults (no Redis or database configured)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from gameserver.http.auth import session_signature
from gameserver.ops.embedded import RedisProcess, free_port, running_embedded_redis
from tests.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[2]
GAME_FILE = ROOT / "gameserver" / "examples" / "squirrel-omg.json"


def petbox(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "gameserver.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Server:
    """``petbox serve`` in a child process."""

    def __init__(self, env: dict[str, str], port: int, workers: int = 1) -> None:
        self.env, self.port, self.workers = env, port, workers
        self.proc: subprocess.Popen[bytes] | None = None
        # The server's log goes to a file, never a pipe: a pipe nobody reads fills up
        # (64 KB) under a loaded machine's warnings and the server blocks on it, so it
        # cannot even exit on SIGTERM (seen once in CI: 'timed out after 30 seconds').
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the test

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gameserver.cli", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.stderr)
        wait_ready(self.base, self.proc, self.log, timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit 30 s after SIGTERM; log:\n{self.log()[-4000:]}") \
                from None


def child_pids(server: Server) -> dict[str, int]:
    """The server's child processes: name (as ps shows it) → pid."""
    assert server.proc is not None
    pid = server.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(k) for k in f.read().split()]
    names = {}
    for kid in kids:
        try:
            with open(f"/proc/{kid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue  # exited meanwhile
        if comm.startswith("petbox-"):  # not multiprocessing's resource tracker
            names[comm] = kid
    return names


def process_names(server: Server) -> dict[str, int]:
    """The server's child processes: name (as ps shows it) → niceness."""
    return {name: os.getpriority(os.PRIO_PROCESS, pid)
            for name, pid in child_pids(server).items()}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PETBOX_")}
    base.update({"PETBOX_DATA_DIR": str(tmp_path / "data"), "PETBOX_FLUSH_INTERVAL": "0.2",
                 "PETBOX_ACCESS_LOG": "0", "PETBOX_TOKEN_SECRET": "process-test-secret-123"})
    yield base


async def session(base: str, creds: dict[str, str], user: str) -> str:
    ts = int(time.time())
    async with aiohttp.ClientSession() as http, http.post(f"{base}/v1/sessions", json={
        "merchant": creds["merchant"], "user": user, "ts": ts,
        "sign": session_signature(creds["signing_secret"], creds["merchant"], user, ts),
    }) as resp:
        assert resp.status == 201
        return str((await resp.json())["token"])


async def call(method: str, url: str, token: str, body: Any = None,
               key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body,
                                                             headers=headers) as resp:
        return resp.status, await resp.json()


async def test_kill_restart_and_flushall_lose_nothing(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    with RedisProcess(tmp_path / "redis", appendfsync="always") as rp:
        env = {**env, "PETBOX_REDIS_URL": rp.url,
               "PETBOX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'petbox.db'}"}
        petbox(env, "migrate")
        creds = json.loads(petbox(env, "merchant", "create", "shop", "--json"))
        assert set(creds) == {"merchant", "api_key", "signing_secret"}
        petbox(env, "game", "publish", "shop", "squirrel", str(GAME_FILE))

        server = Server(env, free_port())
        server.start()
        game = f"{server.base}/v1/games/squirrel"
        token = await session(server.base, creds, "alice")
        status, _ = await call("POST", f"{game}/pet", token,
                               {"species": "squirrel", "name": "Nutty"}, "adopt")
        assert status == 201
        for i in range(3):
            status, _ = await call("POST", f"{game}/pet/feed", token, {"food": "acorn_snack"},
                                   f"feed-{i}")
            assert status == 200
        _, before = await call("GET", f"{game}/me", token)
        assert before["version"] == 4

        server.kill()  # SIGKILL: no graceful anything
        server.start()
        _, after_kill = await call("GET", f"{game}/me", token)
        assert after_kill["version"] == 4
        assert after_kill["player"]["wallet"] == before["player"]["wallet"]

        await asyncio.sleep(1.0)  # > flush interval: everything reaches SQL
        redis.Redis.from_url(rp.url).flushall()
        _, after_flush = await call("GET", f"{game}/me", token)
        assert after_flush["version"] == 4
        assert after_flush["player"]["wallet"] == before["player"]["wallet"]
        assert after_flush["player"]["pet"]["xp"] == before["player"]["pet"]["xp"]
        status, _ = await call("POST", f"{game}/pet/feed", token, {"food": "acorn_snack"},
                                 "feed-after-flush")
        assert status == 200
        _, last = await call("GET", f"{game}/me", token)
        assert last["version"] == 5
        assert server.terminate() == 0


async def test_embedded_defaults_start_and_stop(env: dict[str, str], tmp_path: Path) -> None:
    server = Server(env, free_port())
    server.start()  # no PETBOX_REDIS_URL, no PETBOX_DATABASE_URL
    data = tmp_path / "data"
    assert (data / "petbox.db").exists()
    assert (data / "redis").is_dir()
    async with aiohttp.ClientSession() as http, http.get(f"{server.base}/readyz") as resp:
        assert (await resp.json())["checks"] == {"redis": "ok", "sql": "ok"}
    assert server.terminate() == 0
    redis_log = (data / "redis" / "redis.log").read_text()
    assert "ready to exit" in redis_log.lower() or "bye" in redis_log.lower()


def test_a_second_server_on_a_data_dir_in_use_is_refused(env: dict[str, str],
                                                         tmp_path: Path) -> None:
    """A second ``petbox serve`` on the data directory of a running one (``petbox demo``
    and ``serve`` share ./petbox-data) used to start a second embedded redis-server on
    the same AOF: two copies of every player (a balance spendable once on each) and
    one AOF interleaving both. It now stops at once saying the directory is in use,
    and the running server goes on alone."""
    first = Server(env, free_port())
    first.start()
    try:
        redis_dir = tmp_path / "data" / "redis"
        serving = running_embedded_redis(redis_dir)
        assert serving is not None
        second = subprocess.run(
            [sys.executable, "-m", "gameserver.cli", "serve", "--port", str(free_port())],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert f"the data directory {tmp_path / 'data'} is in use" in second.stderr
        assert serving in second.stderr
        assert running_embedded_redis(redis_dir) == serving  # still the only one
        with urllib.request.urlopen(f"{first.base}/readyz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        assert first.terminate() == 0


def test_a_killed_server_restarts_on_its_data_dir(env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """A ``petbox serve`` SIGKILLed leaves its embedded redis-server running (nothing
    stops it). The directory's lock died with the server, so a restart stops that
    left-behind Redis (SIGTERM: its AOF fsynced) and starts its own on the whole AOF,
    instead of refusing until an operator finds the process."""
    redis_dir = tmp_path / "data" / "redis"
    first = Server(env, free_port())
    first.start()
    left = running_embedded_redis(redis_dir)
    assert left is not None
    redis.Redis.from_url(left).set("acknowledged", "before the kill")
    first.kill()
    assert running_embedded_redis(redis_dir) == left  # the crash left it behind

    second = Server(env, free_port())
    second.start()
    try:
        now = running_embedded_redis(redis_dir)
        assert now is not None and now != left
        assert "a stopped petbox left running" in second.log()
        assert redis.Redis.from_url(now).get("acknowledged") == b"before the kill"
    finally:
        assert second.terminate() == 0
    assert running_embedded_redis(redis_dir) is None


async def test_workers_share_the_port_and_a_persister_process_flushes(
        env: dict[str, str], tmp_path: Path) -> None:
    with RedisProcess(tmp_path / "redis") as rp:
        db_file = tmp_path / "petbox.db"
        env = {**env, "PETBOX_REDIS_URL": rp.url, "PETBOX_DATABASE_URL":
               f"sqlite+aiosqlite:///{db_file}"}
        petbox(env, "migrate")
        creds = json.loads(petbox(env, "merchant", "create", "shop", "--json"))
        petbox(env, "game", "publish", "shop", "squirrel", str(GAME_FILE))
        server = Server(env, free_port(), workers=2)
        server.start()
        game = f"{server.base}/v1/games/squirrel"
        for user in ("alice", "bob", "carol"):
            token = await session(server.base, creds, user)
            status, _ = await call("POST", f"{game}/pet", token,
                                   {"species": "squirrel", "name": "N"}, "adopt")
            assert status == 201
        # Ready means one worker answers: on a busy machine the other worker and the
        # persister process may still be starting, and the first flush comes after.
        deadline = time.monotonic() + 30
        users: list[str] = []
        while time.monotonic() < deadline:
            names = process_names(server)
            with closing(sqlite3.connect(db_file)) as conn:
                users = sorted(r[0] for r in conn.execute("SELECT user_id FROM players"))
                versions = {r[0] for r in conn.execute("SELECT version FROM players")}
            if len(names) == 3 and len(users) == 3:
                break
            await asyncio.sleep(0.2)
        assert names == {"petbox-wrk-0": 0, "petbox-wrk-1": 0,
                         "petbox-persist": 10}  # write-behind yields the CPU
        assert users == ["alice", "bob", "carol"] and versions == {1}
        # Workers share the shoppers, so they keep no state cache (settings.py): every
        # feed loads, on whichever worker it lands (each one's /metrics says 0 hits).
        for n in range(4):
            status, _ = await call("POST", f"{game}/pet/feed", token, {"food": "acorn_snack"},
                                   f"feed-{n}")
            assert status == 200
        for _ in range(4):
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{server.base}/metrics") as resp:
                text = await resp.text()
            assert "\npetbox_state_cache_hits_total 0.0\n" in text
        assert server.terminate() == 0


async def test_a_killed_worker_is_started_again(env: dict[str, str], tmp_path: Path) -> None:
    """A worker that dies (here SIGKILL) is logged and replaced: the server keeps both
    workers behind its port instead of limping on with one."""
    with RedisProcess(tmp_path / "redis") as rp:
        env = {**env, "PETBOX_REDIS_URL": rp.url, "PETBOX_DATABASE_URL":
               f"sqlite+aiosqlite:///{tmp_path / 'petbox.db'}", "PETBOX_RUN_PERSISTER": "0"}
        petbox(env, "migrate")
        server = Server(env, free_port(), workers=2)
        server.start()  # ready once one worker answers: the other may still be starting
        for _ in range(300):
            if len(before := child_pids(server)) == 2:
                break
            await asyncio.sleep(0.1)
        assert set(before) == {"petbox-wrk-0", "petbox-wrk-1"}
        os.kill(before["petbox-wrk-1"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = child_pids(server)
            if after.get("petbox-wrk-1") not in (None, before["petbox-wrk-1"]):
                break
            await asyncio.sleep(0.1)
        assert after["petbox-wrk-0"] == before["petbox-wrk-0"]
        assert after["petbox-wrk-1"] != before["petbox-wrk-1"]
        assert server.terminate() == 0
        log = server.log()
        assert f"petbox-wrk-1 (pid {before['petbox-wrk-1']}) exited with code -9; " \
               "starting it again" in log


def readyz(base: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


async def _next_pid(server: Server, name: str, old: int | None, limit: float = 60) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pid = child_pids(server).get(name)
        if pid is not None and pid != old:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} was not started again")


async def test_a_worker_that_keeps_dying_degrades_but_never_stops_the_server(
        env: dict[str, str], tmp_path: Path) -> None:
    """Six SIGKILLs of one worker in well under 60 s (the old supervisor stopped the whole
    server at the sixth): it is restarted with growing back-off, the other worker serves
    throughout, and ``/readyz`` says ``degraded`` (still 200) until it is back."""
    with RedisProcess(tmp_path / "redis") as rp:
        env = {**env, "PETBOX_REDIS_URL": rp.url, "PETBOX_DATABASE_URL":
               f"sqlite+aiosqlite:///{tmp_path / 'petbox.db'}", "PETBOX_RUN_PERSISTER": "0"}
        petbox(env, "migrate")
        server = Server(env, free_port(), workers=2)
        server.start()
        pid = await _next_pid(server, "petbox-wrk-1", None)
        for _ in range(300):  # both workers have started their apps
            if readyz(server.base)[1]["workers"] == {"ready": 2, "expected": 2,
                                                     "degraded": False}:
                break
            await asyncio.sleep(0.1)
        started = time.monotonic()
        for kill in range(6):
            os.kill(pid, signal.SIGKILL)
            if kill < 5:
                pid = await _next_pid(server, "petbox-wrk-1", pid)
        await asyncio.sleep(0.5)  # the 6th restart waits 8 s: degraded meanwhile
        assert server.proc is not None and server.proc.poll() is None
        status, body = readyz(server.base)
        assert status == 200, body
        assert body["workers"] == {"ready": 1, "expected": 2, "degraded": True}
        assert time.monotonic() - started < 60
        await _next_pid(server, "petbox-wrk-1", pid)
        for _ in range(300):
            if not readyz(server.base)[1]["workers"]["degraded"]:
                break
            await asyncio.sleep(0.1)
        assert readyz(server.base)[1]["workers"] == {"ready": 2, "expected": 2,
                                                     "degraded": False}
        assert server.terminate() == 0
        log = server.log()
        assert "starting it again in 8.0 s (6 exits in a row)" in log
        assert "giving up" not in log
