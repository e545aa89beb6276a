"""Decoding what Redis hands the persister: ledger stream entries (see commit.lua for
their fields), stream replies in either protocol, and the player-state fields SQL keeps
in columns. Pure functions, no I/O.

An entry's fields: ``c`` commit id, ``p`` player member, ``v`` version, ``d`` ledger
entries, ``t`` records (:class:`mechanics.outcome.Record`), ``k``/``s``/``r``/``h``
the stored response, ``n`` the new state (entries of servers before states travelled
with the ledger have none). ``k``, the commit's Idempotency-Key, also says whether the
shopper made it (:func:`gameserver.state.keys.by_shopper`), which its ledger rows keep.
Entries of servers before typed records carry event dicts in ``e`` instead of ``t``: a
mechanic's ``LEGACY_RECORDS`` says which of them are records."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import msgpack

import mechanics
from economy.wallet import LedgerEntry
from gameserver.db import persist
from gameserver.db.persist import LedgerRow, PlayerRow
from gameserver.state.keys import KEY_MAX, by_shopper
from mechanics.outcome import LegacyRecord, Record
from mechanics.state import PlayerState

Entry = tuple[bytes, dict[bytes, bytes]]
"""A ledger stream entry: id and fields."""
Command = tuple[Any, ...]
"""One Redis command, name first (every one touches the keys of one shard)."""

new_tuple = tuple.__new__
"""``new_tuple(LedgerRow, values)`` builds a named row without the generated
``__new__``'s argument handling (a third of a row's cost; the persister builds one per
ledger row and per player)."""


def split_member(member: str) -> tuple[str, str, str]:
    """``merchant:game:user`` → its parts (merchant and game ids never contain ``:``)."""
    merchant, game, user = member.split(":", 2)
    return merchant, game, user


@cache
def time_keys() -> tuple[str, str, str]:
    """The wire keys of a player state's ``created_at``, ``last_seen`` and ``played_at``,
    as :meth:`PlayerState.to_wire` writes them (found from a state with distinct times,
    so that the persister depends on no key or position of the state)."""
    wire = PlayerState(created_at=-7, last_seen=-11, played_at=-13).to_wire()
    [created] = [k for k, v in wire.items() if v == -7]
    [seen] = [k for k, v in wire.items() if v == -11]
    [played] = [k for k, v in wire.items() if v == -13]
    return created, seen, played


def state_times(raw: bytes) -> tuple[int, int, int]:
    """``(created_at, last_seen, first_played_at)`` of a msgpack player state, for the SQL
    columns: ``first_played_at`` is 0 for a player who has not acted themselves yet,
    ``created_at`` for one who has since creation (``played_at`` absent). Reads the map
    only up to the keys it needs: the values before them are skipped, the rest of the
    state is not decoded at all. (Most states have no ``played_at``: their map is walked
    to its end, skipping each value, about a microsecond more per flushed player than
    stopping at the two times.)"""
    created_key, seen_key, played_key = time_keys()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(raw)
    created = seen = 0
    played: int | None = None
    wanted = 3
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key == created_key:
            created = unpacker.unpack()
        elif key == seen_key:
            seen = unpacker.unpack()
        elif key == played_key:
            played = unpacker.unpack()
        else:
            unpacker.skip()
            continue
        wanted -= 1
        if not wanted:
            break
    if played is None:  # since creation
        return int(created), int(seen), int(created)
    return int(created), int(seen), int(played)


def entry_ms(entry_id: bytes) -> int:
    """The millisecond part of a stream entry id (when Redis added it)."""
    return int(entry_id.partition(b"-")[0])


def ledger_rows(entry_id: bytes, fields: dict[bytes, bytes]) -> list[LedgerRow]:
    """The SQL rows of one ledger stream entry (see commit.lua for the fields); the
    values are checked (``str``/``int``) so that a malformed entry fails here, where it
    is parked, instead of in SQL."""
    raw = fields.get(b"d")
    if not raw:
        return []
    commit_id = fields[b"c"].decode()
    merchant, game, user = fields[b"p"].decode().split(":", 2)
    version = int(fields[b"v"])
    ts_ms = entry_ms(entry_id)
    key = fields.get(b"k")  # absent in entries of servers before stored responses
    shopper = key is None or by_shopper(key.decode())
    rows: list[LedgerRow] = []
    for seq, wire in enumerate(msgpack.unpackb(raw, raw=False)):
        e = LedgerEntry.from_wire(wire)
        rows.append(new_tuple(LedgerRow, (
            commit_id, seq, merchant, game, user, version, str(e.kind), str(e.name),
            int(e.delta), int(e.before), int(e.after), str(e.reason), ts_ms, shopper)))
    return rows


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]
                 ) -> tuple[list[LedgerRow], persist.CommitRows | None]:
    """An entry's ledger rows and, when it carries any, its records and stored
    response; raises for an entry this release cannot decode."""
    rows = ledger_rows(entry_id, fields)
    return rows, entry_rows(entry_id, fields) if has_rows(fields) else None


def has_rows(fields: dict[bytes, bytes]) -> bool:
    """Whether an entry carries more than ledger rows (records or a stored response)."""
    return bool(fields.get(b"t") or fields.get(b"e") or fields.get(b"k"))


def newest_states(entries: Iterable[Entry]) -> dict[bytes, tuple[int, bytes | None]]:
    """Each player's newest entry among ``entries``: member → (version, its state, or
    ``None`` for an entry without one). An entry without a player or version says
    nothing about states (its commit wrote none that SQL could take)."""
    newest: dict[bytes, tuple[int, bytes | None]] = {}
    for _, fields in entries:
        member, raw = fields.get(b"p"), fields.get(b"v")
        if member is None or raw is None or not raw.isdigit():
            continue
        version = int(raw)
        seen = newest.get(member)
        if seen is None or version > seen[0]:
            newest[member] = (version, fields.get(b"n"))
    return newest


def player_row(member: str, version: int, state: bytes, now: int) -> PlayerRow:
    """The ``players`` row of a member's state at ``version``, flushed at ``now``."""
    merchant, game, user = member.split(":", 2)
    created, seen, played = state_times(state)
    return new_tuple(PlayerRow, (merchant, game, user, version, state, created, seen, now,
                                 played))


def sql_key(key: str) -> str:
    """A stored response's Idempotency-Key as SQL keeps it (``KEY_MAX`` characters).
    Every key written now fits; an entry from before server keys were bounded (an
    order's was up to 79 characters) is kept under a digest of its key, so it no longer
    fails its shard's ledger transaction on PostgreSQL again and again. (Its order id
    is what dedups an order; the key only serves a replay after Redis lost it.)"""
    if len(key) <= KEY_MAX:
        return key
    return "legacy~" + hashlib.sha256(key.encode()).hexdigest()[:KEY_MAX - len("legacy~")]


def entry_rows(entry_id: bytes, fields: dict[bytes, bytes]) -> persist.CommitRows:
    """The records and the stored response carried by one ledger stream entry (entries
    written before responses moved to SQL carry none)."""
    key = fields.get(b"k")
    if not has_rows(fields):
        return persist.CommitRows()
    merchant, game, user = split_member(fields[b"p"].decode())
    commit_id, ts_ms = fields[b"c"].decode(), entry_ms(entry_id)
    out = persist.record_rows(commit_id, merchant, game, user, ts_ms, entry_records(fields))
    if key:
        out.responses.append(new_tuple(persist.ResponseRow, (
            commit_id, merchant, game, user, sql_key(key.decode()), int(fields[b"s"]),
            bytes(fields[b"r"]), ts_ms, (fields.get(b"h") or b"").decode())))
    return out


def entry_records(fields: dict[bytes, bytes]) -> Iterator[tuple[int, Record]]:
    """An entry's records, each with its position in the commit's list."""
    if raw := fields.get(b"t"):
        yield from enumerate(Record.from_wire(r) for r in msgpack.unpackb(
            raw, raw=False, strict_map_key=False))
    elif raw := fields.get(b"e"):
        upgrades = legacy_records()
        for seq, event in enumerate(msgpack.unpackb(raw, raw=False, strict_map_key=False)):
            upgrade = upgrades.get(str(event.get("type")))
            if upgrade is not None:
                yield seq, upgrade(event)


@cache
def legacy_records() -> dict[str, LegacyRecord]:
    """Every mechanic's ``LEGACY_RECORDS`` (found by looking, so that this module names
    no mechanic): which events of older servers are records."""
    found: dict[str, LegacyRecord] = {}
    for info in pkgutil.iter_modules(mechanics.__path__):
        module = importlib.import_module(f"{mechanics.__name__}.{info.name}")
        found.update(getattr(module, "LEGACY_RECORDS", {}))
    return found


def read_entries(reply: Any) -> list[Entry]:
    """The entries of a one-stream ``XREADGROUP`` reply: ``[[stream, entries]]`` (RESP2),
    ``{stream: entries}`` (RESP3), or nil when there are none."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [stream[1] for stream in reply]
    return [entry for entries in streams for entry in stream_entries(entries)]


def stream_entries(entries: Any) -> list[Entry]:
    """``[[id, [field, value, ...]], ...]`` as (id, fields); an entry deleted while
    pending has no fields (nil, or a nil entry before Redis 7's XAUTOCLAIM)."""
    found: list[Entry] = []
    for entry in entries or ():
        if entry is None:
            continue
        entry_id, flat = entry
        found.append((entry_id, dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}))
    return found


def only_score(reply: list[Any]) -> float:
    """The score of a one-member ``ZRANGE … WITHSCORES`` reply: ``[member, score]``
    (RESP2) or ``[[member, score]]`` (RESP3)."""
    last = reply[-1]
    return float(last[-1] if isinstance(last, list) else last)


def first_error(replies: Iterable[Any]) -> Exception | None:
    """The first error reply among ``replies`` (replies come back as exceptions)."""
    return next((r for r in replies if isinstance(r, Exception)), None)
