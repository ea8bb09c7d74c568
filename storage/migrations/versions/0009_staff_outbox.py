"""The staff outbox: relays between a DM and its staff thread until the platform took them,
and the escalation's "notice needs re-drawing" mark

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 23:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WAITING = "delivered_at IS NULL AND given_up_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "staff_outbox",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "escalation_id",
            sa.Integer(),
            sa.ForeignKey("escalations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("author_id", sa.String(length=100), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("platform_message_id", sa.String(length=200), nullable=True),
        sa.Column("given_up_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_staff_outbox_escalation_id", "staff_outbox", ["escalation_id"])
    op.create_index(
        "ix_staff_outbox_waiting",
        "staff_outbox",
        ["created_at"],
        sqlite_where=sa.text(_WAITING),
        postgresql_where=sa.text(_WAITING),
    )
    with op.batch_alter_table("escalations") as table:
        table.add_column(sa.Column("redraw_at", sa.DateTime(), nullable=True))
    # The watcher's look for notices to re-draw walks only those.
    op.create_index("ix_escalations_redraw_at", "escalations", ["redraw_at"])


def downgrade() -> None:
    op.drop_index("ix_escalations_redraw_at", table_name="escalations")
    with op.batch_alter_table("escalations") as table:
        table.drop_column("redraw_at")
    op.drop_table("staff_outbox")
