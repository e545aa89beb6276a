"""Friend assist (助力): config section, frozen model, cross-checks and typed refusals.

A campaign lets a shopper (the owner) start an assist and share its code; other
shoppers help. At ``needed`` helps the owner gets ``owner_reward`` (through the value
tier when it holds a coupon); each helper may get a small ``helper_reward`` (currency
and items only: a helper's side must never be refused for want of stock). An assist
expires ``duration_s`` after it starts (never after the campaign closes).

Anti-abuse, all per campaign: a helper helps a given owner once (over all the owner's
assists), at most ``helps_per_day`` times a day (game timezone) and ``helps_per_campaign``
times in all; never themselves; with ``new_fans_only`` only shoppers who first played
the game after the assist started count; with ``min_session_age_s`` a session younger
than that cannot help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from economy.errors import DomainError, Refusal
from economy.rewards import REWARD_SPEC, Reward, build_reward, reward_problems
from economy.schema import MAX_TIME, Bool, Int, Map, Obj, Problems, Str
from economy.section import ConfigPart, Section

CAMPAIGN_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_DURATION = 30 * 86400

CAMPAIGN_SPEC = Obj(description="An assist campaign: how many helps a shopper needs, by "
                                "when, what the owner and the helpers get, and the caps.",
                    fields={
    "title": Str(min_length=1, max_length=120),
    "needed": Int(minimum=1, maximum=100, description="helps that complete an assist"),
    "duration_s": Int(minimum=60, maximum=MAX_DURATION,
                      description="an assist expires this long after it starts"),
    "opens_at": Int(minimum=0, maximum=MAX_TIME, default=0,
                    description="unix s from which assists can be started"),
    "closes_at": Int(minimum=1, maximum=MAX_TIME, default=MAX_TIME,
                     description="unix s from which no assist starts and every one expires"),
    "max_starts": Int(minimum=1, maximum=20, default=1,
                      description="assists one owner may start in this campaign"),
    "owner_reward": REWARD_SPEC,
    "helper_reward": REWARD_SPEC,
    "helps_per_day": Int(minimum=1, maximum=1000, default=5,
                         description="helps one helper may give a day (game timezone)"),
    "helps_per_campaign": Int(minimum=1, maximum=10_000, default=50,
                              description="helps one helper may give in this campaign"),
    "new_fans_only": Bool(default=False,
                          description="only shoppers who first played after the assist "
                                      "started may help"),
    "min_session_age_s": Int(minimum=0, maximum=MAX_DURATION, default=0,
                             description="a session younger than this cannot help"),
})

ASSISTS_SPEC = Map(values=CAMPAIGN_SPEC, default={}, max_items=50,
                   key_pattern=CAMPAIGN_ID_PATTERN,
                   description="campaign id → assist campaign (startAssist, giveAssist, "
                               "getAssist)")


@dataclass(frozen=True)
class AssistCampaign:
    """One validated assist campaign."""

    id: str
    title: str
    needed: int
    duration_s: int
    opens_at: int
    closes_at: int
    max_starts: int
    owner_reward: Reward
    helper_reward: Reward
    helps_per_day: int
    helps_per_campaign: int
    new_fans_only: bool
    min_session_age_s: int

    def expiry(self, started_at: int) -> int:
        """When an assist started at ``started_at`` stops taking helps."""
        return min(started_at + self.duration_s, self.closes_at)


def build_assists(d: Mapping[str, Any]) -> dict[str, AssistCampaign]:
    """The campaigns of an already validated and cross-checked game config."""
    return {cid: AssistCampaign(
        id=cid, title=c["title"], needed=c["needed"], duration_s=c["duration_s"],
        opens_at=c["opens_at"], closes_at=c["closes_at"], max_starts=c["max_starts"],
        owner_reward=build_reward(c["owner_reward"]),
        helper_reward=build_reward(c["helper_reward"]), helps_per_day=c["helps_per_day"],
        helps_per_campaign=c["helps_per_campaign"], new_fans_only=c["new_fans_only"],
        min_session_age_s=c["min_session_age_s"])
        for cid, c in (d.get("assists") or {}).items()}


def _campaign_problems(path: str, c: Mapping[str, Any], game: dict[str, Any]) -> Problems:
    problems: Problems = []
    if c["closes_at"] <= c["opens_at"]:
        problems.append({"path": f"{path}.closes_at",
                         "message": "a campaign must close after it opens"})
    if build_reward(c["owner_reward"]).is_empty():
        problems.append({"path": f"{path}.owner_reward",
                         "message": "the owner's reward must grant something"})
    if c["helper_reward"]["coupon"]:
        problems.append({"path": f"{path}.helper_reward.coupon",
                         "message": "a helper's reward is currency and items only"})
    if c["helps_per_day"] > c["helps_per_campaign"]:
        problems.append({"path": f"{path}.helps_per_day",
                         "message": "exceeds helps_per_campaign"})
    problems += reward_problems(c["owner_reward"], f"{path}.owner_reward", game)
    problems += reward_problems(c["helper_reward"], f"{path}.helper_reward", game)
    return problems


def check_assists(d: Mapping[str, Any]) -> Problems:
    """Windows are ordered, rewards exist and are sensible, caps are consistent."""
    problems: Problems = []
    for cid, c in (d.get("assists") or {}).items():
        problems += _campaign_problems(f"$.assists.{cid}", c, dict(d))
    return problems


ASSISTS = Section(name="assist", fields={"assists": ASSISTS_SPEC},
                  build=lambda d: {"assists": build_assists(d)}, check=check_assists)


@dataclass(frozen=True, kw_only=True)
class AssistsPart(ConfigPart):
    """The assist campaigns of :class:`~economy.config.GameConfig`."""

    SECTION: ClassVar[Section] = ASSISTS
    assists: dict[str, AssistCampaign] = field(default_factory=dict)


class AssistNotFound(DomainError):
    """No assist with this code in this campaign of this merchant's game."""

    code = "assist_not_found"
    kind = Refusal.NOT_FOUND

    def __init__(self, campaign: str, code: str) -> None:
        super().__init__("no such assist", campaign=campaign, code=code)


class AssistCampaignClosed(DomainError):
    """Starting an assist outside the campaign's window."""

    code = "assist_campaign_closed"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, opens_at: int, closes_at: int) -> None:
        super().__init__("this campaign does not start assists now", campaign=campaign,
                         opens_at=opens_at, closes_at=closes_at)


class AssistAlreadyOpen(DomainError):
    """The owner already has an assist of this campaign taking helps."""

    code = "assist_open"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, code: str) -> None:
        super().__init__("you already have an open assist in this campaign",
                         campaign=campaign, code=code)


class AssistStartsUsed(DomainError):
    """The owner started every assist the campaign allows."""

    code = "assist_starts_used"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, max_starts: int) -> None:
        super().__init__("no assists left to start in this campaign", campaign=campaign,
                         max_starts=max_starts)


class SelfAssist(DomainError):
    """An owner helping their own assist."""

    code = "self_assist"
    kind = Refusal.FORBIDDEN

    def __init__(self, code: str) -> None:
        super().__init__("you cannot help your own assist", code=code)


class AssistComplete(DomainError):
    """A help after the assist got all the helps it needed."""

    code = "assist_complete"
    kind = Refusal.CONFLICT

    def __init__(self, code: str, needed: int) -> None:
        super().__init__("this assist already has every help it needs", code=code,
                         needed=needed)


class AssistExpired(DomainError):
    """A help at or after the assist's expiry."""

    code = "assist_expired"
    kind = Refusal.CONFLICT

    def __init__(self, code: str, expires_at: int) -> None:
        super().__init__("this assist has expired", code=code, expires_at=expires_at)


class AlreadyHelped(DomainError):
    """A second help for the same owner in one campaign."""

    code = "already_helped"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str) -> None:
        super().__init__("you already helped this shopper in this campaign",
                         campaign=campaign)


class HelpLimitReached(DomainError):
    """The helper gave every help the campaign allows them today, or in all."""

    code = "help_limit_reached"
    kind = Refusal.CONFLICT

    def __init__(self, campaign: str, per: str, limit: int) -> None:
        super().__init__(f"no helps left in this campaign ({per} cap)", campaign=campaign,
                         per=per, limit=limit)


class NotNewFan(DomainError):
    """A ``new_fans_only`` campaign and a helper who played before the assist started."""

    code = "not_new_fan"
    kind = Refusal.FORBIDDEN

    def __init__(self, campaign: str) -> None:
        super().__init__("only new shoppers can help in this campaign", campaign=campaign)


class SessionTooYoung(DomainError):
    """A helper whose session is younger than the campaign's ``min_session_age_s``."""

    code = "session_too_young"
    kind = Refusal.LIMITED

    def __init__(self, campaign: str, min_age: int, age: int) -> None:
        super().__init__("your session is too new to help; try again later",
                         campaign=campaign, min_session_age_s=min_age,
                         retry_after=max(1, min_age - age))
