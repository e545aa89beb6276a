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
* **debts**: a ``setStock`` removal of units attempts in flight hold leaves a bucket
  below 0 (:meth:`StockGate.change`). Units that come back (an attempt SQL refused or
  that failed, a cancel, a void or an expired hold given back, an addition) land in
  their own bucket, and a reservation looks at one bucket at a time: left there, they
  would be drawn although the ref's sum says they are owed, and every such draw would
  reach SQL only to be refused. So whoever puts units back then pays the ref's
  buckets below 0 from the buckets above it (:meth:`StockGate.pay_debts`), and the
  reconciler does it every pass for what a crash or a previous release left. A move
  is two scripts, one per slot: the giver takes the units as a hold of its own
  (``pay.<receiver>.<token>``, with a deadline), the receiver's ``stock_pay.lua``
  decides once (a mark beside it) whether it gets them; the hold then ends, giving
  them back only if not. A mover that died in between leaves the hold, which the
  reconciler ends past its deadline by closing the mark (:meth:`StockGate.end_expired`).

SQL is the truth for value (``value.py``); this module only keeps the crowd off it.
Every host must run with the same bucket count (``PETBOX_STOCK_BUCKETS``): the count
names the keys, so a host with another count builds a second gate from SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gameserver.state.keys import Keys
from gameserver.state.scripts import Script, reply_text

STOCK_BUCKETS = 8
"""Default buckets per game gate: enough that one game's midnight spreads over 8 slots."""

MOVE = "pay."
"""How the hold of a move between buckets starts (``pay.<receiver>.<token>``); an
attempt's hold starts with its commit id (hex), so the two never meet."""
MOVE_TTL_MS = 30_000
"""A move's hold deadline when the gate is given no clock (the value tier gives its own
hold lifetime): the reconciler ends a move whose mover died after it."""
MOVE_MARK_TTL_MS = 86_400_000
"""How long a move's decision stays beside the receiver: far past its hold's deadline
and the reconciler's next pass, which is all that may still ask."""


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

    def __init__(self, redis: Redis, keys: Keys, buckets: int = STOCK_BUCKETS,
                 deadline: Callable[[], int] | None = None) -> None:
        """``deadline``: unix ms a move's hold is due by, asked at each move (default:
        :data:`MOVE_TTL_MS` from the machine's clock)."""
        if buckets < 1:
            raise ValueError("a gate has at least one bucket")
        self.redis, self.keys, self.buckets = redis, keys, buckets
        self.deadline = deadline or (lambda: int(time.time() * 1000) + MOVE_TTL_MS)
        self._init = Script.named("stock_init", redis=redis)
        self._reserve = Script.named("stock_reserve", redis=redis)
        self._adjust = Script.named("stock_adjust", redis=redis)
        self._change = Script.named("stock_change", redis=redis)
        self._unhold = Script.named("stock_unhold", redis=redis)
        self._pay = Script.named("stock_pay", redis=redis)

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
        may be below 0 (a removal of units in flight, :meth:`change`, until units coming
        back pay it, :meth:`pay_debts`): what a ref has left is its buckets' sum, and
        none when that is not above 0."""
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
            for member in map(reply_text, members):
                if member.startswith(MOVE):
                    continue  # units between two buckets, no attempt's
                for ref, n in _held_units(member):
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
        overwritten (another process may have reserved from them); a survivor below 0
        is paid from the new units (:meth:`pay_debts`). Returns :meth:`epochs`."""
        refs = sorted(sql_left)
        state = await self.read(merchant, game, refs)
        fills: list[list[str | int]] = [[] for _ in range(self.buckets)]
        filled: list[str] = []
        for i, ref in enumerate(refs):
            gaps = [b for b, (epoch, values) in enumerate(state)
                    if epoch is None or values[i] is None]
            if not gaps:
                continue
            filled.append(ref)
            held = sum(int(values[i] or 0) for epoch, values in state
                       if epoch is not None and values[i] is not None)
            for bucket, units in zip(gaps, deal(sql_left[ref] - held, len(gaps)),
                                     strict=True):
                fills[bucket] += [ref, units]
        for bucket, pairs in enumerate(fills):
            if pairs or state[bucket][0] is None:
                await self._init(keys=[self.stock_key(merchant, game, bucket)],
                                 args=[secrets.token_hex(8), *pairs])
        if filled:
            await self._pay_debts_or_leave(merchant, game, filled)
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
        before SQL took them), then pay what the refs' buckets owe with them."""
        back: list[Piece] = []
        for piece in pieces:
            with contextlib.suppress(Exception):  # else its deadline gives it back
                if await self.end_hold(merchant, game, piece.bucket, piece.member, True):
                    back.append(piece)
        await self._paid_from(merchant, game, back)

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
        """Units SQL gave back (a cancel) into the buckets and generations they came from,
        then what the refs' buckets owe paid with them."""
        back: list[Piece] = []
        for piece in pieces:
            args = [piece.epoch, *[v for r, n in sorted(piece.units.items()) for v in (r, n)]]
            if await self._adjust(keys=[self.stock_key(merchant, game, piece.bucket)],
                                  args=args):
                back.append(piece)
        await self._paid_from(merchant, game, back)

    async def add(self, merchant: str, game: str, ref: str, n: int, attempt: str = "") -> None:
        """Add ``n`` units of ``ref`` to whatever generation is in force (a void found by
        the reconciler, an un-keyed stock change): into the attempt's home bucket."""
        bucket = self.home(attempt) if attempt else 0
        if await self._adjust(keys=[self.stock_key(merchant, game, bucket)], args=["", ref, n]):
            await self._pay_debts_or_leave(merchant, game, [ref], [bucket])

    async def change(self, merchant: str, game: str, key: str, epochs: str, ref: str,
                     add: int, mark_ttl_ms: int) -> int:
        """A ``setStock``'s gate side, at most once per key: an addition goes to the
        key's home bucket; a removal takes from the buckets in turn until done (each
        bucket's mark says what it gave, so a retry continues where one stopped), and
        the last one takes what the others lacked, below 0 if need be: those units are
        held by attempts in flight, which SQL's lower total refuses, and coming back
        they pay that debt before any returns to sale (:meth:`pay_debts`; :meth:`left`
        counts a ref's buckets together). An addition pays what the others owe the same
        way. Returns 1 if anything was applied now, 0 if all before, -1 if no bucket of
        that generation (nothing to do)."""
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
        if outcome >= 0:  # a retry too: a mover that died after the change left a debt
            await self._pay_debts_or_leave(merchant, game, [ref], [home])
        return outcome

    # -- debts: buckets below 0 paid by the others ---------------------------------------

    async def pay_debts(self, merchant: str, game: str, refs: Iterable[str] | None = None,
                        first: Iterable[int] = ()) -> int:
        """Move units from buckets above 0 into buckets of the same ref below 0 (the
        ``first`` buckets give first, then the fullest), until no bucket owes or none
        has units; ``refs`` None: every ref the buckets hold. A ref's sum does not
        change; what a reservation can draw from one bucket then never exceeds it.
        Returns the units moved. Two hosts paying one debt at once may pay it twice
        over: the receiver ends above 0, which is still the ref's sum, never more."""
        if refs is None:
            state = await self._read_all(merchant, game)
        else:
            wanted = list(refs)
            read = await self.read(merchant, game, wanted)
            state = {ref: ([epoch or "" for epoch, _ in read],
                           [int(values[i] or 0) if epoch else 0 for epoch, values in read])
                     for i, ref in enumerate(wanted)}
        moved = 0
        for ref, (epochs, values) in state.items():
            owing = sorted((b for b, v in enumerate(values) if v < 0), key=lambda b: values[b])
            if not owing:
                continue
            givers = [b for b in dict.fromkeys(first) if 0 <= b < self.buckets]
            givers += sorted((b for b in range(self.buckets) if b not in givers),
                             key=lambda b: -values[b])
            for dst in owing:
                for src in givers:
                    want = min(-values[dst], values[src])
                    if want <= 0:
                        continue
                    got = await self.move(merchant, game, ref, src, dst, epochs[dst], want)
                    if got is None:
                        break  # the receiver was rebuilt since: its debt is gone
                    values[src] = values[src] - want if got == want else 0
                    values[dst] += got
                    moved += got
        return moved

    async def _read_all(self, merchant: str, game: str
                        ) -> dict[str, tuple[list[str], list[int]]]:
        """Per ref: every bucket's epoch and units (a bucket or ref missing counts 0 and
        is never paid: its units come from SQL when it is built)."""
        pipe = self.redis.pipeline(transaction=False)
        for bucket in range(self.buckets):
            pipe.hgetall(self.stock_key(merchant, game, bucket))
        hashes = [{reply_text(k): reply_text(v) for k, v in h.items()}
                  for h in await pipe.execute()]
        refs = sorted({f for h in hashes for f in h if f != "_epoch"})
        return {ref: ([h.get("_epoch", "") for h in hashes],
                      [int(h[ref]) if "_epoch" in h and ref in h else 0 for h in hashes])
                for ref in refs}

    async def _paid_from(self, merchant: str, game: str, back: list[Piece]) -> None:
        """Pay the refs' debts after ``back`` came back, their buckets giving first."""
        if back:
            await self._pay_debts_or_leave(
                merchant, game, sorted({r for p in back for r in p.units}),
                [p.bucket for p in back])

    async def _pay_debts_or_leave(self, merchant: str, game: str, refs: list[str],
                                  first: Iterable[int] = ()) -> None:
        with contextlib.suppress(Exception):  # else the reconciler's pass pays them
            await self.pay_debts(merchant, game, refs, first)

    async def move(self, merchant: str, game: str, ref: str, src: int, dst: int,
                   dst_epoch: str, units: int) -> int | None:
        """Up to ``units`` of ``ref`` from bucket ``src`` into bucket ``dst`` of
        generation ``dst_epoch``: the units moved (``src`` may have fewer now), or None
        if ``dst`` is of another generation (they stayed in ``src``)."""
        token = secrets.token_hex(8)
        try:
            piece, _ = await self._take(merchant, game, src, f"{MOVE}{dst}.{token}",
                                        self.deadline(), {ref: units})
        except NotReady:
            return 0
        if piece is None:
            return 0
        decision = await self.pay(merchant, game, piece, dst_epoch)
        await self.end_hold(merchant, game, src, piece.member, decision != "ok")
        return sum(piece.units.values()) if decision == "ok" else None

    async def pay(self, merchant: str, game: str, piece: Piece, dst_epoch: str | None
                  ) -> str:
        """A move's receiving step (``stock_pay.lua``), the giver's hold ``piece``
        naming the receiver: ``ok`` if the receiver has the units, ``void`` if it never
        will. ``dst_epoch`` None closes the move: ``void`` unless already ``ok``."""
        _, dst, token = piece.member.split("|", 1)[0].split(".")
        ((ref, n),) = piece.units.items()
        return reply_text(await self._pay(
            keys=[self.stock_key(merchant, game, int(dst)),
                  self.keys.stock_pay(merchant, game, token, int(dst), self.buckets)],
            args=[dst_epoch or "", MOVE_MARK_TTL_MS, ref, n, "0" if dst_epoch is None else "1"]))

    async def end_expired(self, merchant: str, game: str, bucket: int, member: str,
                          give_back: bool) -> int:
        """End a hold past its deadline (the reconciler): an attempt's as
        :meth:`end_hold`; a move's by its receiver's decision, closed now if none was
        made (its mover died). 1 if the units went back to ``bucket``."""
        if member.startswith(MOVE):
            piece = Piece(bucket, "", member, dict(_held_units(member)))
            give_back = await self.pay(merchant, game, piece, None) != "ok"
        return await self.end_hold(merchant, game, bucket, member, give_back)
