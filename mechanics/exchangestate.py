"""The exchange mechanic's slice of player state: exchanges made per offer and period.
Rules: :mod:`mechanics.exchange`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from mechanics.slices import Slice, StateSlots, same


def _decode(raw: dict[str, Any] | None) -> dict[str, list[int]]:
    return {k: list(v) for k, v in (raw or {}).items()}


def _copy(d: dict[str, list[int]]) -> dict[str, list[int]]:
    return {k: list(v) for k, v in d.items()}


@dataclass(kw_only=True)
class ExchangeSlots(StateSlots):
    SLICES: ClassVar[tuple[Slice, ...]] = (
        Slice("exchanges", "ex", same, _decode, _copy),)
    exchanges: dict[str, list[int]] = field(default_factory=dict)
    """offer → [period, exchanges in it]"""
