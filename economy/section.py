"""A mechanic's part of the game config: the economy half of the mechanic registry.

Each mechanic with settings declares, in its own ``economy/<mechanic>.py``:

- a :class:`Section`: the top-level config keys it owns with their specs, a
  builder that turns the cleaned JSON into frozen values, its cross-checks, and
  the limited-stock refs it configures;
- a frozen, keyword-only dataclass *part* that carries those built values as
  typed attributes and names the section in its ``SECTION`` class attribute.

:class:`economy.config.GameConfig` is the list of parts (its base classes); the
config's spec, parse, cross-checks and stock totals iterate :func:`sections_of`
and never name a mechanic. Economy is the lowest room, so this registry is
separate from the mechanics one (``mechanics/registry.py``), which names each
mechanic's section next to its state slice and view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from economy.schema import Problems, Spec

if TYPE_CHECKING:
    from economy.config import GameConfig

Cleaned = dict[str, Any]
"""The whole config after structural validation (defaults filled)."""


def unknown_currencies(ids: Iterable[str], currencies: Mapping[str, Any],
                       path: str) -> Problems:
    """A problem at ``{path}.{id}`` for each of ``ids`` that is not a configured currency
    (the check every section that prices or rewards in currencies makes)."""
    return [{"path": f"{path}.{cid}", "message": f"unknown currency {cid!r}"}
            for cid in ids if cid not in currencies]


def no_problems(d: Cleaned) -> Problems:
    """The cross-check of a section that needs none."""
    return []


def started_in_both(live: Cleaned, new: Cleaned, key: str, now: int | None,
                    started_at: Callable[[Any], int]) -> Iterator[tuple[str, Any, Any]]:
    """``(id, live item, new item)`` of the items under ``key`` that ``new`` keeps and
    that started (``started_at(live item) <= now``; every one for ``now`` None): the
    items a follow check compares."""
    for item_id, old in (live.get(key) or {}).items():
        kept = (new.get(key) or {}).get(item_id)
        if kept is not None and (now is None or started_at(old) <= now):
            yield item_id, old, kept


def window_status(now: int, opens_at: int, closes_at: int, after: str = "ended") -> str:
    """Where ``now`` stands in the window ``[opens_at, closes_at)`` of a play's item (a
    round, a season, a poll): ``upcoming``, ``open``, then ``after`` (``ended``, or the
    word the play's API uses, such as ``closed``) from ``closes_at`` on."""
    if now < opens_at:
        return "upcoming"
    return "open" if now < closes_at else after


def removed_while_running(live: Cleaned, new: Cleaned, key: str, now: int | None,
                          window: Callable[[Any], tuple[int, int | None]],
                          why: str) -> Problems:
    """A problem for each item under ``key`` that ``new`` drops while it runs
    (``window(live item)`` is ``[start, end)``, ``end`` None: no end until one is set;
    every dropped one for ``now`` None): added again in a later version, a follow check
    would compare it with nothing, and it could come back with the split its state was
    made under changed. ``why`` says what would break."""
    kept = new.get(key) or {}
    problems: Problems = []
    for item_id, old in (live.get(key) or {}).items():
        start, end = window(old)
        running = now is None or (start <= now and (end is None or now < end))
        if item_id in kept or not running:
            continue
        until = (f"runs until {end} in the live version: it cannot be removed before then"
                 if end is not None else "runs with no end in the live version: publish "
                 "an end first; it can be removed once that has passed")
        problems.append({"path": f"$.{key}.{item_id}", "message": f"{until} ({why})"})
    return problems


def no_follow_problems(live: Cleaned, new: Cleaned, now: int | None) -> Problems:
    """The follow check of a section whose every change players' state can follow."""
    return []


def no_stock(config: GameConfig) -> dict[str, int]:
    """The stock of a section that configures no limited refs."""
    return {}


def no_boards(config: GameConfig) -> dict[str, Any]:
    """The boards of a section that ranks nothing of its own."""
    return {}


@dataclass(frozen=True)
class Section:
    """One mechanic's settings: shape, builder, cross-checks, limited stock, and which
    changes from the live config its players' state can follow."""

    name: str
    fields: Mapping[str, Spec]
    """top-level config keys this section owns, in the order the schema publishes them"""
    build: Callable[[Cleaned], dict[str, Any]]
    """cleaned config → keyword arguments of :class:`~economy.config.GameConfig`
    (the attributes of the section's part)"""
    check: Callable[[Cleaned], Problems] = no_problems
    """problems that need more than one field to see (dangling references, ranges);
    runs only on a structurally valid config"""
    stock: Callable[[GameConfig], dict[str, int]] = no_stock
    """limited refs (``prize:x``, ``coupon:x`` …) → configured total: the value tier's stock"""
    boards: Callable[[GameConfig], dict[str, Any]] = no_boards
    """board id → :class:`~economy.leaderboards.Leaderboard` the section's mechanic ranks
    and writes itself (not players by a metric of their state): ``getLeaderboard``
    serves them beside ``$.leaderboards``"""
    follow: Callable[[Cleaned, Cleaned, int | None], Problems] = no_follow_problems
    """``(live, new, now)`` → changes from the live config that state made under it
    cannot follow if ``new`` is published at ``now`` (a species players own removed, a
    campaign's split changed after it opened); ``now`` None: at any time (an experiment
    arm, which players enter and leave while it runs). Both configs are structurally
    valid; the paths are ``new``'s."""


class ConfigPart:
    """Base of a section's part: a frozen, keyword-only dataclass listed in GameConfig's bases."""

    SECTION: ClassVar[Section]


def sections_of(config_class: type) -> tuple[Section, ...]:
    """The sections of a config class's parts, in base-class order."""
    return tuple(cls.__dict__["SECTION"] for cls in config_class.__mro__
                 if "SECTION" in cls.__dict__)
