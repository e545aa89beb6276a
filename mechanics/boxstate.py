"""A player's blind-box state: the boxes slice (wire key ``bx``) of
:class:`mechanics.state.PlayerState`.

Kept apart from :mod:`mechanics.boxes` (which re-exports it) because the player
state imports it and the rules import the player state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from economy.fairness import seed_hash
from mechanics.slices import Slice, StateSlots


@dataclass
class SeriesProgress:
    """A player's progress in one series; kept across versions of the series."""

    hard: int = 0
    """draws since the last one of tier ≥ the hard-pity tier"""
    soft: int = 0
    """draws since the last one of tier ≥ the soft-pity tier"""
    owned: dict[str, int] = field(default_factory=dict)
    """entry → copies drawn (duplicate control; inventory may have been spent)"""
    day: int = 0
    today: int = 0
    """draws on local ``day``"""
    total: int = 0
    completed: bool = False
    """the completion reward was granted"""

    def copy(self) -> SeriesProgress:
        return SeriesProgress(self.hard, self.soft, dict(self.owned), self.day, self.today,
                              self.total, self.completed)

    def to_wire(self) -> dict[str, Any]:
        return {"h": self.hard, "s": self.soft, "o": self.owned, "d": self.day,
                "t": self.today, "n": self.total, "c": self.completed}

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> SeriesProgress:
        return cls(hard=raw.get("h", 0), soft=raw.get("s", 0), owned=dict(raw.get("o") or {}),
                   day=raw.get("d", 0), today=raw.get("t", 0), total=raw.get("n", 0),
                   completed=bool(raw.get("c", False)))


@dataclass
class BoxState:
    """The player's committed server seed, next nonce and per-series progress."""

    seed: str = ""
    """secret until rotated; 64 hex chars, empty before the first commitment"""
    nonce: int = 0
    series: dict[str, SeriesProgress] = field(default_factory=dict)

    @property
    def seed_hash(self) -> str:
        return seed_hash(self.seed) if self.seed else ""

    def copy(self) -> BoxState:
        return BoxState(self.seed, self.nonce, {k: v.copy() for k, v in self.series.items()})

    def to_wire(self) -> dict[str, Any]:
        return {"sd": self.seed, "nc": self.nonce,
                "sr": {k: v.to_wire() for k, v in self.series.items()}}

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> BoxState:
        raw = raw or {}
        return cls(seed=raw.get("sd", ""), nonce=raw.get("nc", 0),
                   series={k: SeriesProgress.from_wire(v)
                           for k, v in (raw.get("sr") or {}).items()})


@dataclass(kw_only=True)
class BoxesSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("boxes", "bx", BoxState.to_wire, BoxState.from_wire, BoxState.copy),)
    boxes: BoxState = field(default_factory=BoxState)
    """blind boxes: committed server seed, nonce, pity and counts per series"""
