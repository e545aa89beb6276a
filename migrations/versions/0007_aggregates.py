"""aggregates and aggregate_ledger: shared state (polls, groups, pools, teams)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    op.create_table(
        "aggregates",
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("flushed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "game_id", "kind", "aggregate_id",
                                name=op.f("pk_aggregates")),
    )
    op.create_table(
        "aggregate_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("commit_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("idem_key", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregate_ledger")),
        sa.UniqueConstraint("commit_id", name=op.f("uq_aggregate_ledger_commit_id")),
    )
    op.create_index(
        op.f("ix_aggregate_ledger_merchant_id_game_id_kind_aggregate_id_user_id_idem_key"),
        "aggregate_ledger",
        ["merchant_id", "game_id", "kind", "aggregate_id", "user_id", "idem_key"])


def downgrade() -> None:
    op.drop_index(
        op.f("ix_aggregate_ledger_merchant_id_game_id_kind_aggregate_id_user_id_idem_key"),
        table_name="aggregate_ledger")
    op.drop_table("aggregate_ledger")
    op.drop_table("aggregates")
