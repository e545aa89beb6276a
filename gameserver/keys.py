"""Every Redis key petbox uses, and its TTL, built in one place.

All keys of one player carry the hash tag of its logical shard (``{s<N>}``), and
so do that shard's dirty set, active set, ledger stream and epoch key: a commit
script touches one slot and runs unchanged on one Redis or on Redis Cluster.

Identifiers are restricted (see the ``*_RE`` patterns) so that no id can contain
``:``, ``{`` or ``}`` and make two keys collide.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

MERCHANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
GAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
USER_RE = re.compile(r"[A-Za-z0-9_.@=+-]{1,128}")
IDEMPOTENCY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

PENDING_TTL_MS = 30_000
"""An in-flight idempotency marker dies after this if its server crashed."""


def shard_of(merchant: str, user: str, shards: int) -> int:
    """Stable shard of a player: the same on every process and every restart."""
    return zlib.crc32(f"{merchant}\n{user}".encode()) % shards


@dataclass(frozen=True)
class PlayerRef:
    """Who a player is: merchant, game and user, and the shard that holds them."""

    merchant: str
    game: str
    user: str
    shard: int

    @property
    def member(self) -> str:
        """The player's name inside its shard's dirty and active sets."""
        return f"{self.merchant}:{self.game}:{self.user}"


@dataclass(frozen=True)
class Keys:
    """Key builders under one prefix (``pb`` for real data, ``pbs`` for shadow traffic)."""

    prefix: str = "pb"

    def tag(self, shard: int) -> str:
        return f"{self.prefix}:{{s{shard}}}"

    def player(self, ref: PlayerRef) -> str:
        return f"{self.tag(ref.shard)}:p:{ref.member}"

    def player_from_member(self, shard: int, member: str) -> str:
        return f"{self.tag(shard)}:p:{member}"

    def idempotency(self, ref: PlayerRef, key: str) -> str:
        return f"{self.tag(ref.shard)}:i:{ref.member}:{key}"

    def dirty(self, shard: int) -> str:
        """ZSET member → unix ms it first became dirty (oldest = persister lag)."""
        return f"{self.tag(shard)}:dirty"

    def active(self, shard: int) -> str:
        """ZSET member → unix ms of its last commit (drives idle eviction)."""
        return f"{self.tag(shard)}:active"

    def ledger(self, shard: int) -> str:
        """Stream of committed ledger entries, drained into SQL by the persister."""
        return f"{self.tag(shard)}:ledger"

    def stock(self, merchant: str, game: str) -> str:
        """HASH ``_epoch`` + limited ref → units left: the fast gate in front of SQL stock.

        Tagged per game, not per shard: every player of the game reserves here."""
        return f"{self.prefix}:{{g:{merchant}:{game}}}:stock"

    def holds(self, merchant: str, game: str) -> str:
        """ZSET of the gate's reservations not yet settled against SQL (member: hold id,
        epoch and units; score: deadline in ms). Beside the gate, in its slot."""
        return f"{self.prefix}:{{g:{merchant}:{game}}}:holds"

    def stock_change(self, merchant: str, game: str, key: str) -> str:
        """STRING: the gate epoch a ``setStock`` (merchant Idempotency-Key ``key``) was
        applied to; beside the gate (same slot), so the adjust and this mark are one
        script. Expires with the key's lifetime."""
        return f"{self.prefix}:{{g:{merchant}:{game}}}:stockchg:{key}"

    def reminders(self, shard: int) -> str:
        """ZSET ``<kind>:<member>`` → unix s the reminder is due: at most one per kind
        and player (a re-schedule just moves the score)."""
        return f"{self.tag(shard)}:rem"

    def reminder_retries(self, shard: int) -> str:
        """HASH ``<kind>:<member>`` → JSON of a reminder whose delivery failed (to retry)."""
        return f"{self.tag(shard)}:rem:retry"

    def leaderboard(self, merchant: str, game: str, board: str) -> str:
        """ZSET user → score of one board: the top of the board, trimmed by the
        leaderboard updater. Tagged per game (written by the persister, read by
        ``getLeaderboard``), never touched by an action's commit."""
        return f"{self.prefix}:{{lb:{merchant}:{game}}}:{board}"

    def epoch(self, shard: int) -> str:
        """Written once per shard; its absence after it was seen means Redis lost data."""
        return f"{self.tag(shard)}:epoch"


LEDGER_GROUP = "persister"
"""Consumer group that drains ledger streams."""
