"""The energy mechanic's config section and errors.

An energy (Hiro-style) is a per-player counter that refills by ``refill_amount``
every ``refill_seconds`` up to ``max`` and is spent by actions. A new player
starts full. The rules are in :mod:`mechanics.energy`; this module only says
what a merchant may configure and how a refusal is described.

Config (optional; a game without ``energy`` has none)::

    "energy": {"name": "Stamina", "max": 5, "refill_seconds": 1800, "refill_amount": 1}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from economy.errors import DomainError, Refusal
from economy.schema import Int, Obj, Problems, Str
from economy.section import Cleaned, ConfigPart, Section

MAX_ENERGY = 1_000_000

ENERGY_SPEC = Obj(
    description="An energy that refills over time up to `max` and is spent by actions; "
                "a new player starts full.",
    default=None, fields={
        "name": Str(min_length=1, max_length=40, default="Energy"),
        "max": Int(minimum=1, maximum=MAX_ENERGY, description="the cap refills stop at"),
        "refill_seconds": Int(minimum=1, maximum=7 * 86400,
                              description="one refill every this many seconds while below max"),
        "refill_amount": Int(minimum=1, maximum=MAX_ENERGY, default=1,
                             description="units one refill adds (never above max)"),
    })


@dataclass(frozen=True)
class Energy:
    """A validated energy setting."""

    name: str
    max: int
    refill_seconds: int
    refill_amount: int = 1


class NotEnoughEnergy(DomainError):
    """A spend of more energy than the player has now; ``ready_at`` is when they will."""

    code = "not_enough_energy"
    kind = Refusal.CONFLICT

    def __init__(self, have: int, need: int, ready_at: int, now: int) -> None:
        super().__init__(f"not enough energy: have {have}, need {need}", have=have, need=need,
                         ready_at=ready_at, retry_after=max(0, ready_at - now))


def _build(d: Cleaned) -> dict[str, Any]:
    raw = d["energy"]
    return {"energy": None if raw is None else Energy(**raw)}


def _check(d: Cleaned) -> Problems:
    raw = d["energy"]
    if raw is not None and raw["refill_amount"] > raw["max"]:
        return [{"path": "$.energy.refill_amount", "message": "exceeds max"}]
    return []


ENERGY = Section(name="energy", fields={"energy": ENERGY_SPEC}, build=_build, check=_check)


@dataclass(frozen=True, kw_only=True)
class EnergyPart(ConfigPart):
    """The energy of :class:`~economy.config.GameConfig` (None: the game has none)."""

    SECTION: ClassVar[Section] = ENERGY
    energy: Energy | None = None
