"""Feedback and satisfaction: 👍/👎 on answers, "Did we solve it?" on escalations, and what
``supportbot stats`` reads (escalation causes and times, fallback causes, "I don't know" answers)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.Integer(),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=100), nullable=False),
        sa.Column("rating", sa.String(length=10), nullable=False),
        sa.Column("comment", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("message_id", "user_id", name="uq_feedback_message_user"),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    with op.batch_alter_table("escalations") as table:
        table.add_column(sa.Column("cause", sa.String(length=30), nullable=True))
        table.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
        table.add_column(sa.Column("closed_at", sa.DateTime(), nullable=True))
        table.add_column(sa.Column("solved_asked_at", sa.DateTime(), nullable=True))
        table.add_column(sa.Column("solved", sa.Boolean(), nullable=True))
    with op.batch_alter_table("messages") as table:
        table.add_column(sa.Column("fallback", sa.String(length=30), nullable=True))
        table.add_column(
            sa.Column("dont_know", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("model", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as table:
        table.drop_column("model")
        table.drop_column("dont_know")
        table.drop_column("fallback")
    with op.batch_alter_table("escalations") as table:
        table.drop_column("solved")
        table.drop_column("solved_asked_at")
        table.drop_column("closed_at")
        table.drop_column("claimed_at")
        table.drop_column("cause")
    op.drop_table("feedback")
