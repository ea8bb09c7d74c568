"""escalations.updated_at defaults to UTC on PostgreSQL whatever the server's time zone

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Stored timestamps are naive UTC. On PostgreSQL now() is a timestamptz, and casting it to a
# plain timestamp gives the session's local time, so 0002's default was hours off on a server
# not set to UTC. SQLite's CURRENT_TIMESTAMP is UTC already: its table is left alone (a batch
# alter would copy the whole table to change nothing).
UTC_NOW = sa.text("timezone('utc', now())")


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column("escalations", "updated_at", server_default=UTC_NOW)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column("escalations", "updated_at", server_default=sa.func.now())
