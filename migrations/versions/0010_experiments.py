"""experiment_exposures, experiment_days and order_events: experiment cohorts, orders and GMV in SQL
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"


def upgrade() -> None:
    op.create_table(
        "experiment_exposures",
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("arm", sa.String(length=64), nullable=False),
        sa.Column("game_version", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("commit_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "game_id", "experiment", "user_id",
                                name=op.f("pk_experiment_exposures")),
    )
    op.create_table(
        "experiment_days",
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("commit_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "game_id", "experiment", "user_id", "day",
                                name=op.f("pk_experiment_days")),
    )
    op.create_table(
        "order_events",
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("commit_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "game_id", "user_id", "order_id", "kind",
                                name=op.f("pk_order_events")),
    )
    op.create_index(op.f("ix_order_events_merchant_id_game_id_ts_ms"), "order_events",
                    ["merchant_id", "game_id", "ts_ms"])


def downgrade() -> None:
    op.drop_index(op.f("ix_order_events_merchant_id_game_id_ts_ms"), table_name="order_events")
    op.drop_table("order_events")
    op.drop_table("experiment_days")
    op.drop_table("experiment_exposures")
