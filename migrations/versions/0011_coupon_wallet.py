"""grants: coupon redemption (redeemed_ms, redeemed_ref) and a per-shopper index for
the coupon wallet (listMyCoupons)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"

INDEX = "ix_grants_merchant_id_game_id_user_id_id"


def upgrade() -> None:
    op.add_column("grants", sa.Column("redeemed_ms", sa.BigInteger(), nullable=True))
    op.add_column("grants", sa.Column("redeemed_ref", sa.String(64), nullable=True))
    op.create_index(op.f(INDEX), "grants", ["merchant_id", "game_id", "user_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f(INDEX), table_name="grants")
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("redeemed_ref")
        batch.drop_column("redeemed_ms")
