"""order_events: refund_id, in the primary key (one row per partial refund of an order)

A partial refund (``ingestOrder`` with ``refund_id``) records what it returned in a row
of its own, so GMV nets every refund of an order once. Existing rows are a paid order
or a whole refund: refund_id ''.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"

KEY = ["merchant_id", "game_id", "user_id", "order_id", "kind"]
PK = "pk_order_events"

_SAME_ORDER = ("w.merchant_id = p.merchant_id AND w.game_id = p.game_id "
               "AND w.user_id = p.user_id AND w.order_id = p.order_id")


def upgrade() -> None:
    # SQLite rebuilds the table (its primary key cannot be altered); PostgreSQL adds the
    # column without a rewrite (a constant default) and rebuilds the key's index.
    with op.batch_alter_table("order_events") as batch:
        batch.add_column(sa.Column("refund_id", sa.String(64), nullable=False,
                                   server_default=""))
        batch.drop_constraint(PK, type_="primary")
        batch.create_primary_key(PK, [*KEY, "refund_id"])


def downgrade() -> None:
    # An order's partial refunds become one refund row again (its whole refund's, if
    # it had one), so GMV still nets them; then the key can lose refund_id.
    op.execute(sa.text(
        "UPDATE order_events AS w SET amount_fen = amount_fen + (SELECT SUM(p.amount_fen) "
        f"FROM order_events p WHERE {_SAME_ORDER} AND p.kind = 'refunded' "
        "AND p.refund_id <> '') WHERE w.kind = 'refunded' AND w.refund_id = '' AND EXISTS "
        f"(SELECT 1 FROM order_events p WHERE {_SAME_ORDER} AND p.kind = 'refunded' "
        "AND p.refund_id <> '')"))
    op.execute(sa.text(
        "INSERT INTO order_events (merchant_id, game_id, user_id, order_id, kind, "
        "amount_fen, commit_id, seq, ts_ms, refund_id) SELECT p.merchant_id, p.game_id, "
        "p.user_id, p.order_id, 'refunded', SUM(p.amount_fen), MIN(p.commit_id), 0, "
        "MIN(p.ts_ms), '' FROM order_events p WHERE p.kind = 'refunded' "
        "AND p.refund_id <> '' AND NOT EXISTS (SELECT 1 FROM order_events w WHERE "
        f"{_SAME_ORDER} AND w.kind = 'refunded' AND w.refund_id = '') "
        "GROUP BY p.merchant_id, p.game_id, p.user_id, p.order_id"))
    op.execute(sa.text("DELETE FROM order_events WHERE refund_id <> ''"))
    with op.batch_alter_table("order_events") as batch:
        batch.drop_constraint(PK, type_="primary")
        batch.create_primary_key(PK, KEY)
        batch.drop_column("refund_id")
