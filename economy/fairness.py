"""Provably fair draws: HMAC-SHA256 rolls mapped onto integer weight tables.

The algorithm (also in ``docs/fairness.md``, which a shopper can follow with any
HMAC implementation):

1. The server seed is 32 random bytes, shown as 64 lowercase hex characters.
   Its commitment is ``seed_hash = hex(SHA-256(seed bytes))``, published before
   any draw with it; rotating the seed reveals it.
2. For the draw with nonce ``n`` (0, 1, 2, … per seed) and client seed ``c``
   (0–64 printable ASCII characters without ``:``; empty when not given)::

       digest = HMAC-SHA256(key = seed bytes, message = UTF-8 "c:n")
       u      = digest read as a 256-bit big-endian unsigned integer

3. Uniform integer in ``[0, total)`` by rejection sampling, so it is exactly
   uniform: with ``limit = 2²⁵⁶ − (2²⁵⁶ mod total)``, if ``u < limit`` the roll
   is ``u mod total``; otherwise retry with the message ``"c:n:1"``, then
   ``"c:n:2"``… (a retry happens with probability < total/2²⁵⁶: never in practice).
4. The table lists entries in the series' published order with integer weights
   (only entries of weight > 0); the drawn entry is the first whose cumulative
   weight exceeds the roll.

:func:`draw_entry` applies the pity, stock and duplicate rules of
:class:`economy.boxes.Series` to pick the table and then steps 2–4; the draw rule
(``mechanics.boxes``) and the simulator (``economy.simulate``) both call it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from economy.boxes import Series, Table
from economy.errors import InvalidInput, SeriesExhausted

SEED_BYTES: Final = 32
CLIENT_SEED_MAX: Final = 64
_CLIENT_SEED_RE: Final = re.compile(r"[\x20-\x39\x3b-\x7e]{0,64}")
"""Printable ASCII except ``:`` (the separator of the HMAC message)."""
_HEX_SEED_RE: Final = re.compile(r"[0-9a-f]{64}")


def check_server_seed(seed: str) -> bytes:
    """The key bytes of a hex server seed; raises :class:`InvalidInput` if malformed."""
    if not _HEX_SEED_RE.fullmatch(seed):
        raise InvalidInput("a server seed is 64 lowercase hex characters", field="server_seed")
    return bytes.fromhex(seed)


def check_client_seed(seed: str) -> str:
    """``seed`` if it is 0–64 printable ASCII characters without ``:``."""
    if not _CLIENT_SEED_RE.fullmatch(seed):
        raise InvalidInput("client_seed must be 0-64 printable ASCII characters without ':'",
                           field="client_seed")
    return seed


def seed_hash(server_seed: str) -> str:
    """The published commitment: hex SHA-256 of the seed's 32 bytes."""
    return hashlib.sha256(check_server_seed(server_seed)).hexdigest()


def roll(key: bytes, client_seed: str, nonce: int, total: int, limit: int | None = None) -> int:
    """A uniform integer in ``[0, total)`` from HMAC-SHA256(key, "client_seed:nonce")."""
    if limit is None:
        limit = (1 << 256) - (1 << 256) % total
    u = int.from_bytes(hmac.digest(key, f"{client_seed}:{nonce}".encode(), "sha256"), "big")
    retry = 0
    while u >= limit:
        retry += 1
        msg = f"{client_seed}:{nonce}:{retry}".encode()
        u = int.from_bytes(hmac.digest(key, msg, "sha256"), "big")
    return u % total


def pick(table: Table, r: int) -> int:
    """The entry index whose cumulative-weight interval holds the roll ``r``."""
    return table.ids[bisect_right(table.cum, r)]


@dataclass(frozen=True)
class Verified:
    """What :func:`verify_draw` recomputes."""

    item: str
    roll: int
    total: int


def verify_draw(server_seed: str, client_seed: str, nonce: int,
                table: Sequence[tuple[str, int]]) -> Verified:
    """Recompute one draw from the revealed seed and the table ``[(item, weight), …]``.

    ``table`` is the effective table of that draw in published order (a draw
    record names it; :func:`record_table` rebuilds it from a series).
    """
    key = check_server_seed(server_seed)
    pairs = [(i, w) for i, (_, w) in enumerate(table)]
    built = Table.of(pairs)
    if built is None:
        raise InvalidInput("the table has no weight", field="table")
    r = roll(key, client_seed, nonce, built.total, built.limit)
    return Verified(table[pick(built, r)][0], r, built.total)


# ---------------------------------------------------------------- the draw step


class Step(NamedTuple):
    """One resolved draw: the entry and everything needed to verify it.

    A named tuple rather than a dataclass: the simulator makes a million of them.
    """

    entry: int
    roll: int
    total: int
    forced_rank: int
    level: int
    out: frozenset[int]
    excluded: frozenset[int]


def draw_entry(series: Series, key: bytes, client_seed: str, nonce: int, *, hard: int,
               soft: int, ten_needed: bool, out: frozenset[int],
               blocked: frozenset[int], skipped: frozenset[int]) -> Step:
    """Draw one entry of ``series`` with the player's pity counters before the draw.

    ``out``: limited prizes out of stock (their weight goes to the fallback).
    ``blocked``: entries the player may not get (max copies, inventory full).
    ``skipped``: entries skipped by no-repeat-until-complete; dropped again if
    that leaves nothing to draw. A guarantee (hard pity, the 10-draw's) that
    ``blocked`` leaves nothing to meet gives way, for the draw, to the lower one or
    to none (the record's ``forced`` is then null). Raises :class:`SeriesExhausted`
    when even the blocked-only table without a guarantee is empty.
    """
    forced = series.forced_rank(hard, ten_needed)
    level = series.soft_level(soft)
    table, excluded = _table(series, forced, level, out, blocked, skipped)
    if table is None and forced >= 0:
        # every entry of the guaranteed tiers is blocked (max copies reached, the
        # inventory item full): the guarantee cannot be met. Refusing would dead-end the
        # player for good (the hard counter never resets, so every later draw is forced
        # the same way) while the series still has entries they may get. Fall back to
        # the other, lower guarantee if there is one, else to none.
        lower = {series.forced_rank(hard, False),  # hard pity's alone
                 series.forced_rank(-1, ten_needed),  # the 10-draw's alone (within ≥ 1)
                 -1}
        for rank in sorted((r for r in lower if r < forced), reverse=True):
            forced = rank
            table, excluded = _table(series, forced, level, out, blocked, skipped)
            if table is not None:
                break
    if table is None:
        raise SeriesExhausted(series.id)
    r = roll(key, client_seed, nonce, table.total, table.limit)
    return Step(pick(table, r), r, table.total, forced, level, out, excluded)


def _table(series: Series, forced: int, level: int, out: frozenset[int],
           blocked: frozenset[int], skipped: frozenset[int]
           ) -> tuple[Table | None, frozenset[int]]:
    """The table without ``blocked`` and ``skipped``, or without ``blocked`` alone when
    no-repeat would leave nothing; with the entries it excludes."""
    excluded = blocked | skipped if skipped else blocked
    table = series.table(forced, level, out, excluded)
    if table is None and skipped:
        excluded = blocked
        table = series.table(forced, level, out, excluded)
    return table, excluded


def out_of_stock(series: Series, stock_left: Mapping[str, int]) -> frozenset[int]:
    """Indices of limited prizes with no stock left (a prize not in the view counts as out)."""
    return frozenset(i for i, e in enumerate(series.entries)
                     if e.prize is not None and stock_left.get(e.id, 0) <= 0)


def record_table(series: Series, record: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The effective table of a draw record (the ``forced``/``level``/``out``/``excluded``
    fields that :func:`mechanics.boxes.draw` writes), as ``[(item, weight), …]``."""
    forced = series.tiers[record["forced"]].rank if record["forced"] else -1
    out = frozenset(series.index[i] for i in record["out"])
    excluded = frozenset(series.index[i] for i in record["excluded"])
    table = series.table(forced, record["level"], out, excluded)
    if table is None:
        raise InvalidInput("the record's table has no weight", field="record")
    return [(series.entries[i].id, w) for i, w in zip(table.ids, table.weights, strict=True)]


def verify_record(series: Series, record: Mapping[str, Any], server_seed: str) -> bool:
    """True when the revealed ``server_seed`` reproduces ``record`` (hash, roll and item)."""
    if seed_hash(server_seed) != record["seed_hash"] or series.table_hash != record["table"]:
        return False
    v = verify_draw(server_seed, record["client_seed"], record["nonce"],
                    record_table(series, record))
    return bool(v.item == record["item"] and v.roll == record["roll"]
                and v.total == record["total"])
