"""Database trouble: at start one sentence naming the setting (exit code 1, password redacted,
within a connect timeout); at run time the SQL engine finds its way back to PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import make_url
from typer.testing import Result

from bots.app import open_runtime
from bots.health import Health
from core.config import Settings
from core.types import Reply
from tests.conftest import (
    POSTGRES_URL,
    Cli,
    Databases,
    _postgres_url_for_this_worker,
    make_settings,
)
from tests.engine_helpers import message

COMMANDS = [
    ("chat",),
    ("history", "console:local:default:-"),
    ("escalations",),
    ("db", "upgrade"),
    ("run", "slack"),
]
SETTING = "SUPPORTBOT_DATABASE_URL"
needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="no SUPPORTBOT_TEST_DATABASE_URL")

Start = Callable[..., Result]


@pytest.fixture
def start(cli: Cli) -> Start:
    """``start(url, *args)`` runs one command in this process with only ``url`` configured
    (and placeholder Slack tokens, which the database fails before)."""

    def run(url: str, *args: str, **more: str) -> Result:
        placeholders = {"SLACK_BOT_TOKEN": "xoxb-unused", "SLACK_APP_TOKEN": "xapp-unused"}
        return cli(*args, stdin="bye\n", **{SETTING: url}, **placeholders, **more)

    return run


def _said_one_line(result: Result, line: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "no traceback: the CLI handled it"
    assert result.stderr.splitlines() == ["Could not start:", line]
    assert "Traceback" not in result.output


def _server(database: str, *, user: str = "postgres", password: str | None = None) -> str:
    """A URL on the test PostgreSQL server with another database, user or password."""
    assert POSTGRES_URL is not None
    url = make_url(POSTGRES_URL).set(database=database, username=user, password=password)
    return url.render_as_string(hide_password=False)


CASES = [
    pytest.param(
        "postgresql+asyncpg://postgres@127.0.0.1:notaport/x",
        f"{SETTING} is not a valid URL: use sqlite+aiosqlite:///FILE or "
        "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE.",
        id="malformed",
    ),
    pytest.param(
        "sqlite+aiosqlite:////proc/nope/bot.db",
        f"{SETTING} (sqlite+aiosqlite:////proc/nope/bot.db): cannot connect: "
        "unable to open database file",
        id="unwritable-sqlite",
    ),
    pytest.param(
        "postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/x",
        f"{SETTING} (postgresql+asyncpg://nobody:***@127.0.0.1:1/x): cannot connect: "
        "[Errno 111] Connect call failed ('127.0.0.1', 1)",
        id="refused",
    ),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(("url", "line"), CASES)
def test_a_database_that_cannot_be_opened_stops_the_start_in_one_line(
    start: Start, args: tuple[str, ...], url: str, line: str
) -> None:
    result = start(url, *args)
    _said_one_line(result, line)
    assert "hunter2" not in result.output


@needs_postgres
@pytest.mark.parametrize("args", [("db", "upgrade"), ("run", "slack")], ids=" ".join)
def test_postgresql_refusing_the_login_or_database_says_why_without_the_password(
    start: Start, args: tuple[str, ...]
) -> None:
    nobody = _server("x", user="nobody", password="hunter2")
    result = start(nobody, *args)
    shown = nobody.replace("hunter2", "***")
    _said_one_line(result, f'{SETTING} ({shown}): cannot connect: role "nobody" does not exist')
    assert "hunter2" not in result.output

    missing = _server("supportbot_no_such_database")
    _said_one_line(
        start(missing, *args),
        f'{SETTING} ({missing}): cannot connect: database "supportbot_no_such_database" '
        "does not exist",
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are accepted (the kernel's backlog completes the
    handshake) and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener.getsockname()[1]


# ``chat``, ``history``, ``escalations`` and ``run`` open the database through the same
# ``open_runtime``; ``db upgrade`` opens it on its own.
@pytest.mark.parametrize("args", [("db", "upgrade"), ("run", "slack")], ids=" ".join)
def test_an_unresponsive_postgresql_port_fails_within_the_connect_timeout(
    start: Start, silent_port: int, args: tuple[str, ...]
) -> None:
    url = f"postgresql+asyncpg://bot:hunter2@127.0.0.1:{silent_port}/support"
    began = time.monotonic()
    result = start(url, *args, SUPPORTBOT_DATABASE_CONNECT_TIMEOUT_SECONDS="0.5")
    took = time.monotonic() - began

    shown = url.replace("hunter2", "***")
    _said_one_line(result, f"{SETTING} ({shown}): cannot connect: no answer within 0.5 s")
    assert took < 10, f"took {took:.1f} s"


async def _backends(url: str) -> set[int]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return {row["pid"] for row in rows}
    finally:
        await connection.close()


async def _terminate(url: str, pids: set[int]) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        terminated = await connection.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest($1::int[]) pid",
            list(pids),
        )
        assert terminated == len(pids)
    finally:
        await connection.close()


@needs_postgres
async def test_the_bot_reconnects_by_itself_after_postgresql_dropped_its_connections(
    databases: Databases,
) -> None:
    assert POSTGRES_URL is not None
    url = await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))
    settings = make_settings(url, None)
    assert settings.persona is not None
    others = await _backends(url)  # the test databases' own connection, left alone
    async with open_runtime(settings) as runtime:
        first = await runtime.engine.handle(message("How long does a refund take?"))
        assert first is not None and "5–7 business days" in first.text
        ours = await _backends(url) - others
        assert ours, "the runtime keeps a pooled connection"

        # What a PostgreSQL restart or failover does to every open session.
        await _terminate(url, ours)

        second = await runtime.engine.handle(message("Is shipping free?"))
        assert second is not None
        assert second.text != settings.persona.fallbacks.unknown
        turns = await runtime.store.history(message("").key)
    assert [t.text for t in turns if t.role == "user"] == [
        "How long does a refund take?",
        "Is shipping free?",
    ]


class Outage:
    """A TCP relay to PostgreSQL that can go down (every session cut, new ones refused), as a
    restarting or unreachable server does, and come back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.frozen = False
        """Traffic is swallowed both ways, as by a server that stopped answering."""

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for link in self._links:
            link.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection(*self._target)
        self._links |= {writer, upstream}
        await asyncio.gather(self._copy(reader, upstream), self._copy(upstream_reader, writer))
        self._links -= {writer, upstream}

    async def _copy(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if not self.frozen:
                    target.write(data)
                    await target.drain()
        except ConnectionError:
            pass
        finally:
            target.transport.abort()


@dataclass
class Relayed:
    """A fresh PostgreSQL database reached through ``outage``."""

    outage: Outage
    url: str

    def settings(self, **fields: object) -> Settings:
        made = make_settings(self.url, None, **fields)
        assert made.persona is not None
        return made


@pytest.fixture
async def relayed(databases: Databases) -> AsyncIterator[Relayed]:
    assert POSTGRES_URL is not None
    url = make_url(await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL)))
    outage = Outage(url.host or "127.0.0.1", url.port or 5432)
    await outage.up()
    through = url.set(host="127.0.0.1", port=outage.port).render_as_string(hide_password=False)
    try:
        yield Relayed(outage, through)
    finally:
        await outage.down()


@needs_postgres
async def test_while_postgresql_is_down_turns_get_the_fallback_and_then_the_bot_recovers(
    relayed: Relayed,
) -> None:
    settings, outage = relayed.settings(), relayed.outage
    assert settings.persona is not None
    async with open_runtime(settings) as runtime:
        first = await runtime.engine.handle(message("How long does a refund take?"))
        assert first is not None and "5–7 business days" in first.text

        await outage.down()
        began = time.monotonic()
        during = await runtime.engine.handle(message("Is shipping free?"))
        assert during == Reply(settings.persona.fallbacks.unknown)
        assert time.monotonic() - began < 10

        await outage.up()
        after = await runtime.engine.handle(message("How do I return an item?"))
        assert after is not None and "within 30 days" in after.text
        turns = await runtime.store.history(message("").key)
    said = [t.text for t in turns if t.role == "user"]
    assert said[0] == "How long does a refund take?" and said[-1] == "How do I return an item?"


@needs_postgres
async def test_a_postgresql_that_stops_answering_fails_the_turn_instead_of_hanging_it(
    relayed: Relayed,
) -> None:
    outage = relayed.outage
    settings = relayed.settings(
        database_command_timeout_seconds=0.5, database_connect_timeout_seconds=0.5
    )
    assert settings.persona is not None
    async with open_runtime(settings) as runtime:
        first = await runtime.engine.handle(message("How long does a refund take?"))
        assert first is not None and "5–7 business days" in first.text

        outage.frozen = True
        async with asyncio.timeout(10):
            during = await runtime.engine.handle(message("Is shipping free?"))
        assert during == Reply(settings.persona.fallbacks.unknown)
        assert runtime.engine.held == 1

        outage.frozen = False
        async with asyncio.timeout(10):
            assert await runtime.engine.store_held() == 1
            after = await runtime.engine.handle(message("How do I return an item?"))
        assert after is not None and "within 30 days" in after.text


@needs_postgres
async def test_readiness_fails_while_postgresql_is_down_and_passes_once_it_is_back(
    relayed: Relayed,
) -> None:
    outage = relayed.outage
    settings = relayed.settings(database_connect_timeout_seconds=0.5)
    async with open_runtime(settings) as runtime:
        health = Health({"database": runtime.store.ping})
        before = await health.not_ready()
        await outage.down()
        during = await health.not_ready()
        await outage.up()
        after = await health.not_ready()

    assert (before, during, after) == ([], ["database"], [])
