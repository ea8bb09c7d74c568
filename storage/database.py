"""Engine creation and migrations: SQLite (WAL, busy timeout) by default, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def create_engine(url: str) -> AsyncEngine:
    """An async engine; error messages never carry bound values (customer text)."""
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    # One connection: SQLite has one writer anyway, and queueing on the pool is FIFO and
    # event-driven where contending connections would poll the busy handler in sleeps.
    engine = create_async_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    # Bolt's listeners and discord.py's loop write at the same time. WAL lets readers run beside
    # the writer; BEGIN IMMEDIATE takes the write lock up front, so a transaction never has to
    # upgrade a read lock (which fails at once with "database is locked" instead of waiting).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config() -> Config:
    # Alembic is imported only when there is something to migrate: most starts find the
    # schema at head, and the import is a noticeable part of a CLI command's start-up.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration's revision, read from the file names without importing Alembic.

    Migrations are ``versions/<revision>_<slug>.py`` with zero-padded, increasing revisions
    (``0001``, ``0002``, ...); ``tests/test_migrations.py`` checks this against Alembic.
    """
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("*_*.py"))


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration on ``engine``; a schema at head is only read."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_current_revisions)
    if current == {head_revision()}:
        return

    def run(connection: Connection) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


def _current_revisions(connection: Connection) -> set[str]:
    # One query instead of reflecting the catalog first: a missing table (an empty
    # database) raises, and means "not migrated". Any other problem resurfaces in Alembic.
    try:
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except (OperationalError, ProgrammingError):
        return set()
