"""order_refunds: a row per partial refund of an order (``ingestOrder`` with ``refund_id``)

A partial refund records what it returned in a table of its own, so GMV nets every
refund of an order once. ``order_events`` is not touched: its key, and the statements
a host of the release before this one runs against it while a deployment rolls, stay
as they were. Creating an empty table rewrites no row: the migration takes moments.
Going back, an order's partial refunds are folded into its one refund row in
``order_events`` (its whole refund's, if it had one), so GMV still nets them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"

_SAME_ORDER = ("w.merchant_id = p.merchant_id AND w.game_id = p.game_id "
               "AND w.user_id = p.user_id AND w.order_id = p.order_id")


def upgrade() -> None:
    op.create_table(
        "order_refunds",
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("game_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("refund_id", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("commit_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "game_id", "user_id", "order_id",
                                "refund_id", name=op.f("pk_order_refunds")),
    )


def downgrade() -> None:
    op.execute(sa.text(
        "UPDATE order_events AS w SET amount_fen = amount_fen + (SELECT SUM(p.amount_fen) "
        f"FROM order_refunds p WHERE {_SAME_ORDER}) WHERE w.kind = 'refunded' AND EXISTS "
        f"(SELECT 1 FROM order_refunds p WHERE {_SAME_ORDER})"))
    op.execute(sa.text(
        "INSERT INTO order_events (merchant_id, game_id, user_id, order_id, kind, "
        "amount_fen, commit_id, seq, ts_ms) SELECT p.merchant_id, p.game_id, p.user_id, "
        "p.order_id, 'refunded', SUM(p.amount_fen), MIN(p.commit_id), 0, MIN(p.ts_ms) "
        "FROM order_refunds p WHERE NOT EXISTS (SELECT 1 FROM order_events w WHERE "
        f"{_SAME_ORDER} AND w.kind = 'refunded') "
        "GROUP BY p.merchant_id, p.game_id, p.user_id, p.order_id"))
    op.drop_table("order_refunds")
