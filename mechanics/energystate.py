"""The energy slice of player state (wire key ``en``); the rules are in
:mod:`mechanics.energy`.

Kept apart from the rules because :class:`~mechanics.state.PlayerState` imports
this module and the rules import the player state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots


@dataclass
class EnergyState:
    """``value`` units as of ``at``, the instant the refill timer counts from."""

    value: int
    at: int

    def copy(self) -> EnergyState:
        return EnergyState(self.value, self.at)

    def to_wire(self) -> list[int]:
        return [self.value, self.at]

    @classmethod
    def from_wire(cls, raw: list[int]) -> EnergyState:
        return cls(value=raw[0], at=raw[1])


def _encode(energy: EnergyState | None) -> list[int] | None:
    return energy.to_wire() if energy else None


def _decode(raw: list[int] | None) -> EnergyState | None:
    return EnergyState.from_wire(raw) if raw else None


def _copy(energy: EnergyState | None) -> EnergyState | None:
    return energy.copy() if energy else None


def _unused(energy: Any) -> bool:
    return energy is None


@dataclass(kw_only=True)
class EnergySlots(StateSlots):
    """What the energy mechanic adds to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("energy", "en", _encode, _decode, _copy, omit=_unused),)
    energy: EnergyState | None = None
    """None until the first spend: the player is full (no key on the wire either)"""
