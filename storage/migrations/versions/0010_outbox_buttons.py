"""The outbox keeps what redraws a late reply's buttons and ping, and gives up a reply that can
never be delivered

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "delivered_at IS NULL AND given_up_at IS NULL"
"""What the watcher's index covers: the rows still waiting for delivery."""


def upgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.add_column(sa.Column("answer_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("proposal_id", sa.Integer(), nullable=True))
        table.add_column(
            sa.Column("offer_person", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("ping", sa.Boolean(), nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("given_up_at", sa.DateTime(), nullable=True))
    _index(WAITING)


def downgrade() -> None:
    _index("delivered_at IS NULL")
    with op.batch_alter_table("outbox") as table:
        table.drop_column("given_up_at")
        table.drop_column("ping")
        table.drop_column("offer_person")
        table.drop_column("proposal_id")
        table.drop_column("answer_id")


def _index(waiting: str) -> None:
    """The watcher's index over the rows still ``waiting`` for delivery, made afresh."""
    op.drop_index("ix_outbox_undelivered", table_name="outbox")
    op.create_index(
        "ix_outbox_undelivered",
        "outbox",
        ["created_at"],
        sqlite_where=sa.text(waiting),
        postgresql_where=sa.text(waiting),
    )
