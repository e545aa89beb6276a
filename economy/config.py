"""The game config: what a merchant publishes, validated once and then read-only.

A config is JSON; :data:`GAME_SPEC` describes its shape (and is published as JSON
Schema), :func:`parse_game_config` checks shape and cross-references, collects
*every* problem with its JSON path and returns a frozen :class:`GameConfig`.
Published versions are immutable, so a parsed config is shared by every request
that runs on that version.

Every mechanic owns its part of the config (:mod:`economy.section`): the list of
:class:`GameConfig`'s base classes is the registry of config sections. Only the
core (name, time zone, currencies, items) lives here; the spec, the builder, the
cross-checks and :func:`value_totals` iterate :data:`SECTIONS` and never name a
mechanic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from economy.assist import AssistsPart
from economy.boxes import BoxesPart
from economy.checkin import CheckinPart
from economy.energy import EnergyPart
from economy.errors import ConfigInvalid
from economy.exchange import ExchangePart
from economy.experiments import ExperimentsPart
from economy.flashsale import FlashSalesPart
from economy.groupbuy import GroupBuysPart
from economy.leaderboards import Leaderboard, LeaderboardsPart
from economy.pet import Food, PetPart, Species, Stat
from economy.poll import PollsPart
from economy.rains import RainsPart
from economy.reminders import RemindersPart
from economy.rewards import CouponsPart
from economy.samples import SamplesPart
from economy.schema import Bool, Int, Map, Obj, Problems, Str, json_schema, validate
from economy.section import Cleaned, ConfigPart, Section, sections_of
from economy.tasks import TasksPart
from economy.teams import TeamsPart

__all__ = [
    "GAME_SPEC", "MAX_AMOUNT", "SCHEMA_VERSION", "SECTIONS", "Currency", "Food", "GameConfig",
    "Item", "Species", "Stat", "game_config_json_schema", "parse_game_config",
    "timezone_problem", "value_totals",
]

SCHEMA_VERSION = 1
HOST_ZONES: Final = frozenset({"localtime", "posixrules"})
"""Names in a zone directory whose meaning is each host's own: ``localtime`` is its
/etc/localtime, ``posixrules`` the rules its POSIX TZ strings fall back on. Two
servers could count a game's days differently."""
PLACEHOLDER_ZONES: Final = frozenset({"factory"})
"""tzdata's ``Factory`` (offset 0, abbreviated "-00"): the zone of a host whose zone was
never set, not a place."""
ZONE_NAME: Final = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
"""The shape of an IANA zone name: parts of letters, digits, ``_ + -`` joined by ``/``
(no ``.`` or ``..`` part: a name is never a path out of the zone directory)."""
MAX_AMOUNT = 10**12
"""Upper bound of any balance or price: well inside both int64 and Lua's exact doubles."""

CURRENCY_SPEC = Obj(description="A soft currency of the game (acorns, coins, energy).", fields={
    "name": Str(min_length=1, max_length=40),
    "initial": Int(minimum=0, maximum=MAX_AMOUNT, default=0,
                   description="balance a new player starts with"),
    "max": Int(minimum=1, maximum=MAX_AMOUNT, default=MAX_AMOUNT,
               description="a balance never exceeds this"),
    "paid": Bool(default=False, description="bought with real money (blind-box compliance)"),
})

ITEM_SPEC = Obj(description="An inventory item.", fields={
    "name": Str(min_length=1, max_length=60),
    "max": Int(minimum=1, maximum=1_000_000, default=9999, description="most a player may hold"),
    "paid": Bool(default=False, description="sold for real money, e.g. a box ticket"),
})

@dataclass(frozen=True)
class Currency:
    id: str
    name: str
    initial: int
    max: int
    paid: bool = False


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    max: int
    paid: bool = False


def _build_core(d: Cleaned) -> dict[str, Any]:
    return {
        "name": d["name"], "timezone": d["timezone"], "raw": d,
        "webhook_url": d["webhook_url"],
        "currencies": {k: Currency(id=k, **v) for k, v in d["currencies"].items()},
        "items": {k: Item(id=k, **v) for k, v in d["items"].items()},
    }


def _check_core(d: Cleaned) -> Problems:
    return [{"path": f"$.currencies.{cid}.initial", "message": "exceeds max"}
            for cid, cur in d["currencies"].items() if cur["initial"] > cur["max"]]


CORE = Section(name="core", fields={
    "schema": Int(minimum=SCHEMA_VERSION, maximum=SCHEMA_VERSION, default=SCHEMA_VERSION),
    "name": Str(min_length=1, max_length=80),
    "timezone": Str(max_length=64, default="Asia/Shanghai",
                    description="IANA zone for daily resets, e.g. Asia/Shanghai, UTC, "
                                "Etc/GMT-8; not localtime, posixrules or Factory (their "
                                "meaning is each host's)"),
    "currencies": Map(values=CURRENCY_SPEC, min_items=1, max_items=16),
    "items": Map(values=ITEM_SPEC, default={}, max_items=1000),
    "webhook_url": Str(default="", max_length=500, pattern=r"^(https?://\S+)?$",
                       description="the merchant backend's endpoint for signed event "
                                   "webhooks (docs/webhooks.md); empty: events wait"),
}, build=_build_core, check=_check_core)


@dataclass(frozen=True, kw_only=True)
class CorePart(ConfigPart):
    """What every game has: a name, a time zone, currencies and items."""

    SECTION: ClassVar[Section] = CORE
    name: str
    timezone: str
    currencies: dict[str, Currency]
    items: dict[str, Item]
    raw: dict[str, Any]
    webhook_url: str = ""

    def initial_wallet(self) -> dict[str, int]:
        return {cid: c.initial for cid, c in self.currencies.items()}


@dataclass(frozen=True, kw_only=True)
class GameConfig(CorePart, PetPart, CouponsPart, CheckinPart, TasksPart, ExchangePart,
                 RemindersPart, BoxesPart, LeaderboardsPart, PollsPart, EnergyPart,
                 ExperimentsPart, FlashSalesPart, RainsPart, SamplesPart, AssistsPart,
                 GroupBuysPart, TeamsPart):
    """A validated, immutable game config.

    Its bases are the registry of config sections, in the order the schema
    publishes them: add a mechanic's part here (one name) and nothing else in
    this module changes.
    """


SECTIONS: tuple[Section, ...] = sections_of(GameConfig)
"""Every section, core first, in :class:`GameConfig`'s base order."""

GAME_SPEC = Obj(description="A petbox game config.", fields={
    name: spec for section in SECTIONS for name, spec in section.fields.items()})


def _build(d: Cleaned) -> GameConfig:
    kwargs: dict[str, Any] = {}
    for section in SECTIONS:
        kwargs.update(section.build(d))
    return GameConfig(**kwargs)


def _cross_check(d: Cleaned, known_timezones: frozenset[str] | None) -> Problems:
    """Problems that need more than one field to see: dangling references, bad ranges."""
    problems = _timezone_problems(d["timezone"], known_timezones)
    for section in SECTIONS:
        problems += section.check(d)
    return problems


def follow_problems(live: Any, new: Any, now: int | None, *, stock: bool = True) -> Problems:
    """Changes from ``live`` (the config players have played under) that their state
    cannot follow if ``new`` is published at ``now`` (``None``: at any time, as for an
    experiment arm); each section says which of its own, and (``stock``) a changed
    total of a limited ref. A ``live`` config that no longer passes the schema (the
    schema moved since) is not compared: ``new`` is validated in full on its own."""
    live_d, live_bad = validate(GAME_SPEC, live)
    new_d, new_bad = validate(GAME_SPEC, new)
    if live_bad or new_bad:
        return []
    problems: Problems = []
    for section in SECTIONS:
        problems += section.follow(live_d, new_d, now)
    if stock and not _cross_check(live_d, None) and not _cross_check(new_d, None):
        problems += _stock_follow(value_totals(_build(live_d)), value_totals(_build(new_d)))
    return problems


def _stock_follow(live: Mapping[str, int], new: Mapping[str, int]) -> Problems:
    """A limited ref's configured total is its starting stock: the value tier keeps the
    running total in SQL from the first publish on, so a later config cannot move it
    (``setStock`` adds units); saying so beats ignoring the new number."""
    return [{"path": "$", "message": f"{ref}: the live version's stock is {live[ref]} and "
             f"this config says {total}; a published stock changes only with setStock "
             "(keep the live number here)"}
            for ref, total in sorted(new.items()) if ref in live and live[ref] != total]


def timezone_problem(name: str, known_timezones: frozenset[str] | None) -> str | None:
    """Why ``name`` cannot be a game's time zone, or None. ``known_timezones`` is the
    zone database's names (None: only what the name shows is checked). The zone
    directory also holds names that mean something else on every host; they are
    refused even when listed (case apart: a case-insensitive disk finds them too)."""
    if name == "":
        return "must name an IANA time zone, e.g. Asia/Shanghai"
    if name.casefold() in HOST_ZONES:
        return (f"{name} is the host's own zone, not an IANA zone: servers set up "
                "differently would count days differently; name the zone, e.g. Asia/Shanghai")
    if name.casefold() in PLACEHOLDER_ZONES:
        return (f"{name} is tzdata's placeholder for a host whose zone was never set, "
                "not a place; name the zone, e.g. Asia/Shanghai")
    if not ZONE_NAME.fullmatch(name):
        return "is not an IANA time zone name (letters, digits, _ + - in parts joined by /)"
    if known_timezones is not None and name not in known_timezones:
        return "is not a known IANA time zone"
    return None


def _timezone_problems(name: Any, known_timezones: frozenset[str] | None) -> Problems:
    why = timezone_problem(name, known_timezones) if isinstance(name, str) else None
    return [] if why is None else [{"path": "$.timezone", "message": why}]


def value_totals(config: GameConfig) -> dict[str, int]:
    """Every limited ref of a config with its configured total (the value tier's stock)."""
    totals: dict[str, int] = {}
    for section in SECTIONS:
        totals.update(section.stock(config))
    return totals


def section_boards(config: GameConfig) -> dict[str, Leaderboard]:
    """Boards the mechanics rank themselves (e.g. teams), by id; ``getLeaderboard``
    serves them beside the player boards of ``$.leaderboards``."""
    boards: dict[str, Leaderboard] = {}
    for section in SECTIONS:
        boards.update(section.boards(config))
    return boards


def parse_game_config(raw: Any, known_timezones: frozenset[str] | None = None) -> GameConfig:
    """Validate ``raw`` (decoded JSON) and build a :class:`GameConfig`.

    Raises :class:`ConfigInvalid` listing every problem with its JSON path.
    ``known_timezones`` is passed by the caller (reading the zone database is I/O).
    """
    cleaned, problems = validate(GAME_SPEC, raw)
    if problems:
        raise ConfigInvalid(problems + _cross_check_anyway(cleaned, known_timezones, problems))
    problems = _cross_check(cleaned, known_timezones)
    if problems:
        raise ConfigInvalid(problems)
    return _build(cleaned)


def _cross_check_anyway(cleaned: Any, known_timezones: frozenset[str] | None,
                        found: list[dict[str, str]]) -> list[dict[str, str]]:
    """The cross-checks' problems of a config that already failed its schema, so that
    one round lists every problem. Only top-level parts the schema found nothing wrong
    with are cross-checked: in a malformed part a cross-check would restate the schema's
    problem in other words (an invalid ``max`` makes every amount "exceed" it). A check
    that trips on the malformed rest adds nothing rather than failing."""
    if not isinstance(cleaned, dict):
        return []
    broken = {_top(p["path"]) for p in found}
    more = _timezone_problems(cleaned.get("timezone"), known_timezones)
    for section in SECTIONS:
        try:
            more += section.check(cleaned)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            continue
    return [p for p in more if _top(p["path"]) not in broken]


def _top(path: str) -> str:
    """``$.foods.snack.price`` → ``foods``: the top-level key a JSON path is under."""
    return path.removeprefix("$.").split(".", 1)[0].split("[", 1)[0]


def game_config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the game config (structural part of the validation)."""
    return json_schema(GAME_SPEC, "petbox game config")
