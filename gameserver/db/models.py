"""SQL schema (SQLAlchemy 2 Core tables): the durable side of petbox.

Redis is the system of record for play state; these tables hold what must
outlive it: merchants, games and their immutable published versions, players
written behind by the persister, and the ledger. The Alembic migrations in
``migrations/`` create exactly this schema.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)

# Explicit constraint names so migrations are identical on SQLite and PostgreSQL.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

merchants = Table(
    "merchants", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("signing_secret", String(128), nullable=False),
    Column("load_test", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

games = Table(
    "games", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("live_version", Integer, nullable=True),
    Column("draft", JSON, nullable=True),
    Column("draft_updated_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "game_id"),
)

game_versions = Table(
    "game_versions", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("config", JSON, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("note", String(200), nullable=False, default=""),
    PrimaryKeyConstraint("merchant_id", "game_id", "version"),
)

players = Table(
    "players", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("flushed_at", BigInteger, nullable=False),
    Column("first_played_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("merchant_id", "game_id", "user_id"),
)
"""``first_played_at``: when the shopper first acted themselves (unix s; the state's
``played_at``, or ``created_at`` for a player their own action created), 0 while they
have not (a player an order or a merchant's grant created). NULL is unknown (rows from
before migration 0012, or written by a server from before it): read as ``created_at``,
what every player counted as before."""

ledger = Table(
    "ledger", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("commit_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("player_version", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("before", BigInteger, nullable=False),
    Column("after", BigInteger, nullable=False),
    Column("reason", String(120), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("by_shopper", Boolean, nullable=False, server_default=true()),
    UniqueConstraint("commit_id", "seq"),
    Index(None, "merchant_id", "game_id", "user_id", "id"),
    Index(None, "merchant_id", "game_id", "id"),  # export and analytics walk a game
)
"""``by_shopper``: the row's commit is the shopper's own action, false for one made for
them (an order, a merchant's grant or deduction, a sweep, another shopper's group
filling: ``gameserver.state.keys.by_shopper``). Rows from before migration 0012 are
true."""

responses = Table(
    "responses", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("commit_id", String(32), nullable=False),
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("idem_key", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("request_hash", String(64), nullable=False, server_default=""),
    UniqueConstraint("commit_id"),
    Index(None, "merchant_id", "game_id", "user_id", "idem_key"),
)
"""The first response of every shopper action: what a retry with its Idempotency-Key
gets again. Written behind by the persister from the ledger stream; Redis keeps only a
small record per key (request hash, status, commit id, stream entry) and the store
reads the body here, by the record's commit id, once the entry is drained. One narrow
unique index (the write costs one row per action); ids grow with insertion, which is
what the retention purge walks (kept ``PETBOX_IDEMPOTENCY_TTL``, housekeeping). The
second index serves a player read through from SQL: its keys of the last day come back
into Redis with it, so a retry after Redis lost its data is never applied twice
(``request_hash`` tells a retry from a different request under the same key)."""

meta = Table(
    "meta", metadata,
    Column("key", String(120), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- the value tier: limited prizes that cost the merchant money ------------------------

prize_stock = Table(
    "prize_stock", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("ref", String(80), nullable=False),  # "prize:<id>" or "offer:<id>"
    Column("total", BigInteger, nullable=False),
    Column("taken", BigInteger, nullable=False, default=0),  # pending + confirmed
    Column("granted", BigInteger, nullable=False, default=0),  # confirmed
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "game_id", "ref"),
)
"""The truth of limited stock: ``taken ≤ total`` is enforced by a conditional UPDATE."""

grants = Table(
    "grants", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("ref", String(80), nullable=False),
    Column("kind", String(16), nullable=False),  # coupon | goods | ...
    Column("idem_key", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("commit_id", String(32), nullable=False),
    # pending | confirmed | void; a confirmed hold then ends sold or released (given
    # back to the stock: ValueTier.end_grants)
    Column("status", String(12), nullable=False),
    Column("code", String(64), nullable=False, unique=True),
    Column("detail", JSON, nullable=False),
    Column("reason", String(120), nullable=False),
    Column("shadow", Boolean, nullable=False, default=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("settled_ms", BigInteger, nullable=True),
    Column("redeemed_ms", BigInteger, nullable=True),  # a coupon used (redeemCoupon)
    Column("redeemed_ref", String(64), nullable=True),  # the merchant's order or till ref
    # numbered by the database when redeemed_ms is first set (migration 0014): the export
    # pages redemptions by it
    Column("redeemed_id", BigInteger, nullable=True),
    Index("uq_grants_live_position", "merchant_id", "game_id", "user_id", "idem_key",
          "position", unique=True, sqlite_where=text("status != 'void'"),
          postgresql_where=text("status != 'void'")),
    Index(None, "status", "created_ms"),
    Index(None, "merchant_id", "game_id", "id"),
    Index(None, "commit_id"),
    Index(None, "merchant_id", "game_id", "user_id", "id"),  # a shopper's coupon wallet
    Index(None, "redeemed_id"),
)
"""One row per value grant; a pending row whose action never committed becomes void.
A confirmed coupon is *redeemed* once ``redeemed_ms`` is set (``redeemCoupon``)."""

draws = Table(
    "draws", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("commit_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("series_id", String(64), nullable=False),
    Column("item", String(64), nullable=False),
    Column("rarity", String(64), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("seed_hash", String(64), nullable=False),
    Column("record", JSON, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    UniqueConstraint("commit_id", "seq"),
    Index(None, "merchant_id", "game_id", "user_id", "id"),
    Index(None, "merchant_id", "game_id", "id"),
    Index(None, "ts_ms"),
)
"""Every draw with what is needed to verify it (seed hash, client seed, nonce, table)."""

revealed_seeds = Table(
    "revealed_seeds", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("seed_hash", String(64), nullable=False),
    Column("seed", String(64), nullable=False),
    Column("revealed_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "game_id", "user_id", "seed_hash"),
)

admin_requests = Table(
    "admin_requests", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", String(32), nullable=False),
    Column("idem_key", String(64), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(12), nullable=False),  # running | done
    Column("token", String(32), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("followup", JSON(none_as_null=True), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("claimed_ms", BigInteger, nullable=False),
    UniqueConstraint("merchant_id", "idem_key"),
)
"""The Idempotency-Keys of merchant writes (``gameserver.db.admin_requests``): one row
per (merchant, key), claimed as *running*, then *done* with the first response, in the
same transaction as the write's SQL effect. ``followup`` is a Redis step still owed
after that commit (``setStock``'s gate adjust); ids grow with insertion, which is what
the retention purge walks (kept ``PETBOX_IDEMPOTENCY_TTL``, housekeeping)."""

aggregates = Table(
    "aggregates", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("flushed_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "game_id", "kind", "aggregate_id"),
)
"""State several shoppers share (a poll bucket, a group, a pool, a team), written
behind by the persister's aggregate stage (version-guarded upsert) and read back on a
Redis miss. Same role as ``players`` for one shopper."""

aggregate_ledger = Table(
    "aggregate_ledger", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("commit_id", String(32), nullable=False),
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("idem_key", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    UniqueConstraint("commit_id"),
    Index(None, "merchant_id", "game_id", "kind", "aggregate_id", "user_id", "idem_key"),
    Index(None, "merchant_id", "game_id", "kind", "aggregate_id", "ts_ms"),
)
"""Every commit on an aggregate (a vote, a join), with the shopper, the
Idempotency-Key and the gate's response: the aggregate's history for analytics, and
what makes a gate exactly-once after Redis lost the aggregate (a retry whose key is
here is replayed from ``body``, never applied again). Rows reach SQL in the same
transaction as the aggregate state that includes them."""

experiment_exposures = Table(
    "experiment_exposures", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("experiment", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("arm", String(64), nullable=False),
    Column("game_version", Integer, nullable=False),
    Column("day", Integer, nullable=False),  # local day (ordinal, game time zone): day 0
    Column("commit_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "game_id", "experiment", "user_id"),
)
"""The first commit an experiment arm decided for a shopper (one row per shopper and
experiment; a redelivered commit adds nothing): the exposed cohort of the results."""

experiment_days = Table(
    "experiment_days", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("experiment", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("day", Integer, nullable=False),
    Column("commit_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "game_id", "experiment", "user_id", "day"),
)
"""Local days (ordinal, game time zone, the rules' clock) an exposed shopper acted on:
what experiment retention is computed from."""

order_events = Table(
    "order_events", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("kind", String(12), nullable=False),  # paid | refunded
    Column("amount_fen", BigInteger, nullable=False),
    Column("commit_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=True),  # given by the database (migration 0014)
    PrimaryKeyConstraint("merchant_id", "game_id", "user_id", "order_id", "kind"),
    Index(None, "merchant_id", "game_id", "ts_ms"),
    Index(None, "id", unique=True),
)
"""Orders ``ingestOrder`` applied (paid, and refunded with the paid amount): orders and
GMV in SQL. ``id`` grows with each insert, numbered by the database (an identity on
PostgreSQL, a trigger on SQLite), never by the writer: the export pages by it."""

order_refunds = Table(
    "order_refunds", metadata,
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("refund_id", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("commit_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=True),  # given by the database (migration 0014)
    PrimaryKeyConstraint("merchant_id", "game_id", "user_id", "order_id", "refund_id"),
    Index(None, "id", unique=True),
)
"""Partial refunds (``ingestOrder`` with ``refund_id``, migration 0013) of orders
``order_events`` has paid: what each returned, one row each; a whole refund keeps its
``order_events`` row (with what they left). A table of its own, so ``order_events``'
key (and the statements of a release before it) stay as they were."""

webhook_outbox = Table(
    "webhook_outbox", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", String(32), nullable=False),
    Column("game_id", String(64), nullable=False),
    Column("event", String(64), nullable=False),
    Column("event_key", String(128), nullable=False),
    Column("data", Text, nullable=False),
    Column("state", String(12), nullable=False),  # pending | delivered | failed
    Column("tries", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("next_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger, nullable=True),
    UniqueConstraint("merchant_id", "event_key"),
    Index(None, "state", "next_ms"),
    Index(None, "merchant_id", "game_id", "id"),
)
"""Events owed to merchants' backends (``gameserver.jobs.webhooks``): one row per (merchant,
key), so an event emitted twice is stored once; the deliverer walks pending rows by
``next_ms`` and marks them delivered or failed."""
