"""Latency and error bookkeeping shared by replay workers, generators and reports.

Latencies are microseconds in HDR histograms (``hdrhistogram``): one per
operation and one overall at 3 significant digits, and one per time bucket at 2
(enough for p50/p99/p999 over time, and small). Histograms travel between
processes, hosts and into ``results.json`` encoded (the HdrHistogram compressed
base64 form), so anyone can re-read and merge them: the merge of several
generators' histograms is exactly the histogram of all their samples.

Every outcome has a code string (``"200"``, ``"409 cooldown"``, ``"timeout"``)
and a class (:func:`classify`): ``ok``, ``refusal`` (a 4xx: the server said no,
by code), ``shed`` (a 429 or 503 with ``Retry-After``: the server turned the request
away by design, to stay within its capacity; its code ends with
:data:`SHED_MARK`), ``5xx`` (any other 5xx: failed), ``timeout``, ``transport``
(connection failures), ``backlog`` (the generator could not send it in time: never
sent) and ``client`` (a request the generator could not build, e.g. no session).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_US = 600_000_000
"""Longest latency tracked (10 min); longer values are clamped."""

CLASSES = ("ok", "refusal", "shed", "5xx", "timeout", "transport", "backlog", "client")
FAILURE_CLASSES = ("5xx", "timeout", "transport", "backlog", "client")
"""Outcomes that are failures (a refusal or a shed request is the server's answer by
design, counted apart)."""
ANSWERED_CLASSES = ("ok", "refusal", "shed", "5xx")
"""Outcomes the server answered (any HTTP status)."""
SHED_MARK = "retry-after"
"""Last word of the code of a 429 or 503 that came with ``Retry-After``."""
SHED_STATUSES = (429, 503)


def outcome_code(status: int, error: str | None, retry_after: bool) -> str:
    """The code string of an HTTP answer (``"503 overloaded retry-after"``)."""
    code = str(status) if error is None else f"{status} {error}"
    return f"{code} {SHED_MARK}" if retry_after and status in SHED_STATUSES else code


def new_hist(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(1, MAX_US, digits)


def record(hist: HdrHistogram, micros: float) -> None:
    hist.record_value(min(MAX_US, max(1, int(micros))))


def encode(hist: HdrHistogram) -> str:
    data = hist.encode()
    return data.decode() if isinstance(data, bytes) else str(data)


def decode(data: str | bytes) -> HdrHistogram:
    return HdrHistogram.decode(data.encode() if isinstance(data, str) else data)


def merge_into(target: HdrHistogram, data: str | bytes | HdrHistogram) -> HdrHistogram:
    target.add(data if isinstance(data, HdrHistogram) else decode(data))
    return target


def classify(code: str) -> str:
    """The class of an outcome code (see the module docstring)."""
    head = code.split(" ", 1)[0]
    if head.isdigit():
        status = int(head)
        if 200 <= status < 400:
            return "ok"
        if status in SHED_STATUSES and code.endswith(f" {SHED_MARK}"):
            return "shed"
        return "5xx" if status >= 500 else "refusal"
    if head == "timeout":
        return "timeout"
    if head == "client_error":
        return "transport"
    if head == "client_backlog":
        return "backlog"
    return "client"


def same_refusal(code: str, recorded: str) -> bool:
    """Whether ``code`` is the refusal a recording had (by error code, else by status)."""
    return _error_word(code) == _error_word(recorded)


def _error_word(code: str) -> str:
    words = code.split(" ")
    if len(words) > 1 and words[-1] == SHED_MARK:
        words.pop()
    return words[-1]


def is_error(code: str) -> bool:
    """Whether a response code string (``"200"``, ``"404 not_found"``, ``"timeout"``) failed."""
    return classify(code) != "ok"


@dataclass
class Bucket:
    """One slice of run time: what was due in it, and what happened in it."""

    count: int = 0
    """Requests due in this slice that finished (any outcome)."""
    errors: int = 0
    offered: int = 0
    """Requests due in this slice (the trace's rate, after speed and clones)."""
    achieved: int = 0
    """Answers (any HTTP status) received in this slice: what the server delivered."""
    inflight_max: int = 0
    hist: HdrHistogram = field(default_factory=lambda: new_hist(2))
    lateness: HdrHistogram = field(default_factory=lambda: new_hist(2))
    codes: Counter[str] = field(default_factory=Counter)
    """Failures and refusals of requests due in this slice, by code."""

    def to_json(self) -> dict[str, Any]:
        return {"n": self.count, "errors": self.errors, "offered": self.offered,
                "achieved": self.achieved, "inflight_max": self.inflight_max,
                "hist": encode(self.hist), "lateness": encode(self.lateness),
                "codes": dict(self.codes)}

    def merge(self, data: dict[str, Any]) -> None:
        for name in ("count", "errors", "offered", "achieved"):
            key = "n" if name == "count" else name
            setattr(self, name, getattr(self, name) + int(data[key]))
        # Workers run at the same time: their peaks add up (an upper bound of the sum).
        self.inflight_max += int(data["inflight_max"])
        merge_into(self.hist, data["hist"])
        merge_into(self.lateness, data["lateness"])
        self.codes.update(data["codes"])


@dataclass
class RunStats:
    """Everything one worker (or, merged, a whole replay) measured."""

    bucket_s: float = 1.0
    all: HdrHistogram = field(default_factory=new_hist)
    lateness: HdrHistogram = field(default_factory=new_hist)
    """Scheduler error: actual send time minus when the request could first leave."""
    own_lateness: HdrHistogram = field(default_factory=new_hist)
    """Send lateness less any wait for a free connection: the scheduler's own error."""
    target: HdrHistogram = field(default_factory=new_hist)
    """The target's own time: from the actual send to the answer."""
    behind: HdrHistogram = field(default_factory=new_hist)
    """Schedule lateness: actual send time minus the trace's time for the request
    (includes waiting for the same player's previous reply: a slow server shows here)."""
    ops: dict[str, HdrHistogram] = field(default_factory=dict)
    codes: dict[str, Counter[str]] = field(default_factory=dict)
    buckets: dict[int, Bucket] = field(default_factory=dict)
    sent: int = 0
    completed: int = 0
    errors: int = 0
    skipped: int = 0
    answered: int = 0
    """Requests the server answered (any HTTP status)."""
    expected: Counter[str] = field(default_factory=Counter)
    """Refusals the recording had too (same error code), by operation."""
    first_due_s: float | None = None
    last_due_s: float = 0.0
    """When the last request became due: past the trace's end when real-time holds
    (browsing, a session's age) outlast a sped-up trace."""
    last_done_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    cpu_max_share: float = 0.0
    """The busiest generator process's CPU time over its wall time."""
    logins: Counter[str] = field(default_factory=Counter)
    """Sessions the replay opened on its own (a player's first request that needs a
    token, where the trace opens none), by outcome code: apart from the trace's requests,
    its offered and achieved rates and the latency of the request that needed it."""
    login_hist: HdrHistogram = field(default_factory=new_hist)
    no_session: int = 0
    """Requests not sent because their player's login failed (the refusal is counted
    once, as the login's)."""

    def bucket(self, index: int) -> Bucket:
        b = self.buckets.get(index)
        if b is None:
            b = self.buckets[index] = Bucket()
        return b

    def index(self, t_s: float) -> int:
        return int(max(0.0, t_s) / self.bucket_s)

    def offer(self, due_s: float) -> None:
        """A request became due at ``due_s`` (seconds after the start)."""
        self.bucket(self.index(due_s)).offered += 1
        if self.first_due_s is None or due_s < self.first_due_s:
            self.first_due_s = due_s
        self.last_due_s = max(self.last_due_s, due_s)

    def postpone(self, due_s: float, held_s: float) -> None:
        """A request offered at ``due_s`` became due only at ``held_s`` (a hold the
        trace asks for in real time): it is offered then instead."""
        self.bucket(self.index(due_s)).offered -= 1
        self.offer(held_s)

    def add(self, op: str, code: str, latency_us: float, bucket: int,
            measured: bool = True, done_s: float | None = None,
            expect: str | None = None) -> bool:
        """Count one finished request; returns whether it was an error."""
        cls = classify(code)
        err = cls != "ok"
        if err and cls == "refusal" and expect is not None and same_refusal(code, expect):
            self.expected[op] += 1
        self.completed += 1
        self.errors += err
        self.codes.setdefault(op, Counter())[code] += 1
        b = self.bucket(bucket)
        b.count += 1
        b.errors += err
        if err:
            b.codes[code] += 1
        if done_s is not None and cls in ANSWERED_CLASSES:
            self.answered += 1
            self.bucket(self.index(done_s)).achieved += 1
            self.last_done_s = max(self.last_done_s, done_s)
        if measured:
            hist = self.ops.get(op)
            if hist is None:
                hist = self.ops[op] = new_hist()
            record(hist, latency_us)
            record(self.all, latency_us)
            record(b.hist, latency_us)
        return err

    def login(self, code: str, latency_us: float) -> None:
        """Count one login the replay made on its own (see :attr:`logins`)."""
        self.logins[code] += 1
        record(self.login_hist, latency_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "logins": dict(self.logins), "login_hist": encode(self.login_hist),
            "no_session": self.no_session,
            "bucket_s": self.bucket_s, "sent": self.sent, "completed": self.completed,
            "errors": self.errors, "skipped": self.skipped, "answered": self.answered,
            "expected": dict(self.expected),
            "first_due_s": self.first_due_s, "last_due_s": self.last_due_s,
            "last_done_s": self.last_done_s,
            "cpu_s": self.cpu_s, "wall_s": self.wall_s, "cpu_max_share": self.cpu_max_share,
            "histograms": {"all": encode(self.all), "lateness": encode(self.lateness),
                           "own_lateness": encode(self.own_lateness),
                           "target": encode(self.target),
                           "behind": encode(self.behind),
                           "ops": {op: encode(h) for op, h in sorted(self.ops.items())}},
            "codes": {op: dict(c) for op, c in sorted(self.codes.items())},
            "buckets": {str(i): b.to_json() for i, b in sorted(self.buckets.items())},
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Add another worker's (or generator's) ``to_json`` output."""
        self.bucket_s = float(data["bucket_s"])
        for name in ("sent", "completed", "errors", "skipped", "answered"):
            setattr(self, name, getattr(self, name) + int(data[name]))
        self.expected.update(data["expected"])
        # Results written before logins were counted apart have none of these.
        self.logins.update(data.get("logins") or {})
        if data.get("login_hist"):
            merge_into(self.login_hist, data["login_hist"])
        self.no_session += int(data.get("no_session") or 0)
        self.cpu_s += float(data["cpu_s"])
        self.wall_s = max(self.wall_s, float(data["wall_s"]))
        self.cpu_max_share = max(self.cpu_max_share, float(data["cpu_max_share"]))
        self.last_done_s = max(self.last_done_s, float(data["last_done_s"]))
        self.last_due_s = max(self.last_due_s, float(data.get("last_due_s") or 0.0))
        first = data["first_due_s"]
        if first is not None and (self.first_due_s is None or first < self.first_due_s):
            self.first_due_s = float(first)
        hists = data["histograms"]
        merge_into(self.all, hists["all"])
        merge_into(self.lateness, hists["lateness"])
        merge_into(self.behind, hists["behind"])
        for name in ("own_lateness", "target"):  # results of older releases lack them
            if hists.get(name):
                merge_into(getattr(self, name), hists[name])
        for op, enc in hists["ops"].items():
            merge_into(self.ops.setdefault(op, new_hist()), enc)
        for op, codes in data["codes"].items():
            self.codes.setdefault(op, Counter()).update(codes)
        for key, bucket in data["buckets"].items():
            self.bucket(int(key)).merge(bucket)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStats:
        stats = cls()
        stats.merge(data)
        return stats
