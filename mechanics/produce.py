"""Lazy pet stats and produce, in exact integer arithmetic.

A pet stores its stats (milli-points) and its uncollected produce (milli-units)
as of ``pet.at``. Between two touches a stat decays linearly, so the time it
stays above the produce threshold is found exactly: with start value ``s``,
threshold ``T`` and decay ``d`` milli-points/hour, the stat at ``e`` seconds is
``s - floor(d·e/3600)``, which is above ``T`` exactly while ``d·e < (s-T)·3600``.
Produce over an interval is ``rate · min(e, (s-T)·3600/d) / 3600`` floored to a
milli-unit, capped at ``cap_hours`` hours' worth. Every rule that changes a pet
first calls :func:`bring_forward`, which banks produce to ``now`` and then
decays the stats, so feeding never changes what was produced before it.
"""

from __future__ import annotations

from economy.config import Species
from economy.pet import Produce
from mechanics.state import PetState

HOUR = 3600


def decayed(value_milli: int, decay_milli_per_hour: int, elapsed_s: int) -> int:
    """``value`` after ``elapsed_s`` seconds of linear decay, floored at 0."""
    if elapsed_s <= 0 or decay_milli_per_hour == 0:
        return value_milli
    return max(0, value_milli - decay_milli_per_hour * elapsed_s // HOUR)


def stats_at(pet: PetState, species: Species, now: int) -> dict[str, int]:
    """The pet's stats in milli-points at ``now``."""
    elapsed = now - pet.at
    return {
        sid: decayed(pet.stats.get(sid, stat.initial * 1000), stat.decay_milli_per_hour, elapsed)
        for sid, stat in species.stats.items()
    }


def above_s(start_milli: int, threshold_milli: int, decay_milli_per_hour: int,
            elapsed_s: int) -> tuple[int, int]:
    """Time above the threshold during ``elapsed_s`` as the fraction ``(num, den)`` seconds."""
    if elapsed_s <= 0 or start_milli <= threshold_milli:
        return 0, 1
    if decay_milli_per_hour == 0:
        return elapsed_s, 1
    crossing = (start_milli - threshold_milli) * HOUR  # seconds × decay
    return min(elapsed_s * decay_milli_per_hour, crossing), decay_milli_per_hour


def produced_milli(produce: Produce, start_milli: int, decay_milli_per_hour: int,
                   elapsed_s: int) -> int:
    """Milli-units produced over ``elapsed_s`` seconds from a stat at ``start_milli``."""
    num, den = above_s(start_milli, produce.above * 1000, decay_milli_per_hour, elapsed_s)
    return produce.per_hour * 1000 * num // (den * HOUR)


def pending_at(pet: PetState, species: Species, now: int) -> int:
    """Uncollected produce in milli-units at ``now`` (never above the cap)."""
    produce = species.produce
    if produce is None:
        return 0
    stat = species.stats[produce.stat]
    start = pet.stats.get(produce.stat, stat.initial * 1000)
    new = produced_milli(produce, start, stat.decay_milli_per_hour, now - pet.at)
    return min(produce.cap_milli, pet.produce_milli + new)


def bring_forward(pet: PetState, species: Species, now: int) -> None:
    """Bank produce and decay stats up to ``now`` (mutates ``pet``, a rule's copy)."""
    if now <= pet.at:
        return
    pet.produce_milli = pending_at(pet, species, now)
    pet.stats = stats_at(pet, species, now)
    pet.at = now


def full_at(pet: PetState, species: Species) -> int | None:
    """Unix second produce reaches its cap, or None if the stat falls first (or no produce).

    Assumes nothing touches the pet after ``pet.at``.
    """
    produce = species.produce
    if produce is None:
        return None
    need = produce.cap_milli - pet.produce_milli
    if need <= 0:
        return pet.at
    stat = species.stats[produce.stat]
    start = pet.stats.get(produce.stat, stat.initial * 1000)
    # smallest e with per_hour·1000·above(e) // 3600 >= need, i.e. above(e) >= need·3600/rate
    rate = produce.per_hour * 1000
    seconds = -(-need * HOUR // rate)  # produced only while above: need this much "above" time
    num, den = above_s(start, produce.above * 1000, stat.decay_milli_per_hour, 10**12)
    if num < seconds * den:
        return None
    return pet.at + seconds


def low_at(pet: PetState, species: Species, stat_id: str) -> int | None:
    """Unix second the stat first goes below its ``low``, or None if it never does."""
    stat = species.stats.get(stat_id)
    if stat is None:
        return None
    low = stat.low * 1000
    start = pet.stats.get(stat_id, stat.initial * 1000)
    if start < low:
        return pet.at
    d = stat.decay_milli_per_hour
    if d == 0 or low == 0:
        return None
    # below when floor(d·e/3600) ≥ start-low+1, i.e. d·e ≥ (start-low+1)·3600
    return pet.at + -(-(start - low + 1) * HOUR // d)
