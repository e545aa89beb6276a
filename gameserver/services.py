"""The action path: the per-keyspace services an action runs on, its rule context, the
one binder, and the one place a bound rule reaches :meth:`Store.run`.

Shadow traffic (``X-Petbox-Shadow: 1`` from a load-test credential) runs the very
same handlers and rules, on a :class:`Services` whose Redis keys live under ``pbs:``
and whose SQL is a separate shadow database with the same schema. So shadow writes
cannot reach real players, real stock, analytics or exports, and purging them is
dropping one keyspace and emptying one database.

Every writer (shopper routes, the order webhook, merchant grants, blind-box seed
commits, the reminder worker) binds its rule with :func:`bind` and commits it with
:meth:`Services.run`; nothing else calls :meth:`Store.run`.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gameserver.db.admin_requests import AdminRequests
from gameserver.db.database import Database
from gameserver.games import LiveGame
from gameserver.http.auth import PlayerClaims
from gameserver.state.keys import Keys, PlayerRef
from gameserver.state.store import Loaded, Reply, Rule, Schedule, Store
from gameserver.state.value import StockView, ValueBinding, ValueTier
from mechanics.couponstate import note_won
from mechanics.experiments import track
from mechanics.outcome import Outcome
from mechanics.registry import FOLLOWERS
from mechanics.state import PlayerState, Rng

SHADOW_PREFIX = "pbs"

_RNG = random.Random()
"""Seeded once from the OS; rules that need chance get it as an argument."""


@dataclass(frozen=True)
class Services:
    """Keys, store, value tier, SQL and merchant Idempotency-Keys of one keyspace."""

    keys: Keys
    store: Store
    value: ValueTier
    db: Database
    requests: AdminRequests
    """Merchant writes' Idempotency-Keys, kept in this keyspace's SQL."""
    shadow: bool = False

    def run(self, ref: PlayerRef, key: str, digest: str, rule: Rule, status: int = 200,
            *, view: StockView | None = None, totals: Mapping[str, int] | None = None,
            schedule: Schedule | None = None, first: Loaded | None = None,
            claim: str | None = None) -> Awaitable[Reply]:
        """Commit ``rule`` for ``ref`` once per ``key``: the one call of :meth:`Store.run`.

        With a ``view`` (and the game's ``totals``) limited stock the rule grants goes
        through the value tier. ``schedule`` queues reminders with the commit; never for
        shadow players (they are not reminded through a merchant's webhook). ``first``:
        the player as :meth:`Store.peek` loaded it (a two-commit action's second commit);
        ``claim``: that action's claim of the key (:meth:`Store.claim`), which the commit
        completes. Returns the store's coroutine itself (no extra frame on the hot path)."""
        binding = None
        if view is not None:  # value-tier grants: coupons among them are counted
            binding = ValueBinding(self.value, view, totals or {})
            rule = _counting_coupons(rule)
        return self.store.run(ref, key, digest, rule, status, value=binding,
                              schedule=None if self.shadow else schedule, first=first,
                              claim=claim)


def _counting_coupons(rule: Rule) -> Rule:
    """``rule`` whose outcome counts its coupon grants on the shopper (the wallet's
    count that getPlayer shows; :func:`mechanics.couponstate.note_won`)."""
    def counted(state: PlayerState | None, now: int) -> Outcome:
        return note_won(rule(state, now))
    return counted


def _unsealed(data: dict[str, Any]) -> Any:
    return data


@dataclass(slots=True)
class RuleContext:
    """Everything a rule may be given besides state, action and now; one per action.

    ``view`` is read each time the rule runs, so a re-application after a limited
    unit came up short sees the lowered view. (Not frozen: a frozen dataclass pays a
    ``object.__setattr__`` per field on every request; nothing assigns to it.)"""

    game: LiveGame
    view: StockView
    ref: PlayerRef
    claims: PlayerClaims | None = None
    """The shopper's session (age band, consent); None for merchant and worker actions."""
    seed: str = ""
    """A fresh server seed, for rules that commit to one (drawn by the handler)."""
    seal: Callable[[dict[str, Any]], Any] = _unsealed
    """The server's signature for data a rule hands out to be shown back later (a
    ticket); the rule stays pure, the key stays in the server."""
    rng: Rng = _RNG

    def with_seed(self, seed: str) -> RuleContext:
        return replace(self, seed=seed)

    def sealed_by(self, seal: Callable[[dict[str, Any]], Any]) -> RuleContext:
        return replace(self, seal=seal)


KEYWORDS: dict[str, Callable[[RuleContext], Any]] = {
    "tz": lambda c: c.game.tz,
    "coupons_out": lambda c: c.view.out("coupon:"),
    "offers_out": lambda c: c.view.out("offer:"),
    "stock_out": lambda c: frozenset(r for r, n in c.view.left.items() if n <= 0),
    "seal": lambda c: c.seal,
}
"""What a rule may declare as keyword-only parameters, and where each comes from."""

RuleFn = Callable[..., Outcome]
Chance = Callable[[RuleContext], Any]
"""What a rule takes in its fourth place: the RNG by default, or a rule's own context
built from the :class:`RuleContext` (read when the rule runs)."""


@functools.cache
def _wanted(fn: RuleFn) -> tuple[tuple[str, Callable[[RuleContext], Any]], ...]:
    """The keyword-only parameters of ``fn`` the binder fills, with where each comes
    from (inspected once per rule)."""
    params = inspect.signature(fn).parameters.values()
    return tuple((p.name, KEYWORDS[p.name]) for p in params
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name in KEYWORDS)


def _rng(ctx: RuleContext) -> Rng:
    return ctx.rng


def bind(fn: RuleFn, action: Any, ctx: RuleContext, chance: Chance = _rng) -> Rule:
    """The one binder: ``fn(state, action, now, chance(ctx), config, **keywords)`` as the
    store applies it, the keywords (timezone, what is sold out) filled from ``ctx``.

    The mechanics' follow-ups (``mechanics.registry.FOLLOWERS``) see every outcome
    before the commit, so what an action means to another mechanic (points a member's
    feed earns for their team) is committed with it, exactly once."""
    config, wanted = ctx.game.config, _wanted(fn)
    if config.experiments:
        return _bind_arms(fn, action, ctx, chance, wanted)

    def rule(state: PlayerState | None, now: int) -> Outcome:
        outcome = fn(state, action, now, chance(ctx), config,
                     **{name: source(ctx) for name, source in wanted})
        for follow in FOLLOWERS:
            outcome = follow(action, outcome, now, config)
        return outcome
    return rule


def _bind_arms(fn: RuleFn, action: Any, ctx: RuleContext, chance: Chance,
               wanted: tuple[tuple[str, Callable[[RuleContext], Any]], ...]) -> Rule:
    """:func:`bind` for a game with experiments: the rule runs on the config of the arm
    the shopper is in (chosen from the loaded state, so no write decides it), and a
    shopper's own action records the exposure and the active day in the same commit
    (:func:`mechanics.experiments.track`). Merchant and worker actions (no session) run
    on the arm too, but expose nobody."""

    def rule(state: PlayerState | None, now: int) -> Outcome:
        arm = ctx.game.arm_for(ctx.ref.user, state, now)
        c = ctx if arm is None else replace(ctx, game=arm)
        outcome = fn(state, action, now, chance(c), c.game.config,
                     **{name: source(c) for name, source in wanted})
        for follow in FOLLOWERS:  # as in bind, on the arm's config
            outcome = follow(action, outcome, now, c.game.config)
        if ctx.claims is None:
            return outcome
        return track(outcome, state, ctx.game.config, now, ctx.game.tz,
                     arm.arm_ids if arm is not None else None, ctx.game.version)
    return rule
