"""The reminders mechanic's config section: when to remind a shopper to come back
(hungry pet, full produce), quiet hours and rate limits, and the merchant's webhook.
Rules: :mod:`mechanics.reminders`. Optional: a game without ``reminders`` sends none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from economy.schema import ID_PATTERN, Bool, Int, Obj, Problems, Str
from economy.section import Cleaned, ConfigPart, Section

if TYPE_CHECKING:
    pass

HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

REMINDERS_SPEC = Obj(description="When to remind a shopper to come back.", default=None, fields={
    "hungry": Bool(default=True, description="remind when `hungry_stat` falls below its low"),
    "hungry_stat": Str(pattern=ID_PATTERN, default="satiety"),
    "produce_full": Bool(default=True, description="remind when produce reaches its cap"),
    "quiet_start": Str(pattern=HHMM_PATTERN, default="22:00"),
    "quiet_end": Str(pattern=HHMM_PATTERN, default="08:00"),
    "max_per_day": Int(minimum=1, maximum=24, default=2,
                       description="reminders per player in any 24 hours"),
    "min_gap_s": Int(minimum=0, maximum=86400, default=3600,
                     description="seconds between two reminders to one player"),
    "webhook_url": Str(pattern=r"^$|^https?://[^\s]{1,490}$", max_length=500, default="",
                       description="where due reminders are POSTed, signed with the "
                                   "merchant's signing secret; empty = none are sent"),
})


@dataclass(frozen=True)
class Reminders:
    hungry: bool
    hungry_stat: str
    produce_full: bool
    quiet_start: int
    """minutes after local midnight"""
    quiet_end: int
    max_per_day: int
    min_gap_s: int
    webhook_url: str = ""


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _reminders(d: dict[str, Any] | None) -> Reminders | None:
    if d is None:
        return None
    return Reminders(hungry=d["hungry"], hungry_stat=d["hungry_stat"],
                     produce_full=d["produce_full"], quiet_start=_minutes(d["quiet_start"]),
                     quiet_end=_minutes(d["quiet_end"]), max_per_day=d["max_per_day"],
                     min_gap_s=d["min_gap_s"], webhook_url=d["webhook_url"])


def _p(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _reminder_problems(r: dict[str, Any] | None, d: dict[str, Any]) -> Problems:
    if r is None or not r["hungry"]:
        return []
    if not any(r["hungry_stat"] in sp["stats"] for sp in d["species"].values()):
        return [_p("$.reminders.hungry_stat", "no species has it")]
    return []


def _reminders_section_problems(d: Cleaned) -> Problems:
    return _reminder_problems(d["reminders"], d)

REMINDERS = Section(name="reminders", fields={"reminders": REMINDERS_SPEC},
                    build=lambda d: {"reminders": _reminders(d["reminders"])},
                    check=_reminders_section_problems)


@dataclass(frozen=True, kw_only=True)
class RemindersPart(ConfigPart):
    SECTION: ClassVar[Section] = REMINDERS
    reminders: Reminders | None = None
