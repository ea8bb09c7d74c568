"""Shared fixtures: a fake Claude on 127.0.0.1, a fresh database, and the real engine over both.

Every test that uses ``database_url`` runs on SQLite, and again on PostgreSQL when
``SUPPORTBOT_TEST_DATABASE_URL`` is set (``.ci/run`` sets it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bots.app import Runtime, open_runtime
from core.config import DEMO_PERSONA, ClaudeSettings, Persona, Settings
from core.desk import Desk
from core.engine import Engine
from tests.fakes.anthropic_api import FakeAnthropic

POSTGRES_URL = os.environ.get("SUPPORTBOT_TEST_DATABASE_URL")
_LOCAL = {"127.0.0.1", "localhost", "::1", None}
_real_getaddrinfo = socket.getaddrinfo


def _local_only(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    # Tests fail loudly instead of quietly reaching Slack, Discord or Anthropic.
    if host not in _LOCAL:
        raise OSError(f"tests must not reach the network (tried to resolve {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _local_only


@pytest.fixture
async def fake_claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


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
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'supportbot.db'}"
    assert POSTGRES_URL is not None
    database = create_async_engine(POSTGRES_URL)
    async with database.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await database.dispose()
    return POSTGRES_URL


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
    persona = Persona.load(DEMO_PERSONA).model_copy(update={"support_hours": None})
    tuning: dict[str, object] = {
        "timeout_seconds": 2.0,
        "max_retries": 1,
        "retry_after_cap_seconds": 1.0,
        **(claude or {}),
    }
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
def desk(runtime: Runtime) -> Desk:
    return runtime.desk
