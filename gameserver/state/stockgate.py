"""The limited-stock gate in Redis, split into buckets across slots.

A game's gate used to be one hash, so one slot: at midnight every draw of the game hit
one Redis node. It is now ``buckets`` hashes, each with its own hash tag (so, on a
cluster, spread over the nodes), each holding part of every ref's units left, with
its own generation (``_epoch``) and its own holds zset beside it.

* **reserve**: an attempt tries its *home* bucket (chosen by its commit id, so the
  crowd spreads evenly), then the others, fullest first as the last read saw them,
  taking in each what it has up to what is still wanted; an attempt is refused only
  after every bucket was asked. What it took is recorded as one hold per bucket
  (``stock_reserve.lua``), and every piece goes back if the attempt comes up short.
* **build**: units left (SQL ``total − taken``) are dealt over the buckets; a bucket
  missing later (Redis lost it, a cluster node lost its data) gets what SQL says is
  left minus what the surviving buckets hold. A reservation in flight at that moment
  can make the gate count a unit SQL has already given out, never the reverse: SQL's
  conditional update stays the guard, so nothing is oversold.
* **totals** (``getBoxSeries``' disclosure, a rule's view) read every bucket in one
  pipeline.

SQL is the truth for value (``value.py``); this module only keeps the crowd off it.
Every host must run with the same bucket count (``PETBOX_STOCK_BUCKETS``): the count
names the keys, so a host with another count builds a second gate from SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gameserver.state.keys import Keys
from gameserver.state.scripts import Script, reply_text

STOCK_BUCKETS = 8
"""Default buckets per game gate: enough that one game's midnight spreads over 8 slots."""


class NotReady(Exception):
    """A bucket (or a ref in it) is missing: the gate must be built from SQL first."""


@dataclass(frozen=True)
class Piece:
    """What one attempt took from one bucket: the hold member records it there."""

    bucket: int
    epoch: str
    member: str
    units: dict[str, int]


@dataclass
class Taken:
    """A reservation across buckets: its pieces, and what is still missing per ref."""

    pieces: list[Piece]
    missing: dict[str, int]
    seen: dict[str, int]
    """Units per ref the buckets asked had when asked (for the view when short)."""


def _held_units(member: str) -> list[tuple[str, int]]:
    """The (ref, units) pairs of a hold member ``id|epoch|ref|n|ref|n…``
    (``stock_reserve.lua`` writes it)."""
    parts = member.split("|")[2:]
    return [(parts[i], int(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]


def deal(units: int, buckets: int) -> list[int]:
    """``units`` dealt over ``buckets`` as evenly as whole units go (earlier get more)."""
    base, extra = divmod(max(0, units), buckets)
    return [base + (1 if i < extra else 0) for i in range(buckets)]


class StockGate:
    """The bucketed gate of every game, on one Redis (or cluster) client."""

    def __init__(self, redis: Redis, keys: Keys, buckets: int = STOCK_BUCKETS) -> None:
        if buckets < 1:
            raise ValueError("a gate has at least one bucket")
        self.redis, self.keys, self.buckets = redis, keys, buckets
        self._init = Script.named("stock_init", redis=redis)
        self._reserve = Script.named("stock_reserve", redis=redis)
        self._adjust = Script.named("stock_adjust", redis=redis)
        self._change = Script.named("stock_change", redis=redis)
        self._unhold = Script.named("stock_unhold", redis=redis)

    # -- keys ------------------------------------------------------------------------

    def stock_key(self, merchant: str, game: str, bucket: int) -> str:
        return self.keys.stock(merchant, game, bucket, self.buckets)

    def holds_key(self, merchant: str, game: str, bucket: int) -> str:
        return self.keys.holds(merchant, game, bucket, self.buckets)

    def home(self, attempt: str) -> int:
        """The bucket an attempt tries first: spread by its id."""
        return zlib.crc32(attempt.encode()) % self.buckets

    # -- reading -----------------------------------------------------------------------

    async def read(self, merchant: str, game: str,
                   refs: list[str]) -> list[tuple[str | None, list[int | None]]]:
        """Every bucket's (epoch, units left per ref) in one pipeline (None: missing)."""
        pipe = self.redis.pipeline(transaction=False)
        for bucket in range(self.buckets):
            pipe.hmget(self.stock_key(merchant, game, bucket), ["_epoch", *refs])
        replies: list[Any] = await pipe.execute()
        return [(None if r[0] is None else reply_text(r[0]),
                 [None if v is None else int(v) for v in r[1:]]) for r in replies]

    async def left(self, merchant: str, game: str,
                   refs: list[str]) -> dict[str, list[int]] | None:
        """Units left per ref and bucket; None if any bucket or ref is missing. A bucket
        may be below 0 (a removal of units in flight, :meth:`change`): what a ref has
        left is its buckets' sum, and none when that is not above 0."""
        state = await self.read(merchant, game, refs)
        if any(epoch is None or None in values for epoch, values in state):
            return None
        return {ref: [int(values[i] or 0) for _, values in state]
                for i, ref in enumerate(refs)}

    async def in_flight(self, merchant: str, game: str, refs: list[str],
                        deadline_after_ms: int = 0) -> dict[str, int]:
        """Units of ``refs`` held by attempts whose outcome is not known yet (taken from
        the buckets, not yet counted by SQL nor given back), from every bucket's holds
        with a deadline after ``deadline_after_ms``.

        A unit held is not gone: the attempt may fail and give it back. Callers read this
        only when a ref shows nothing left, to tell "sold out" from "all units in flight"
        (the holds zsets list every ref's attempts, so this reads more than ``refs``)."""
        pipe = self.redis.pipeline(transaction=False)
        for bucket in range(self.buckets):
            pipe.zrangebyscore(self.holds_key(merchant, game, bucket), f"({deadline_after_ms}",
                               "+inf")
        wanted = dict.fromkeys(refs, 0)
        for members in await pipe.execute():
            for member in members:
                for ref, n in _held_units(reply_text(member)):
                    if ref in wanted:
                        wanted[ref] += n
        return wanted

    async def epochs(self, merchant: str, game: str) -> str:
        """The generation of every bucket, as one string (``setStock`` binds to it)."""
        return ",".join(epoch or "" for epoch, _ in await self.read(merchant, game, []))

    # -- building ----------------------------------------------------------------------

    async def build(self, merchant: str, game: str, sql_left: Mapping[str, int]) -> str:
        """Fill what is missing from SQL's units left: a missing bucket gets its share
        of (SQL left − what the surviving buckets hold). Fields present are never
        overwritten (another process may have reserved from them). Returns
        :meth:`epochs`."""
        refs = sorted(sql_left)
        state = await self.read(merchant, game, refs)
        fills: list[list[str | int]] = [[] for _ in range(self.buckets)]
        for i, ref in enumerate(refs):
            gaps = [b for b, (epoch, values) in enumerate(state)
                    if epoch is None or values[i] is None]
            if not gaps:
                continue
            held = sum(int(values[i] or 0) for epoch, values in state
                       if epoch is not None and values[i] is not None)
            for bucket, units in zip(gaps, deal(sql_left[ref] - held, len(gaps)),
                                     strict=True):
                fills[bucket] += [ref, units]
        for bucket, pairs in enumerate(fills):
            if pairs or state[bucket][0] is None:
                await self._init(keys=[self.stock_key(merchant, game, bucket)],
                                 args=[secrets.token_hex(8), *pairs])
        return await self.epochs(merchant, game)

    # -- reserving and giving back -----------------------------------------------------

    def order(self, attempt: str, seen: Mapping[str, list[int]] | None) -> list[int]:
        """Buckets in the order an attempt asks them: home first, then the fullest."""
        home = self.home(attempt)
        rest = [b for b in range(self.buckets) if b != home]
        if seen:
            rest.sort(key=lambda b: -sum(per_bucket[b] for per_bucket in seen.values()))
        return [home, *rest]

    async def reserve(self, merchant: str, game: str, attempt: str, deadline_ms: int,
                      units: Mapping[str, int],
                      seen: Mapping[str, list[int]] | None = None) -> Taken:
        """Take ``units`` from the buckets, home first; raises :class:`NotReady` (after
        giving back what was taken) if a bucket must be built first."""
        want = {ref: n for ref, n in sorted(units.items()) if n > 0}
        taken = Taken([], {}, {ref: 0 for ref in want})
        for bucket in self.order(attempt, seen):
            asked = {ref: n for ref, n in want.items() if n > 0}
            if not asked:
                break  # everything taken: the other buckets are not asked
            try:
                piece, after = await self._take(merchant, game, bucket, attempt, deadline_ms,
                                                asked)
            except BaseException:
                # Not ready, Redis failing, the request cancelled: what earlier buckets
                # gave goes back now (their holds' deadlines would, but much later).
                await asyncio.shield(self.give_back(merchant, game, taken.pieces))
                raise
            if piece is not None:
                taken.pieces.append(piece)
                for ref, n in piece.units.items():
                    want[ref] -= n
            for ref, n in after.items():  # what the bucket had when asked
                taken.seen[ref] += n + (piece.units.get(ref, 0) if piece else 0)
        taken.missing = {ref: n for ref, n in want.items() if n > 0}
        return taken

    async def _take(self, merchant: str, game: str, bucket: int, attempt: str,
                    deadline_ms: int, asked: Mapping[str, int]
                    ) -> tuple[Piece | None, dict[str, int]]:
        refs = list(asked)
        res = await self._reserve(
            keys=[self.stock_key(merchant, game, bucket), self.holds_key(merchant, game, bucket)],
            args=[attempt, deadline_ms, *[v for r in refs for v in (r, asked[r])]])
        if reply_text(res[0]) != "ok":
            raise NotReady(bucket)
        counts = [int(v) for v in res[3:]]
        got = {ref: n for ref, n in zip(refs, counts[:len(refs)], strict=True) if n > 0}
        after = dict(zip(refs, counts[len(refs):], strict=True))
        member = reply_text(res[2])
        piece = Piece(bucket, reply_text(res[1]), member, got) if member else None
        return piece, after

    async def end_hold(self, merchant: str, game: str, bucket: int, member: str,
                       give_back: bool) -> int:
        """End one hold (exactly once across processes); 1 if its units went back."""
        return int(await self._unhold(
            keys=[self.stock_key(merchant, game, bucket), self.holds_key(merchant, game, bucket)],
            args=[member, "1" if give_back else "0"]))

    async def give_back(self, merchant: str, game: str, pieces: list[Piece]) -> None:
        """End the pieces' holds, their units back to their buckets (an attempt failed
        before SQL took them)."""
        for piece in pieces:
            with contextlib.suppress(Exception):  # else its deadline gives it back
                await self.end_hold(merchant, game, piece.bucket, piece.member, True)

    async def drop_holds(self, merchant: str, game: str, pieces: list[Piece]) -> None:
        """End the pieces' holds without giving units back (SQL counts them now)."""
        for piece in pieces:
            await self.end_hold(merchant, game, piece.bucket, piece.member, False)

    async def age_holds(self, merchant: str, game: str, pieces: list[Piece],
                        deadline_ms: int) -> None:
        """Move the pieces' hold deadlines earlier to ``deadline_ms`` (never later; a
        hold already ended stays ended)."""
        pipe = self.redis.pipeline(transaction=False)
        for piece in pieces:
            pipe.zadd(self.holds_key(merchant, game, piece.bucket), {piece.member: deadline_ms},
                      xx=True, lt=True)
        await pipe.execute()

    async def release(self, merchant: str, game: str, pieces: list[Piece]) -> None:
        """Units SQL gave back (a cancel) into the buckets and generations they came from."""
        for piece in pieces:
            args = [piece.epoch, *[v for r, n in sorted(piece.units.items()) for v in (r, n)]]
            await self._adjust(keys=[self.stock_key(merchant, game, piece.bucket)], args=args)

    async def add(self, merchant: str, game: str, ref: str, n: int, attempt: str = "") -> None:
        """Add ``n`` units of ``ref`` to whatever generation is in force (a void found by
        the reconciler, an un-keyed stock change): into the attempt's home bucket."""
        bucket = self.home(attempt) if attempt else 0
        await self._adjust(keys=[self.stock_key(merchant, game, bucket)], args=["", ref, n])

    async def change(self, merchant: str, game: str, key: str, epochs: str, ref: str,
                     add: int, mark_ttl_ms: int) -> int:
        """A ``setStock``'s gate side, at most once per key: an addition goes to the
        key's home bucket; a removal takes from the buckets in turn until done (each
        bucket's mark says what it gave, so a retry continues where one stopped), and
        the last one takes what the others lacked, below 0 if need be: those units are
        held by attempts in flight, which SQL's lower total refuses, and coming back
        they must pay that debt, not return to sale (:meth:`left` counts a ref's
        buckets together). Returns 1 if anything was applied now, 0 if all before, -1
        if no bucket of that generation (nothing to do)."""
        bound = epochs.split(",")
        if len(bound) != self.buckets:
            return -1  # bound to a gate of another bucket count: a rebuild read SQL
        home = self.home(key)
        order = [home] if add >= 0 else [(home + i) % self.buckets for i in range(self.buckets)]
        remaining, outcome = add, -1
        for bucket in order:
            last = "1" if bucket == order[-1] else "0"
            status, applied = await self._change(
                keys=[self.stock_key(merchant, game, bucket),
                      self.keys.stock_change(merchant, game, key, bucket, self.buckets)],
                args=[bound[bucket], mark_ttl_ms, ref, remaining, last])
            outcome = max(outcome, int(status))
            remaining -= int(applied)
            if remaining == 0:
                break
        return outcome
