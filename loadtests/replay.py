"""Open-loop replay of a trace against one petbox deployment.

Each record leaves at its intended time — the run's start plus ``t_ms / speed``
— whatever happened to earlier requests, and its latency is measured from that
intended time, not from when it actually left. A slow server therefore shows up
as latency instead of silently slowing the load down (no coordinated omission).
How late each request actually left is measured too ("send lateness"): it is the
scheduler's own error and should stay in the low milliseconds.

Players are split across worker processes by a hash of their id, so one
player's requests stay in order in one process. Each worker has its own asyncio
loop and ``aiohttp.ClientSession``. Sessions are minted through
``createSession`` with the load-test merchant's signing secret: when the trace
says a session opens, or on a player's first request that needs a token. Every
player ``POST`` carries an ``Idempotency-Key`` (run id + record index), and
``X-Petbox-Shadow: 1`` when asked.

The run is bounded: it ends at the end of the trace or at ``max_duration``,
requests still out get at most ``timeout`` more, a worker holds at most
``max_in_flight`` requests (a record beyond that is counted as the error
``client_backlog`` rather than queued without bound), and the parent ends any
worker that overstays a hard deadline. Requests go only to ``base_url``
(redirects are not followed) and, unless ``allow_remote``, only to loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import itertools
import json
import multiprocessing
import os
import queue
import secrets
import signal
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtests.ops import OPERATIONS, Op, session_signature
from loadtests.stats import RunStats, decode, encode, new_hist, record
from loadtests.trace import Header, Record, read_trace

NICE_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
PROGRESS_EVERY_S = 0.5


class ReplayError(Exception):
    """The replay cannot start (bad target, trace or credentials)."""


@dataclass(frozen=True)
class ReplayConfig:
    """Everything a replay (and each of its workers) needs; picklable."""

    traces: tuple[str, ...]
    base_url: str
    merchant: str
    signing_secret: str
    game: str | None = None
    workers: int = 2
    speed: float = 1.0
    max_duration: float | None = None
    ops: frozenset[str] | None = None
    shadow: bool = False
    timeout: float = 10.0
    max_in_flight: int = 5000
    connections: int = 256
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    player_prefix: str | None = None
    start_lead_s: float = 0.25
    allow_remote: bool = False
    premint: bool = False
    """Mint every player's session before the clock starts (not measured)."""

    @property
    def prefix(self) -> str:
        return f"lt{self.run_id}-" if self.player_prefix is None else self.player_prefix


def check_target(base_url: str, allow_remote: bool) -> str:
    """``base_url`` without a trailing slash.

    Refuses other schemes, paths and (unless ``allow_remote``) non-loopback hosts.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReplayError(f"base URL must be http(s)://host[:port], not {base_url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ReplayError("base URL must not have a path, query or fragment")
    if not allow_remote and not _is_loopback(parts.hostname):
        raise ReplayError(f"{parts.hostname} is not a loopback address; replaying at another "
                          "host needs allow_remote (--allow-remote)")
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_of(player: str, workers: int) -> int:
    return zlib.crc32(player.encode()) % workers


def choose_bucket(duration_s: float) -> float:
    """A round time-bucket width giving at most ~150 points over the run."""
    for width in NICE_BUCKETS:
        if duration_s / width <= 150:
            return width
    return NICE_BUCKETS[-1]


@dataclass
class TracePlan:
    """What a first pass over the trace found."""

    header: Header
    records: int
    last_t_ms: int
    by_op: dict[str, int]


def scan(cfg: ReplayConfig) -> TracePlan:
    header, records = read_trace(cfg.traces)
    count, last, by_op = 0, 0, dict[str, int]()
    for rec in records:
        if rec.op not in OPERATIONS or (cfg.ops is not None and rec.op not in cfg.ops):
            continue
        count += 1
        last = rec.t_ms
        by_op[rec.op] = by_op.get(rec.op, 0) + 1
    return TracePlan(header, count, last, by_op)


# -- one worker process ------------------------------------------------------------------


class Worker:
    """One process's share of the players: an asyncio scheduler and an HTTP session."""

    def __init__(self, cfg: ReplayConfig, index: int, bucket_s: float,
                 report: Callable[[str, Any], None], stop: Callable[[], bool],
                 wait_start: Callable[[], float]) -> None:
        self.cfg, self.index, self.report, self.stop = cfg, index, report, stop
        self.wait_start = wait_start
        self.start = 0.0
        self.premint_info: dict[str, Any] = {}
        self.stats = RunStats(bucket_s=bucket_s)
        self.window = new_hist()
        self.base = check_target(cfg.base_url, cfg.allow_remote)
        self.tokens: dict[str, tuple[str, float]] = {}
        self.minting: dict[str, asyncio.Future[str | None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.headers_common = {"Content-Type": "application/json",
                               "User-Agent": f"petbox-loadtest/{cfg.run_id}"}
        if cfg.shadow:
            self.headers_common["X-Petbox-Shadow"] = "1"
        self.http: Any = None
        self.defaults: dict[str, str] = {}

    def my_records(self) -> Iterator[tuple[int, Record]]:
        header, records = read_trace(self.cfg.traces)
        self.defaults = {str(k): str(v) for k, v in header.defaults.items()}
        if self.cfg.game:
            self.defaults["game"] = self.cfg.game
        for idx, rec in enumerate(records):
            if worker_of(rec.player, self.cfg.workers) != self.index:
                continue
            if rec.op not in OPERATIONS or (self.cfg.ops is not None
                                            and rec.op not in self.cfg.ops):
                self.stats.skipped += 1
                continue
            yield idx, rec

    async def run(self) -> dict[str, Any]:
        """Set up, wait for the common start, replay, drain; returns the statistics."""
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.cfg.connections, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         headers=self.headers_common) as http:
            self.http = http
            records = self.my_records()
            first = next(records, None)  # open and parse the trace before the clock starts
            if first is not None:
                records = itertools.chain([first], records)
            if self.cfg.premint:
                await self.premint()
            loop = asyncio.get_running_loop()
            self.start = await loop.run_in_executor(None, self.wait_start)
            ticker = asyncio.create_task(self._progress_loop())
            try:
                await self.dispatch(records)
                await self.drain()
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        self._progress()
        return {**self.stats.to_json(), "premint": self.premint_info}

    async def premint(self) -> None:
        """Sessions for all of this worker's players, 32 at a time, off the clock."""
        players = sorted({rec.player for _, rec in self.my_records()})
        began = time.monotonic()
        gate = asyncio.Semaphore(32)

        async def one(player: str) -> bool:
            async with gate:
                return await self.mint(self.cfg.prefix + player, None) is not None

        done = await asyncio.gather(*(one(p) for p in players))
        self.premint_info = {"players": len(players), "failed": done.count(False),
                             "seconds": round(time.monotonic() - began, 3)}

    async def dispatch(self, records: Iterator[tuple[int, Record]]) -> None:
        loop = asyncio.get_running_loop()
        speed = self.cfg.speed
        stop_at = (self.start + self.cfg.max_duration if self.cfg.max_duration is not None
                   else float("inf"))
        for n, (idx, rec) in enumerate(records):
            due = self.start + rec.t_ms / 1000.0 / speed
            if due > stop_at or (n & 127 == 0 and self.stop()):
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.in_flight >= self.cfg.max_in_flight:
                self._finish(rec.op, due, "client_backlog", measured=False)
                continue
            self.in_flight += 1
            self.stats.sent += 1
            task = loop.create_task(self.fire(idx, rec, due))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=self.cfg.timeout + 1.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def _bucket(self, due: float) -> int:
        return int(max(0.0, due - self.start) / self.stats.bucket_s)

    def _finish(self, op: str, due: float, code: str, measured: bool = True) -> None:
        latency = (time.monotonic() - due) * 1e6
        self.stats.add(op, code, latency, self._bucket(due), measured)
        if measured:
            record(self.window, latency)

    async def fire(self, idx: int, rec: Record, due: float) -> None:
        record(self.stats.lateness, (time.monotonic() - due) * 1e6)
        try:
            op = OPERATIONS[rec.op]
            user = self.cfg.prefix + rec.player
            if op.op_id == "createSession":
                await self.mint(user, due)
                return
            try:
                path = op.url_path({**self.defaults, **(rec.params or {}),
                                    **({"game": self.cfg.game} if self.cfg.game else {})})
            except KeyError as exc:
                self._finish(op.op_id, due, f"bad_record missing_{exc.args[0]}", measured=False)
                return
            headers = {}
            if op.auth == "player":
                token = await self.token(user, due)
                if token is None:
                    self._finish(op.op_id, due, "no_session", measured=False)
                    return
                headers["Authorization"] = f"Bearer {token}"
            if op.is_write:
                headers["Idempotency-Key"] = f"{self.cfg.run_id}-{idx}"
            body = None if op.method == "GET" else json.dumps(
                rec.body if rec.body is not None else {}).encode()
            code, _ = await self.send(op, path, body, headers)
            self._finish(op.op_id, due, code)
        finally:
            self.in_flight -= 1

    async def send(self, op: Op, path: str, body: bytes | None,
                   headers: dict[str, str]) -> tuple[str, Any]:
        """One HTTP exchange; returns the code string and, on success, the JSON body."""
        import aiohttp

        try:
            async with self.http.request(op.method, self.base + path, data=body,
                                         headers=headers, allow_redirects=False) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            return "timeout", None
        except aiohttp.ClientError as exc:
            return f"client_error {type(exc).__name__}", None
        if 200 <= status < 300:
            return str(status), raw
        try:
            err = json.loads(raw)["error"]["code"]
            return f"{status} {err}", None
        except (ValueError, KeyError, TypeError):
            return str(status), None

    async def token(self, user: str, due: float) -> str | None:
        """A valid token for ``user``: cached, being minted, or minted now."""
        cached = self.tokens.get(user)
        if cached is not None and cached[1] - time.time() > 60:
            return cached[0]
        pending = self.minting.get(user)
        if pending is not None:
            return await pending
        return await self.mint(user, due)

    async def mint(self, user: str, due: float | None) -> str | None:
        """``createSession`` for ``user``: a request of its own, unless premint (``due`` None)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self.minting[user] = future
        token: str | None = None
        try:
            ts = int(time.time())
            session: dict[str, Any] = {
                "merchant": self.cfg.merchant, "user": user, "ts": ts,
                "sign": session_signature(self.cfg.signing_secret, self.cfg.merchant, user, ts,
                                          shadow=self.cfg.shadow)}
            if self.cfg.shadow:
                session["shadow"] = True
            body = json.dumps(session).encode()
            code, raw = await self.send(OPERATIONS["createSession"], "/v1/sessions", body, {})
            if due is not None:
                self._finish("createSession", due, code)
            if raw is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    data = json.loads(raw)
                    token = str(data["token"])
                    self.tokens[user] = (token, float(data.get("expires_at", time.time() + 600)))
        finally:
            if self.minting.get(user) is future:
                del self.minting[user]
            future.set_result(token)
        return token

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self._progress()

    def _progress(self) -> None:
        s = self.stats
        self.report("progress", {"sent": s.sent, "completed": s.completed, "errors": s.errors,
                                 "window": encode(self.window)})
        self.window.reset()


def _worker_main(cfg: ReplayConfig, index: int, start_at: Any, go: Any, stop: Any,
                 out: Any, bucket_s: float) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop

    def report(kind: str, data: Any) -> None:
        out.put((kind, index, data))

    def wait_start() -> float:
        """Say ready (set-up done), then block until the parent gives the start time."""
        gc.collect()
        gc.freeze()  # set-up objects never need scanning again: fewer, shorter pauses
        report("ready", None)
        go.wait()
        return float(start_at.value)

    try:
        worker = Worker(cfg, index, bucket_s, report, stop.is_set, wait_start)
        report("done", asyncio.run(worker.run()))
    except BaseException as exc:
        report("failed", f"{type(exc).__name__}: {exc}")
        raise


# -- the parent ------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """A finished replay: merged statistics and what the run was."""

    stats: RunStats
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"format": "petbox-loadtest-results", "version": 1, "meta": self.meta,
                "stats": self.stats.to_json()}


class Progress:
    """The live line: done/total, rate, errors and p99 of the last seconds."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done: dict[int, int] = {}
        self.errors: dict[int, int] = {}
        self.windows: deque[tuple[float, Any]] = deque()
        self.rates: deque[tuple[float, int]] = deque()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("replay"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[line]}"), TimeElapsedColumn(),
                            refresh_per_second=4)
            self._bar.__enter__()
            self._task = self._bar.add_task("replay", total=self.total, line="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def update(self, worker: int, data: dict[str, Any]) -> None:
        now = time.monotonic()
        self.done[worker] = data["completed"]
        self.errors[worker] = data["errors"]
        self.windows.append((now, decode(data["window"])))
        while self.windows and self.windows[0][0] < now - 2.0:
            self.windows.popleft()
        done = sum(self.done.values())
        self.rates.append((now, done))
        while len(self.rates) > 2 and self.rates[0][0] < now - 2.0:
            self.rates.popleft()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, line=self.line())

    def line(self) -> str:
        (t0, n0), (t1, n1) = self.rates[0], self.rates[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        window = new_hist()
        for _, hist in self.windows:
            window.add(hist)
        p99 = window.get_value_at_percentile(99) / 1000 if window.get_total_count() else 0.0
        done = max(1, sum(self.done.values()))
        errors = sum(self.errors.values())
        return (f"{rate:8.0f} req/s  errors {errors} ({100 * errors / done:.2f}%)  "
                f"p99 {p99:.1f} ms")


def replay(cfg: ReplayConfig, progress: bool = False,
           on_plan: Callable[[TracePlan], None] | None = None) -> ReplayResult:
    """Run the replay described by ``cfg``; returns merged results (partial if cut short)."""
    check_target(cfg.base_url, cfg.allow_remote)
    if cfg.workers < 1 or cfg.speed <= 0 or cfg.timeout <= 0:
        raise ReplayError("workers, speed and timeout must be positive")
    plan = scan(cfg)
    if on_plan is not None:
        on_plan(plan)
    span = plan.last_t_ms / 1000.0 / cfg.speed
    if cfg.max_duration is not None:
        span = min(span, cfg.max_duration)
    bucket_s = choose_bucket(span)
    ctx = multiprocessing.get_context("spawn")
    start_at, go, stop, out = ctx.Value("d", 0.0), ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"loadtest-worker-{i}", daemon=True,
                         args=(cfg, i, start_at, go, stop, out, bucket_s))
             for i in range(cfg.workers)]
    for proc in procs:
        proc.start()
    merged = RunStats(bucket_s=bucket_s)
    meta: dict[str, Any] = {
        "run_id": cfg.run_id, "base_url": cfg.base_url, "workers": cfg.workers,
        "speed": cfg.speed, "shadow": cfg.shadow, "max_duration": cfg.max_duration,
        "ops": sorted(cfg.ops) if cfg.ops is not None else "all", "game": cfg.game,
        "player_prefix": cfg.prefix, "premint": {}, "trace": plan.header.pack(),
        "trace_records": plan.records,
        "trace_by_op": plan.by_op, "bucket_s": bucket_s, "partial": False, "failures": [],
    }
    try:
        _await_ready(out, procs, 3600.0 if cfg.premint else 120.0)
        start_at.value = time.monotonic() + cfg.start_lead_s
        meta["started_at"] = time.time() + cfg.start_lead_s
        go.set()
        deadline = start_at.value + span + cfg.timeout + 15.0
        _collect(out, procs, merged, meta, deadline, Progress(plan.records, progress))
    except KeyboardInterrupt:
        stop.set()
        meta["partial"] = True
        meta["failures"].append("interrupted")
        with contextlib.suppress(KeyboardInterrupt):
            _collect(out, procs, merged, meta, time.monotonic() + cfg.timeout + 5.0,
                     Progress(plan.records, False))
    finally:
        _end(procs)
    meta["elapsed_s"] = time.time() - meta.get("started_at", time.time())
    return ReplayResult(merged, meta)


def _await_ready(out: Any, procs: list[Any], limit_s: float) -> None:
    ready: set[int] = set()
    deadline = time.monotonic() + limit_s
    while len(ready) < len(procs):
        try:
            kind, index, data = out.get(timeout=0.5)
        except queue.Empty:
            if time.monotonic() > deadline or any(p.exitcode is not None for p in procs):
                raise ReplayError("replay workers did not start") from None
            continue
        if kind == "failed":
            raise ReplayError(f"worker {index} failed: {data}")
        if kind == "ready":
            ready.add(index)


def _collect(out: Any, procs: list[Any], merged: RunStats, meta: dict[str, Any],
             deadline: float, bar: Progress) -> None:
    finished: set[int] = set()
    with bar:
        while len(finished) < len(procs):
            if time.monotonic() > deadline:
                meta["partial"] = True
                meta["failures"].append("hard deadline passed: workers ended")
                return
            try:
                kind, index, data = out.get(timeout=0.25)
            except queue.Empty:
                for i, p in enumerate(procs):
                    if i not in finished and p.exitcode is not None:
                        finished.add(i)
                        meta["partial"] = True
                        meta["failures"].append(f"worker {i} exited with {p.exitcode}")
                continue
            if kind == "progress":
                bar.update(index, data)
            elif kind == "done":
                merged.merge(data)
                meta.setdefault("premint", {})[str(index)] = data.get("premint") or {}
                finished.add(index)
            elif kind == "failed":
                meta["partial"] = True
                meta["failures"].append(f"worker {index}: {data}")
                finished.add(index)


def _end(procs: list[Any]) -> None:
    for proc in procs:
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5.0)
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()


def save_results(result: ReplayResult, path: Path | str) -> None:
    Path(path).write_text(json.dumps(result.to_json()))


def load_results(path: Path | str) -> ReplayResult:
    data = json.loads(Path(path).read_text())
    if data.get("format") != "petbox-loadtest-results":
        raise ReplayError(f"{path} is not a petbox load-test results file")
    return ReplayResult(RunStats.from_json(data["stats"]), data["meta"])
