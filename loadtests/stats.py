"""Latency and error bookkeeping shared by replay workers and reports.

Latencies are microseconds in HDR histograms (``hdrhistogram``): one per
operation and one overall at 3 significant digits, and one per time bucket at 2
(enough for p50/p99/p999 over time, and small: a bucket costs ~25 KB).
Histograms travel between processes and into ``results.json`` encoded
(the HdrHistogram compressed base64 form), so anyone can re-read them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_US = 600_000_000
"""Longest latency tracked (10 min); longer values are clamped."""


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


def is_error(code: str) -> bool:
    """Whether a response code string (``"200"``, ``"404 not_found"``, ``"timeout"``) failed."""
    head = code.split(" ", 1)[0]
    return not (head.isdigit() and 200 <= int(head) < 300)


@dataclass
class Bucket:
    """One slice of (intended) time."""

    count: int = 0
    errors: int = 0
    hist: HdrHistogram = field(default_factory=lambda: new_hist(2))

    def to_json(self) -> dict[str, Any]:
        return {"n": self.count, "errors": self.errors, "hist": encode(self.hist)}

    def merge(self, data: dict[str, Any]) -> None:
        self.count += int(data["n"])
        self.errors += int(data["errors"])
        merge_into(self.hist, data["hist"])


@dataclass
class RunStats:
    """Everything one worker (or, merged, a whole replay) measured."""

    bucket_s: float = 1.0
    all: HdrHistogram = field(default_factory=new_hist)
    lateness: HdrHistogram = field(default_factory=new_hist)
    ops: dict[str, HdrHistogram] = field(default_factory=dict)
    codes: dict[str, Counter[str]] = field(default_factory=dict)
    buckets: dict[int, Bucket] = field(default_factory=dict)
    sent: int = 0
    completed: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, op: str, code: str, latency_us: float, bucket: int,
            measured: bool = True) -> bool:
        """Count one finished request; returns whether it was an error."""
        err = is_error(code)
        self.completed += 1
        self.errors += err
        self.codes.setdefault(op, Counter())[code] += 1
        b = self.buckets.get(bucket)
        if b is None:
            b = self.buckets[bucket] = Bucket()
        b.count += 1
        b.errors += err
        if measured:
            hist = self.ops.get(op)
            if hist is None:
                hist = self.ops[op] = new_hist()
            record(hist, latency_us)
            record(self.all, latency_us)
            record(b.hist, latency_us)
        return err

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket_s": self.bucket_s, "sent": self.sent, "completed": self.completed,
            "errors": self.errors, "skipped": self.skipped,
            "histograms": {"all": encode(self.all), "lateness": encode(self.lateness),
                           "ops": {op: encode(h) for op, h in sorted(self.ops.items())}},
            "codes": {op: dict(c) for op, c in sorted(self.codes.items())},
            "buckets": {str(i): b.to_json() for i, b in sorted(self.buckets.items())},
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Add a worker's ``to_json`` output."""
        self.bucket_s = float(data["bucket_s"])
        for name in ("sent", "completed", "errors", "skipped"):
            setattr(self, name, getattr(self, name) + int(data[name]))
        hists = data["histograms"]
        merge_into(self.all, hists["all"])
        merge_into(self.lateness, hists["lateness"])
        for op, enc in hists["ops"].items():
            merge_into(self.ops.setdefault(op, new_hist()), enc)
        for op, codes in data["codes"].items():
            self.codes.setdefault(op, Counter()).update(codes)
        for key, bucket in data["buckets"].items():
            self.buckets.setdefault(int(key), Bucket()).merge(bucket)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStats:
        stats = cls()
        stats.merge(data)
        return stats
