"""One replay worker process: a causal, open-loop scheduler over its share of players.

Every record becomes *due* at the run's start plus ``t_ms / speed``. Players are
independent (open loop across players: a slow answer to one never delays
another), but one player's requests go in order, as a real client sends them:
each waits for that player's previous reply. A request is *ready* at the latest
of its due time, the previous reply, and (for a browse task) the moment its
ticket becomes valid. Three things are measured from those times:

* **latency**, from ready to the answer (a request held behind the same
  player's slow previous request is not charged twice);
* **send lateness**, actual send minus ready: the scheduler's own error, the
  generator's health;
* **behind schedule**, actual send minus due: how far players fell behind the
  trace (a slow server shows here, and as achieved < offered).

Values the server hands back feed the player's later requests: the ticket from
``startTask`` goes into ``completeTask`` of the same task, sent no earlier than
the trace's own gap after the ticket arrived (a real client browses first), and
holds, open rounds and share codes fill the references of :mod:`loadtests.chains`
(a friend's help waits for the code its friend got back). A ``giveAssist`` leaves
no earlier than the trace's gap after its player's session began (a campaign's
minimum session age is real time, even at ``--speed 5``).

At most ``max_in_flight`` requests are out at once; a ready request waits for a
slot up to ``timeout``, then counts as ``client_backlog``: never sent, its wait
recorded as latency from its due time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections import deque
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameserver.http.signing import body_signature, session_signature
from loadtests import chains
from loadtests.ops import OPERATIONS, Op
from loadtests.stats import (
    ANSWERED_CLASSES,
    RunStats,
    classify,
    encode,
    new_hist,
    outcome_code,
    record,
)
from loadtests.trace import Record, read_trace

if TYPE_CHECKING:
    from loadtests.replay import ReplayConfig

TICKET_WAIT_CAP_S = 120.0
"""A completeTask never waits longer than this after its ticket arrived."""
STOP_POLL_S = 0.2
"""Longest the dispatcher sleeps between looks at the stop flag (Ctrl-C)."""


def owner(name: str, n: int) -> int:
    """Which of ``n`` generator processes (``--shard``) replays player ``name`` (a friend
    goes with its home player, :func:`loadtests.chains.home`)."""
    return zlib.crc32(chains.home(name).encode()) % n


def worker_of(name: str, workers: int, shards: int = 1) -> int:
    """Which worker of its generator process replays player ``name``."""
    return (zlib.crc32(chains.home(name).encode()) // shards) % workers


def clone_name(player: str, clone: int) -> str:
    """Clone ``clone`` of ``player`` (a friend's clone is its friend's clone's friend)."""
    if not clone:
        return player
    base, sep, tag = player.partition(chains.FRIEND)
    return f"{base}-c{clone}{sep}{tag}"


CODE_USERS = frozenset({"giveAssist", "joinGroupBuy", "joinTeam"})
"""Operations whose body sends a share code another shopper got back."""


def recorded_uses(rec: Record, handed: Container[str]) -> dict[str, str]:
    """Where ``rec`` sends a value a recorded reply handed back: ``{"body": code}`` and
    ``{<path parameter>: id}`` (from the operation's path template in the ops table)."""
    uses: dict[str, str] = {}
    if rec.op in CODE_USERS and isinstance(rec.body, dict):
        code = rec.body.get("code")
        if isinstance(code, str) and code in handed:
            uses["body"] = code
    params = rec.params or {}
    for name in OPERATIONS[rec.op].path_params() if rec.op in OPERATIONS else ():
        value = params.get(name)
        if isinstance(value, str) and value in handed:
            uses[name] = value
    return uses


def share_groups(records: Iterator[Record]) -> tuple[dict[str, str], frozenset[str]]:
    """In a recording: each player who sent a share code or named a handed-back id in a
    path → the first player of its group (who used values of whom, transitively), and
    the recorded values. A group is replayed by one worker and shard, so a value passes
    in-process."""
    owner_of: dict[str, str] = {}
    parent: dict[str, str] = {}

    def find(p: str) -> str:
        while parent.get(p, p) != p:
            p = parent[p]
        return p

    for rec in records:
        for value in recorded_uses(rec, owner_of).values():
            a, b = find(owner_of[value]), find(rec.player)
            if a != b:
                parent[b] = a
        for value in (rec.gave or {}).values():
            owner_of.setdefault(value, rec.player)
    return {p: find(p) for p in parent}, frozenset(owner_of)


def placement(cfg: ReplayConfig) -> tuple[dict[str, str], frozenset[str]]:
    """:func:`share_groups` of the traces when any is a recording (else nothing)."""
    from loadtests.trace import read_header

    if not any(read_header(p).source == "record" for p in cfg.traces):
        return {}, frozenset()
    return share_groups(read_trace(cfg.traces)[1])


@dataclass
class Item:
    """One request to send: the record, its player (clone) and its due time."""

    idx: int
    rec: Record
    user: str
    clone: int
    due: float


@dataclass
class Lane:
    """One player's queue: requests go one at a time, in trace order."""

    queue: deque[Item] = field(default_factory=deque)
    running: bool = False
    free_at: float = 0.0
    tickets: dict[str, tuple[str | None, float, int] | None] = field(default_factory=dict)
    """task → (ticket or None, when the startTask reply arrived, its trace t_ms), or None
    when the startTask was refused or unanswered (nothing to complete)."""
    values: dict[str, Any] = field(default_factory=dict)
    """What replies handed back, by :mod:`loadtests.chains` key."""
    grabs: dict[str, dict[str, int]] = field(default_factory=dict)
    """rain → round → envelope grabs sent."""
    session: tuple[float, int] | None = None
    """When this player's createSession was answered, and its trace t_ms."""


class Worker:
    """One process's share of the players: an asyncio scheduler and an HTTP session."""

    def __init__(self, cfg: ReplayConfig, index: int, bucket_s: float,
                 report: Callable[[str, Any], None], stop: Callable[[], bool],
                 wait_start: Callable[[], float]) -> None:
        from loadtests.replay import check_target

        self.cfg, self.index, self.report, self.stop = cfg, index, report, stop
        self.wait_start = wait_start
        self.start = 0.0
        self.premint_info: dict[str, Any] = {}
        self.stats = RunStats(bucket_s=bucket_s)
        self.window = new_hist()
        self.base = check_target(cfg.base_url, cfg.allow_remote)
        self.tokens: dict[str, tuple[str, float]] = {}
        self.lanes: dict[str, Lane] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self.groups, self.recorded_codes = placement(cfg)
        self.handed: dict[str, Any] = {}
        """``code:<recorded value>:<clone>`` → what this replay got instead (a share code
        or the id of a group, team or assist)."""
        self.in_flight = 0
        self.slots: asyncio.Semaphore | None = None
        self.stopping = False
        self.interrupted = False
        """Stopped by the parent (Ctrl-C): queued requests are withdrawn, not sent."""
        self.headers_common = {"Content-Type": "application/json",
                               "User-Agent": f"petbox-loadtest/{cfg.run_id}"}
        if cfg.shadow:
            self.headers_common["X-Petbox-Shadow"] = "1"
        self.http: Any = None
        self.defaults: dict[str, str] = {}
        self.samples: list[str] | None = [] if cfg.samples_dir else None

    # -- what this worker replays --------------------------------------------------------

    def my_records(self) -> Iterator[tuple[int, Record, str, int]]:
        """(index, record, user id, clone number) of this worker's players, in time order."""
        cfg = self.cfg
        header, records = read_trace(cfg.traces)
        self.defaults = {str(k): str(v) for k, v in header.defaults.items()}
        if cfg.game:
            self.defaults["game"] = cfg.game
        groups = self.groups
        for idx, rec in enumerate(records):
            if rec.op not in OPERATIONS or (cfg.ops is not None and rec.op not in cfg.ops):
                self.stats.skipped += 1
                continue
            for clone in range(cfg.clones):
                place = clone_name(groups.get(rec.player, rec.player), clone)
                if cfg.shards > 1 and owner(place, cfg.shards) != cfg.shard:
                    continue
                if worker_of(place, cfg.workers, cfg.shards) == self.index:
                    yield idx, rec, cfg.prefix + clone_name(rec.player, clone), clone

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Set up, wait for the common start, replay, drain; returns the statistics."""
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.cfg.connections, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout)
        # No more requests out than connections: one beyond them would wait inside the
        # HTTP client for a connection, and that wait (the generator's own limit) would be
        # measured as the target's latency, or its timeout. Waiting for a slot is send
        # lateness, and past --timeout backlog: the verdict then blames the generator.
        self.slots = asyncio.Semaphore(min(self.cfg.max_in_flight, self.cfg.connections))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         headers=self.headers_common) as http:
            self.http = http
            records = self.my_records()
            first = next(records, None)  # open and parse the trace before the clock starts
            if self.cfg.premint:
                await self.premint()
            loop = asyncio.get_running_loop()
            self.start = await loop.run_in_executor(None, self.wait_start)
            cpu0, wall0 = time.process_time(), time.monotonic()
            ticker = asyncio.create_task(self._progress_loop())
            try:
                if first is not None:
                    await self.dispatch(first, records)
                await self.drain()
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            s = self.stats
            s.cpu_s, s.wall_s = time.process_time() - cpu0, time.monotonic() - wall0
            s.cpu_max_share = s.cpu_s / s.wall_s if s.wall_s > 0 else 0.0
        if self.samples is not None and self.cfg.samples_dir:
            path = Path(self.cfg.samples_dir) / f"{self.cfg.run_id}-{self.index}.txt"
            path.write_text("".join(self.samples))
        self._progress()
        return {**self.stats.to_json(), "premint": self.premint_info}

    async def premint(self) -> None:
        """Sessions for all of this worker's players, 32 at a time, off the clock."""
        users = sorted({user for _, _, user, _ in self.my_records()})
        began = time.monotonic()
        gate = asyncio.Semaphore(32)

        async def one(user: str) -> bool:
            async with gate:
                return (await self.mint(user))[1] is not None

        done = await asyncio.gather(*(one(u) for u in users))
        self.premint_info = {"players": len(users), "failed": done.count(False),
                             "seconds": round(time.monotonic() - began, 3)}

    async def dispatch(self, first: tuple[int, Record, str, int],
                       records: Iterator[tuple[int, Record, str, int]]) -> None:
        """Hand each record to its player's lane at its due time."""
        loop = asyncio.get_running_loop()
        speed = self.cfg.speed
        stop_at = (self.start + self.cfg.max_duration if self.cfg.max_duration is not None
                   else float("inf"))
        for n, (idx, rec, user, clone) in enumerate(_chain(first, records)):
            due = self.start + rec.t_ms / 1000.0 / speed
            if due > stop_at or (n & 127 == 0 and self.stop()):
                break
            if await self._wait_until(due):
                break  # interrupted: what is not yet due is never offered
            self.stats.offer(due - self.start)
            lane = self.lanes.get(user)
            if lane is None:
                lane = self.lanes[user] = Lane()
            lane.queue.append(Item(idx, rec, user, clone, due))
            if not lane.running:
                lane.running = True
                task = loop.create_task(self.run_lane(lane))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _wait_until(self, due: float) -> bool:
        """Sleep until ``due``, looking at the stop flag at least every
        ``STOP_POLL_S``; True if the run was stopped (Ctrl-C) meanwhile.

        A quiet stretch of the trace must not hide a Ctrl-C: the parent waits only
        ``--timeout`` plus a few seconds for a stopped worker's statistics before it
        ends the worker, and a partial report needs them."""
        loop = asyncio.get_running_loop()
        while (delay := due - loop.time()) > 0:
            if self.stop():
                return True
            await asyncio.sleep(min(delay, STOP_POLL_S))
        return False

    async def drain(self) -> None:
        """Let lanes finish what is queued; past the bound, the rest counts as backlog.

        After a stop (Ctrl-C, before or while draining) nothing new is sent: queued
        requests are withdrawn from the offered load and only the requests already out
        get ``--timeout`` to come back, so the worker reports within the parent's grace
        period (``--timeout`` and a few seconds) instead of being ended without a word."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.timeout + 1.0 + self.cfg.drain_s
        while self.tasks and not self.stop() and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self.tasks), timeout=min(STOP_POLL_S, left))
        self.interrupted = self.stop()
        self.stopping = True
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=self.cfg.timeout + 1.0)
            for task in pending:
                task.cancel()

    # -- one player's lane ------------------------------------------------------------------

    async def run_lane(self, lane: Lane) -> None:
        loop = asyncio.get_running_loop()
        try:
            while lane.queue:
                item = lane.queue.popleft()
                if self.interrupted:
                    self._withdraw(item)
                    continue
                if self.stopping:
                    self._finish(item, item.due, "client_backlog", sent=False)
                    continue
                try:
                    await self._run_item(lane, item)
                except Exception as exc:
                    # One odd record must not end the player's lane silently: it is
                    # counted (class "client") and the player's next requests go out.
                    self._finish(item, item.due, f"client_failed {type(exc).__name__}",
                                 sent=False)
                    lane.free_at = loop.time()
        finally:
            lane.running = False

    async def _run_item(self, lane: Lane, item: Item) -> None:
        """Send one of a player's requests when it is due, its values filled in."""
        loop = asyncio.get_running_loop()
        body, held = item.rec.body, 0.0
        if item.rec.op == "completeTask":
            with_ticket = self._with_ticket(lane, item)
            if with_ticket is None:  # its start was refused: a client would not complete
                self._not_sent(item)
                lane.free_at = loop.time()
                return
            body, held = with_ticket
        elif item.rec.op == "giveAssist" and lane.session is not None:
            minted, t_ms = lane.session  # the session's age is real time
            held = minted + min(TICKET_WAIT_CAP_S, max(0.0, (item.rec.t_ms - t_ms) / 1000.0))
        if held > item.due:
            # Real time the trace asks for (browsing, a session's age) that --speed cannot
            # shorten: the request is due when the hold ends. Counting it as offered at
            # the sped-up time would show the wait as the target not keeping up.
            self.stats.postpone(item.due - self.start, held - self.start)
            item.due = held
        ready = max(item.due, lane.free_at)
        if ready > loop.time():
            await asyncio.sleep(ready - loop.time())
        params: dict[str, Any] = dict(item.rec.params or {})
        if self.recorded_codes:
            body, params = self._swap_recorded(item, body, params)
        if "$when" in params or chains.refs(body) or chains.refs(params):
            before = loop.time()
            body, params = await self._filled(lane, item, body, params)
            if body is chains.MISSING or params is chains.MISSING:
                self._not_sent(item)
                lane.free_at = loop.time()  # the player's next step follows this
                return
            if loop.time() - before > 0.001:  # waited for a friend's code
                ready = loop.time()
        await self.send_item(lane, item, body, ready, params)
        lane.free_at = loop.time()

    def _swap_recorded(self, item: Item, body: Any,
                       params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Body code and path ids that a recorded reply handed back, as references to
        what this replay got instead (:meth:`_keep`)."""
        for where, value in recorded_uses(item.rec, self.recorded_codes).items():
            swapped = {"$ref": f"code:{value}:{item.clone}"}
            if where == "body":
                body = {**body, "code": swapped}
            else:
                params[where] = swapped
        return body, params

    async def _filled(self, lane: Lane, item: Item, body: Any,
                      params: dict[str, Any]) -> tuple[Any, Any]:
        """``body`` and path ``params`` with the values the server handed back
        (chains.MISSING: do not send)."""
        when = params.get("$when")
        keys = ([str(when)] if when else []) + chains.refs(body) + chains.refs(params)
        values = dict(lane.values)
        for key in keys:
            if key.startswith("round:"):
                rain = key.split(":", 1)[1]
                values[key] = chains.open_round(lane.values.get(f"rain:{rain}"),
                                                lane.grabs.get(rain, {}))
            elif chains.shared(key):
                values[key] = await self._shared_value(self._home_user(item), key)
            elif key.startswith("code:"):  # a recorded share code: the one we got
                values[key] = await self._shared_value("", key)
        if when and not values.get(str(when)):
            return chains.MISSING, params
        return chains.fill(body, values), chains.fill(params, values)

    def _home_user(self, item: Item) -> str:
        name = item.user[len(self.cfg.prefix):]
        return self.cfg.prefix + chains.home(name)

    async def _shared_value(self, user: str, key: str) -> Any:
        """``key`` from ``user``'s replies, waiting (up to ``--timeout``) for it to come."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.timeout
        while True:
            lane = self.lanes.get(user)
            if not user and key in self.handed:
                return self.handed[key]
            if lane is not None and key in lane.values:
                return lane.values[key]
            left = deadline - loop.time()
            if left <= 0 or self.stopping:
                return None
            fut: asyncio.Future[None] = loop.create_future()
            self.waiters.setdefault((user, key), []).append(fut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, left)

    def _keep(self, lane: Lane, item: Item, code: str, data: Any, body: Any) -> None:
        """Keep what the reply to ``item`` hands back for the player's later requests."""
        op, params = item.rec.op, item.rec.params or {}
        for name, value in (item.rec.gave or {}).items():
            key = f"code:{value}:{item.clone}"
            got = data.get(name) if isinstance(data, dict) else None
            self.handed[key] = got if isinstance(got, str) else None
            for fut in self.waiters.pop(("", key), ()):
                if not fut.done():
                    fut.set_result(None)
        if op == "createSession" and data is not None:
            lane.session = (time.monotonic(), item.rec.t_ms)
        elif op == "grabEnvelope" and isinstance(body, dict):
            rounds = lane.grabs.setdefault(str(params.get("rain")), {})
            rounds[str(body.get("round"))] = rounds.get(str(body.get("round")), 0) + 1
        elif op in chains.PRODUCERS:
            for key, value in chains.kept(op, params, data is not None, data).items():
                lane.values[key] = value
                for fut in self.waiters.pop((item.user, key), ()):
                    if not fut.done():
                        fut.set_result(None)

    def _withdraw(self, item: Item) -> None:
        """A queued request of an interrupted run: never sent, and no longer offered."""
        self.stats.bucket(self._bucket(item.due)).offered -= 1

    def _not_sent(self, item: Item) -> None:
        """A chained request whose value never came: a real client would not send it."""
        self.stats.skipped += 1
        self.stats.bucket(self._bucket(item.due)).offered -= 1

    def _with_ticket(self, lane: Lane, item: Item) -> tuple[Any, float] | None:
        """The completeTask body with the ticket this replay got, and the earliest it may
        leave (0.0: no ticket, no wait); None when this replay's startTask of the task
        was refused or unanswered: no ticket came, so the request is not sent (sent
        without one, a browse task's complete is 403 ``ticket_invalid``, a refusal the
        replay made, not the target)."""
        task = (item.rec.params or {}).get("task")
        if not task or task not in lane.tickets:
            return item.rec.body, 0.0
        got = lane.tickets.pop(task)
        if got is None:
            return None
        ticket, arrived, start_t_ms = got
        body = {k: v for k, v in (item.rec.body or {}).items() if k != "ticket"}
        if ticket is None:
            return body, 0.0
        body["ticket"] = ticket
        # The trace's gap is real browsing time: a faster replay cannot shorten it.
        gap = min(TICKET_WAIT_CAP_S, max(0.0, (item.rec.t_ms - start_t_ms) / 1000.0))
        return body, arrived + gap

    async def send_item(self, lane: Lane, item: Item, body: Any, ready: float,
                        params: dict[str, Any] | None = None) -> None:
        assert self.slots is not None
        waited = time.monotonic()
        if self.slots.locked():  # only then pay for a timed wait (wait_for makes a task)
            try:
                await asyncio.wait_for(self.slots.acquire(), timeout=self.cfg.timeout)
            except TimeoutError:
                self._finish(item, ready, "client_backlog", sent=False)
                return
        else:
            await self.slots.acquire()
        self.in_flight += 1
        try:
            now = time.monotonic()
            record(self.stats.lateness, (now - ready) * 1e6)
            # Without the wait for a free connection: all of them held by answers that
            # take long is the target's slowness, not the scheduler's (the verdict).
            record(self.stats.own_lateness, (waited - ready) * 1e6)
            b = self.stats.bucket(self.stats.index(now - self.start))
            b.inflight_max = max(b.inflight_max, self.in_flight)
            record(self.stats.bucket(self._bucket(item.due)).lateness, (now - ready) * 1e6)
            if OPERATIONS[item.rec.op].auth == "player" and not self._has_token(item.user):
                # A login of the replay's own (the trace opens no session for this
                # player): counted apart, and the request's own clock starts after it,
                # or its latency would hold a createSession the trace never asked for.
                if await self.token(item.user) is None:
                    self._no_session(item)
                    return
                ready = now = time.monotonic()
            record(self.stats.behind, (now - item.due) * 1e6)
            self.stats.sent += 1
            code, data = await self.fire(item, body, params)
            if classify(code) in ANSWERED_CLASSES:
                record(self.stats.target, (time.monotonic() - now) * 1e6)
            self._finish(item, ready, code)
            self._keep(lane, item, code, data, body)
            if item.rec.op == "startTask":
                task = (item.rec.params or {}).get("task", "")
                ticket = data.get("ticket") if isinstance(data, dict) else None
                lane.tickets[task] = (ticket if isinstance(ticket, str) else None,
                                      time.monotonic(), item.rec.t_ms) \
                    if code.startswith("2") else None
        finally:
            self.in_flight -= 1
            self.slots.release()

    async def fire(self, item: Item, body: Any,
                   params: dict[str, Any] | None = None) -> tuple[str, Any]:
        """Send one record (its path ``params`` filled in, else the record's); returns its
        outcome code and, on success, its JSON body."""
        op = OPERATIONS[item.rec.op]
        if op.op_id == "createSession":
            code, token = await self.mint(item.user)
            return code, token
        params = {**self.defaults, **((item.rec.params or {}) if params is None else params),
                  **({"game": self.cfg.game} if self.cfg.game else {})}
        try:
            path = op.url_path(params)
        except KeyError as exc:
            return f"bad_record missing_{exc.args[0]}", None
        headers = {}
        if op.auth == "order":
            return await self.send(op, path, *self._order(item, body, params.get("game")))
        if op.auth == "player":
            token = await self.token(item.user)
            if token is None:
                return "no_session", None
            headers["Authorization"] = f"Bearer {token}"
        if op.is_write:
            headers["Idempotency-Key"] = f"{self.cfg.run_id}-{item.idx}-{item.clone}"
        data = None if op.method == "GET" else json.dumps(
            body if body is not None else {}).encode()
        return await self.send(op, path, data, headers)

    def _order(self, item: Item, body: Any, game: str | None) -> tuple[bytes, dict[str, str]]:
        """A signed ``ingestOrder`` of this player (the order id is the record's key)."""
        cfg = self.cfg
        order = {**(body or {}), "merchant": cfg.merchant, "game": game, "user": item.user,
                 "order_id": f"{cfg.run_id}-{item.idx}-{item.clone}"}
        data, ts = json.dumps(order).encode(), int(time.time())
        return data, {"X-Petbox-Timestamp": str(ts), "X-Petbox-Merchant": cfg.merchant,
                      "X-Petbox-Signature": body_signature(cfg.signing_secret, str(ts), data)}

    def _bucket(self, due: float) -> int:
        return self.stats.index(due - self.start)

    def _finish(self, item: Item, ready: float, code: str, sent: bool = True) -> None:
        now = time.monotonic()
        latency = (now - (ready if sent else item.due)) * 1e6
        measured = sent or code == "client_backlog"
        self.stats.add(item.rec.op, code, latency, self._bucket(item.due), measured,
                       done_s=now - self.start if sent else None, expect=item.rec.expect)
        if measured:
            record(self.window, latency)
            if self.samples is not None:
                self.samples.append(f"{item.rec.op} {int(latency)}\n")

    # -- HTTP -------------------------------------------------------------------------------

    async def send(self, op: Op, path: str, body: bytes | None,
                   headers: dict[str, str]) -> tuple[str, Any]:
        """One HTTP exchange; returns the code string and, on success, the JSON body."""
        import aiohttp

        try:
            async with self.http.request(op.method, self.base + path, data=body,
                                         headers=headers, allow_redirects=False) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = "Retry-After" in resp.headers
        except TimeoutError:
            return "timeout", None
        except aiohttp.ClientError as exc:
            return f"client_error {type(exc).__name__}", None
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if 200 <= status < 300:
            return str(status), data if data is not None else {}
        try:
            error = str(data["error"]["code"])  # type: ignore[index]
        except (KeyError, TypeError):
            error = None
        return outcome_code(status, error, retry_after), None

    def _has_token(self, user: str) -> bool:
        cached = self.tokens.get(user)
        return cached is not None and cached[1] - time.time() > 60

    async def token(self, user: str) -> str | None:
        """A valid token for ``user``: cached, or minted now (a login of the replay's
        own, counted apart from the trace: :attr:`RunStats.logins`)."""
        cached = self.tokens.get(user)
        if cached is not None and self._has_token(user):
            return cached[0]
        began = time.monotonic()
        code, token = await self.mint(user)
        self.stats.login(code, (time.monotonic() - began) * 1e6)
        return token

    def _no_session(self, item: Item) -> None:
        """A request whose player's login failed: not sent and no longer offered (the
        login's refusal is counted once, as the login's, not again for each request)."""
        self.stats.no_session += 1
        self.stats.bucket(self._bucket(item.due)).offered -= 1

    async def mint(self, user: str) -> tuple[str, str | None]:
        """``createSession`` for ``user``; returns its outcome code and the token."""
        ts = int(time.time())
        session: dict[str, Any] = {
            "merchant": self.cfg.merchant, "user": user, "ts": ts,
            "sign": session_signature(self.cfg.signing_secret, self.cfg.merchant, user, ts,
                                      shadow=self.cfg.shadow)}
        if self.cfg.shadow:
            session["shadow"] = True
        code, data = await self.send(OPERATIONS["createSession"], "/v1/sessions",
                                     json.dumps(session).encode(), {})
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return code, None
        token = str(data["token"])
        self.tokens[user] = (token, float(data.get("expires_at", time.time() + 600)))
        return code, token

    # -- progress ---------------------------------------------------------------------------

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._progress()

    def _progress(self) -> None:
        s = self.stats
        self.report("progress", {"sent": s.sent, "completed": s.completed, "errors": s.errors,
                                 "window": encode(self.window)})
        self.window.reset()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
