"""Replay of a trace against one petbox deployment: open loop across players,
causal within each.

Every record is due at the run's start plus ``t_ms / speed``. Different players
never wait for each other (no coordinated omission: a stalled server shows as
latency, as players falling behind the schedule and as achieved < offered),
while one player's requests go in order, each after that player's previous
reply, with values the server handed back (tickets) fed into later requests
(see :mod:`loadtests.worker`).

Players are split across worker processes by a hash of their id, and across
generator processes (``shard``/``shards``, on one host or many, started together
with ``start_at``) by another; results of several generators merge exactly
(:func:`merge_results`). Sessions are minted through ``createSession`` with the
load-test merchant's signing secret, as load-test (shadow) sessions unless
``shadow`` is turned off. Every player ``POST`` carries an ``Idempotency-Key``.

The run is bounded: it ends at the end of the trace or at ``max_duration``,
queued requests of slow players get ``drain_s`` more, a request gets at most
``timeout``, a worker holds at most ``max_in_flight`` requests (beyond that a
request waits for a slot up to ``timeout``, then counts as ``client_backlog``),
and the parent ends any worker that overstays a hard deadline. Requests go only
to ``base_url`` (redirects are not followed) and, unless ``allow_remote``, only
to loopback.
"""


from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import multiprocessing
import os
import queue
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtests.ops import OPERATIONS
from loadtests.stats import RunStats, decode, new_hist
from loadtests.trace import Header, read_trace
from loadtests.worker import clone_name, owner, placement

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
    shadow: bool = True
    """Load-test sessions on the shadow keyspace (the default; real data needs opting in)."""
    timeout: float = 10.0
    max_in_flight: int = 5000
    connections: int = 256
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    player_prefix: str | None = None
    start_lead_s: float = 0.25
    allow_remote: bool = False
    premint: bool = False
    """Mint every player's session before the clock starts (not measured)."""
    clones: int = 1
    """Replay each trace player this many times (clones are new shadow identities)."""
    shard: int = 0
    shards: int = 1
    """This generator process replays the players with ``owner(player, shards) == shard``."""
    start_at: float | None = None
    """Unix time to start at (several generator processes start together)."""
    drain_s: float = 30.0
    """After the trace, how long queued requests of slow players may still go out."""
    samples_dir: str | None = None
    """Write every measured latency (``op µs`` lines) here too: to check the histograms."""

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


def probe_merchant(cfg: ReplayConfig) -> None:
    """Check, before any load, that the merchant is marked for load tests.

    One ``createSession`` for a load-test (shadow) session: the server grants it only
    to a merchant marked for load tests, and it touches no data. A refusal stops the
    replay, whether it would run on shadow data or (``--real-data``) on real data; a
    server without shadow data refuses the session (after checking the merchant's mark),
    which stops a shadow replay only.
    """
    import urllib.error
    import urllib.request

    from gameserver.http.signing import session_signature

    base = check_target(cfg.base_url, cfg.allow_remote)
    user, ts = f"{cfg.prefix}probe", int(time.time())
    body = {"merchant": cfg.merchant, "user": user, "ts": ts, "shadow": True,
            "sign": session_signature(cfg.signing_secret, cfg.merchant, user, ts, shadow=True)}
    req = urllib.request.Request(f"{base}/v1/sessions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout):
            return
    except urllib.error.HTTPError as exc:
        status, message = exc.code, _error_message(exc)
    except OSError as exc:
        raise ReplayError(f"{base} is not reachable: {exc}") from exc
    if status == 403 and "shadow traffic is not configured" in message:
        # The server checks the merchant's mark first: it is a load-test merchant, and a
        # --real-data replay needs no shadow data; a shadow one would be refused throughout.
        if not cfg.shadow:
            return
        raise ReplayError(f"the target refuses load-test sessions: {message}: nothing was sent")
    if status == 403:
        raise ReplayError(f"merchant {cfg.merchant!r} is not marked for load tests (create one "
                          "with `petbox merchant create NAME --load-test`): nothing was sent")
    if status == 401:
        raise ReplayError(f"the signing secret of merchant {cfg.merchant!r} was refused")
    raise ReplayError(f"the load-test probe (createSession) got HTTP {status}")


def _error_message(exc: Any) -> str:
    """The ``error.message`` of a petbox error reply ('' when it is not one)."""
    try:
        message = json.loads(exc.read())["error"]["message"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return message if isinstance(message, str) else ""


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
    incomplete: list[str] = field(default_factory=list)
    """Files that end inside a record: what of each is left out (say so before replaying)."""


def scan(cfg: ReplayConfig) -> TracePlan:
    incomplete: list[str] = []
    header, records = read_trace(cfg.traces, incomplete.append)
    groups = placement(cfg)[0] if cfg.shards > 1 else {}
    count, last, by_op = 0, 0, dict[str, int]()
    for rec in records:
        if rec.op not in OPERATIONS or (cfg.ops is not None and rec.op not in cfg.ops):
            continue
        mine = sum(1 for k in range(cfg.clones) if cfg.shards == 1 or owner(
            clone_name(groups.get(rec.player, rec.player), k), cfg.shards) == cfg.shard)
        if not mine:
            continue
        count += mine
        last = rec.t_ms
        by_op[rec.op] = by_op.get(rec.op, 0) + mine
    return TracePlan(header, count, last, by_op, incomplete)


# -- worker processes ------------------------------------------------------------------


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
"""Signals that stop a replay as Ctrl-C does: what a terminal, ``kill``, systemd, a
container stop or ``timeout`` send."""
PARENT_POLL_S = 0.25
"""How often a worker looks whether its parent is still there."""


def _watch_parent(parent: int) -> None:
    """End this worker as soon as its parent is gone (killed with SIGKILL, or crashed):
    nobody would read its results, and it must not go on firing the trace at the target.
    The parent's death re-parents the worker, so ``getppid`` changes."""
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            os._exit(1)  # no clean-up: the queue's reader is gone, a flush would block


def _worker_main(cfg: ReplayConfig, index: int, start_at: Any, go: Any, stop: Any,
                 out: Any, bucket_s: float, parent: int | None = None) -> None:
    """Entry point of a worker process."""
    # The parent decides when to stop: a signal to the whole process group (Ctrl-C at a
    # terminal, ``timeout``, a container stop) would otherwise end the workers before
    # they report, and the partial report would have nothing in it.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch",
                         daemon=True).start()

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
        from loadtests.worker import Worker

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
        return {"format": "petbox-loadtest-results", "version": 2, "meta": self.meta,
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
    """Run the replay described by ``cfg``; returns merged results (partial if cut short
    by SIGINT, SIGTERM or SIGHUP: Ctrl-C, ``kill``, a service or container stop)."""
    with _interruptible():
        return _replay(cfg, progress, on_plan)


class Interrupted(KeyboardInterrupt):
    """A stop signal other than SIGINT arrived (its name is in :attr:`signame`)."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _interruptible() -> Any:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt while the replay runs, whatever
    this process inherited: a replay started in the background of a script (``cmd &``)
    inherits SIGINT ignored, and SIGTERM (``kill``, systemd, a container stop) ended the
    process at once, without a report, leaving its workers firing at the target. The
    previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = {signum: signal.signal(signum, signal.default_int_handler
                                      if signum == signal.SIGINT else _raise_interrupted)
                for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _replay(cfg: ReplayConfig, progress: bool,
            on_plan: Callable[[TracePlan], None] | None) -> ReplayResult:
    check_target(cfg.base_url, cfg.allow_remote)
    if cfg.workers < 1 or cfg.speed <= 0 or cfg.timeout <= 0 or cfg.clones < 1:
        raise ReplayError("workers, speed, timeout and clones must be positive")
    if not 0 <= cfg.shard < cfg.shards:
        raise ReplayError(f"shard {cfg.shard} of {cfg.shards} does not exist")
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
                         args=(cfg, i, start_at, go, stop, out, bucket_s, os.getpid()))
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
        "clones": cfg.clones, "shard": f"{cfg.shard}/{cfg.shards}", "span_s": span,
        "timeout_s": cfg.timeout, "max_in_flight": cfg.max_in_flight,
    }
    try:
        _await_ready(out, procs, 3600.0 if cfg.premint else 120.0)
        lead = cfg.start_lead_s if cfg.start_at is None else max(0.0, cfg.start_at - time.time())
        start_at.value = time.monotonic() + lead
        meta["started_at"] = time.time() + lead
        go.set()
        deadline = start_at.value + span + 2 * cfg.timeout + cfg.drain_s + 15.0
        _collect(out, procs, merged, meta, deadline, Progress(plan.records, progress))
    except KeyboardInterrupt as exc:
        stop.set()
        # Only what was due before the interrupt was offered: the offered rate is over
        # the time the run had, not over the whole trace.
        ran = time.monotonic() - start_at.value if go.is_set() else 0.0
        if not go.is_set():  # interrupted before the start: workers see the stop and end
            go.set()
        meta["span_s"] = max(0.0, min(span, ran))
        meta["partial"] = True
        meta["failures"].append(f"interrupted ({exc.signame})"
                                if isinstance(exc, Interrupted) else "interrupted")
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
    """Reap every worker; one that overstays is killed (workers ignore SIGTERM: the
    parent decides when they stop, so only SIGKILL ends one that does not)."""
    for proc in procs:
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.kill()
            proc.join()


def save_results(result: ReplayResult, path: Path | str) -> None:
    Path(path).write_text(json.dumps(result.to_json()))


def merge_results(results: list[ReplayResult]) -> ReplayResult:
    """One result from several generator processes' results (same trace, same start).

    Histograms merge exactly (HDR), counts add, the time line is aligned on each
    run's start: generators started with the same ``start_at`` line up.
    """
    if not results:
        raise ReplayError("nothing to merge")
    stats = RunStats(bucket_s=results[0].stats.bucket_s)
    for res in results:
        if res.stats.bucket_s != stats.bucket_s:
            raise ReplayError("results with different time buckets cannot be merged")
        stats.merge(res.stats.to_json())
    meta = dict(results[0].meta)
    metas = [r.meta for r in results]
    meta.update({
        "merged_from": [m.get("run_id") for m in metas],
        "workers": sum(int(m.get("workers") or 0) for m in metas),
        "trace_records": sum(int(m.get("trace_records") or 0) for m in metas),
        "elapsed_s": max(float(m.get("elapsed_s") or 0.0) for m in metas),
        "started_at": min(float(m.get("started_at") or 0.0) for m in metas),
        "partial": any(m.get("partial") for m in metas),
        "failures": [f for m in metas for f in m.get("failures", [])],
    })
    return ReplayResult(stats, meta)


def load_results(path: Path | str) -> ReplayResult:
    data = json.loads(Path(path).read_text())
    if data.get("format") != "petbox-loadtest-results":
        raise ReplayError(f"{path} is not a petbox load-test results file")
    return ReplayResult(RunStats.from_json(data["stats"]), data["meta"])
