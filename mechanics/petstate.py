"""The pet's slice of player state: the pet itself and the action cooldowns.

Kept apart from :mod:`mechanics.pet` (the rules) because
:class:`~mechanics.state.PlayerState` imports the slice and the rules import
the player state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, decode_dict, same


@dataclass
class PetState:
    """A pet; ``stats`` are milli-points as of ``at`` (decay is applied lazily)."""

    species: str
    name: str
    stats: dict[str, int]
    at: int
    xp: int
    adopted_at: int
    stage: int = 0
    """how many growth stages were reached (their rewards granted)"""
    produce_milli: int = 0
    """uncollected produce in milli-units, banked as of ``at``"""

    def copy(self) -> PetState:
        return PetState(self.species, self.name, dict(self.stats), self.at, self.xp,
                        self.adopted_at, self.stage, self.produce_milli)

    def to_wire(self) -> dict[str, Any]:
        return {"sp": self.species, "n": self.name, "st": self.stats, "at": self.at,
                "xp": self.xp, "ad": self.adopted_at, "sg": self.stage,
                "pr": self.produce_milli}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> PetState:
        return cls(species=raw["sp"], name=raw["n"], stats=dict(raw["st"]), at=raw["at"],
                   xp=raw["xp"], adopted_at=raw["ad"], stage=raw.get("sg", 0),
                   produce_milli=raw.get("pr", 0))


def _encode_pet(pet: PetState | None) -> dict[str, Any] | None:
    return pet.to_wire() if pet else None


def _decode_pet(raw: dict[str, Any] | None) -> PetState | None:
    return PetState.from_wire(raw) if raw else None


def _copy_pet(pet: PetState | None) -> PetState | None:
    return pet.copy() if pet else None


@dataclass(kw_only=True)
class PetSlots(StateSlots):
    """What the pet mechanic adds to :class:`~mechanics.state.PlayerState`."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("pet", "p", _encode_pet, _decode_pet, _copy_pet),
        Slice("cooldowns", "cd", same, decode_dict, dict),
    )
    pet: PetState | None = None
    cooldowns: dict[str, int] = field(default_factory=dict)
    """action key → unix second it is ready again."""
