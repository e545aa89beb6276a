"""The experiments slice of player state: the arm each experiment exposed the shopper to.

Kept so an arm is sticky across config versions (a shopper stays in the arm they saw
even if the allocation is edited) and so the exposure is recorded once per shopper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mechanics.slices import Slice, StateSlots, copy_dict, decode_dict, same


@dataclass(kw_only=True)
class ExperimentSlots(StateSlots):
    """``experiments``: experiment id → arm id, the first time an arm decided an outcome;
    ``experiment_day``: so an exposed shopper's active day is recorded once."""

    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("experiments", "x", same, decode_dict, copy_dict, omit=lambda v: not v),
        Slice("experiment_day", "xd", same, lambda raw: raw or 0, same, omit=lambda v: not v),
    )
    experiments: dict[str, str] = field(default_factory=dict)
    experiment_day: int = 0
    """The last local day (ordinal) an activity of an exposed shopper was recorded."""
