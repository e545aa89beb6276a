"""Traffic shapes: request rates over time, split into reads and writes.

A shape is a pure function of trace time ``t`` (seconds from the start of the
trace) to ``(reads/s, writes/s)``. Reads are requests that change no game state
(``getPlayer``, ``getBoxSeries``, logins); writes are player ``POST``s.

``compression`` c plays a shape c times faster: every duration (phases, ramps,
half-lives) is divided by c while rates stay as given, so a compressed
rehearsal still reaches the real peak rate, only for a shorter time.

``singles-day`` follows issue 6 exactly, with T0 the midnight start and B the
baseline (total requests/s, ``read_share`` of it reads):

* before T−10 min: reads ``read_share·B``, writes ``(1−read_share)·B``;
* from T−10 min reads rise linearly to ``read_boost·B`` (3–5) at T−60 s;
* from T−60 s the refresh storm: reads rise linearly to ``storm·B`` at T0;
* from T0 writes ramp linearly to P = ``peak·B`` (20) within ``ramp_s`` (30 s),
  hold P for ``hold_s`` (2 min), then decay towards their baseline with a
  half-life of ``half_life_s`` (10–15 min);
* from T0 reads decay from ``storm·B`` towards their baseline with the same
  half-life.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol


class Shape(Protocol):
    """What the generator needs of a shape."""

    name: ClassVar[str]

    @property
    def duration(self) -> float:
        """Length of the trace in (compressed) seconds."""
        ...

    def rates(self, t: float) -> tuple[float, float]:
        """(reads/s, writes/s) at trace time ``t``."""
        ...

    def params(self) -> dict[str, Any]:
        """Everything that defines the shape (stored in the trace header)."""
        ...


def _lerp(a: float, b: float, x: float) -> float:
    return a + (b - a) * min(1.0, max(0.0, x))


def _halves(n: float) -> float:
    """0.5 ** n."""
    return math.exp(-math.log(2.0) * n)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


@dataclass(frozen=True)
class Steady:
    """Constant rates."""

    name: ClassVar[str] = "steady"
    baseline: float = 100.0
    read_share: float = 0.5
    duration_s: float = 60.0
    compression: float = 1.0

    def __post_init__(self) -> None:
        _check(self.baseline >= 0 and 0 <= self.read_share <= 1, "bad baseline or read_share")
        _check(self.duration_s > 0 and self.compression > 0, "bad duration or compression")

    @property
    def duration(self) -> float:
        return self.duration_s / self.compression

    def rates(self, t: float) -> tuple[float, float]:
        if not 0 <= t <= self.duration:
            return 0.0, 0.0
        return self.baseline * self.read_share, self.baseline * (1 - self.read_share)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class Diurnal:
    """A daily cycle: ``B·(1 + amplitude·cos(2π(h − peak_hour)/24))``.

    ``start_hour`` is the local hour at t = 0; the mean rate over a day is B.
    """

    name: ClassVar[str] = "diurnal"
    baseline: float = 100.0
    read_share: float = 0.5
    amplitude: float = 0.8
    peak_hour: float = 21.0
    start_hour: float = 0.0
    duration_s: float = 86_400.0
    compression: float = 1.0

    def __post_init__(self) -> None:
        _check(0 <= self.amplitude <= 1, "amplitude must be within 0..1")
        _check(self.duration_s > 0 and self.compression > 0, "bad duration or compression")

    @property
    def duration(self) -> float:
        return self.duration_s / self.compression

    def factor(self, t: float) -> float:
        hour = self.start_hour + t * self.compression / 3600.0
        return 1.0 + self.amplitude * math.cos(2 * math.pi * (hour - self.peak_hour) / 24.0)

    def rates(self, t: float) -> tuple[float, float]:
        if not 0 <= t <= self.duration:
            return 0.0, 0.0
        total = self.baseline * self.factor(t)
        return total * self.read_share, total * (1 - self.read_share)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class SinglesDay:
    """The Double 11 midnight wall (see the module docstring for the exact curve)."""

    name: ClassVar[str] = "singles-day"
    baseline: float = 50.0
    read_share: float = 0.5
    read_boost: float = 4.0
    storm: float = 8.0
    peak: float = 20.0
    ramp_s: float = 30.0
    hold_s: float = 120.0
    half_life_s: float = 750.0
    before_s: float = 900.0
    after_s: float = 1800.0
    compression: float = 1.0

    def __post_init__(self) -> None:
        _check(self.baseline >= 0 and 0 < self.read_share < 1, "bad baseline or read_share")
        _check(self.read_boost >= self.read_share and self.storm >= self.read_boost,
               "need read_share <= read_boost <= storm")
        _check(self.peak >= 1 - self.read_share, "peak must be at least the write baseline")
        _check(self.ramp_s > 0 and self.hold_s >= 0 and self.half_life_s > 0, "bad timings")
        _check(self.before_s >= 0 and self.after_s >= 0 and self.compression > 0,
               "bad before, after or compression")

    @property
    def duration(self) -> float:
        return (self.before_s + self.after_s) / self.compression

    @property
    def t0(self) -> float:
        """Trace time of midnight."""
        return self.before_s / self.compression

    def real(self, t: float) -> float:
        """Uncompressed seconds relative to T0 (negative before midnight)."""
        return t * self.compression - self.before_s

    def read_rate(self, x: float) -> float:
        b = self.baseline
        base = b * self.read_share
        if x < -600.0:
            return base
        if x < -60.0:
            return _lerp(base, self.read_boost * b, (x + 600.0) / 540.0)
        if x < 0.0:
            return _lerp(self.read_boost * b, self.storm * b, (x + 60.0) / 60.0)
        return base + (self.storm * b - base) * _halves(x / self.half_life_s)

    def write_rate(self, x: float) -> float:
        b = self.baseline
        base = b * (1 - self.read_share)
        if x < 0.0:
            return base
        if x < self.ramp_s:
            return _lerp(base, self.peak * b, x / self.ramp_s)
        decay_from = self.ramp_s + self.hold_s
        if x < decay_from:
            return self.peak * b
        return base + (self.peak * b - base) * _halves((x - decay_from) / self.half_life_s)

    def rates(self, t: float) -> tuple[float, float]:
        if not 0 <= t <= self.duration:
            return 0.0, 0.0
        x = self.real(t)
        return self.read_rate(x), self.write_rate(x)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self), "t0_s": self.t0}


SHAPES: dict[str, type[Steady] | type[Diurnal] | type[SinglesDay]] = {
    "steady": Steady, "diurnal": Diurnal, "singles-day": SinglesDay}


def make_shape(name: str, **params: Any) -> Steady | Diurnal | SinglesDay:
    """The shape called ``name`` with ``params`` (unknown keys are an error)."""
    try:
        cls = SHAPES[name]
    except KeyError:
        raise ValueError(f"unknown shape {name!r}; one of {', '.join(SHAPES)}") from None
    return cls(**params)


def shape_from_params(params: dict[str, Any]) -> Steady | Diurnal | SinglesDay:
    """Rebuild a shape from a trace header's ``shape`` map."""
    rest = {k: v for k, v in params.items() if k not in ("name", "t0_s")}
    return make_shape(str(params["name"]), **rest)
