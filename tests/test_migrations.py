"""Migrations: the schema's defaults hold whatever the database server's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.database import upgrade


async def test_default_updated_at_is_utc_on_a_server_in_another_zone(database_url: str) -> None:
    # Tokyo is UTC+9 all year, so a default in local time would be nine hours off.
    if database_url.startswith("postgresql"):
        connect_args = {"server_settings": {"TimeZone": "Asia/Tokyo"}}
    else:
        connect_args = {}
    database = create_async_engine(database_url, connect_args=connect_args)
    try:
        await upgrade(database)
        async with database.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO conversations (key, platform, customer_id, state, window_start,"
                    " next_seq, created_at, updated_at) VALUES ('test:T:C:-', 'test', 'U1', 'open',"
                    " 0, 0, :now, :now)"
                ),
                {"now": datetime(2026, 1, 1)},
            )
            # updated_at is left to its default, as any writer other than the ORM would.
            await connection.execute(
                text(
                    "INSERT INTO escalations (conversation_id, reason, summary, state, created_at)"
                    " SELECT id, 'r', 's', 'open', :now FROM conversations"
                ),
                {"now": datetime(2026, 1, 1)},
            )
            stored = (await connection.execute(text("SELECT updated_at FROM escalations"))).one()[0]
    finally:
        await database.dispose()

    if isinstance(stored, str):  # SQLite hands DEFAULT CURRENT_TIMESTAMP back as text
        stored = datetime.fromisoformat(stored)
    assert abs(stored - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)
