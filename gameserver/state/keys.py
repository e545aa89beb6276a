"""Every Redis key petbox uses, and its TTL, built in one place.

All keys of one player carry the hash tag of its logical shard (``{s<N>}``), and
so do that shard's dirty set, active set, ledger stream and epoch key: a commit
script touches one slot and runs unchanged on one Redis or on Redis Cluster.

Identifiers are restricted (see the ``*_RE`` patterns) so that no id can contain
``:``, ``{`` or ``}`` and make two keys collide.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import zlib
from binascii import crc_hqx
from dataclasses import dataclass

MERCHANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
GAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
USER_RE = re.compile(r"[A-Za-z0-9_.@=+-]{1,128}")
IDEMPOTENCY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,15}")
AGGREGATE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

SOURCE_RE = re.compile(r"[a-z]{1,12}")
KEY_MAX = 64
"""The longest player Idempotency-Key: what every ``idem_key`` column in SQL holds
(``responses``, ``grants``, ``aggregate_ledger``)."""

PENDING_TTL_MS = 30_000
"""An in-flight idempotency marker dies after this if its server crashed."""


DEFAULT_SHARDS = 16
"""Logical shards of a new deployment (``PETBOX_SHARDS``). A shard is one hash tag, so
one Redis Cluster slot: the count bounds how evenly shards (and their players) spread
over a cluster's masters. 16 suits one Redis (16 shards spread 6/5/5 over 3 masters);
a Redis Cluster deployment sets ``CLUSTER_SHARDS`` (or more) when it is created, see
docs/deployment.md."""

CLUSTER_SHARDS = 1024
"""The count docs/deployment.md recommends for a Redis Cluster of up to ~100 masters:
3 masters get 341/341/342 shards, 100 masters 9 to 11 each."""

SLOTS = 16384
SPREAD_SHARDS = 1024
"""Shard tags are placed for up to this many shards (see :func:`spread_tag`)."""
_WINDOW = SLOTS // SPREAD_SHARDS
AGGREGATE_OFFSET = 1
"""Aggregate shard i's window is the one after player shard i's (never its slot), so
aggregate shards spread as evenly as player shards do."""


def _bit_reverse(n: int, bits: int) -> int:
    return int(format(n, f"0{bits}b")[::-1], 2)


@functools.cache
def spread_tag(letter: str, shard: int, offset: int = 0) -> str:
    """The hash tag content of shard ``shard`` (``s`` players, ``a`` aggregates): chosen so
    that its Redis Cluster slot lies in window ``bit_reverse(shard)`` of the 1024 windows
    of 16 slots. So the first N shards, for any N up to 1024, sit evenly spaced over the
    slot space, and a cluster's masters (each a contiguous slot range) hold N/M of them
    give or take one, whatever N and M are. A plain ``s<N>`` tag puts slots at CRC
    random: 16 shards fell 6/4/6 on 3 masters. ``offset`` shifts the windows (aggregate
    shards sit halfway between player shards). The search (about 1024 CRCs) runs once
    per shard and process; the tag is the same everywhere, always."""
    window = _bit_reverse(shard % SPREAD_SHARDS, SPREAD_SHARDS.bit_length() - 1)
    low = (window + offset) % SPREAD_SHARDS * _WINDOW
    stem = f"{letter}{shard}.".encode()
    for j in itertools.count():
        # Redis Cluster's HASH_SLOT is CRC16-XMODEM (crc_hqx from 0) of the tag, mod 16384.
        if low <= crc_hqx(b"%s%d" % (stem, j), 0) % SLOTS < low + _WINDOW:
            return f"{letter}{shard}.{j}"
    raise AssertionError("unreachable")  # pragma: no cover


def warm_tags(shards: int) -> None:
    """Place the tags of ``shards`` player and aggregate shards now (a server does it
    before it serves, so no request pays a tag's search)."""
    for shard in range(shards):
        spread_tag("s", shard)
        spread_tag("a", shard, AGGREGATE_OFFSET)


def system_key(source: str, key: str) -> str:
    """The player Idempotency-Key of a commit the shopper did not ask for (a merchant's
    grant, an order webhook, a reminder, a sweep), made from the writer's own key.

    A shopper picks their keys (``IDEMPOTENCY_RE``) in the same per-player space, so a
    writer's key taken as is could be one a shopper already used (the writer gets 422
    ``idempotency_mismatch``) or will use (the shopper does). This is
    ``<source>:<key>``, or ``<source>~<sha-256 of key>`` where that would pass
    :data:`KEY_MAX`: a shopper key has neither ``:`` nor ``~``, and ``source``
    (``SOURCE_RE``) ends at the first of them, so no two writers share a key either.
    (Rules' own keys for other shoppers, ``mechanics.aggregate.OwedOther``, are outside
    the shopper alphabet too: ``.`` and ``:`` after a name with ``-``.)"""
    if not SOURCE_RE.fullmatch(source):
        raise ValueError(f"bad key source {source!r}")
    plain = f"{source}:{key}"
    if len(plain) <= KEY_MAX:
        return plain
    digest = hashlib.sha256(key.encode()).hexdigest()[:KEY_MAX - len(source) - 1]
    return f"{source}~{digest}"


NOT_SHOPPER_MARKS = (":", "~", ".")
"""Every key a shopper did not send has one of these (:func:`system_key`, the rules'
keys for other shoppers, a shared play's own keys such as a group's expiry), no shopper
key has any (``IDEMPOTENCY_RE``): what SQL, which has no portable regex, filters on
where :func:`by_shopper` cannot run (the shared plays' ledger, in analytics)."""


def by_shopper(key: str) -> bool:
    """Whether a player commit under Idempotency-Key ``key`` is the shopper's own: a key
    a shopper can send (``IDEMPOTENCY_RE``). Every other writer commits under a key
    outside that alphabet, or it could meet one of the shopper's keys: :func:`system_key`
    (an order, a merchant's grant or deduction, a reminder, a sweep, a seed commitment
    or an arm's exposure made for a read) and the rules' keys for other shoppers
    (``mechanics.aggregate.OwedOther``: a group's reward or refund, an assist's). So
    the key, which the commit's ledger entry carries, also says who made the commit:
    what analytics count as the shopper's activity (docs/api.md, ``getAnalytics``)."""
    return IDEMPOTENCY_RE.fullmatch(key) is not None


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


def aggregate_shard_of(merchant: str, game: str, kind: str, aggregate: str,
                       shards: int) -> int:
    """Stable shard of an aggregate: its own, from its own name (never a shopper's)."""
    return zlib.crc32(f"{merchant}\n{game}\n{kind}\n{aggregate}".encode()) % shards


@dataclass(frozen=True)
class AggregateRef:
    """State several shoppers share (a group, a pool, a poll or one of its buckets, a
    team): merchant, game, kind and id, and the aggregate shard that holds it.

    Aggregate shards have tags of their own (``{a<N>.<j>}``; players' are ``{s<N>.<j>}``,
    see :func:`spread_tag`): a script touches an aggregate's slot or a shopper's, never
    both (the two-commit protocol, docs/architecture.md)."""

    merchant: str
    game: str
    kind: str
    id: str
    shard: int

    @property
    def member(self) -> str:
        """The aggregate's name inside its shard's dirty, active and owed sets."""
        return f"{self.merchant}:{self.game}:{self.kind}:{self.id}"

    @classmethod
    def of(cls, merchant: str, game: str, kind: str, aggregate: str,
           shards: int) -> AggregateRef:
        return cls(merchant, game, kind, aggregate,
                   aggregate_shard_of(merchant, game, kind, aggregate, shards))


@dataclass(frozen=True)
class Keys:
    """Key builders under one prefix (``pb`` for real data, ``pbs`` for shadow traffic)."""

    prefix: str = "pb"

    def tag(self, shard: int) -> str:
        """The hash tag of a player shard (its slot spread: :func:`spread_tag`)."""
        return f"{self.prefix}:{{{spread_tag('s', shard)}}}"

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

    def ledger_parked(self, shard: int) -> str:
        """Stream of the shard's ledger entries a persister could not decode (e.g. a
        newer release's, read by an older persister while a deployment rolls): parked
        with their fields and their original id (field ``parked_id``), retried every
        pass (gameserver/persister/parked.py). Same hash tag as :meth:`ledger`."""
        return f"{self.tag(shard)}:ledger:parked"

    def gate_tag(self, merchant: str, game: str, bucket: int = 0, buckets: int = 1) -> str:
        """The hash tag of one bucket of a game's stock gate: with ``buckets`` > 1 each
        bucket has its own slot (``stockgate.py``); one bucket keeps the plain tag."""
        suffix = f":b{bucket}.{buckets}" if buckets > 1 else ""
        return f"{self.prefix}:{{g:{merchant}:{game}{suffix}}}"

    def stock(self, merchant: str, game: str, bucket: int = 0, buckets: int = 1) -> str:
        """HASH ``_epoch`` + limited ref → units left: the fast gate in front of SQL stock
        (one bucket of it).

        Tagged per game and bucket, not per shard: every player of the game reserves
        in one of the game's buckets."""
        return f"{self.gate_tag(merchant, game, bucket, buckets)}:stock"

    def holds(self, merchant: str, game: str, bucket: int = 0, buckets: int = 1) -> str:
        """ZSET of the bucket's reservations not yet settled against SQL (member: hold
        id, epoch and units; score: deadline in ms). Beside the bucket, in its slot."""
        return f"{self.gate_tag(merchant, game, bucket, buckets)}:holds"

    def stock_change(self, merchant: str, game: str, key: str, bucket: int = 0,
                     buckets: int = 1) -> str:
        """STRING: what a ``setStock`` (merchant Idempotency-Key ``key``) applied to one
        bucket, and to which epoch; beside the bucket (same slot), so the adjust and this
        mark are one script. Expires with the key's lifetime."""
        return f"{self.gate_tag(merchant, game, bucket, buckets)}:stockchg:{key}"

    def stock_pay(self, merchant: str, game: str, token: str, bucket: int = 0,
                  buckets: int = 1) -> str:
        """STRING ``ok``/``void``: whether the receiving bucket got the units of move
        ``token`` (another bucket's units paying what this one owes, ``stockgate.py``);
        beside the receiving bucket (same slot), written by the script that pays."""
        return f"{self.gate_tag(merchant, game, bucket, buckets)}:stockpay:{token}"

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

    def leaderboard_names(self, merchant: str, game: str, board: str) -> str:
        """HASH user → display name of a board that shows pet names; same tag as the
        board (one slot: read with it), kept to the board's members by the updater."""
        return f"{self.prefix}:{{lb:{merchant}:{game}}}:{board}:names"

    def aggregate_tag(self, shard: int) -> str:
        """The hash tag of an aggregate shard (spread like players', beside them)."""
        return f"{self.prefix}:{{{spread_tag('a', shard, AGGREGATE_OFFSET)}}}"

    def aggregate(self, ref: AggregateRef) -> str:
        """HASH ``v`` version, ``s`` msgpack state, ``f`` version SQL holds."""
        return f"{self.aggregate_tag(ref.shard)}:g:{ref.member}"

    def aggregate_from_member(self, shard: int, member: str) -> str:
        return f"{self.aggregate_tag(shard)}:g:{member}"

    def aggregate_idempotency(self, ref: AggregateRef, user: str, key: str) -> str:
        """HASH of one shopper's Idempotency-Key at the aggregate (the gate's record):
        scoped by user, since two shoppers may pick the same key."""
        return f"{self.aggregate_tag(ref.shard)}:i:{ref.member}:{user}:{key}"

    def aggregate_dirty(self, shard: int) -> str:
        return f"{self.aggregate_tag(shard)}:dirty"

    def aggregate_active(self, shard: int) -> str:
        return f"{self.aggregate_tag(shard)}:active"

    def aggregate_ledger(self, shard: int) -> str:
        """Stream of the aggregates' committed entries (a vote, a join), drained to SQL."""
        return f"{self.aggregate_tag(shard)}:ledger"

    def aggregate_index(self, merchant: str, game: str, kind: str, name: str) -> str:
        """ZSET of aggregates of one kind by due time (unix s), in a slot of its own: e.g.
        an offer's groups by expiry, for its "join a group" list and its sweep."""
        return f"{self.prefix}:{{x:{merchant}:{game}:{kind}:{name}}}:due"

    def aggregate_indexes(self, kind: str) -> str:
        """SET of the indexes of a kind (``merchant:game:name``) a sweep walks."""
        return f"{self.prefix}:xs:{kind}"

    def lock(self, name: str) -> str:
        """A short mutex (``SET NX PX``, released by its token), e.g. one shopper's
        group-buy actions on one offer, across hosts."""
        return f"{self.prefix}:lock:{name}"

    def owed(self, shard: int) -> str:
        """ZSET ``<member>|<user>|<key>`` → unix ms of the gate commit: shopper-side
        commits a gate recorded and nobody has applied yet (the two-commit protocol)."""
        return f"{self.aggregate_tag(shard)}:owed"

    def owed_records(self, shard: int) -> str:
        """HASH, same fields as :meth:`owed` → msgpack of what the shopper is owed."""
        return f"{self.aggregate_tag(shard)}:owedrec"

    def epoch(self, shard: int) -> str:
        """Written once per shard; its absence after it was seen means Redis lost data."""
        return f"{self.tag(shard)}:epoch"


LEDGER_GROUP = "persister"
"""Consumer group that drains ledger streams."""
