"""webhook_outbox: events owed to merchants' backends (signed, at least once)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("next_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("merchant_id", "event_key",
                            name=op.f("uq_webhook_outbox_merchant_id_event_key")),
    )
    op.create_index(op.f("ix_webhook_outbox_merchant_id_game_id_id"), "webhook_outbox",
                    ["merchant_id", "game_id", "id"])
    op.create_index(op.f("ix_webhook_outbox_state_next_ms"), "webhook_outbox",
                    ["state", "next_ms"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_outbox_state_next_ms"), table_name="webhook_outbox")
    op.drop_index(op.f("ix_webhook_outbox_merchant_id_game_id_id"), table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
