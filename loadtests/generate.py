"""Synthetic traces: a traffic shape realised by the player-behaviour model.

Write sessions arrive as a non-homogeneous Poisson process over the whole trace
whose rate is the shape's write rate divided by the mean writes per session, so
the writes of the trace follow the shape. A session's arrival rate is the write
rate the mean offset of its writes later (its writes then land when the shape
asks for them), and the writes per session are a running mean of the sessions
generated so far (players who ran out of money or once-only plays write less
than the first estimate). No session starts before the trace: a trace starts
cold, with nobody mid-visit, and sessions reach the shape's write rate about
one session length in (see ``docs/loadtesting.md``).

Browses (lone refreshes) top each second of the trace up to the shape's total
rate: in a second, they arrive at the shape's rate scaled by the share of its
requests the sessions do not already send there. So a second holds what the
shape asks for, give or take Poisson noise, unless sessions alone send more
(their reads above the shape's read rate: the writes are what is kept).

Each player's state (:class:`~loadtests.model.Shopper`) carries over between
that player's sessions, which never overlap, so the model only sends what the
game lets that player do. Arrival times come from the time-rescaling theorem: exponential
gaps in the integrated rate, mapped back through a fine trapezoid grid.

Everything is streamed in time order (a heap holds only the requests of
sessions still running), and every random draw comes from ``random.Random``
streams derived from one seed, so a seed and the parameters fix the trace.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.model import PlayerModel, Shopper
from loadtests.ops import OPERATIONS
from loadtests.shapes import Diurnal, SinglesDay, Steady
from loadtests.trace import Header, Record, StreamWriter

AnyShape = Steady | Diurnal | SinglesDay


BIN_S = 1.0
"""Browses top the trace up to its shape one trace second at a time."""


def grid_step(duration: float) -> float:
    """The trapezoid step :func:`arrivals` integrates a rate with over ``duration``."""
    return max(0.005, duration / 200_000)


def arrivals(rate: Callable[[float], float], duration: float, rng: random.Random,
             dt: float | None = None, start: float = 0.0) -> Iterator[float]:
    """Arrival times in [start, duration) of a Poisson process with intensity ``rate(t)``."""
    dt = dt or grid_step(duration - start)
    target = rng.expovariate(1.0)
    acc, t, r0 = 0.0, start, max(0.0, rate(start))
    while t < duration:
        t1 = min(t + dt, duration)
        r1 = max(0.0, rate(t1))
        area = (r0 + r1) * 0.5 * (t1 - t)
        while area > 0 and acc + area >= target:
            yield t + (target - acc) / area * (t1 - t)
            target += rng.expovariate(1.0)
        acc += area
        t, r0 = t1, r1


def integrate(rate: Callable[[float], float], lo: float, hi: float, dt: float) -> float:
    """``rate`` integrated over [lo, hi) on the same trapezoid grid as :func:`arrivals`."""
    total, t, r0 = 0.0, lo, max(0.0, rate(lo))
    while t < hi:
        t1 = min(t + dt, hi)
        r1 = max(0.0, rate(t1))
        total += (r0 + r1) * 0.5 * (t1 - t)
        t, r0 = t1, r1
    return total


@dataclass
class GenerateStats:
    """What a generated trace holds."""

    records: int = 0
    sessions: int = 0
    browses: int = 0
    by_op: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "sessions": self.sessions, "browses": self.browses,
                "duration_s": self.duration_s, "by_op": dict(sorted(self.by_op.items()))}


class Generator:
    """Streams the records of one synthetic trace."""

    def __init__(self, shape: AnyShape, model: PlayerModel, players: int = 10_000,
                 seed: int = 1, player_prefix: str = "p") -> None:
        if players < 1:
            raise ValueError("players must be at least 1")
        self.shape, self.model, self.players, self.seed = shape, model, players, seed
        self.prefix = player_prefix
        self.expected = model.expected(seed)
        self.stats = GenerateStats(duration_s=shape.duration)
        self._busy_until = [-1e18] * players
        self._shoppers: dict[int, Shopper] = {}
        self._lag = self.expected["write_lag_s"]
        # Running totals, seeded with the estimate as if from 50 sessions.
        self._n, self._w = 50.0, 50 * self.expected["writes"]

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"petbox-loadtest:{self.seed}:{stream}")

    def session_rate(self, t: float) -> float:
        """Sessions/s starting at ``t``: for the writes the shape asks for a mean write
        offset later (the shape's last rate near the end, so sessions keep starting)."""
        writes = self.shape.rates(min(t + self._lag, self.shape.duration))[1]
        per = self._w / self._n
        return writes / per if per > 0 else 0.0

    def total_rate(self, t: float) -> float:
        """Requests/s the shape asks for at ``t`` (reads and writes)."""
        reads, writes = self.shape.rates(t)
        return reads + writes

    def _pick_player(self, rng: random.Random, at: float) -> int | None:
        """A player not in a session at ``at`` (None when every one is)."""
        pick = rng.randrange(self.players)
        for _ in range(8):
            if self._busy_until[pick] <= at:
                return pick
            pick = rng.randrange(self.players)
        for k in range(self.players):  # rare: most players are busy
            cand = (pick + k) % self.players
            if self._busy_until[cand] <= at:
                return cand
        return None

    def records(self) -> Iterator[Record]:
        """The trace's records in time order."""
        duration = self.shape.duration
        dt = grid_step(duration)
        starts = arrivals(self.session_rate, duration, self._rng("sessions"), dt)
        rng_browse = self._rng("browses")
        rng_who, rng_do = self._rng("players"), self._rng("behaviour")
        pending: list[tuple[float, int, str, str, Any, Any]] = []
        load: Counter[int] = Counter()  # session requests per BIN_S, of bins not yet done
        seq = itertools.count()
        start = next(starts, None)
        for k in range(math.ceil(duration / BIN_S)):
            lo, hi = k * BIN_S, min((k + 1) * BIN_S, duration)
            # Every session sending in this bin has started by its end: its load is known.
            while start is not None and start < hi:
                self._start_session(rng_who, rng_do, start, pending, seq, load)
                start = next(starts, None)
            for at in self._browse_times(lo, hi, load.pop(k, 0), rng_browse, dt):
                self._start_browse(rng_who, rng_do, at, pending, seq)
            while pending and pending[0][0] < hi:
                yield self._emit(heapq.heappop(pending))
        while pending:  # (empty by now: every step pushed lies inside the last bin or before)
            yield self._emit(heapq.heappop(pending))

    def _browse_times(self, lo: float, hi: float, sessions: int, rng: random.Random,
                      dt: float) -> Iterator[float]:
        """Browses in [lo, hi): the shape's rate scaled to what ``sessions`` requests
        already sent in there leave of the shape's requests (none if they sent more)."""
        wanted = integrate(self.total_rate, lo, hi, dt)
        if wanted <= sessions:
            return iter(())
        share = 1.0 - sessions / wanted
        return arrivals(lambda t: self.total_rate(t) * share, hi, rng, dt, start=lo)

    def _start_session(self, rng_who: random.Random, rng_do: random.Random, at: float,
                       pending: list[Any], seq: Iterator[int], load: Counter[int]) -> None:
        player = self._pick_player(rng_who, at)
        if player is None:
            return
        name = f"{self.prefix}{player:07d}"
        for offset, op, body, params in self._session(rng_do, player, at):
            if 0 <= at + offset < self.shape.duration:
                heapq.heappush(pending, (at + offset, next(seq), name, op, body, params))
                load[int((at + offset) // BIN_S)] += 1

    def _start_browse(self, rng_who: random.Random, rng_do: random.Random, at: float,
                      pending: list[Any], seq: Iterator[int]) -> None:
        player = self._pick_player(rng_who, at)
        if player is None:
            return
        step = self.model.browse(rng_do)
        self.stats.browses += 1
        if step is not None:
            _offset, op, body, params = step
            heapq.heappush(pending, (at, next(seq), f"{self.prefix}{player:07d}", op, body,
                                     params))

    def _session(self, rng: random.Random, player: int, at: float) -> list[Any]:
        shopper = self._shoppers.get(player)
        if shopper is None:
            shopper = self._shoppers[player] = self.model.new_shopper()
        steps = self.model.session(rng, shopper, at)
        self.stats.sessions += 1
        self._busy_until[player] = at + max((s[0] for s in steps), default=0.0)
        # Every write counts, also those past the trace's end: the running mean is what
        # a visit writes (players run out of money), not how much of it the trace holds.
        self._n += 1
        self._w += sum(1 for s in steps if OPERATIONS[s[1]].is_write)
        return steps

    def _emit(self, item: tuple[float, int, str, str, Any, Any]) -> Record:
        t, _, player, op, body, params = item
        self.stats.records += 1
        self.stats.by_op[op] += 1
        expect = None
        if params and ("$as" in params or "$expect" in params):
            params = dict(params)
            player += params.pop("$as", "")  # a friend of the player (chains.FRIEND)
            expect = params.pop("$expect", None)
        return Record(int(t * 1000), player, op, body, params or None, expect)

    def header(self, meta: dict[str, Any] | None = None) -> Header:
        b = self.model.b
        behaviour = {k: v for k, v in b.__dict__.items() if k not in ("ops", "extra")}
        return Header.new(source="generate", shape=self.shape.params(),
                          defaults={"game": self.model.profile.game},
                          meta={"seed": self.seed, "players": self.players,
                                "profile": self.model.profile.to_json(),
                                "behaviour": behaviour,
                                "ops": sorted(b.ops) if b.ops is not None else "all",
                                "expected_session": self.expected, **(meta or {})})


def generate_trace(path: Path | str, generator: Generator,
                   meta: dict[str, Any] | None = None) -> GenerateStats:
    """Write ``generator``'s trace to ``path``; returns what it holds."""
    with open(path, "wb") as fh:
        writer = StreamWriter(fh, generator.header(meta))
        for record in generator.records():
            writer.write(record)
    return generator.stats
