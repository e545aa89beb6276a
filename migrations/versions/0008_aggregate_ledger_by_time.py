"""aggregate_ledger: index by aggregate and time (the newest commit of an aggregate,
read when it is read back from SQL after Redis lost it)
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"

INDEX = "ix_aggregate_ledger_merchant_id_game_id_kind_aggregate_id_ts_ms"


def upgrade() -> None:
    op.create_index(op.f(INDEX), "aggregate_ledger",
                    ["merchant_id", "game_id", "kind", "aggregate_id", "ts_ms"])


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="aggregate_ledger")
