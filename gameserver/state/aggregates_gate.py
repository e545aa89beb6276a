"""The two-commit protocol: an action on a shopper and a shared aggregate.

A vote, a join or a grab changes an aggregate (in its own slot) and a shopper (in
theirs); no script spans two slots. docs/architecture.md ("Aggregates") has the
protocol with a diagram and every failure case. In short:

0. **peek** the shopper's key and **claim** it, in one round trip (``Store.peek_claim``):
   used before → replay its reply; used by another request → 422, before the aggregate
   changes. The claim is atomic: of two requests racing with one key, another request is
   refused 422 before its gate, so a key never changes two aggregates; the same request
   goes on (a retry after a crash must not wait: the gate and the commit act once by
   key, and the slower run replays the other's reply). A refused gate releases the claim;
   a gate that owes the shopper nothing binds the key to its request (``Store.bind_key``),
   so the key stays taken and a retry goes to the gate, which replays.
1. **gate**: the aggregate's commit (``AggregateStore.run``) applies the shared rule and
   records, atomically with it, what the shopper is owed (owed set, keyed by shopper and
   Idempotency-Key). The gate's reply ``{"response", "owed"}`` is kept under the key.
2. **follow**: the shopper's commit (``Services.run`` with the same Idempotency-Key) applies
   the owed effect: at most once, by the player store's own idempotency.
3. **settle**: the owed record is dropped (idempotent).

A crash after 1 leaves the owed record: a retry with the key replays the gate and does
2-3, and :class:`OwedReconciler` does 2-3 for records older than a bound (any host,
any number of times: 2 is idempotent, 3 too).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import (
    AskError,
    ClusterDownError,
    DataError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from sqlalchemy.exc import SQLAlchemyError

from economy.config import GameConfig
from economy.errors import DomainError, NotFound
from gameserver.clock import Clock
from gameserver.games import GameRegistry, LiveGame
from gameserver.http.errors import (
    Busy,
    IdempotencyInProgress,
    PlayerErased,
    ResponseUnavailable,
)
from gameserver.jobs.periodic import PeriodicTask
from gameserver.jobs.webhooks import Outbox
from gameserver.ops.metrics import Metrics
from gameserver.services import Services
from gameserver.state.aggregates import AggregateStore, Codec, Owed, SharedRule, owed_field
from gameserver.state.keys import AggregateRef, PlayerRef, by_shopper
from gameserver.state.store import Loaded, Reply, Rule
from gameserver.state.value import StockView
from mechanics.experiments import tracked_side
from mechanics.outcome import Outcome
from mechanics.state import PlayerState

log = logging.getLogger("petbox.aggregates.gate")

FAILPOINT_ENV = "PETBOX_TEST_FAILPOINT"
"""Test-only: ``after_gate`` makes the process exit (``os._exit``) right after a gate
commit, ``after_shopper`` right after the shopper's commit: a real crash for the crash
tests. Read once at import; unset in production."""
_FAILPOINT = os.environ.get(FAILPOINT_ENV, "")


def failpoint(name: str) -> None:
    """Die here, like a SIGKILL, when the test failpoint says so."""
    if name == _FAILPOINT:
        os._exit(137)


EffectRule = Callable[[dict[str, Any], LiveGame], Rule]
"""``(owed record, game) -> the shopper's rule``: a play's second commit."""
_EFFECTS: dict[str, EffectRule] = {}
ValueEffectRule = Callable[[dict[str, Any], LiveGame, StockView], Rule]
"""``(owed record, game, stock view) -> the shopper's rule`` for a second commit that
grants limited stock through the value tier (its outcome holds units and grants them)."""
_VALUE_EFFECTS: dict[str, ValueEffectRule] = {}


def register_effect(kind: str, make: EffectRule) -> None:
    """Name how owed records of ``kind`` (their ``"effect"`` field) are applied."""
    _EFFECTS[kind] = make


OwedApply = Callable[[PlayerState | None, dict[str, Any], int, GameConfig], Outcome]
"""``(state, owed record, now, config) -> Outcome``: a play's rule for its second commit."""


def register_apply(kind: str, apply: OwedApply) -> None:
    """:func:`register_effect` for the usual effect: ``apply`` with the game's config (the
    one shape every play's plain second commit has, so it is written once here)."""
    def make(owed: dict[str, Any], game: LiveGame) -> Rule:
        config = game.config
        return lambda state, now: apply(state, owed, now, config)
    register_effect(kind, make)


def register_value_effect(kind: str, make: ValueEffectRule) -> None:
    """As :func:`register_effect`, for an effect whose commit goes through the value tier
    (SQL is the truth for what it grants). Its rule reads the stock view, which the store
    lowers when a unit it reserved ran out; it must then grant without reserving (a
    second commit never refuses)."""
    _VALUE_EFFECTS[kind] = make


Notice = Callable[[dict[str, Any], PlayerRef, dict[str, Any]],
                  tuple[str, str, dict[str, Any]] | None]
"""``(owed record, shopper, the shopper commit's reply) -> (event, key, data)``: what the
merchant's webhook outbox is told once an owed effect is applied (None: nothing)."""
_NOTICES: dict[str, Notice] = {}


def register_notice(kind: str, notice: Notice) -> None:
    """Tell the merchant (gameserver/jobs/webhooks.py) when an owed effect of ``kind`` has been
    applied. Emitted after the shopper's commit and before the record is settled, by
    whichever applies it (the request or the owed reconciler): at least once, and
    stored once by its key."""
    _NOTICES[kind] = notice


def effect_rule(owed: dict[str, Any], game: LiveGame) -> Rule:
    return _EFFECTS[owed["effect"]](owed, game)


GateMaker = Callable[[PlayerState | None], SharedRule]
"""The gate rule, given the shopper's state as peeked (for pre-checks such as a price)."""


class SharedActions:
    """Runs two-commit actions on one keyspace's stores."""

    def __init__(self, services: Services, aggregates: AggregateStore,
                 outbox: Outbox | None = None) -> None:
        self.services = services
        self.aggregates = aggregates
        self.outbox = outbox
        """The merchant webhook outbox (None: no notices, e.g. load-test traffic)."""

    async def run(self, player: PlayerRef, aggregate: AggregateRef, codec: Codec, key: str,
                  request_hash: str, game: LiveGame, gate: GateMaker) -> Reply:
        """Peek, claim, gate, follow, settle (module docstring); a retry replays."""
        store = self.services.store
        found = await store.peek_claim(player, key, request_hash)
        if isinstance(found, Reply):
            return found
        first, claim = found
        try:
            gate_reply = await self.aggregates.run(aggregate, codec, player.user, key,
                                                   request_hash, gate(first.state),
                                                   owed_to=player)
            failpoint("after_gate")
            gate_body = orjson.loads(gate_reply.body)
            reply = await self.follow(player, aggregate, key, request_hash, gate_body, game,
                                      first, replayed=gate_reply.replayed, claim=claim)
        except DomainError:  # refused: the key is free for a retry
            await store.release(player, key, claim)
            raise
        if gate_body.get("owed") is None:  # the gate holds the reply: keep the key taken
            await store.bind_key(player, key, claim)
        for raw in gate_body.get("others", ()):
            await self._follow_other(aggregate, Owed.from_bytes(raw.encode()), game)
        return reply

    async def run_system(self, aggregate: AggregateRef, codec: Codec, user: str, key: str,
                         game: LiveGame, rule: SharedRule) -> dict[str, Any]:
        """A background action on an aggregate (an expiry): the gate under ``user`` and
        ``key`` (a second pass, on any host, replays it), then every shopper it owes
        (one that cannot be applied now is left to the owed reconciler). Returns the
        gate's response."""
        gate_reply = await self.aggregates.run(aggregate, codec, user, key, f"system:{key}",
                                               rule)
        body = orjson.loads(gate_reply.body)
        for raw in body.get("others", ()):
            await self._follow_other(aggregate, Owed.from_bytes(raw.encode()), game)
        return dict(body["response"])

    async def _notify(self, owed: dict[str, Any], player: PlayerRef, reply: Reply) -> None:
        notice = _NOTICES.get(owed["effect"])
        if notice is None or self.outbox is None or reply.status >= 300:
            return
        made = notice(owed, player, orjson.loads(reply.body))
        if made is not None and self.outbox is not None:
            event, key, data = made
            await self.outbox.emit(merchant=player.merchant, game=player.game, event=event,
                                   key=key, data=data)

    async def _follow_other(self, aggregate: AggregateRef, owed: Owed, game: LiveGame) -> None:
        """Another shopper's side of this gate, now (the acting shopper's reply does not
        depend on it): if it cannot go through now, the owed reconciler applies it."""
        try:
            await self.follow(owed.player, aggregate, owed.key, owed.request_hash, owed.gate,
                              game)
        except (*TRANSIENT, DomainError) as exc:
            log.warning("owed %s|%s left for the reconciler: %r", aggregate.member,
                        owed.player.user, exc)

    async def follow(self, player: PlayerRef, aggregate: AggregateRef, key: str,
                     request_hash: str, gate: dict[str, Any], game: LiveGame,
                     first: Loaded | None = None, replayed: bool = False,
                     claim: str | None = None, acted_at: int | None = None) -> Reply:
        """The shopper's side of a gate's record, then forget the record (``first``:
        the shopper as peeked, saving the second commit a read; ``claim``: the acting
        request's claim of the key, which the commit completes). A gate that owes
        nothing answers alone (``replayed``: the gate's reply was a replay).

        The acting shopper's side (their own key: ``by_shopper``) is their action, so
        in a game running an experiment it records their active day, on the day of
        ``acted_at`` (unix s of the gate's commit; None: the commit's clock), as their
        own actions do; another shopper's side (a group filled for them) records none."""
        owed = gate.get("owed")
        if owed is None:
            return Reply(200, orjson.dumps(gate["response"]), replayed=replayed)
        if claim is None:  # the reconciler, or another shopper's side: take the key over
            taken = await self.services.store.claim(player, key, request_hash)
            if isinstance(taken, Reply):  # applied before: settle it
                return await self._settled(aggregate, player, key, owed, taken)
            claim = taken
        valued = _VALUE_EFFECTS.get(owed["effect"])
        view: StockView | None = None
        if valued is None:
            rule = effect_rule(owed, game)
        else:  # through the value tier (the view only then)
            view = StockView()
            rule = valued(owed, game, view)
        if by_shopper(key):  # the acting shopper's own action, not a side made for them
            rule = tracked_side(rule, game.config, game.tz, game.version, acted_at)
        reply = await self.services.run(player, key, request_hash, rule, view=view,
                                        totals=game.totals, first=first, claim=claim)
        failpoint("after_shopper")
        return await self._settled(aggregate, player, key, owed, reply)

    async def _settled(self, aggregate: AggregateRef, player: PlayerRef, key: str,
                       owed: dict[str, Any], reply: Reply) -> Reply:
        """Tell the merchant (once, by its key), then forget the owed record."""
        await self._notify(owed, player, reply)
        await self.aggregates.settle(aggregate.shard,
                                     [owed_field(aggregate, player.user, key)])
        return reply


TRANSIENT = (Busy, IdempotencyInProgress, ResponseUnavailable, RedisError, SQLAlchemyError,
             OSError, TimeoutError)
"""Why a shopper commit may fail now and succeed later (never a reason to drop it)."""

_PASSING_REPLIES = (TryAgainError, ClusterDownError, AskError, ReadOnlyError, OutOfMemoryError,
                    NoScriptError)
"""Error replies of a node that is not ready for the moment: TRYAGAIN, CLUSTERDOWN and
MASTERDOWN, MOVED and ASK (slots moving), READONLY (a demoted master, mid-failover),
OOM (until memory is freed), NOSCRIPT (a node that lost its scripts)."""


def is_transient(exc: BaseException) -> bool:
    """Whether work that failed with ``exc`` may succeed if tried again later.

    :data:`TRANSIENT` but for Redis' error replies, which it takes whole: most say the
    command or script is wrong (a Lua script's error, WRONGTYPE) and will fail the same
    way on every try, so a job that retries until it succeeds must not retry them. A
    cluster client's own outage errors (an uncovered slot) pass."""
    if isinstance(exc, ResponseError):  # the node answered, with an error
        return isinstance(exc, _PASSING_REPLIES) or str(exc).startswith("BUSY")
    if isinstance(exc, DataError):  # a value redis-py cannot send: the same every time
        return False
    return isinstance(exc, (*TRANSIENT, RedisClusterException))


def _aggregate_of(owed_name: str, shard: int) -> AggregateRef:
    member = owed_name.split("|", 1)[0]
    merchant, game, kind, aggregate = member.split(":", 3)
    return AggregateRef(merchant, game, kind, aggregate, shard)


@dataclass
class OwedPass:
    applied: int = 0
    refused: int = 0
    """Owed records whose shopper rule refused (logged and dropped: a rule bug)."""
    waiting: int = 0
    """Owed records left for a later pass (their game could not be read, contention,
    Redis or SQL unavailable)."""
    failing: int = 0
    """Owed records whose shopper commit failed in a way trying again will not mend (a
    script's error: a bug or a damaged key): logged as errors, counted apart, and kept
    all the same (dropped, the shopper would lose what the gate took for them)."""
    names: list[str] = field(default_factory=list)
    shards_waiting: list[int] = field(default_factory=list)
    """Aggregate shards whose owed records could not be read (on a Redis Cluster, a
    master down: the other masters' shards are reconciled all the same)."""


class OwedReconciler(PeriodicTask):
    """Applies owed shopper commits that no request finished (a crash between the
    commits). Safe on many hosts and beside live requests: the shopper's commit is
    idempotent by key, settling is idempotent."""

    name = "petbox-owed"

    def __init__(self, keyspaces: list[SharedActions], games: GameRegistry, clock: Clock,
                 shards: int, interval: float, *, older_than_s: float = 10.0,
                 batch: int = 200, metrics: Metrics | None = None) -> None:
        super().__init__(interval)
        self.metrics = metrics
        self.keyspaces = keyspaces
        self.games = games
        self.clock = clock
        self.shards = shards
        self.older_than_s = older_than_s
        self.batch = batch

    async def run_once(self) -> OwedPass:
        report = OwedPass()
        cutoff = int((self.clock.now() - self.older_than_s) * 1000)
        for actions in self.keyspaces:
            for shard in range(self.shards):
                try:
                    due = await actions.aggregates.owed_older_than(shard, cutoff, self.batch)
                except TRANSIENT as exc:  # its node is down: the other shards go on
                    log.warning("owed records of shard %d left for the next pass: %r",
                                shard, exc)
                    report.shards_waiting.append(shard)
                    continue
                for name, owed in due:
                    await self._apply(actions, shard, name, owed, report)
        if self.metrics is not None:
            for outcome in ("applied", "waiting", "refused", "failing"):
                if count := getattr(report, outcome):
                    self.metrics.owed_reconciled.labels(outcome).inc(count)
        return report

    async def _apply(self, actions: SharedActions, shard: int, name: str,
                     owed: Owed | None, report: OwedPass) -> None:
        aggregate = _aggregate_of(name, shard)
        if owed is None:  # index without a record: nothing left to apply
            await actions.aggregates.settle(shard, [name])
            return
        try:
            game = await self.games.get(owed.player.merchant, owed.player.game)
        except NotFound:
            log.error("owed %s: game gone, left for the merchant to settle", name)
            report.waiting += 1
            return
        try:
            at = None if owed.recorded_ms is None else owed.recorded_ms // 1000
            await actions.follow(owed.player, aggregate, owed.key, owed.request_hash,
                                 owed.gate, game, acted_at=at)
        except TRANSIENT as exc:  # contention or an outage: the next pass tries again
            if is_transient(exc):
                log.warning("owed %s left for the next pass: %r", name, exc)
                report.waiting += 1
            else:  # it will fail the same way: say so loudly, but never drop it
                log.error("owed %s failing, kept for a fix: %r", name, exc)
                report.failing += 1
            return
        except PlayerErased:  # the erasure settles nothing for them: wait it out
            log.warning("owed %s waits: its shopper is being erased", name)
            report.waiting += 1
            return
        except DomainError as exc:
            log.error("owed %s refused by its rule (%s); dropped", name, exc.code)
            await actions.aggregates.settle(shard, [name])
            report.refused += 1
            return
        report.applied += 1
        report.names.append(name)
