"""Friend assist (助力): pure rules, with time, timezone and session age as arguments.

An assist is an aggregate (kind ``assist``, id ``<campaign>-<code>``) and every action
on it is a two-commit action (docs/architecture.md, "Aggregates"):

- **start**: the gate (:func:`start`) creates the assist; the owner's commit
  (:func:`apply_start`) records it in their slice. The code of an owner's n-th assist
  in a campaign is fixed by the server (a keyed hash), so two concurrent starts of the
  same round meet at one aggregate and only one is created.
- **help**: the gate (:func:`give`) checks everything (self-help, one help per owner,
  caps, new fan, session age, complete, expired) against the assist and the helper as
  peeked, and counts the help; the helper's commit (:func:`apply_help`) counts it
  against their caps and grants the helper reward. The help that completes the
  assist also owes the owner their reward (:class:`~mechanics.aggregate.OwedOther`),
  recorded by the same gate commit: the owner's commit (:func:`apply_reward`) grants
  it once, and the owner's slice remembers it was granted, so it is never granted
  twice whatever replays.

Second commits never refuse (a commit that follows a gate must not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from economy.assist import (
    AlreadyHelped,
    AssistAlreadyOpen,
    AssistCampaign,
    AssistCampaignClosed,
    AssistComplete,
    AssistExpired,
    AssistNotFound,
    AssistStartsUsed,
    HelpLimitReached,
    NotNewFan,
    SelfAssist,
    SessionTooYoung,
)
from economy.config import GameConfig
from economy.rewards import Reward
from mechanics.aggregate import OwedOther, SharedOutcome
from mechanics.assiststate import AssistProgress, MyAssist
from mechanics.calendar import local_day
from mechanics.grants import Effects, grant
from mechanics.outcome import Outcome
from mechanics.state import PlayerState, new_player

KIND = "assist"
"""The aggregate kind of an assist."""
START_EFFECT = "assist_start"
HELP_EFFECT = "assist_help"
REWARD_EFFECT = "assist_reward"
CODE_LENGTH = 10
"""Characters of a share code (base32: 50 bits)."""


@dataclass
class Assist:
    """One assist: whose, how many helps it needs by when, and who helped."""

    campaign: str
    code: str
    owner: str
    needed: int
    started_at: int
    expires_at: int
    helpers: list[str] = field(default_factory=list)
    completed_at: int = 0
    """0 until the ``needed``-th help"""

    def to_wire(self) -> dict[str, Any]:
        return {"c": self.campaign, "k": self.code, "o": self.owner, "n": self.needed,
                "s": self.started_at, "e": self.expires_at, "h": self.helpers,
                "d": self.completed_at}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Assist:
        return cls(raw["c"], raw["k"], raw["o"], raw["n"], raw["s"], raw["e"],
                   list(raw["h"]), raw["d"])

    def status(self, now: int) -> str:
        """``complete``, ``expired`` or ``open`` at ``now``."""
        if self.completed_at:
            return "complete"
        return "expired" if now >= self.expires_at else "open"


def aggregate_id(campaign: str, code: str) -> str:
    """The aggregate id of an assist (codes have a fixed length: the split is unique)."""
    return f"{campaign}-{code}"


def reward_key(code: str) -> str:
    """The owner's Idempotency-Key for the reward of assist ``code`` (a client key
    cannot contain ``:``, so it never collides with one)."""
    return f"assist-reward:{code}"


def _progress(state: PlayerState | None, campaign: str) -> AssistProgress:
    if state is None:
        return AssistProgress()
    return state.assists.get(campaign) or AssistProgress()


def _is_open(mine: MyAssist, now: int) -> bool:
    return not mine.reward and now < mine.expires_at


def check_start(state: PlayerState | None, campaign: AssistCampaign, now: int) -> int:
    """Refuse a start the owner may not make; else the round (assists started so far),
    from which the server derives the new assist's code."""
    if not campaign.opens_at <= now < campaign.closes_at:
        raise AssistCampaignClosed(campaign.id, campaign.opens_at, campaign.closes_at)
    prog = _progress(state, campaign.id)
    for code, mine in prog.mine.items():
        if _is_open(mine, now):
            raise AssistAlreadyOpen(campaign.id, code)
    if prog.started >= campaign.max_starts:
        raise AssistStartsUsed(campaign.id, campaign.max_starts)
    return prog.started


def start(assist: Assist | None, campaign: AssistCampaign, owner: str, code: str,
          now: int) -> SharedOutcome:
    """The gate of ``startAssist``: create the assist ``code`` (an assist already there
    is a concurrent start of the same round: refused)."""
    if assist is not None:
        raise AssistAlreadyOpen(campaign.id, code)
    new = Assist(campaign.id, code, owner, campaign.needed, now, campaign.expiry(now))
    response = {"assist": code, "code": code, "campaign": campaign.id,
                "needed": new.needed, "helps": 0, "expires_at": new.expires_at}
    return SharedOutcome(new, response, {"e": "start", "u": owner},
                         {"effect": START_EFFECT, **response})


def apply_start(state: PlayerState | None, owed: dict[str, Any], now: int,
                config: GameConfig) -> Outcome:
    """The owner's side of a start: remember the assist. Never refuses."""
    new = state.copy() if state is not None else new_player(config, now)
    _remember(new, owed["campaign"], owed["code"], owed["expires_at"], owed["needed"])
    new.last_seen = now
    response = {k: owed[k] for k in ("assist", "code", "campaign", "needed", "helps",
                                     "expires_at")}
    return Outcome(state=new, response=response)


def _remember(state: PlayerState, campaign: str, code: str, expires_at: int,
              needed: int) -> MyAssist:
    """The owner's record of assist ``code``, made on first sight (start or reward,
    whichever commit comes first after a crash: each counts the start once)."""
    prog = state.assists.setdefault(campaign, AssistProgress())
    mine = prog.mine.get(code)
    if mine is None:
        mine = prog.mine[code] = MyAssist(expires_at, needed)
        prog.started += 1
    return mine


def _check_helper(prog: AssistProgress, campaign: AssistCampaign, owner: str, day: int,
                  session_age: int) -> None:
    if session_age < campaign.min_session_age_s:
        raise SessionTooYoung(campaign.id, campaign.min_session_age_s, session_age)
    if owner in prog.owners:
        raise AlreadyHelped(campaign.id)
    if prog.helps >= campaign.helps_per_campaign:
        raise HelpLimitReached(campaign.id, "campaign", campaign.helps_per_campaign)
    if prog.day == day and prog.today >= campaign.helps_per_day:
        raise HelpLimitReached(campaign.id, "day", campaign.helps_per_day)


def _check_assist(assist: Assist | None, campaign: AssistCampaign, code: str, helper: str,
                  now: int) -> Assist:
    if assist is None:
        raise AssistNotFound(campaign.id, code)
    if helper == assist.owner:
        raise SelfAssist(code)
    if helper in assist.helpers:
        raise AlreadyHelped(campaign.id)
    if assist.completed_at:
        raise AssistComplete(code, assist.needed)
    if now >= assist.expires_at:
        raise AssistExpired(code, assist.expires_at)
    return assist


def refuse_early(assist: Assist | None, campaign: AssistCampaign, code: str, helper: str,
                 now: int) -> None:
    """Refusals that hold whatever the helper's state and key, checked before the
    two-commit action (a complete assist under a burst answers without touching the
    helper or queueing on the assist). A helper already counted goes on: their retry
    replays."""
    if assist is not None and helper not in assist.helpers:
        _check_assist(assist, campaign, code, helper, now)


def give(assist: Assist | None, campaign: AssistCampaign, code: str, helper: str,
         helper_state: PlayerState | None, session_age: int, now: int,
         tz: tzinfo) -> SharedOutcome:
    """The gate of ``giveAssist``: count ``helper``'s help on assist ``code``.

    ``helper_state`` is the helper as peeked before the gate (their caps, the owners
    they helped, when they first played); ``session_age`` is their session's age in
    seconds. The ``needed``-th help completes the assist and owes the owner's reward."""
    old = _check_assist(assist, campaign, code, helper, now)
    day = local_day(now, tz)
    _check_helper(_progress(helper_state, campaign.id), campaign, old.owner, day, session_age)
    if campaign.new_fans_only and helper_state is not None \
            and helper_state.created_at < old.started_at:
        raise NotNewFan(campaign.id)
    helps = len(old.helpers) + 1
    complete = helps >= old.needed
    new = Assist(old.campaign, old.code, old.owner, old.needed, old.started_at,
                 old.expires_at, [*old.helpers, helper], now if complete else 0)
    response = {"assist": code, "campaign": campaign.id, "helps": helps,
                "needed": old.needed, "complete": complete}
    owed = {"effect": HELP_EFFECT, **response, "owner": old.owner, "day": day,
            "reward": campaign.helper_reward.to_json()}
    others: tuple[OwedOther, ...] = ()
    if complete:
        others = (OwedOther(old.owner, reward_key(code), {
            "effect": REWARD_EFFECT, "campaign": campaign.id, "code": code,
            "needed": old.needed, "expires_at": old.expires_at,
            "reward": campaign.owner_reward.to_json()}),)
    return SharedOutcome(new, response, {"e": "help", "u": helper, "n": helps}, owed, others)


def _reward_of(raw: dict[str, Any]) -> Reward:
    return Reward(dict(raw.get("currency", {})), dict(raw.get("items", {})),
                  raw.get("coupon", ""))


def _count_on_day(prog: AssistProgress, day: int) -> None:
    """Count a help on ``day``, the local day its gate counted it (from the gate's
    record, not the clock of this commit). Helper sides can land out of order (one left
    to the owed reconciler lands after a later help's): a help of an earlier day than
    the one ``today`` counts is that day's, so it leaves today's count alone."""
    if day > prog.day:
        prog.day, prog.today = day, 0
    if day == prog.day:
        prog.today += 1


def apply_help(state: PlayerState | None, owed: dict[str, Any], now: int,
               config: GameConfig) -> Outcome:
    """The helper's side of a counted help: count it against their caps, grant the
    helper reward (clamped at each balance's max). Never refuses."""
    new = state.copy() if state is not None else new_player(config, now)
    prog = new.assists.setdefault(owed["campaign"], AssistProgress())
    _count_on_day(prog, owed["day"])
    prog.helps += 1
    if owed["owner"] not in prog.owners:
        prog.owners.append(owed["owner"])
    fx = Effects()
    got = grant(new, _reward_of(owed["reward"]), f"assist_help:{owed['campaign']}", config, fx)
    new.last_seen = now
    response = {k: owed[k] for k in ("assist", "campaign", "helps", "needed", "complete")}
    response |= {"reward": got, "wallet": dict(new.wallet)}
    return Outcome(state=new, response=response, ledger=fx.ledger, events=fx.events)


def apply_reward(state: PlayerState | None, owed: dict[str, Any], now: int,
                 config: GameConfig, coupons_out: frozenset[str] = frozenset()) -> Outcome:
    """The owner's reward for a completed assist, granted once: the owner's slice
    remembers it, so a replay after the key's lifetime grants nothing more. A coupon
    whose stock is gone is skipped (``coupon_unavailable``); the rest is granted."""
    new = state.copy() if state is not None else new_player(config, now)
    campaign, code = owed["campaign"], owed["code"]
    mine = _remember(new, campaign, code, owed["expires_at"], owed["needed"])
    response: dict[str, Any] = {"assist": code, "campaign": campaign}
    if mine.reward:  # granted before: nothing more
        return Outcome(state=new, response=response | {"reward": mine.reward, "granted": {}})
    fx = Effects()
    got = grant(new, _reward_of(owed["reward"]), f"assist:{campaign}", config, fx,
                coupons_out=coupons_out)
    mine.reward = "coupon_unavailable" if "coupons_unavailable" in got else "granted"
    new.last_seen = now
    return Outcome(state=new, response=response | {"reward": mine.reward, "granted": got},
                   ledger=fx.ledger, events=fx.events, reservations=fx.reservations,
                   grants=fx.grants)


def assist_view(assist: Assist, campaign: AssistCampaign, viewer: str, now: int,
                owner_reward: str | None = None) -> dict[str, Any]:
    """What ``getAssist`` shows ``viewer``. ``reward_state``: ``pending`` until the
    assist completes; then, to the owner, what their slice says (``due`` while the
    owner's commit has not run yet); to anyone else ``earned``."""
    status = assist.status(now)
    if status != "complete":
        reward_state = "pending"
    elif viewer == assist.owner:
        reward_state = owner_reward or "due"
    else:
        reward_state = "earned"
    return {"assist": assist.code, "code": assist.code, "campaign": campaign.id,
            "title": campaign.title, "state": status, "helps": len(assist.helpers),
            "needed": assist.needed, "helps_left": max(0, assist.needed - len(assist.helpers)),
            "started_at": assist.started_at, "expires_at": assist.expires_at,
            "completed_at": assist.completed_at or None, "mine": viewer == assist.owner,
            "helped": viewer in assist.helpers, "reward": campaign.owner_reward.to_json(),
            "reward_state": reward_state, "server_time": now}


def campaign_report(assists: list[Assist], campaign: AssistCampaign, now: int,
                    recent: int) -> dict[str, Any]:
    """A campaign's results over ``assists``: counts by state, helps, and the
    ``recent`` newest assists (by start)."""
    states = [a.status(now) for a in assists]
    newest = sorted(zip(assists, states, strict=True), key=lambda p: -p[0].started_at)
    return {"campaign": campaign.id, "title": campaign.title, "needed": campaign.needed,
            "started": len(assists), "open": states.count("open"),
            "complete": states.count("complete"), "expired": states.count("expired"),
            "helps": sum(len(a.helpers) for a in assists),
            "recent": [{"assist": a.code, "owner": a.owner, "state": st,
                        "helps": len(a.helpers), "needed": a.needed,
                        "started_at": a.started_at, "completed_at": a.completed_at or None}
                       for a, st in newest[:recent]],
            "server_time": now}


def owner_reward_state(state: PlayerState | None, campaign: str, code: str) -> str | None:
    """What the owner's slice says of assist ``code``'s reward ("" → None: not yet)."""
    mine = _progress(state, campaign).mine.get(code)
    return mine.reward or None if mine is not None else None


def assists_view(state: PlayerState, config: GameConfig, now: int,
                 tz: tzinfo | None) -> dict[str, Any] | None:
    """The player view's ``assists``: per campaign, the shopper's open assists and the
    helps they have left (None in a game without assist campaigns)."""
    if not config.assists:
        return None
    day = local_day(now, tz) if tz is not None else None
    out: dict[str, Any] = {}
    for cid, campaign in config.assists.items():
        prog = state.assists.get(cid) or AssistProgress()
        today = prog.today if prog.day == day else 0
        out[cid] = {
            "open": [{"assist": code, "expires_at": m.expires_at, "needed": m.needed}
                     for code, m in prog.mine.items() if _is_open(m, now)],
            "rewarded": sorted(code for code, m in prog.mine.items() if m.reward),
            "starts_left": max(0, campaign.max_starts - prog.started),
            "helps_left_today": max(0, min(campaign.helps_per_day - today,
                                           campaign.helps_per_campaign - prog.helps)),
            "helps_left": max(0, campaign.helps_per_campaign - prog.helps)}
    return out


def rename_helper(assist: Assist, user: str, alias: str) -> Assist | None:
    """``assist`` naming ``alias`` wherever it named ``user`` (owner, helper), or None when
    it does not name them (``erasePlayer``, docs/privacy.md)."""
    if assist.owner != user and user not in assist.helpers:
        return None
    return Assist(assist.campaign, assist.code, alias if assist.owner == user else assist.owner,
                  assist.needed, assist.started_at, assist.expires_at,
                  [alias if h == user else h for h in assist.helpers], assist.completed_at)
