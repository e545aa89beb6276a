"""Where group buys' groups live, and the expiry sweep that ends them.

A group is an aggregate (``group_ref``, ``CODEC``). Each offer keeps an index of its
groups by expiry (``Keys.aggregate_index``), written before the group's gate (a group
whose gate then failed is an index entry without a group, dropped by the sweep);
``listGroupBuys`` reads it, and :class:`GroupBuySweep` (every host, idempotent per
group) ends the groups past their expiry. The routes are in gameserver/api/groupbuy.py.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from economy.errors import NotFound
from economy.groupbuy import GroupOffer
from economy.rewards import Reward
from gameserver.appkeys import CLOCK, GAMES, REDIS, SETTINGS
from gameserver.clock import Clock
from gameserver.games import GameRegistry, LiveGame
from gameserver.http.errors import REDIS_UNAVAILABLE
from gameserver.jobs.periodic import PeriodicTask
from gameserver.jobs.webhooks import OUTBOX, Outbox
from gameserver.state.aggregates import WireCodec
from gameserver.state.aggregates_app import AGGREGATES
from gameserver.state.aggregates_gate import SharedActions
from gameserver.state.keys import AggregateRef, Keys
from mechanics import groupbuy as rules

log = logging.getLogger("petbox.groupbuy")

CODEC = WireCodec(rules.Group.from_wire)
SWEEP_INTERVAL_S = 5.0
INDEXED = "-"
"""The registry's mark that its indexes were (re)built: never a ``merchant:game:offer``."""
SWEEP_BATCH = 200


def group_ref(live: LiveGame, gid: str, shards: int) -> AggregateRef:
    """The aggregate of group ``gid`` (its share code) in ``live``'s game."""
    return AggregateRef.of(live.merchant, live.game, rules.KIND, gid, shards)


def index_key(keys: Keys, live: LiveGame, offer: str) -> str:
    """The offer's index of its groups by expiry."""
    return keys.aggregate_index(live.merchant, live.game, rules.KIND, offer)


async def index_group(redis: Redis, keys: Keys, live: LiveGame, offer: str, gid: str,
                       due: int) -> None:
    """List the group before its gate commit (see the module docstring)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(index_key(keys, live, offer), {gid: due}, nx=True)
        pipe.sadd(keys.aggregate_indexes(rules.KIND), f"{live.merchant}:{live.game}:{offer}")
        await pipe.execute()


def _stand_in(offer_id: str, group: rules.Group | None) -> GroupOffer:
    """An offer removed from the config: its groups still end (they fail, and what
    members paid goes back: their side knows what that was)."""
    return GroupOffer(offer_id, offer_id, group.size if group else 2, 60, 0, {}, Reward(),
                      1, None, False)


class GroupBuySweep(PeriodicTask):
    """Ends groups past their expiry, on every host (idempotent per group: one gate
    commit under a fixed key, members' sides under keys of their own, the webhook under
    a stable key, then the index entry goes)."""

    name = "petbox-groupbuy-sweep"

    def __init__(self, redis: Redis, keyspaces: list[SharedActions], games: GameRegistry,
                 clock: Clock, shards: int, outbox: Outbox | None, interval: float) -> None:
        super().__init__(interval)
        self.redis, self.keyspaces, self.games = redis, keyspaces, games
        self.clock, self.shards, self.outbox = clock, shards, outbox
        self._rebuild_left: dict[str, dict[str, dict[str, int]]] = {}
        """Per registry, what a rebuild could not index yet (offer name → group id →
        expiry): the next pass writes these alone instead of scanning SQL again."""

    async def run_once(self) -> int:
        """One pass over every offer's due groups; returns the groups ended.

        On a Redis Cluster with a master down, the offers whose index the other masters
        hold are swept, and an offer (or a keyspace's registry) on the silent one is
        skipped (``unreached``), not the whole pass."""
        ended = 0
        unreached: list[str] = []
        for actions in self.keyspaces:
            ended += await self._keyspace(actions, unreached)
        self.record_unreached(unreached)  # offers' indexes, keyspaces' registries
        return ended

    async def _keyspace(self, actions: SharedActions, unreached: list[str]) -> int:
        """Sweep every offer one keyspace's registry names; a Redis key that does not
        answer (the registry, an offer's index) is appended to ``unreached``."""
        keys = actions.services.keys
        registry = keys.aggregate_indexes(rules.KIND)
        try:
            members = {m.decode() if isinstance(m, bytes) else str(m)
                       for m in await self.redis.smembers(registry)}
        except REDIS_UNAVAILABLE as exc:  # this keyspace waits for the next pass
            log.warning("group-buy registry %s left for the next pass: %r", registry, exc)
            unreached.append(registry)
            return 0
        if INDEXED not in members:
            members |= await self._rebuild(actions, registry, unreached)
        ended = 0
        for name in sorted(members):
            if name == INDEXED:
                continue
            merchant, game, offer = name.split(":", 2)
            index = keys.aggregate_index(merchant, game, rules.KIND, offer)
            if index in unreached:  # the rebuild found its node silent: not asked twice
                continue
            try:
                ended += await self._offer(actions, merchant, game, offer)
            except REDIS_UNAVAILABLE as exc:  # its groups wait; the other offers go on
                log.warning("group-buy offer %s left for the next pass: %r", index, exc)
                unreached.append(index)
        return ended

    async def _rebuild(self, actions: SharedActions, registry: str,
                       unreached: list[str]) -> set[str]:
        """No ``INDEXED`` mark: a fresh deployment, or Redis lost its data (a request
        may have listed a new group since). Index again every open group SQL holds (a
        full scan; then the mark is there). Groups of the last unflushed moments are
        lost with Redis' data, as any aggregate's commits are.

        Returns the offers indexed again, which this pass sweeps. An offer whose index
        (or the registry) does not answer is appended to ``unreached`` and the mark is
        not set, so the next pass rebuilds again, writing only what is left (kept in
        memory; a restarted process scans SQL again; ``zadd nx`` keeps what is there):
        the offers on the living masters are swept now, the silent one's once it
        answers."""
        todo = self._rebuild_left.pop(registry, None)
        if todo is None:  # the first try: every open group SQL holds (a full scan)
            todo = await self._open_groups(actions)
        names: set[str] = set()
        left: dict[str, dict[str, int]] = {}
        for name, groups in sorted(todo.items()):
            merchant, game, offer = name.split(":", 2)
            index = actions.services.keys.aggregate_index(merchant, game, rules.KIND, offer)
            try:
                await self.redis.zadd(index, groups, nx=True)
            except REDIS_UNAVAILABLE as exc:  # this offer waits; the others are swept
                log.warning("group-buy index %s not rebuilt, left for the next pass: %r",
                            index, exc)
                unreached.append(index)
                left[name] = groups  # its sweep waits for the whole index
                continue
            names.add(name)
        mark = set() if left else {INDEXED}
        if names | mark:
            try:
                await self.redis.sadd(registry, *sorted(names | mark))
            except REDIS_UNAVAILABLE as exc:  # listed again next pass; swept now anyway
                log.warning("group-buy registry %s not marked, left for the next pass: %r",
                            registry, exc)
                unreached.append(registry)
                left.update((name, todo[name]) for name in names)
        if left:
            self._rebuild_left[registry] = left
        if names:
            log.warning("group-buy index rebuilt from SQL: %d offers%s", len(names),
                        f" ({len(left)} left for the next pass)" if left else "")
        return names | mark

    @staticmethod
    async def _open_groups(actions: SharedActions) -> dict[str, dict[str, int]]:
        """Every open group SQL holds, by offer (``merchant:game:offer``): id → expiry."""
        todo: dict[str, dict[str, int]] = {}
        for merchant, game, gid, raw in await actions.aggregates.archive.of_kind(rules.KIND):
            group = CODEC.decode(raw)
            if group.state == "open":
                todo.setdefault(f"{merchant}:{game}:{group.offer}", {})[gid] = group.expires_at
        return todo

    async def _offer(self, actions: SharedActions, merchant: str, game: str,
                     offer_id: str) -> int:
        keys = actions.services.keys
        index = keys.aggregate_index(merchant, game, rules.KIND, offer_id)
        now = int(self.clock.now())
        due = await self.redis.zrangebyscore(index, "-inf", now, start=0, num=SWEEP_BATCH)
        if not due:
            return 0
        try:
            live = await self.games.get(merchant, game)
        except NotFound:
            log.warning("group buy %s/%s: game not readable, groups wait", merchant, game)
            return 0
        ended = 0
        for raw in due:
            gid = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                done = await self._group(actions, live, offer_id, gid, now)
            except Exception as exc:  # this group waits for the next pass; the rest go on
                log.warning("group %s/%s/%s left for the next pass: %r", merchant, game, gid,
                            exc)
                continue
            if done is not None:  # ended (or never was): its entry goes
                ended += done
                await self.redis.zrem(index, gid)
        return ended

    async def _group(self, actions: SharedActions, live: LiveGame, offer_id: str, gid: str,
                     now: int) -> int | None:
        """End one group if it is due and tell the merchant how it ended: 1; 0 for an
        entry without a group (its gate never committed); None when it is not due by
        this host's clock (its entry stays)."""
        ref = group_ref(live, gid, self.shards)
        group, _ = await actions.aggregates.read(ref, CODEC)
        offer = live.config.groupbuys.get(offer_id) or _stand_in(offer_id, group)
        if group is None:
            return 0
        if group.state == "open":
            if now < group.expires_at:
                return None
            # NotDue: filled (or ended by another host) meanwhile
            with contextlib.suppress(rules.NotDue):
                await actions.run_system(ref, CODEC, rules.SYSTEM_USER, rules.EXPIRE_KEY, live,
                                         lambda g, t: rules.expire_group(g, gid, offer, t))
            group, _ = await actions.aggregates.read(ref, CODEC)
        await self._tell(actions, live, gid, group)
        return 1

    async def _tell(self, actions: SharedActions, live: LiveGame, gid: str,
                    group: rules.Group) -> None:
        if self.outbox is None or actions.services.shadow or group.state == "open":
            return  # load-test groups never reach a merchant
        await self.outbox.emit(
            merchant=live.merchant, game=live.game, event=f"groupbuy.{group.state}",
            key=f"groupbuy:{gid}:{group.state}",
            data={"group": gid, "offer": group.offer, "state": group.state,
                  "members": group.users(), "system_members": group.system,
                  "expires_at": group.expires_at, "closed_at": group.closed_at})


async def sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the expiry sweep on this host (every host runs one)."""
    settings = app[SETTINGS]
    task = None
    if settings.run_background:
        keyspaces = [a.actions for a in app[AGGREGATES].values()]
        task = GroupBuySweep(app[REDIS], keyspaces, app[GAMES], app[CLOCK], settings.shards,
                             app.get(OUTBOX), SWEEP_INTERVAL_S).start()
    try:
        yield
    finally:
        if task is not None:
            await task.stop()
