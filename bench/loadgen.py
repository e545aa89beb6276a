"""One open-loop load-generator process (started by ``feed_bench.py``).

Reads a JSON spec on stdin, sends ``rate`` requests per second for
``warmup + duration`` seconds on a fixed pool of keep-alive HTTP/1.1 connections,
and prints one JSON result line.

One operation (``path`` + ``body``, a POST with an Idempotency-Key) or a **mix**
(``mix``: operations with integer weights, each with its method, path, body and the
statuses that count as served): request *i* takes the operation at ``i mod total
weight`` of a smooth weighted round-robin, so every window of a few dozen requests
already has the mix's proportions; each operation has its own latency histogram.
Players (``tokens``) are taken round-robin, or with ``"draw": "uniform"`` uniformly at
random (``seed``), e.g. over a large population (``bench/scale_bench.py``).

Open loop: request *i* is due at ``t0 + i / rate`` whatever happened before. If
no connection is free at that moment it waits in a backlog, and its latency is
still measured from its due time, so a slow server cannot slow the generator
down and hide its own queueing (no coordinated omission). Latencies go into an
HdrHistogram (microseconds) that the parent merges across processes.

The client is a minimal asyncio ``Protocol`` (prebuilt request bytes, status line
and Content-Length parsing only) so that the generator spends as little of the
machine's CPU as possible; ``uvloop`` is used when installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
from collections import deque
from typing import Any

from hdrh.histogram import HdrHistogram

HIST_MAX_US = 120_000_000


class Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1
        self.status = 0
        self.due = 0.0
        self.measured = False
        self.busy = False
        self.op = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, payload: bytes, due: float, measured: bool, op: int = 0) -> None:
        assert self.transport is not None
        self.due, self.measured, self.busy, self.op = due, measured, True, op
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                self.status = int(head[9:12])
                at = head.find(b"\ncontent-length:")
                length = int(head[at + 16:head.index(b"\r", at + 1)]) if at >= 0 else 0
                self.need = end + 4 + length
            if len(buf) < self.need:
                return
            del buf[:self.need]
            self.need = -1
            self.busy = False
            self.gen.done(self, self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.gen.lost(self)


def smooth_schedule(weights: list[int]) -> list[int]:
    """Operation indexes in smooth weighted round-robin order (nginx's): each appears
    ``weight`` times in ``sum(weights)`` slots, spread as evenly as it can be."""
    current = [0] * len(weights)
    total = sum(weights)
    out = []
    for _ in range(total):
        for k, w in enumerate(weights):
            current[k] += w
        best = max(range(len(weights)), key=lambda k: current[k])
        current[best] -= total
        out.append(best)
    return out


class Op:
    """One operation of the mix: prebuilt request heads (one per token), its body, the
    statuses that count as served, its own histogram and status counts."""

    def __init__(self, spec: dict[str, Any], host: str, tokens: list[str]) -> None:
        self.name = spec.get("name", "op")
        method = spec.get("method", "POST")
        self.body = spec.get("body", "").encode()
        self.keyed = bool(spec.get("keyed", method == "POST"))
        self.ok = set(spec.get("ok", [200, 201]))
        length = f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n" \
            if method != "GET" else ""
        self.heads = [
            (f"{method} {spec['path']} HTTP/1.1\r\nHost: {host}\r\n"
             + (f"Authorization: Bearer {t}\r\n" if t else "") + length
             + ("Idempotency-Key: " if self.keyed else "")).encode()
            for t in tokens
        ]
        self.hist = HdrHistogram(1, HIST_MAX_US, 3)
        self.statuses: dict[str, int] = {}
        self.ok_in_window = 0


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.rate = float(spec["rate"])
        self.hist = HdrHistogram(1, HIST_MAX_US, 3)
        self.idle: deque[Conn] = deque()
        self.backlog: deque[tuple[float, bool]] = deque()
        self.conns: list[Conn] = []
        self.statuses: dict[str, int] = {}
        self.ok_in_window = 0
        self.completed = 0
        self.lost_conns = 0
        self.measured_sent = 0
        self.measured_done = 0
        self.not_served = 0
        self.seq = 0
        # Prebuilt request pieces: one head per operation and player (token); the key
        # and body are appended per request.
        host = f"{spec['host']}:{spec['port']}"
        self.prefix = spec["key_prefix"]
        tokens = spec.get("tokens") or [""]
        mix = spec.get("mix") or [{"name": "op", "path": spec["path"], "body": spec["body"],
                                   "weight": 1}]
        self.ops = [Op(o, host, tokens) for o in mix]
        self.schedule = smooth_schedule([int(o.get("weight", 1)) for o in mix])
        self.draw = (random.Random(spec.get("seed", 1)).randrange
                     if spec.get("draw") == "uniform" else None)

    def payload(self) -> tuple[bytes, int]:
        seq = self.seq
        self.seq += 1
        k = self.schedule[seq % len(self.schedule)]
        op = self.ops[k]
        head = op.heads[self.draw(len(op.heads)) if self.draw else seq % len(op.heads)]
        key = f"{self.prefix}{seq:x}".encode() if op.keyed else b""
        return b"".join((head, key, b"\r\n" if op.keyed else b"", b"\r\n", op.body)), k

    def dispatch(self, due: float, measured: bool) -> None:
        if self.idle:
            payload, k = self.payload()
            self.idle.popleft().send(payload, due, measured, k)
        else:
            self.backlog.append((due, measured))

    def done(self, conn: Conn, status: int) -> None:
        now = time.monotonic()
        self.completed += 1
        op = self.ops[conn.op]
        served = status in op.ok  # a mix counts e.g. a day's second check-in (409) as served
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.not_served += not served
        op.statuses[str(status)] = op.statuses.get(str(status), 0) + 1
        if self.win_start <= now < self.win_end and served:
            self.ok_in_window += 1
            op.ok_in_window += 1
        if conn.measured:
            self.measured_done += 1
            if served:
                us = max(1, min(HIST_MAX_US, int((now - conn.due) * 1e6)))
                self.hist.record_value(us)
                op.hist.record_value(us)
        if self.backlog:
            due, measured = self.backlog.popleft()
            payload, k = self.payload()
            conn.send(payload, due, measured, k)
        else:
            self.idle.append(conn)

    def lost(self, conn: Conn) -> None:
        self.lost_conns += 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.busy:
            self.statuses["conn_lost"] = self.statuses.get("conn_lost", 0) + 1

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        loop = asyncio.get_running_loop()
        for _ in range(int(spec["connections"])):
            _, conn = await loop.create_connection(lambda: Conn(self), spec["host"], spec["port"])
            self.conns.append(conn)
            self.idle.append(conn)
        warmup, duration = float(spec["warmup"]), float(spec["duration"])
        # Shared wall-clock start across generator processes, mapped onto monotonic time.
        t0 = time.monotonic() + (float(spec["start_wall"]) - time.time())
        self.win_start, self.win_end = t0 + warmup, t0 + warmup + duration
        total = round(self.rate * (warmup + duration))
        first_measured = round(self.rate * warmup)
        interval = 1.0 / self.rate
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        i = 0
        max_backlog = 0
        while i < total:
            due_now = min(total, int((time.monotonic() - t0) * self.rate) + 1)
            while i < due_now:
                measured = i >= first_measured
                self.measured_sent += measured
                self.dispatch(t0 + i * interval, measured)
                i += 1
            max_backlog = max(max_backlog, len(self.backlog))
            # Timers have 1 ms resolution: sleeping less would spin and steal CPU from
            # the server, so due requests leave in (at most) 1 ms batches instead.
            await asyncio.sleep(max(0.001, t0 + i * interval - time.monotonic()))
        # Drain: give outstanding requests a bounded grace period.
        deadline = self.win_end + float(spec["grace"])
        while (self.backlog or len(self.idle) < len(self.conns) - self.lost_conns) \
                and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll, no event
            await asyncio.sleep(0.01)
        unsent = len(self.backlog)
        in_flight = sum(1 for c in self.conns if c.busy)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.abort()
        return {
            "rate": self.rate,
            "duration": duration,
            "measured_sent": self.measured_sent,
            "measured_done": self.measured_done,
            "ok_in_window": self.ok_in_window,
            "statuses": self.statuses,
            "not_served": self.not_served,
            "timeouts": unsent + in_flight,
            "max_backlog": max_backlog,
            "lost_conns": self.lost_conns,
            "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
            "wall_s": time.monotonic() - t0,
            "hist": self.hist.encode().decode(),  # compressed, already base64
            "ops": {op.name: {"hist": op.hist.encode().decode(), "statuses": op.statuses,
                              "ok_in_window": op.ok_in_window} for op in self.ops},
        }


def main() -> int:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop  # optional: a cheaper generator leaves more CPU to the server

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if spec.get("plain_asyncio"):
        runner = asyncio.run
    result = runner(Generator(spec).run())
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of aborted transports


if __name__ == "__main__":
    sys.exit(main())
