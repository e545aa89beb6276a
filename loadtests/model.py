"""A player-behaviour model: what one shopper does in one visit, and when.

A session is: open (``createSession``) → ``getPlayer`` → adopt a pet on the
first visit → check in → feed / collect / play → tasks → look at a box series
and draw → a last ``getPlayer``. Each step happens with a probability and is
separated from the previous one by a think time drawn from a log-normal
distribution. A *browse* is a lone refresh (``getPlayer`` or ``getBoxSeries``),
what the crowd does while waiting for midnight.

All randomness comes from the ``random.Random`` passed in, so a seed fixes a
trace; all durations are divided by the shape's time compression.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtests.chains import FRIEND
from loadtests.ops import OPERATIONS

Step = tuple[float, str, Any, dict[str, Any] | None]
"""(seconds after the session starts, operationId, body, path parameters). Parameters
may hold ``$when`` (see :mod:`loadtests.chains`), ``$as`` (the step is a friend's: a
suffix of the player's name) and ``$expect`` (a refusal by design, such as a sold-out
flash sale: the trace record's ``expect``); the generator takes the last two out."""


def ref(key: str, field: str | None = None) -> dict[str, str]:
    """A value the server hands back at replay (:mod:`loadtests.chains`)."""
    return {"$ref": key} if field is None else {"$ref": key, "field": field}


@dataclass(frozen=True)
class TaskRule:
    """A task a shopper can do alone (not one that orders drive)."""

    kind: str
    limit: int
    browse_s: int
    gain: Mapping[str, int]


@dataclass(frozen=True)
class Rules:
    """What a game lets a shopper do, read from its config (``--game-config``).

    The model plays within these, against a conservative picture of each player
    (:class:`Shopper`): wallets count only the initial balance and rewards the
    config states for sure, once-only and cooldown-bound plays happen once per
    trace, and order-driven tasks, offers with a global stock or a sale window,
    and anything priced in items are left out. A request it sends therefore
    never has to fail.
    """

    initial: Mapping[str, int]
    foods: Mapping[str, Mapping[str, int]]
    """Foods priced in currencies only → price (cooldown-bound ones: once per trace)."""
    food_cooldown: Mapping[str, int]
    play: Mapping[str, int] | None
    """The price of playWithPet (None: the game has no play)."""
    clean: Mapping[str, int] | None
    """The price of cleanPet (None: the game has no clean)."""
    produce_unit_s: float | None
    """Seconds for the pet to produce one unit (None: no produce)."""
    checkin_gain: Mapping[str, int] | None
    """Day one of the check-in cycle (None: no check-in)."""
    tasks: Mapping[str, TaskRule]
    series: Mapping[str, tuple[str, int, int]]
    """Box series → (currency, price of one draw, daily cap per player)."""
    offers: Mapping[str, tuple[Mapping[str, int], int]]
    """Offers paid in currencies, unlimited overall → (cost, per-player limit)."""
    polls: Mapping[str, tuple[tuple[str, ...], int, Mapping[str, int]]] = field(
        default_factory=dict)
    """Poll → (option ids, votes per shopper per day, cost of a vote)."""
    flashsales: tuple[str, ...] = ()
    """Flash sales any shopper may claim (those with an eligibility rule are left out)."""
    assists: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Assist campaign → (helps needed, minimum session age of a helper in seconds)."""
    groupbuys: Mapping[str, tuple[int, Mapping[str, int]]] = field(default_factory=dict)
    """Group-buy offer → (group size, what a seat costs), offers paid in currencies."""
    presales: Mapping[str, tuple[int, str | None]] = field(default_factory=dict)
    """Presale → (reservations per shopper, the deposit's SKU or None), presales any
    shopper may reserve (those with an eligibility rule are left out)."""
    samples: Mapping[str, tuple[str, tuple[str, ...], bool]] = field(default_factory=dict)
    """Sample campaign → (mode, tasks its eligibility needs done, has a review task);
    campaigns that need orders are left out (a trace cannot know a shopper's orders)."""
    teams: Mapping[str, tuple[int, bool]] = field(default_factory=dict)
    """Team season → (most members, has milestones)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Rules:
        species: Mapping[str, Any] = next(iter((config.get("species") or {}).values()), {}) or {}
        produce = species.get("produce")
        checkin = (config.get("checkin") or {}).get("cycle") or []
        foods = {f: dict(spec.get("price") or {}) for f, spec in
                 (config.get("foods") or {}).items() if not spec.get("items")}
        play, clean = species.get("play"), species.get("clean")
        return cls(
            initial={c: int(spec.get("initial", 0)) for c, spec in
                     (config.get("currencies") or {}).items()},
            foods=foods,
            food_cooldown={f: int((config.get("foods") or {})[f].get("cooldown_s", 0))
                           for f in foods},
            play=None if play is None else dict(play.get("price") or {}),
            clean=None if clean is None else dict(clean.get("price") or {}),
            produce_unit_s=None if not produce else 3600.0 / float(produce["per_hour"]),
            checkin_gain=dict((checkin[0] or {}).get("currency") or {}) if checkin else None,
            tasks={t: TaskRule(spec.get("kind", "browse"), int(spec.get("limit", 1)),
                               int(spec.get("browse_s", 0)),
                               dict((spec.get("reward") or {}).get("currency") or {}))
                   for t, spec in (config.get("tasks") or {}).items()
                   if spec.get("kind") != "purchase"},
            series={s: (spec["price"]["currency"], int(spec["price"]["amount"]),
                        int(spec.get("daily_cap") or 10**9))
                    for s, spec in ((config.get("boxes") or {}).get("series") or {}).items()},
            offers={o: (dict((spec.get("cost") or {}).get("currency") or {}),
                        int(spec.get("per_player", 1)) or 10**9)
                    for o, spec in (config.get("offers") or {}).items()
                    if not spec.get("duplicates") and not (spec.get("cost") or {}).get("items")
                    and not spec.get("global_limit") and not spec.get("starts_at")
                    and not spec.get("ends_at")},
            polls={q: (tuple(spec.get("options") or ()), int(spec.get("votes_per_day", 1)),
                       dict(spec.get("cost") or {}))
                   for q, spec in (config.get("polls") or {}).items()},
            flashsales=tuple(s for s, spec in (config.get("flashsales") or {}).items()
                             if not spec.get("eligibility")),
            assists={a: (int(spec.get("needed", 1)), int(spec.get("min_session_age_s", 0)))
                     for a, spec in (config.get("assists") or {}).items()},
            groupbuys={g: (int(spec.get("size", 2)), dict(spec.get("cost") or {}))
                       for g, spec in (config.get("groupbuys") or {}).items()
                       if not (spec.get("cost") or {}).get("items")},
            presales={s: (int(spec.get("per_shopper", 1)), spec.get("deposit_sku")
                          if spec.get("deposit_fen") else None)
                      for s, spec in (config.get("presales") or {}).items()
                      if not spec.get("eligibility")},
            samples=_samples(config),
            teams={s: (int(spec.get("max_size", 5)), bool(spec.get("milestones")))
                   for s, spec in (config.get("teams") or {}).items()},
        )


def _samples(config: Mapping[str, Any]) -> dict[str, tuple[str, tuple[str, ...], bool]]:
    """:attr:`Rules.samples`: campaigns a shopper can become eligible for by playing."""
    tasks = config.get("tasks") or {}
    out = {}
    for c, spec in (config.get("samples") or {}).items():
        rule = spec.get("eligibility") or {}
        needed = tuple(str(rule[k]) for k in ("member_task", "follow_task") if rule.get(k))
        doable = all(t in tasks and tasks[t].get("kind") != "purchase" for t in needed)
        if doable and not rule.get("min_orders"):
            out[c] = (str(spec.get("mode", "lottery")), needed, spec.get("review") is not None)
    return out


@dataclass
class Shopper:
    """The model's picture of one player across the trace (see :class:`Rules`)."""

    adopted: bool = False
    adopted_at: float = 0.0
    collected_at: float | None = None
    wallet: Counter[str] = field(default_factory=Counter)
    checked_in: bool = False
    played: bool = False
    cleaned: bool = False
    fed_once: set[str] = field(default_factory=set)
    tasks: Counter[str] = field(default_factory=Counter)
    draws: Counter[str] = field(default_factory=Counter)
    offers: Counter[str] = field(default_factory=Counter)
    votes: Counter[str] = field(default_factory=Counter)
    started: bool = False
    assists: set[str] = field(default_factory=set)
    """Assist campaigns this shopper started an assist in (once each per trace)."""
    seasons: set[str] = field(default_factory=set)
    """Team seasons this shopper joined or opened a team in (once each per trace)."""
    presales: Counter[str] = field(default_factory=Counter)
    samples: set[str] = field(default_factory=set)
    """Sample campaigns this shopper applied to (once each)."""
    claims: set[str] = field(default_factory=set)
    """Flash sales this shopper claimed in (once each per trace)."""
    groups: set[str] = field(default_factory=set)
    """Group-buy offers this shopper opened a group of (once each per trace)."""

    def can_pay(self, price: Mapping[str, int], times: int = 1) -> bool:
        return all(self.wallet[c] >= n * times for c, n in price.items())

    def pay(self, price: Mapping[str, int], times: int = 1) -> None:
        for c, n in price.items():
            self.wallet[c] -= n * times

    def gain(self, amounts: Mapping[str, int]) -> None:
        self.wallet.update(amounts)


@dataclass(frozen=True)
class GameProfile:
    """The names a game offers that requests refer to."""

    game: str = "squirrel-omg"
    species: tuple[str, ...] = ("squirrel",)
    foods: tuple[str, ...] = ("acorn_snack",)
    series: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    boards: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()
    polls: tuple[str, ...] = ()
    """Polls to look at and vote in. A poll opens and closes at set times, which a trace
    replayed later cannot know: a vote outside them is refused (409 ``poll_closed``), a
    refusal by design that the verdict counts as such, not as an error."""
    flashsales: tuple[str, ...] = ()
    """Flash sales the midnight crowd polls, claims while the poll says live, and pays
    through an order (the replay feeds the hold in, :mod:`loadtests.chains`)."""
    rains: tuple[str, ...] = ()
    """Red-envelope rains whose rounds shoppers watch, grabbing in a round the replay
    found open."""
    assists: tuple[str, ...] = ()
    """Assist campaigns shoppers start an assist in; friends help with the code the
    replay got back."""
    groupbuys: tuple[str, ...] = ()
    """Group-buy offers whose open groups shoppers list, open groups of, and that
    friends join with the share code the replay got back."""
    team_seasons: tuple[str, ...] = ()
    """Team seasons with auto-match (a join needs no share code, which a trace cannot know)."""
    teams: tuple[str, ...] = ()
    """Team seasons shoppers open teams in; friends join with the share code the replay
    got back, check in for team points, look at the team and claim what it reached."""
    presales: tuple[str, ...] = ()
    """Presales shoppers look at, reserve while taking reservations, and pay the deposit
    of through an order."""
    samples: tuple[str, ...] = ()
    """Sample campaigns (派样) shoppers look at, apply to while open, and review when won."""
    hot_series: str | None = None
    hot_prize: str | None = None
    rules: Rules | None = None
    """What the game allows (from its config); None: an unknown game, played blindly."""

    @classmethod
    def from_config(cls, game: str, config: Mapping[str, Any],
                    hot_prize: str | None = None) -> GameProfile:
        """Names from a game-config JSON (the file ``petbox game publish`` takes)."""
        boxes = config.get("boxes") or {}
        series = dict(boxes.get("series") or {})
        hot_series = None
        if hot_prize is not None:
            holders = [s for s, spec in series.items() if hot_prize in (spec.get("prizes") or {})]
            if not holders:
                raise ValueError(f"no box series holds the limited prize {hot_prize!r}")
            hot_series = holders[0]
        return cls(game=game, species=tuple(config.get("species") or ()) or cls.species,
                   foods=tuple(config.get("foods") or ()) or cls.foods,
                   series=tuple(series), tasks=tuple(config.get("tasks") or ()),
                   boards=tuple(config.get("leaderboards") or ()),
                   offers=tuple(config.get("offers") or config.get("exchange") or ()),
                   polls=tuple(config.get("polls") or ()),
                   flashsales=tuple(config.get("flashsales") or ()),
                   rains=tuple(config.get("rains") or ()),
                   assists=tuple(config.get("assists") or ()),
                   groupbuys=tuple(config.get("groupbuys") or ()),
                   team_seasons=tuple(sid for sid, s in (config.get("teams") or {}).items()
                                      if s.get("auto_match")),
                   teams=tuple(config.get("teams") or ()),
                   presales=tuple(config.get("presales") or ()),
                   samples=tuple(config.get("samples") or ()),
                   hot_series=hot_series, hot_prize=hot_prize, rules=Rules.from_config(config))

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()
                if k != "rules"}


@dataclass(frozen=True)
class Behaviour:
    """Probabilities and think times of one visit."""

    think_median_s: float = 3.0
    think_sigma: float = 0.9
    think_max_s: float = 60.0
    p_checkin: float = 0.8
    feeds_mean: float = 1.5
    p_collect: float = 0.5
    p_play: float = 0.3
    p_clean: float = 0.2
    p_tasks: float = 0.4
    task_s: float = 15.0
    p_draw: float = 0.6
    draws_mean: float = 2.0
    p_ten_draw: float = 0.1
    p_series_look: float = 0.7
    p_final_refresh: float = 0.5
    p_history: float = 0.1
    p_leaderboard: float = 0.1
    p_exchange: float = 0.05
    p_vote: float = 0.2
    p_assist: float = 0.1
    p_claim: float = 0.3
    p_grab: float = 0.3
    p_groupbuy: float = 0.1
    p_friends_all: float = 0.7
    """Share-chain friends: all a group or assist needs, else fewer (one or more)."""
    browse_series_share: float = 0.3
    browse_poll_share: float = 0.1
    browse_flashsale_share: float = 0.2
    browse_rain_share: float = 0.2
    p_team_join: float = 0.2
    p_team_create: float = 0.1
    p_presale: float = 0.2
    p_sample: float = 0.2
    team_points_lag_s: float = 3.0
    """Real seconds (not compressed) a member waits after earning team points before
    looking at the team: the team learns them a flush interval later."""
    hot_share: float = 0.4
    ops: frozenset[str] | None = None
    """Operations the model may emit (None: all); the others are left out."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ops is not None and not self.ops <= set(OPERATIONS):
            raise ValueError(f"unknown operations {sorted(self.ops - set(OPERATIONS))}")
        if not 0 <= self.hot_share <= 1:
            raise ValueError("hot_share must be within 0..1")

    def allows(self, op: str) -> bool:
        return self.ops is None or op in self.ops


def _count(rng: random.Random, mean: float) -> int:
    """A geometric count (≥ 0) with the given mean."""
    if mean <= 0:
        return 0
    p = 1.0 / (1.0 + mean)
    return int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


class PlayerModel:
    """Turns a seeded ``random.Random`` into visits of one game's shoppers."""

    def __init__(self, profile: GameProfile, behaviour: Behaviour | None = None,
                 compression: float = 1.0) -> None:
        self.profile = profile
        self.b = behaviour or Behaviour()
        self.compression = compression
        self._mu = math.log(self.b.think_median_s)

    def think(self, rng: random.Random) -> float:
        """One think time in (compressed) seconds."""
        return min(rng.lognormvariate(self._mu, self.b.think_sigma),
                   self.b.think_max_s) / self.compression

    def series_for_draw(self, rng: random.Random) -> str:
        p = self.profile
        if p.hot_series is not None and rng.random() < self.b.hot_share:
            return p.hot_series
        others = [s for s in p.series if s != p.hot_series] or list(p.series)
        return rng.choice(others)

    def new_shopper(self) -> Shopper:
        rules = self.profile.rules
        return Shopper(wallet=Counter(rules.initial if rules else {}))

    def session(self, rng: random.Random, shopper: Shopper | None = None,
                at: float = 0.0) -> list[Step]:
        """One visit's requests with their offsets from its start (trace time ``at``),
        updating ``shopper``: the player's state as the model knows it."""
        b, p = self.b, self.profile
        me = shopper if shopper is not None else self.new_shopper()
        steps: list[Step] = []
        t = 0.0

        def add(op: str, body: Any = None, params: dict[str, str] | None = None,
                wait: bool = True, after: float = 0.0) -> bool:
            nonlocal t
            if not b.allows(op):
                return False
            if steps and wait:
                t += self.think(rng)
            t += after
            steps.append((t, op, body, params))
            return True

        add("createSession", {})
        add("getPlayer")
        if not me.adopted and add("adoptPet", {"species": rng.choice(p.species),
                                               "name": f"pet{rng.randrange(10**6)}"}):
            me.adopted, me.adopted_at = True, at + t
        if rng.random() < b.p_checkin:
            self._checkin(me, add)
        if me.adopted:
            self._pet(rng, me, add, lambda: at + t)
        if p.tasks and rng.random() < b.p_tasks:
            self._task(rng, me, add)
        if p.series and rng.random() < b.p_draw:
            self._draws(rng, me, add)
        if p.offers and rng.random() < b.p_exchange:
            self._exchange(rng, me, add)
        if p.polls and rng.random() < b.p_vote:
            self._vote(rng, me, add)
        if p.flashsales and rng.random() < b.p_claim:
            self._claim(rng, me, add)
        if p.rains and rng.random() < b.p_grab:
            rain = rng.choice(p.rains)  # in a round the replay finds open, if any
            add("getEnvelopeRain", None, {"rain": rain})
            add("grabEnvelope", {"round": ref(f"round:{rain}")},
                {"rain": rain, "$expect": "409 pool_empty"})
        if p.assists and rng.random() < b.p_assist:
            campaign = rng.choice(p.assists)  # one assist per campaign and shopper
            if campaign not in me.assists and add("startAssist", {}, {"campaign": campaign}):
                me.assists.add(campaign)
                self._helpers(rng, steps, t, campaign)
        if p.groupbuys and rng.random() < b.p_groupbuy:
            self._group(rng, me, add, steps, lambda: t)
        if p.team_seasons and not me.seasons and rng.random() < b.p_team_join:
            season = rng.choice(p.team_seasons)
            if add("joinTeam", {}, {"season": season}):
                me.seasons.add(season)  # auto-matched once per trace (a second is refused)
        if p.teams and rng.random() < b.p_team_create:
            self._team(rng, me, add, steps, lambda: t)
        if p.presales and rng.random() < b.p_presale:
            self._presale(rng, me, add)
        if p.samples and rng.random() < b.p_sample:
            self._sample(rng, me, add)
        if p.boards and rng.random() < b.p_leaderboard:
            add("getLeaderboard", None, {"board": rng.choice(p.boards)})
        if rng.random() < b.p_final_refresh:
            add("getPlayer")
        return steps

    def _claim(self, rng: random.Random, me: Shopper, add: Any) -> None:
        """Look at a flash sale, claim while it is live, pay the hold through an order.
        A claim racing others for the last units may find it sold out: by design."""
        rules = self.profile.rules
        sales = [s for s in self.profile.flashsales if rules is not None
                 and s in rules.flashsales and s not in me.claims]
        if not sales:
            return
        sale = rng.choice(sales)
        add("getFlashSale", None, {"sale": sale})
        if add("claimFlashSale", {}, {"sale": sale, "$when": f"live:{sale}",
                                      "$expect": "409 sold_out"}):
            me.claims.add(sale)  # per_shopper is at least one: once per trace
            add("ingestOrder", {"status": "paid", "skus": [ref(f"hold:{sale}", "sku")],
                                "amount_fen": ref(f"hold:{sale}", "price_fen")})

    def _friends_coming(self, rng: random.Random, seats: int) -> int:
        """How many friends answer a share code with ``seats`` to fill: all of them with
        probability ``p_friends_all``, else some (at least one)."""
        return seats if rng.random() < self.b.p_friends_all else rng.randint(1, seats)

    def _friend_arrives(self, rng: random.Random, tag: str, k: int, at: float,
                        steps: list[Step]) -> tuple[dict[str, str], float]:
        """Friend ``k`` (a new shopper, played as ``tag`` + k) comes one think time after
        ``at`` and opens a session: its ``$as`` parameters and the time it arrived."""
        who = {"$as": f"{tag}{k}"}
        at += self.think(rng)
        if self.b.allows("createSession"):
            steps.append((at, "createSession", {}, dict(who)))
        return who, at

    def _helpers(self, rng: random.Random, steps: list[Step], t: float,
                 campaign: str) -> None:
        """Friends (new shoppers) help the assist just started with its share code, each
        once, each after the campaign's minimum session age (real time)."""
        rules = self.profile.rules
        if rules is None or campaign not in rules.assists or not self.b.allows("giveAssist"):
            return
        needed, min_age = rules.assists[campaign]
        tag = f"{FRIEND}a{self.profile.assists.index(campaign)}."
        for k in range(self._friends_coming(rng, needed)):
            who, at = self._friend_arrives(rng, tag, k, t, steps)
            at += min_age + 1.5
            steps.append((at, "giveAssist", {"code": ref(f"assist:{campaign}")},
                          {"campaign": campaign, **who}))
            if self.b.allows("getPlayer"):
                steps.append((at + self.think(rng), "getPlayer", None, dict(who)))

    def _group(self, rng: random.Random, me: Shopper, add: Any, steps: list[Step],
               now: Any) -> None:
        """Open a group (paying a seat) and let friends (new shoppers) join it with its
        share code until it is full, or fewer of them."""
        rules = self.profile.rules
        offers = [g for g in self.profile.groupbuys if rules is not None
                  and g in rules.groupbuys and g not in me.groups
                  and me.can_pay(rules.groupbuys[g][1])]
        if not offers or rules is None:
            return
        offer = rng.choice(offers)
        size, cost = rules.groupbuys[offer]
        sold_out = {"$expect": "409 groupbuy_sold_out"}  # stock for no more full groups
        if size < 2 or not add("createGroupBuy", {}, {"offer": offer, **sold_out}):
            return
        me.groups.add(offer)
        me.pay(cost)
        fresh = self.new_shopper()
        if not self.b.allows("joinGroupBuy") or not fresh.can_pay(cost):
            return
        tag = f"{FRIEND}g{self.profile.groupbuys.index(offer)}."
        at = now()
        for k in range(self._friends_coming(rng, size - 1)):
            who, at = self._friend_arrives(rng, tag, k, at, steps)
            steps.append((at + self.think(rng), "joinGroupBuy",
                          {"code": ref(f"group:{offer}")}, {"offer": offer, **who}))

    def _team(self, rng: random.Random, me: Shopper, add: Any, steps: list[Step],
              now: Any) -> None:
        """Open a team (once per season and shopper) and let friends (new shoppers) join
        it with its share code; each checks in (team points), looks at the team once the
        points have reached it, and claims the milestones the view shows reached."""
        rules = self.profile.rules
        seasons = [s for s in self.profile.teams if rules is not None and s in rules.teams
                   and s not in me.seasons]
        if not seasons or rules is None:
            return
        season = rng.choice(seasons)
        if not add("createTeam", {}, {"season": season}):
            return
        me.seasons.add(season)
        most, milestones = rules.teams[season]
        if most < 2 or not self.b.allows("joinTeam"):
            return
        tag = f"{FRIEND}t{self.profile.teams.index(season)}."
        team = ref(f"team:{season}", "team")
        at = now()
        for k in range(self._friends_coming(rng, most - 1)):
            who, at = self._friend_arrives(rng, tag, k, at, steps)
            at += self.think(rng)
            steps.append((at, "joinTeam", {"code": ref(f"team:{season}", "code")},
                          {"season": season, **who}))
            if rules.checkin_gain is not None and self.b.allows("checkIn"):
                steps.append((at + self.think(rng), "checkIn", {}, dict(who)))
            look = at + self.think(rng) + self.b.team_points_lag_s
            if self.b.allows("getTeam"):
                steps.append((look, "getTeam", None, {"season": season, "team": team, **who}))
            if milestones and self.b.allows("claimTeamRewards"):
                steps.append((look + self.think(rng), "claimTeamRewards", {},
                              {"season": season, "$when": f"reached:{season}", **who}))

    def _presale(self, rng: random.Random, me: Shopper, add: Any) -> None:
        """Look at a presale, reserve while it takes reservations, pay the deposit (if
        it has one) through the merchant's signed order. The race for the last
        reservations may find it sold out: by design."""
        rules = self.profile.rules
        presales = [s for s in self.profile.presales if rules is not None
                    and s in rules.presales and me.presales[s] < rules.presales[s][0]]
        if not presales or rules is None:
            return
        presale = rng.choice(presales)
        add("getPresale", None, {"presale": presale})
        if not add("reservePresale", {}, {"presale": presale, "$when": f"reserving:{presale}",
                                          "$expect": "409 sold_out"}):
            return
        me.presales[presale] += 1
        deposit_sku = rules.presales[presale][1]
        if deposit_sku is not None:  # the deposit (定金) is paid at the merchant's checkout
            add("ingestOrder", {"status": "paid", "skus": [deposit_sku],
                                "amount_fen": ref(f"reserved:{presale}", "deposit_fen")})

    def _sample(self, rng: random.Random, me: Shopper, add: Any) -> None:
        """Apply for a free sample (派样) once per campaign: do the tasks its eligibility
        needs first, look at it, apply while open; a first-come winner reviews it."""
        rules = self.profile.rules
        campaigns = [c for c in self.profile.samples if rules is not None
                     and c in rules.samples and c not in me.samples]
        if not campaigns or rules is None:
            return
        campaign = rng.choice(campaigns)
        mode, needed, review = rules.samples[campaign]
        for task in needed:
            if me.tasks[task] == 0 and not (
                    task in rules.tasks and me.tasks[task] < rules.tasks[task].limit
                    and self._do_task(me, add, task)):
                return  # not eligible: a real client shows the task to do first
        add("getSampleCampaign", None, {"campaign": campaign})
        if not add("applySample", {}, {"campaign": campaign, "$when": f"open:{campaign}"}):
            return
        me.samples.add(campaign)
        add("listMySamples")
        if review and mode == "first_come":  # a lottery's winners are drawn after closing
            add("reviewSample", {"report": f"tasty {rng.randrange(10**6)}"},
                {"campaign": campaign, "$when": f"won:{campaign}"})

    def _checkin(self, me: Shopper, add: Any) -> None:
        rules = self.profile.rules
        if rules is not None and (rules.checkin_gain is None or me.checked_in):
            return  # once per trace: a second one the same day must fail
        if add("checkIn", {}):
            me.checked_in = True
            me.gain(rules.checkin_gain or {} if rules else {})

    def _pet(self, rng: random.Random, me: Shopper, add: Any, now: Any) -> None:
        b, rules = self.b, self.profile.rules
        unit = rules.produce_unit_s if rules else 0.0
        since = me.adopted_at if me.collected_at is None else me.collected_at
        # Produce needs real time since adoption (or the last collect): never before.
        if rng.random() < b.p_collect and unit is not None and now() - since > 2 * unit + 60 \
                and add("collectProduce", {}):
            me.collected_at = now()
        for _ in range(_count(rng, b.feeds_mean)):
            food = self._food(rng, me)
            if food is not None and add("feedPet", {"food": food}) and rules is not None:
                me.pay(rules.foods[food])
                if rules.food_cooldown[food]:
                    me.fed_once.add(food)
        play = rules.play if rules else {}
        if rng.random() < b.p_play and play is not None and not me.played \
                and me.can_pay(play) and add("playWithPet", {}):
            me.played = rules is not None  # a cooldown of minutes: once per trace
            me.pay(play)
        clean = rules.clean if rules else None  # unknown games: not sent (older builds)
        if rng.random() < b.p_clean and clean is not None and not me.cleaned \
                and me.can_pay(clean) and add("cleanPet", {}):
            me.cleaned = True
            me.pay(clean)

    def _food(self, rng: random.Random, me: Shopper) -> str | None:
        rules = self.profile.rules
        if rules is None:
            return rng.choice(self.profile.foods)
        ok = [f for f in self.profile.foods if f in rules.foods and f not in me.fed_once
              and me.can_pay(rules.foods[f])]
        return rng.choice(ok) if ok else None

    def _task(self, rng: random.Random, me: Shopper, add: Any) -> None:
        rules = self.profile.rules
        tasks = [t for t in self.profile.tasks if rules is None or (
            t in rules.tasks and me.tasks[t] < rules.tasks[t].limit)]
        if not tasks:
            return
        self._do_task(me, add, rng.choice(tasks))

    def _do_task(self, me: Shopper, add: Any, task: str) -> bool:
        """Start ``task`` and complete it with its ticket; whether it was completed."""
        rules = self.profile.rules
        rule = rules.tasks[task] if rules else None
        if not add("startTask", {}, {"task": task}):
            return False
        # A browse task completes with its ticket after browse_s of real time (the
        # server's clock: not compressed); the others complete at once.
        wait = (rule.browse_s + 1.5) if rule is not None and rule.kind == "browse" else (
            0.0 if rule is not None else self.b.task_s / self.compression)
        if not add("completeTask", {}, {"task": task}, wait=False, after=wait):
            return False
        me.tasks[task] += 1
        if rule is not None:
            me.gain(rule.gain)
        return True

    def _draws(self, rng: random.Random, me: Shopper, add: Any) -> None:
        rules = self.profile.rules
        series = self.series_for_draw(rng)
        if rng.random() < self.b.p_series_look:
            add("getBoxSeries", None, {"series": series})
        for _ in range(1 + _count(rng, self.b.draws_mean - 1)):
            count = 10 if rng.random() < self.b.p_ten_draw else 1
            if rules is not None and series in rules.series:
                cur, price, cap = rules.series[series]
                if count == 10 and not (me.can_pay({cur: price}, 10)
                                        and me.draws[series] + 10 <= cap):
                    count = 1
                if not (me.can_pay({cur: price}, count) and me.draws[series] + count <= cap):
                    break  # out of money or over the daily cap: a shopper stops here
                me.pay({cur: price}, count)
                me.draws[series] += count
            elif rules is not None:
                break
            add("drawBox", {"count": count, "client_seed": f"{rng.getrandbits(64):016x}"},
                {"series": series})
            series = self.series_for_draw(rng)
        if rng.random() < self.b.p_history:
            add("listDraws")
            add("listMyCoupons")  # a shopper who checks their draws checks their coupons

    def _exchange(self, rng: random.Random, me: Shopper, add: Any) -> None:
        rules = self.profile.rules
        if rules is None:
            add("exchange", {"offer": rng.choice(self.profile.offers)})
            return
        ok = [o for o in self.profile.offers if o in rules.offers
              and me.offers[o] < rules.offers[o][1] and me.can_pay(rules.offers[o][0])]
        if ok:
            offer = rng.choice(ok)
            if add("exchange", {"offer": offer}):
                me.pay(rules.offers[offer][0])
                me.offers[offer] += 1

    def _vote(self, rng: random.Random, me: Shopper, add: Any) -> None:
        """One vote in a poll the shopper still has votes for (today: the whole trace)
        and can pay; unknown games are not voted in (the options are not known)."""
        rules = self.profile.rules
        if rules is None:
            return
        ok = [q for q in self.profile.polls if q in rules.polls and rules.polls[q][0]
              and me.votes[q] < rules.polls[q][1] and me.can_pay(rules.polls[q][2])]
        if not ok:
            return
        poll = rng.choice(ok)
        options, _per_day, cost = rules.polls[poll]
        if add("castVote", {"option": rng.choice(options)}, {"poll": poll}):
            me.votes[poll] += 1
            me.pay(cost)

    def browse(self, rng: random.Random) -> Step | None:
        """A lone refresh; None when no read operation is allowed."""
        b, p = self.b, self.profile
        if p.polls and b.allows("getPoll") and rng.random() < b.browse_poll_share:
            return (0.0, "getPoll", None, {"poll": rng.choice(p.polls)})
        if (p.flashsales and b.allows("getFlashSale")
                and rng.random() < b.browse_flashsale_share):
            return (0.0, "getFlashSale", None, {"sale": rng.choice(p.flashsales)})
        if p.rains and b.allows("getEnvelopeRain") and rng.random() < b.browse_rain_share:
            return (0.0, "getEnvelopeRain", None, {"rain": rng.choice(p.rains)})
        if p.groupbuys and b.allows("listGroupBuys") and rng.random() < b.browse_poll_share:
            return (0.0, "listGroupBuys", None, {"offer": rng.choice(p.groupbuys)})
        look = p.series and b.allows("getBoxSeries") and (
            not b.allows("getPlayer") or rng.random() < b.browse_series_share)
        if look:
            series = p.hot_series if p.hot_series and rng.random() < b.hot_share else None
            return (0.0, "getBoxSeries", None, {"series": series or rng.choice(p.series)})
        if b.allows("getPlayer"):
            return (0.0, "getPlayer", None, None)
        return None

    def expected(self, seed: int = 0, n: int = 4000) -> dict[str, float]:
        """Mean reads, writes, length and write offset of a session (Monte Carlo with its own
        seed, over a pool of returning players: wallets and once-only plays run out)."""
        rng = random.Random(seed ^ 0x5EED)
        pool = [self.new_shopper() for _ in range(200)]
        reads = writes = length = lag = 0.0
        for i in range(n):
            k = rng.randrange(len(pool))
            if i % 4 == 0:
                pool[k] = self.new_shopper()
            steps = self.session(rng, pool[k], at=i * 30.0)
            offsets = [s[0] for s in steps if OPERATIONS[s[1]].is_write]
            writes += len(offsets)
            lag += sum(offsets)
            reads += len(steps) - len(offsets)
            length += max((s[0] for s in steps), default=0.0)
        return {"reads": reads / n, "writes": writes / n, "length_s": length / n,
                "write_lag_s": lag / writes if writes else 0.0}
