"""Escalation lifecycle: claim, close, re-ping, staff notification; human handoff flags.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:46.939939
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("human_active", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("dont_know_streak", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("customer_id", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("customer_message_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("closed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("reping_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("staff_channel", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("staff_message_id", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("updated_at", sa.DateTime(), nullable=False, server_default=sa.func.now())
        )
        batch_op.create_index(batch_op.f("ix_escalations_reping_at"), ["reping_at"], unique=False)
        batch_op.create_index(
            "ix_escalations_staff_message", ["staff_channel", "staff_message_id"], unique=False
        )
        batch_op.create_index(
            "uq_escalations_live_conversation",
            ["conversation_id"],
            unique=True,
            sqlite_where=sa.text("state IN ('open', 'claimed')"),
            postgresql_where=sa.text("state IN ('open', 'claimed')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_escalations_live_conversation",
            sqlite_where=sa.text("state IN ('open', 'claimed')"),
            postgresql_where=sa.text("state IN ('open', 'claimed')"),
        )
        batch_op.drop_index("ix_escalations_staff_message")
        batch_op.drop_index(batch_op.f("ix_escalations_reping_at"))
        batch_op.drop_column("updated_at")
        batch_op.drop_column("staff_message_id")
        batch_op.drop_column("staff_channel")
        batch_op.drop_column("reping_at")
        batch_op.drop_column("closed_by")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("customer_message_id")
        batch_op.drop_column("customer_id")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("dont_know_streak")
        batch_op.drop_column("human_active")
