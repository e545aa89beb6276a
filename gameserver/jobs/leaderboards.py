"""Leaderboards in Redis: written by the persister, read by ``getLeaderboard``.

A player action stays one Redis read plus one Lua commit: no action writes a
board. Instead :class:`LeaderboardUpdater` is an ``on_flushed`` callback of the
persister (``Persister.on_flushed``): for every batch of player states it has
just written to SQL, it computes each board's score with the pure
:func:`mechanics.leaderboard.board_scores` and writes them with one pipeline per
Redis slot (a game's boards share one). So a board is *eventually consistent*: it
shows a player's score as of their last flush, at most about one flush interval
(``PETBOX_FLUSH_INTERVAL``) behind. On a Redis Cluster with a master down, the boards
on the other masters are written all the same; the scores for the silent master's
boards are kept in memory (bounded) and written once it answers again.

Each board is a sorted set (``Keys.leaderboard``: user → score) under its own
game hash tag, in the keyspace of its persister (``pb`` real, ``pbs`` shadow),
so shadow players never reach a real board. A score of 0 removes the player
from the board. Each write trims the board to its best ``KEEP_FACTOR × size``
players, so memory is bounded whatever the number of players; a player trimmed
away comes back with their next flush if their score is high enough by then.

Order: higher score first; equal scores are ordered by user id in *descending*
byte order (what Redis' ``ZREVRANGE`` and ``ZREVRANK`` do), which is stable and
the same for the top list and the player's own rank. Ranks are 1-based
positions in that order (no shared ranks).

Known limits (``docs/leaderboards.md``): a board added to a game fills as its
players are flushed again; boards of a deleted game or board id stay in Redis
(bounded) until removed; if Redis loses its data, boards refill the same way.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.crc import key_slot

from economy.config import GameConfig
from economy.errors import NotFound
from gameserver.db.persist import PlayerRow
from gameserver.games import GameRegistry
from gameserver.jobs.kept import KeptWork, by_shard, per_shard
from gameserver.ops.metrics import Metrics
from gameserver.state.keys import Keys
from gameserver.state.redisclient import is_cluster
from gameserver.state.scripts import Script, reply_text
from gameserver.state.store import decode_state
from mechanics.leaderboard import board_scores, display_name
from mechanics.masking import masked_id
from mechanics.state import PlayerState

log = logging.getLogger("petbox.leaderboards")

KEEP_FACTOR = 10
"""A board keeps its best ``KEEP_FACTOR × size`` players (so ``me`` has a rank for
players somewhat below the top, and a trim never empties the visible top)."""


@dataclass
class _BoardWrite:
    """What one batch writes to one board (and, for a board showing pet names, to its
    names hash: ``names_key`` is then set)."""

    keep: int
    scores: dict[str, int] = field(default_factory=dict)
    names_key: str | None = None
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Score:
    """One player's score on one board, as a write that failed keeps it."""

    score: int
    keep: int
    names_key: str | None
    name: str | None


ScoreKey = tuple[str, str]
"""(board key, user): one player's place on one board."""


class LeaderboardUpdater:
    """An ``on_flushed`` callback: flushed player rows → board scores in Redis.

    A game's boards share a slot (their hash tag); on a Redis Cluster each slot's
    boards are written with a pipeline of their own, all at once, so a master that is
    down fails only its boards: the others are written in that call, and the scores of
    the failed ones are kept (gameserver/jobs/kept.py: bounded, newest per player and
    board, ``petbox_flush_hook_pending{hook="leaderboards"}``) and written on the next
    call once the slot's rest is over, a call with no rows included."""

    def __init__(self, redis: Redis, keys: Keys, games: GameRegistry,
                 metrics: Metrics | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.games = games
        self.kept: KeptWork[ScoreKey, _Score] = KeptWork(
            "leaderboards", metrics, log, what="board scores")

    def __repr__(self) -> str:
        return f"LeaderboardUpdater(prefix={self.keys.prefix!r})"

    async def __call__(self, rows: list[PlayerRow]) -> None:
        """Write the scores of ``rows`` (and those kept from calls that failed): per
        board one ZADD (score > 0), one ZREM (score 0) and one trim, one pipeline per
        slot. A transient failure keeps the slot's scores for the next call; any other
        is raised once the other slots are written (the persister logs and counts it;
        the next flush of those players repairs it)."""
        work = self.kept.take()  # oldest first, then this batch's (the newest win)
        for key, write in (await self.board_writes(rows)).items():
            for user, score in write.scores.items():
                work.pop((key, user), None)
                work[(key, user)] = _Score(score, write.keep, write.names_key,
                                           write.names.get(user))
        if not work:
            return
        cluster = is_cluster(self.redis)  # one server: one node, one pipeline

        def slot_of(key: str) -> int:
            return key_slot(key.encode()) if cluster else 0

        groups = by_shard(_writes(work).items(), lambda board: slot_of(board[0]))
        resting = self.kept.resting_now(groups)
        results = await per_shard({s: g for s, g in groups.items() if s not in resting},
                                  lambda _, boards: self._write(dict(boards)))
        failed: set[int] = set(resting)
        cause: BaseException | None = None
        bug: Exception | None = None
        for slot, result in results.items():
            if result is None:
                continue
            if self.kept.failed(slot, result):
                failed.add(slot)
                cause = cause or result
            elif not isinstance(result, Exception):
                raise result  # cancelled, or the process is stopping
            elif bug is None:  # not kept: it would fail the same way every time
                bug = result
            else:
                log.error("leaderboards: another slot failed too", exc_info=result)
        self.kept.keep(((k, v) for k, v in work.items() if slot_of(k[0]) in failed), cause,
                       failed - resting)
        if bug is not None:
            raise bug

    async def _write(self, writes: dict[str, _BoardWrite]) -> None:
        """One slot's boards: one pipeline, then their names hashes pruned."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, write in writes.items():
                _queue_write(pipe, key, write)
            await pipe.execute()
        for key, write in writes.items():
            if write.names_key is not None:
                await self._prune_names(key, write.names_key, write.keep)

    async def _prune_names(self, key: str, names_key: str, keep: int) -> None:
        """Keep a names hash to about the board's members: once it holds twice as many
        as the board keeps, the names of players trimmed off the board go."""
        if int(await self.redis.hlen(names_key)) <= 2 * keep:
            return
        on_board: Any = await self.redis.zrange(key, 0, -1)
        named: Any = await self.redis.hkeys(names_key)
        members = {reply_text(m) for m in on_board}
        stale = [u for u in (reply_text(n) for n in named) if u not in members]
        if stale:
            await self.redis.hdel(names_key, *stale)

    async def board_writes(self, rows: Iterable[PlayerRow]) -> dict[str, _BoardWrite]:
        """Board key → scores of the rows' players, for boards of live games only."""
        by_game: dict[tuple[str, str], list[PlayerRow]] = defaultdict(list)
        for row in rows:
            by_game[(row.merchant_id, row.game_id)].append(row)
        writes: dict[str, _BoardWrite] = {}
        for (merchant, game), game_rows in by_game.items():
            config = await self._config(merchant, game)
            if config is not None and config.leaderboards:
                self._add_game(writes, merchant, game, config, game_rows)
        return writes

    def _add_game(self, writes: dict[str, _BoardWrite], merchant: str, game: str,
                  config: GameConfig, rows: list[PlayerRow]) -> None:
        for row in rows:
            state = _decode(row)
            if state is None:
                continue
            for bid, score in board_scores(state, config).items():
                board = config.leaderboards[bid]
                key = self.keys.leaderboard(merchant, game, bid)
                write = writes.setdefault(key, _BoardWrite(KEEP_FACTOR * board.size))
                write.scores[row.user_id] = score
                if board.show != "masked":
                    write.names_key = self.keys.leaderboard_names(merchant, game, bid)
                    write.names[row.user_id] = display_name(state, board, row.user_id)

    async def _config(self, merchant: str, game: str) -> GameConfig | None:
        """The live config, or None for a game that is gone (its boards are skipped)."""
        try:
            return (await self.games.get(merchant, game)).config
        except NotFound:
            return None


def _writes(work: dict[ScoreKey, _Score]) -> dict[str, _BoardWrite]:
    """Kept and new scores, board by board."""
    writes: dict[str, _BoardWrite] = {}
    for (key, user), kept in work.items():
        write = writes.setdefault(key, _BoardWrite(kept.keep))
        write.keep, write.scores[user] = kept.keep, kept.score
        write.names_key = kept.names_key or write.names_key
        if kept.name is not None:
            write.names[user] = kept.name
    return writes


def _queue_write(pipe: Any, key: str, write: _BoardWrite) -> None:
    ranked = {user: score for user, score in write.scores.items() if score > 0}
    gone = [user for user, score in write.scores.items() if score <= 0]
    if ranked:
        pipe.zadd(key, ranked)
    if gone:
        pipe.zrem(key, *gone)
    pipe.zremrangebyrank(key, 0, -write.keep - 1)
    if write.names_key is not None:
        named = {user: name for user, name in write.names.items() if user in ranked}
        if named:
            pipe.hset(write.names_key, mapping=named)
        if gone:
            pipe.hdel(write.names_key, *gone)


def _decode(row: PlayerRow) -> PlayerState | None:
    """The row's state; an undecodable one (only a bug writes those) is skipped."""
    try:
        return decode_state(row.state)
    except Exception:
        log.exception("leaderboards: cannot decode the state of %s:%s:%s",
                      row.merchant_id, row.game_id, row.user_id)
        return None


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """A player's place on a board: 1-based rank and score."""

    rank: int
    user: str
    score: int


@dataclass(frozen=True)
class BoardView:
    """The top of a board and, if they are on it, the asking player."""

    entries: list[Standing]
    me: Standing | None


async def read_board(redis: Redis, key: str, user: str, limit: int) -> BoardView:
    """The best ``limit`` players of the board at ``key`` and ``user``'s standing,
    in one round trip: one read-only script (``board_read.lua``), so the list and the
    rank are of the same moment and ZREVRANGE and ZREVRANK agree on the order of ties.

    A script rather than MULTI/EXEC: on a Redis Cluster whose board slot is being
    migrated, redis-py's transaction took the ASK redirection for a MOVED one and went
    back and forth between the two nodes until its retries ran out (503), while a
    one-key command is sent with ASKING to the importing node."""
    reply: Any = await Script.named("board_read", redis=redis)(keys=[key], args=[limit, user])
    top, rank, score = reply
    entries = [Standing(i + 1, reply_text(top[2 * i]), _score(top[2 * i + 1]))
               for i in range(len(top) // 2)]
    me = None if rank is None or score is None else Standing(int(rank) + 1, user, _score(score))
    return BoardView(entries, me)


def _score(raw: bytes | str) -> int:
    """A score as Redis writes it (``15``; a double's text, so read as one)."""
    return int(float(reply_text(raw)))


async def shown_names(redis: Redis, names_key: str | None,
                      users: list[str]) -> dict[str, str]:
    """user → what other shoppers see (the board's ``show``): the names the updater
    wrote for a ``pet_name`` board (``names_key``), else (and for a player it has not
    named yet) the masked id. Never the raw user id."""
    names = {u: masked_id(u) for u in users}
    if names_key is not None and users:
        for user, name in zip(users, await redis.hmget(names_key, users), strict=True):
            if name is not None:
                names[user] = reply_text(name)
    return names
