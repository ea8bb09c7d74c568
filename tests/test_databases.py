"""The test databases themselves: each test gets the migrated schema, whatever the last one did."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.database import head_revision
from tests.conftest import POSTGRES_URL, Databases, _postgres_url_for_this_worker

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="SUPPORTBOT_TEST_DATABASE_URL not set")


async def _run(url: str, *statements: str) -> list[object]:
    database = create_async_engine(url)
    try:
        async with database.begin() as connection:
            results = [await connection.execute(text(s)) for s in statements]
            return [r.scalar() if r.returns_rows else None for r in results]
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    "change",
    [
        (
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; END $$"
            " LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON deliveries"
            " FOR EACH ROW EXECUTE FUNCTION refuse()",
        ),
        ("ALTER TABLE deliveries ADD COLUMN note text",),
        ("DROP INDEX ix_escalations_reping_at",),
        ("UPDATE alembic_version SET version_num = '0001'",),
        ("DROP TABLE alembic_version",),
    ],
)
async def test_a_schema_a_test_changed_is_rebuilt_for_the_next(
    databases: Databases, change: tuple[str, ...]
) -> None:
    assert POSTGRES_URL is not None
    url = await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))
    await _run(url, "INSERT INTO deliveries VALUES ('test', 'm1', now())", *change)

    assert await databases.postgres(url) == url
    [rows, triggers, notes, index] = await _run(
        url,
        "SELECT count(*) FROM deliveries",
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'refuse'",
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'",
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_escalations_reping_at'",
    )
    assert (rows, triggers, notes, index) == (0, 0, 0, 1)
    [version] = await _run(url, "SELECT version_num FROM alembic_version")
    assert version == head_revision()
