"""Synthetic traces: a traffic shape realised by the player-behaviour model.

Write sessions arrive as a non-homogeneous Poisson process whose rate is the
shape's write rate divided by the mean writes per session, so the writes of the
trace follow the shape. Two corrections keep it on the shape: a session starts
the mean offset of its writes early (its writes then land when the shape asks
for them, and the trace does not start empty), and the writes and reads per
session are running means of the sessions generated so far (players who ran out
of money or once-only plays write less than the first estimate). Browses (lone
refreshes) fill the shape's read rate above what those sessions already read.

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


def arrivals(rate: Callable[[float], float], duration: float, rng: random.Random,
             dt: float | None = None) -> Iterator[float]:
    """Arrival times in [0, duration) of a Poisson process with intensity ``rate(t)``."""
    dt = dt or max(0.005, duration / 200_000)
    target = rng.expovariate(1.0)
    acc, t, r0 = 0.0, 0.0, max(0.0, rate(0.0))
    while t < duration:
        t1 = min(t + dt, duration)
        r1 = max(0.0, rate(t1))
        area = (r0 + r1) * 0.5 * (t1 - t)
        while area > 0 and acc + area >= target:
            yield t + (target - acc) / area * (t1 - t)
            target += rng.expovariate(1.0)
        acc += area
        t, r0 = t1, r1


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
        self._n, self._w, self._r = 50.0, 50 * self.expected["writes"], \
            50 * self.expected["reads"]

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"petbox-loadtest:{self.seed}:{stream}")

    def session_rate(self, t: float) -> float:
        writes = self.shape.rates(t)[1]
        per = self._w / self._n
        return writes / per if per > 0 else 0.0

    def browse_rate(self, t: float) -> float:
        reads = self.shape.rates(t)[0]
        return max(0.0, reads - self.session_rate(t) * self._r / self._n)

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
        duration, lag = self.shape.duration, self._lag
        sessions = ((max(0.0, t - lag), 0) for t in arrivals(self.session_rate, duration,
                                                   self._rng("sessions")))
        browses = ((t, 1) for t in arrivals(self.browse_rate, duration, self._rng("browses")))
        rng_who, rng_do = self._rng("players"), self._rng("behaviour")
        pending: list[tuple[float, int, str, str, Any, Any]] = []
        seq = itertools.count()
        for at, kind in heapq.merge(sessions, browses):
            while pending and pending[0][0] <= at:
                yield self._emit(heapq.heappop(pending))
            player = self._pick_player(rng_who, at)
            if player is None:
                continue
            if kind == 0:
                steps = self._session(rng_do, player, at)
            else:
                steps = [s for s in [self.model.browse(rng_do)] if s is not None]
                self.stats.browses += 1
            name = f"{self.prefix}{player:07d}"
            for offset, op, body, params in steps:
                if 0 <= at + offset < duration:
                    heapq.heappush(pending, (at + offset, next(seq), name, op, body, params))
        while pending:
            yield self._emit(heapq.heappop(pending))

    def _session(self, rng: random.Random, player: int, at: float) -> list[Any]:
        shopper = self._shoppers.get(player)
        if shopper is None:
            shopper = self._shoppers[player] = self.model.new_shopper()
        steps = self.model.session(rng, shopper, at)
        self.stats.sessions += 1
        self._busy_until[player] = at + max((s[0] for s in steps), default=0.0)
        # Only what lands inside the trace counts: near its end sessions are cut short.
        inside = [s for s in steps if at + s[0] < self.shape.duration]
        writes = sum(1 for s in inside if OPERATIONS[s[1]].is_write)
        self._n += 1
        self._w += writes
        self._r += len(inside) - writes
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
