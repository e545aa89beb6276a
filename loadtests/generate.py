"""Synthetic traces: a traffic shape realised by the player-behaviour model.

Write sessions arrive as a non-homogeneous Poisson process whose rate is the
shape's write rate divided by the model's mean writes per session, so the
writes of the trace follow the shape (smoothed by the length of a session).
Browses (lone refreshes) fill the shape's read rate above what those sessions
already read. Arrival times come from the time-rescaling theorem: exponential
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

from loadtests.model import PlayerModel
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
        self._busy_until = [-1.0] * players
        self._adopted: set[int] = set()

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"petbox-loadtest:{self.seed}:{stream}")

    def session_rate(self, t: float) -> float:
        writes = self.shape.rates(t)[1]
        per = self.expected["writes"]
        return writes / per if per > 0 else 0.0

    def browse_rate(self, t: float) -> float:
        reads = self.shape.rates(t)[0]
        return max(0.0, reads - self.session_rate(t) * self.expected["reads"])

    def _pick_player(self, rng: random.Random, at: float) -> int:
        """A player not already in a session, when one is found in a few tries."""
        pick = rng.randrange(self.players)
        for _ in range(8):
            if self._busy_until[pick] <= at:
                break
            pick = rng.randrange(self.players)
        return pick

    def records(self) -> Iterator[Record]:
        """The trace's records in time order."""
        duration = self.shape.duration
        sessions = ((t, 0) for t in arrivals(self.session_rate, duration, self._rng("sessions")))
        browses = ((t, 1) for t in arrivals(self.browse_rate, duration, self._rng("browses")))
        rng_who, rng_do = self._rng("players"), self._rng("behaviour")
        pending: list[tuple[float, int, str, str, Any, Any]] = []
        seq = itertools.count()
        for at, kind in heapq.merge(sessions, browses):
            while pending and pending[0][0] <= at:
                yield self._emit(heapq.heappop(pending))
            player = self._pick_player(rng_who, at)
            steps = (self.model.session(rng_do, player not in self._adopted) if kind == 0
                     else [s for s in [self.model.browse(rng_do)] if s is not None])
            if kind == 0:
                self.stats.sessions += 1
                self._adopted.add(player)
                self._busy_until[player] = at + (steps[-1][0] if steps else 0.0)
            else:
                self.stats.browses += 1
            name = f"{self.prefix}{player:07d}"
            for offset, op, body, params in steps:
                if at + offset < duration:
                    heapq.heappush(pending, (at + offset, next(seq), name, op, body, params))
        while pending:
            yield self._emit(heapq.heappop(pending))

    def _emit(self, item: tuple[float, int, str, str, Any, Any]) -> Record:
        t, _, player, op, body, params = item
        self.stats.records += 1
        self.stats.by_op[op] += 1
        return Record(int(t * 1000), player, op, body, params)

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
