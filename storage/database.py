"""Engine creation and migrations: SQLite (WAL, busy timeout) by default, or PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, Connection, Engine, event, make_url, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.types import StartError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
SETTING = "SUPPORTBOT_DATABASE_URL"
MIGRATION_LOCK = int.from_bytes(b"supportb")
"""The PostgreSQL advisory lock key that lets one replica at a time migrate a database."""


async def open_database(
    url: str, *, connect_timeout: float = 5.0, command_timeout: float | None = None
) -> AsyncEngine:
    """An engine on ``url`` with the schema at head. Opening one PostgreSQL connection (at start
    and whenever the pool reconnects) may take ``connect_timeout`` seconds, and one statement
    ``command_timeout`` seconds (a server that stops answering fails the turn instead of
    hanging it); the migrations, which may wait for another replica's, have no such limit.

    A URL that cannot be used, or a database that cannot be reached, opened or migrated, is a
    ``StartError``: one sentence naming the setting and the cause, the password redacted.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StartError(
            f"{SETTING} is not a valid URL: use sqlite+aiosqlite:///FILE or "
            "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE."
        ) from None
    shown = _redacted(parsed)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StartError(
            f"{SETTING} ({shown}) names no database file: use sqlite+aiosqlite:///FILE."
        )
    migrator = create_engine(url, connect_timeout=connect_timeout)
    try:
        await _connect(migrator, parsed, shown, connect_timeout)
        try:
            await upgrade(migrator)
        except (OSError, DBAPIError) as exc:
            cause = _cause(exc, parsed)
            raise StartError(f"{SETTING} ({shown}): cannot migrate the database: {cause}") from exc
    finally:
        await migrator.dispose()
    return create_engine(url, connect_timeout=connect_timeout, command_timeout=command_timeout)


async def _connect(database: AsyncEngine, url: URL, shown: str, waited: float) -> None:
    """Open the first connection: the host, credentials, file and options in ``url``."""
    try:
        if url.get_backend_name() == "sqlite" and "uri" not in url.query:
            # aiosqlite leaves its worker thread behind when it cannot open the file, and that
            # thread later reports to a closed event loop (a traceback at exit). Opening the
            # file is local and quick: try it here first (a file: URI is left to aiosqlite).
            sqlite3.connect(url.database).close()
        async with database.connect():
            pass
    except Exception as exc:
        cause = f"no answer within {waited:g} s" if isinstance(exc, TimeoutError) else None
        raise StartError(
            f"{SETTING} ({shown}): cannot connect: {cause or _cause(exc, url)}"
        ) from exc


def _redacted(url: URL) -> str:
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True)


def _cause(exc: Exception, url: URL) -> str:
    """The first line of what went wrong, without the password should a driver repeat it."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    said = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    for secret in (url.password, url.query.get("password")):
        if isinstance(secret, str) and secret:
            said = said.replace(secret, "***")
    return said


def create_engine(
    url: str, *, connect_timeout: float = 5.0, command_timeout: float | None = None
) -> AsyncEngine:
    """An async engine; error messages never carry bound values (customer text)."""
    if not url.startswith("sqlite"):
        # Pre-ping replaces connections PostgreSQL dropped (a restart, a failover) on checkout.
        return create_async_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"timeout": connect_timeout, "command_timeout": command_timeout},
        )
    # One connection: SQLite has one writer anyway, and queueing on the pool is FIFO and
    # event-driven where contending connections would poll the busy handler in sleeps.
    engine = create_async_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)
    _tune_sqlite(engine.sync_engine)
    return engine


def sqlite_thread_engine(url: URL) -> Engine:
    """A synchronous engine on the SQLite file of ``url``, tuned like ``create_engine``'s, for
    work that runs whole in one worker thread (see ``storage.repository``)."""
    engine = create_sync_engine(
        url.set(drivername="sqlite"),
        pool_size=1,
        max_overflow=0,
        hide_parameters=True,
        connect_args={"check_same_thread": False},
    )
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    # Bolt's listeners and discord.py's loop write at the same time. WAL lets readers run beside
    # the writer. sqlite3 opens a transaction with BEGIN IMMEDIATE before a transaction's first
    # write, taking the write lock up front, so a transaction never has to upgrade a read lock
    # (which fails at once with "database is locked" instead of waiting); the reads before it
    # (and every read-only transaction) run on their own, holding no lock. Left to the driver,
    # the BEGIN costs no round trip to aiosqlite's thread of its own.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = "IMMEDIATE"
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


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
    """Apply every pending Alembic migration on ``engine``; a schema at head is only read.

    On PostgreSQL one replica at a time migrates (an advisory lock); the others wait for it,
    then find the schema at head.
    """
    async with engine.connect() as connection:
        if await _at_head(connection):
            return
        async with _migration_lock(connection):
            if await _at_head(connection):
                return
            async with connection.begin():
                await connection.run_sync(_migrate)


async def _at_head(connection: AsyncConnection) -> bool:
    try:
        return await connection.run_sync(_current_revisions) == {head_revision()}
    finally:
        await connection.rollback()


@asynccontextmanager
async def _migration_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    """Hold PostgreSQL's migration lock on ``connection`` (SQLite's write lock does the same)."""
    if connection.dialect.name != "postgresql":
        yield
        return
    # A session lock, not a transaction's: it holds across whatever transactions Alembic uses.
    await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    await connection.commit()
    try:
        yield
    except BaseException:
        # Closing the session releases its lock, whatever state the failure left it in.
        await connection.invalidate()
        raise
    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    await connection.commit()


def _migrate(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revisions(connection: Connection) -> set[str]:
    # One query instead of reflecting the catalog first: a missing table (an empty
    # database) raises, and means "not migrated". Any other problem resurfaces in Alembic.
    try:
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except (OperationalError, ProgrammingError):
        return set()
