"""Shared fixtures: a fake Claude on 127.0.0.1, a fresh database, and the real engine over both.

Every test that uses ``database_url`` runs on SQLite, and again on PostgreSQL when
``SUPPORTBOT_TEST_DATABASE_URL`` is set (``.ci/run`` sets it). The database comes already
migrated (see ``Databases``); opening a runtime on it finds the schema at head.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner, Result

from bots.app import Runtime, open_runtime
from bots.cli import app
from core.config import DEMO_PERSONA, ClaudeSettings, Persona, Settings
from core.desk import Desk
from core.engine import Engine
from storage.database import create_engine, head_revision, upgrade
from tests.discord_helpers import fake_discord_installed
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack

T = TypeVar("T")
POSTGRES_URL = os.environ.get("SUPPORTBOT_TEST_DATABASE_URL")
_LOCAL = {"127.0.0.1", "localhost", "::1", None}
_real_getaddrinfo = socket.getaddrinfo


def _local_only(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    # Tests fail loudly instead of quietly reaching Slack, Discord or Anthropic.
    if host not in _LOCAL:
        raise OSError(f"tests must not reach the network (tried to resolve {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _local_only


@pytest.fixture(scope="session", autouse=True)
def _no_ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Tests make no TLS connections (see _local_only), yet each Anthropic client would parse
    # the system's CA bundle up front (~40 ms). Pointed at a directory, OpenSSL looks
    # certificates up only during a handshake.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SSL_CERT_FILE", raising=False)
        patch.setenv("SSL_CERT_DIR", str(tmp_path_factory.mktemp("no-ca-certificates")))
        yield


@pytest.fixture
async def fake_claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


class Databases:
    """Migrated databases, built once per session and handed to each test fresh.

    Migrating takes a good part of a second per database; copying a migrated SQLite file or
    emptying PostgreSQL's tables takes milliseconds.
    """

    def __init__(self, directory: Path) -> None:
        self._template = directory / "template.db"
        self._sqlite_ready = False
        self._postgres_ready = False
        self._postgres_schema = ""  # the migrated schema's fingerprint
        # Each test runs in an event loop of its own, so a connection kept for the session
        # lives on a loop of its own too, in a thread.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._reset_connection: asyncpg.Connection | None = None

    def close(self) -> None:
        if self._reset_connection is not None:
            self._in_thread(self._reset_connection.close()).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _in_thread(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    async def sqlite(self, directory: Path) -> str:
        """A copy of the migrated SQLite template in ``directory``."""
        if not self._sqlite_ready:
            await migrate(f"sqlite+aiosqlite:///{self._template}")
            self._sqlite_ready = True
        target = directory / "supportbot.db"
        # Disposing the engine checkpointed the write-ahead log; copy one if it is still there.
        for suffix in ("", "-wal"):
            source = self._template.with_name(self._template.name + suffix)
            if source.exists():
                shutil.copyfile(source, target.with_name(target.name + suffix))
        return f"sqlite+aiosqlite:///{target}"

    async def postgres(self, url: str) -> str:
        """``url`` with the schema at head and every table empty, sequences restarted.

        The schema is rebuilt the first time in a session, and whenever a test changed it
        (another revision, or a trigger, column or index of its own).
        """
        if self._postgres_ready:
            try:
                await asyncio.wrap_future(self._in_thread(self._empty_postgres(url)))
                return url
            except asyncpg.PostgresError:
                pass  # the schema changed (or its version table is gone): rebuilt below
        await _create_database(url)
        database = create_async_engine(url)
        try:
            async with database.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
            await upgrade(database)
            async with database.connect() as connection:
                self._postgres_schema = (await connection.execute(text(_SCHEMA))).scalar_one()
        finally:
            await database.dispose()
        self._postgres_ready = True
        return url

    async def _empty_postgres(self, url: str) -> None:
        # asyncpg directly, one connection for the session and one round trip per test: a
        # new connection, let alone a SQLAlchemy engine's first one, costs more than the reset.
        if self._reset_connection is None:
            dsn = url.replace("postgresql+asyncpg", "postgresql")
            self._reset_connection = await asyncpg.connect(dsn)
        reset = (
            _EMPTY_POSTGRES.replace("{schema}", _SCHEMA)
            .replace("{expected}", self._postgres_schema)
            .replace("{head}", head_revision())
        )
        await self._reset_connection.execute(reset)


# A fingerprint of everything in the public schema: relations and indexes, columns with their
# types and defaults, constraints, triggers and functions.
_SCHEMA = """
SELECT md5(coalesce(string_agg(item, ',' ORDER BY item), '')) FROM (
  SELECT 'r ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(pg_get_indexdef(c.oid), '')
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'a ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' ' || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'k ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 't ' || t.tgname || ' ' || c.relname
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'f ' || p.oid::regprocedure::text
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
) AS schema(item)
"""

# Raises unless the schema is exactly the migrated one (a test may have moved the revision or
# added a trigger of its own), then empties every table (foreign keys unchecked, so the order
# does not matter; that takes a superuser, like the DROP SCHEMA it replaces) and restarts every
# sequence. DELETE, not TRUNCATE: on tables this small it is many times faster.
_EMPTY_POSTGRES = """
DO $$
DECLARE r record;
BEGIN
  IF ({schema}) IS DISTINCT FROM '{expected}'
     OR (SELECT array_agg(version_num) FROM public.alembic_version)
        IS DISTINCT FROM ARRAY['{head}']::varchar[] THEN
    RAISE EXCEPTION 'schema changed';
  END IF;
  SET LOCAL session_replication_role = replica;
  FOR r IN SELECT quote_ident(tablename) AS t FROM pg_tables
           WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
    EXECUTE 'DELETE FROM public.' || r.t;
  END LOOP;
  FOR r IN SELECT quote_ident(sequencename) AS s FROM pg_sequences WHERE schemaname = 'public' LOOP
    PERFORM setval('public.' || r.s, 1, false);
  END LOOP;
END $$;
"""


def _postgres_url_for_this_worker(url: str) -> str:
    """``url``, or under pytest-xdist a database of this worker's own beside it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


async def _create_database(url: str) -> None:
    """Create ``url``'s database if it does not exist (a worker's own, under pytest-xdist)."""
    parsed = make_url(url)
    if parsed.database == make_url(POSTGRES_URL or url).database:
        return
    server = parsed.set(drivername="postgresql", database=make_url(POSTGRES_URL or url).database)
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        found = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not found:
            await connection.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await connection.close()


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the head revision."""
    database = create_engine(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    made = Databases(tmp_path_factory.mktemp("template"))
    yield made
    made.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                POSTGRES_URL is None, reason="SUPPORTBOT_TEST_DATABASE_URL not set"
            ),
        ),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases) -> str:
    """A fresh database for this test, already migrated: SQLite, then PostgreSQL if set."""
    if request.param == "sqlite":
        return await databases.sqlite(tmp_path)
    assert POSTGRES_URL is not None
    return await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))


@cache
def _demo_persona() -> Persona:
    # Parsed once: tests change a persona with model_copy(update=...), never in place.
    return Persona.load(DEMO_PERSONA).model_copy(update={"support_hours": None})


def make_settings(
    database_url: str,
    claude_url: str | None,
    *,
    claude: dict[str, object] | None = None,
    **fields: object,
) -> Settings:
    """Settings for a test: no ``.env``, fast retries, and Claude only when given a URL.

    ``claude`` overrides ``ClaudeSettings`` fields, ``fields`` the top-level ones. Support
    hours are off, so replies do not depend on the time of day the suite runs.
    """
    persona = _demo_persona()
    tuning: dict[str, object] = {
        "timeout_seconds": 2.0,
        "max_retries": 1,
        "retry_after_cap_seconds": 1.0,
        **(claude or {}),
    }
    fields = {"health_port": 0} | fields  # never the default port: tests run side by side
    return Settings(
        _env_file=None,
        database_url=database_url,
        persona=persona,
        claude=ClaudeSettings(
            _env_file=None,
            api_key="test-key" if claude_url else None,
            base_url=claude_url,
            **tuning,
        ),
        **fields,
    )


@pytest.fixture
def settings(database_url: str, fake_claude: FakeAnthropic) -> Settings:
    return make_settings(database_url, fake_claude.base_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as opened:
        yield opened


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return runtime.engine


@pytest.fixture
def persona(settings: Settings) -> Persona:
    assert settings.persona is not None
    return settings.persona


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack Web API and Socket Mode server."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A fake Discord gateway and REST, with discord.py pointed at it."""
    async with fake_discord_installed() as fake:
        yield fake


@pytest.fixture
def desk(runtime: Runtime) -> Desk:
    return runtime.desk


OURS = ("ANTHROPIC_", "SUPPORTBOT_", "SLACK_", "DISCORD_")
"""The prefixes of our settings: no test inherits them from the machine's environment."""
Cli = Callable[..., Result]


SUPPORTBOT = str(Path(sys.executable).with_name("supportbot"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def spawn_supportbot(
    tmp_path: Path, *args: str, stdin: bytes, **env: str
) -> tuple[int, bytes, bytes]:
    """Run the real ``supportbot`` command in ``tmp_path``, on a SQLite file there and none of
    our settings from this machine; its exit code, stdout and stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    clean["SUPPORTBOT_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    clean["SUPPORTBOT_HEALTH_PORT"] = "0"
    process = await asyncio.create_subprocess_exec(
        SUPPORTBOT,
        *args,
        cwd=tmp_path,
        env=clean | env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return process.returncode, out, err


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("chat", "-c", "x", stdin="...", ANTHROPIC_API_KEY="...")`` runs one command
    in-process, in ``tmp_path``, on a SQLite file there.

    ``stdin`` may be text or bytes; the runner decodes bytes strictly, as a UTF-8 terminal does.
    """
    for name in list(os.environ):
        if name.startswith(OURS):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.setenv("SUPPORTBOT_HEALTH_PORT", "0")
    runner = CliRunner()

    def run(*args: str, stdin: str | bytes = "", **env: str) -> Result:
        return runner.invoke(app, list(args), input=stdin, env=env)

    return run
