"""responses: request hash, and an index by player and Idempotency-Key

A player read through from SQL (evicted, or Redis lost its data) brings its keys of the
last day back into Redis, so that a retry acknowledged before the loss is replayed, not
applied again; the request hash tells such a retry from another request under the key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=False,
                                      server_default=""))
        batch_op.create_index(
            batch_op.f("ix_responses_merchant_id_game_id_user_id_idem_key"),
            ["merchant_id", "game_id", "user_id", "idem_key"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_responses_merchant_id_game_id_user_id_idem_key"))
        batch_op.drop_column("request_hash")
