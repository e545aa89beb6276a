"""ledger: by_shopper (the row's commit is the shopper's own action); players:
first_played_at (when the shopper first acted themselves, NULL while they have not)

Analytics count only a shopper's own actions, not an order, a merchant's grant or a
sweep made for them. Existing rows cannot tell: every ledger row is taken as the
shopper's (the column's default) and every player as having played since its creation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"


def upgrade() -> None:
    # A constant default: no table rewrite on PostgreSQL (11+), a plain ADD COLUMN on SQLite.
    op.add_column("ledger", sa.Column("by_shopper", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.add_column("players", sa.Column("first_played_at", sa.BigInteger(), nullable=True))
    players = sa.table("players", sa.column("created_at"), sa.column("first_played_at"))
    op.execute(players.update().values(first_played_at=players.c.created_at))


def downgrade() -> None:
    with op.batch_alter_table("players") as batch:
        batch.drop_column("first_played_at")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("by_shopper")
