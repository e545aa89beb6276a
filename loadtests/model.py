"""A player-behaviour model: what one shopper does in one visit, and when.

A session is: open (``createSession``) → ``getPlayer`` → adopt a pet on the
first visit → check in → feed / collect / play → tasks → look at a box series
and draw → a last ``getPlayer``. Each step happens with a probability and is
separated from the previous one by a think time drawn from a log-normal
distribution. A *browse* is a lone refresh (``getPlayer`` or ``getBoxSeries``),
what the crowd does while waiting for midnight.

All randomness comes from the ``random.Random`` passed in, so a seed fixes a
trace; all durations are divided by the shape's time compression.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtests.ops import OPERATIONS

Step = tuple[float, str, Any, dict[str, str] | None]
"""(seconds after the session starts, operationId, body, path parameters)."""


@dataclass(frozen=True)
class GameProfile:
    """The names a game offers that requests refer to."""

    game: str = "squirrel-omg"
    species: tuple[str, ...] = ("squirrel",)
    foods: tuple[str, ...] = ("acorn_snack",)
    series: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    boards: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()
    hot_series: str | None = None
    hot_prize: str | None = None

    @classmethod
    def from_config(cls, game: str, config: Mapping[str, Any],
                    hot_prize: str | None = None) -> GameProfile:
        """Names from a game-config JSON (the file ``petbox game publish`` takes)."""
        boxes = config.get("boxes") or {}
        series = dict(boxes.get("series") or {})
        hot_series = None
        if hot_prize is not None:
            holders = [s for s, spec in series.items() if hot_prize in (spec.get("prizes") or {})]
            if not holders:
                raise ValueError(f"no box series holds the limited prize {hot_prize!r}")
            hot_series = holders[0]
        return cls(game=game, species=tuple(config.get("species") or ()) or cls.species,
                   foods=tuple(config.get("foods") or ()) or cls.foods,
                   series=tuple(series), tasks=tuple(config.get("tasks") or ()),
                   boards=tuple(config.get("leaderboards") or ()),
                   offers=tuple(config.get("offers") or config.get("exchange") or ()),
                   hot_series=hot_series, hot_prize=hot_prize)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Behaviour:
    """Probabilities and think times of one visit."""

    think_median_s: float = 3.0
    think_sigma: float = 0.9
    think_max_s: float = 60.0
    p_checkin: float = 0.8
    feeds_mean: float = 1.5
    p_collect: float = 0.5
    p_play: float = 0.3
    p_tasks: float = 0.4
    task_s: float = 15.0
    p_draw: float = 0.6
    draws_mean: float = 2.0
    p_ten_draw: float = 0.1
    p_series_look: float = 0.7
    p_final_refresh: float = 0.5
    p_history: float = 0.1
    p_leaderboard: float = 0.1
    p_exchange: float = 0.05
    browse_series_share: float = 0.3
    hot_share: float = 0.4
    ops: frozenset[str] | None = None
    """Operations the model may emit (None: all); the others are left out."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ops is not None and not self.ops <= set(OPERATIONS):
            raise ValueError(f"unknown operations {sorted(self.ops - set(OPERATIONS))}")
        if not 0 <= self.hot_share <= 1:
            raise ValueError("hot_share must be within 0..1")

    def allows(self, op: str) -> bool:
        return self.ops is None or op in self.ops


def _count(rng: random.Random, mean: float) -> int:
    """A geometric count (≥ 0) with the given mean."""
    if mean <= 0:
        return 0
    p = 1.0 / (1.0 + mean)
    return int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


class PlayerModel:
    """Turns a seeded ``random.Random`` into visits of one game's shoppers."""

    def __init__(self, profile: GameProfile, behaviour: Behaviour | None = None,
                 compression: float = 1.0) -> None:
        self.profile = profile
        self.b = behaviour or Behaviour()
        self.compression = compression
        self._mu = math.log(self.b.think_median_s)

    def think(self, rng: random.Random) -> float:
        """One think time in (compressed) seconds."""
        return min(rng.lognormvariate(self._mu, self.b.think_sigma),
                   self.b.think_max_s) / self.compression

    def series_for_draw(self, rng: random.Random) -> str:
        p = self.profile
        if p.hot_series is not None and rng.random() < self.b.hot_share:
            return p.hot_series
        others = [s for s in p.series if s != p.hot_series] or list(p.series)
        return rng.choice(others)

    def session(self, rng: random.Random, new_player: bool) -> list[Step]:
        """One visit's requests with their offsets from its start."""
        b, p = self.b, self.profile
        steps: list[Step] = []
        t = 0.0

        def add(op: str, body: Any = None, params: dict[str, str] | None = None,
                wait: bool = True) -> None:
            nonlocal t
            if not b.allows(op):
                return
            if steps and wait:
                t += self.think(rng)
            steps.append((t, op, body, params))

        add("createSession", {})
        add("getPlayer")
        if new_player:
            add("adoptPet", {"species": rng.choice(p.species),
                             "name": f"pet{rng.randrange(10**6)}"})
        if rng.random() < b.p_checkin:
            add("checkIn", {})
        if rng.random() < b.p_collect:
            add("collectProduce", {})
        for _ in range(_count(rng, b.feeds_mean)):
            add("feedPet", {"food": rng.choice(p.foods)})
        if rng.random() < b.p_play:
            add("playWithPet", {})
        if p.tasks and rng.random() < b.p_tasks:
            self._task(rng, steps, add)
        if p.series and rng.random() < b.p_draw:
            self._draws(rng, add)
        if p.offers and rng.random() < b.p_exchange:
            add("exchange", {"offer": rng.choice(p.offers)})
        if p.boards and rng.random() < b.p_leaderboard:
            add("getLeaderboard", None, {"board": rng.choice(p.boards)})
        if rng.random() < b.p_final_refresh:
            add("getPlayer")
        return steps

    def _task(self, rng: random.Random, steps: list[Step], add: Any) -> None:
        task = rng.choice(self.profile.tasks)
        add("startTask", {}, {"task": task})
        before = len(steps)
        add("completeTask", {}, {"task": task}, wait=False)
        if len(steps) > before:  # the browse a timed task asks for, then complete
            last = steps[-1]
            steps[-1] = (last[0] + self.b.task_s / self.compression, *last[1:])

    def _draws(self, rng: random.Random, add: Any) -> None:
        series = self.series_for_draw(rng)
        if rng.random() < self.b.p_series_look:
            add("getBoxSeries", None, {"series": series})
        for _ in range(1 + _count(rng, self.b.draws_mean - 1)):
            count = 10 if rng.random() < self.b.p_ten_draw else 1
            add("drawBox", {"count": count, "client_seed": f"{rng.getrandbits(64):016x}"},
                {"series": series})
            series = self.series_for_draw(rng)
        if rng.random() < self.b.p_history:
            add("listDraws")

    def browse(self, rng: random.Random) -> Step | None:
        """A lone refresh; None when no read operation is allowed."""
        b, p = self.b, self.profile
        look = p.series and b.allows("getBoxSeries") and (
            not b.allows("getPlayer") or rng.random() < b.browse_series_share)
        if look:
            series = p.hot_series if p.hot_series and rng.random() < b.hot_share else None
            return (0.0, "getBoxSeries", None, {"series": series or rng.choice(p.series)})
        if b.allows("getPlayer"):
            return (0.0, "getPlayer", None, None)
        return None

    def expected(self, seed: int = 0, n: int = 4000) -> dict[str, float]:
        """Mean reads, writes and length of a session (Monte Carlo with its own seed)."""
        rng = random.Random(seed ^ 0x5EED)
        reads = writes = length = 0.0
        for i in range(n):
            steps = self.session(rng, new_player=i % 4 == 0)
            w = sum(1 for s in steps if OPERATIONS[s[1]].is_write)
            writes += w
            reads += len(steps) - w
            length += steps[-1][0] if steps else 0.0
        return {"reads": reads / n, "writes": writes / n, "length_s": length / n}
