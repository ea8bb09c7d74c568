"""Migrations: the schema's defaults hold whatever the database server's time zone, and
replicas starting together migrate a database once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.database import (
    MIGRATION_LOCK,
    alembic_config,
    create_engine,
    head_revision,
    upgrade,
)
from tests.conftest import POSTGRES_URL, migrate


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


def test_head_revision_from_file_names_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == scripts.get_current_head()
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_")


async def test_upgrade_migrates_an_empty_database_and_then_only_reads_it(tmp_path: Path) -> None:
    database = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    try:
        await upgrade(database)
        async with database.begin() as connection:
            versions = await connection.scalars(text("SELECT version_num FROM alembic_version"))
            assert list(versions) == [head_revision()]
            # Pretend an older schema: the next upgrade must run Alembic, which stops at a
            # revision it does not know instead of skipping.
            await connection.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
        with pytest.raises(Exception, match="zzzz"):
            await upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    """A freshly created, empty PostgreSQL database of this test's own, dropped afterwards."""
    if POSTGRES_URL is None:
        pytest.skip("SUPPORTBOT_TEST_DATABASE_URL not set")
    server = make_url(POSTGRES_URL).set(drivername="postgresql")
    name = f"supportbot_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _revisions(url: str) -> list[str]:
    database = create_engine(url)
    try:
        async with database.connect() as connection:
            return list(await connection.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        await database.dispose()


@pytest.mark.parametrize("attempt", range(3))
async def test_replicas_starting_together_on_an_empty_postgresql_all_migrate_it(
    empty_postgres: str, attempt: int
) -> None:
    # Each replica has an engine of its own; one migrates while the others wait, then find
    # the schema at head. (In one process, unserialised runs do not even fail cleanly: they
    # share Alembic's process-wide context and stall each other, hence the bound.)
    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *(migrate(empty_postgres) for _ in range(4)), return_exceptions=True
        )
    assert results == [None] * 4
    assert await _revisions(empty_postgres) == [head_revision()]


async def test_a_failed_migration_on_postgresql_leaves_the_lock_free(empty_postgres: str) -> None:
    await migrate(empty_postgres)
    database = create_engine(empty_postgres)
    try:
        async with database.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
        with pytest.raises(Exception, match="zzzz"):
            await upgrade(database)
        # The engine is still open, its pool too: another replica can take the lock at once.
        other = await asyncpg.connect(empty_postgres.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK)
        finally:
            await other.close()
    finally:
        await database.dispose()
