"""Actions over MCP: proposed writes waiting for their Confirm, and the tool audit log

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _conversation() -> sa.Column:
    return sa.Column(
        "conversation_id",
        sa.Integer(),
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "tool_proposals",
        sa.Column("id", sa.Integer(), primary_key=True),
        _conversation(),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.Column("tool", sa.String(length=130), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("summary", sa.String(length=4000), nullable=False),
        sa.Column("staff_approval", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_tool_proposals_conversation_id", "tool_proposals", ["conversation_id"])
    op.create_table(
        "tool_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        _conversation(),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("tool", sa.String(length=130), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_tool_audit_conversation_id", "tool_audit", ["conversation_id"])
    op.create_index("ix_tool_audit_created_at", "tool_audit", ["created_at"])


def downgrade() -> None:
    op.drop_table("tool_audit")
    op.drop_table("tool_proposals")
