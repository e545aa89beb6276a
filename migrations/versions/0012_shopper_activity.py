"""ledger: by_shopper (the row's commit is the shopper's own action); players:
first_played_at (when the shopper first acted themselves; 0 while they have not)

Analytics count only a shopper's own actions, not an order, a merchant's grant or a
sweep made for them. Existing rows cannot tell: every ledger row is taken as the
shopper's (the column's default), and a player row with no ``first_played_at`` (NULL:
every row from before this migration, and rows a server from before it writes while a
deployment rolls) as playing since its creation. No row is rewritten: both columns are
added with a constant or no default, which neither PostgreSQL (11+) nor SQLite copies
the table for, so the migration holds its locks for moments whatever the tables' size.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"


def upgrade() -> None:
    op.add_column("ledger", sa.Column("by_shopper", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.add_column("players", sa.Column("first_played_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("players") as batch:
        batch.drop_column("first_played_at")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("by_shopper")
