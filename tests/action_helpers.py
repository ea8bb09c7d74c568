"""Helpers for the tests of actions over MCP: the demo shop served over HTTP in-process."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bots.app import Runtime, open_runtime
from bots.demo_shop.server import open_server
from core.actions import ActionsConfig, ServerConfig
from core.config import Settings
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.mcp_servers import serve_http

TODAY = date(2026, 3, 10)
MAYA = "maya.patel@example.com"


@dataclass
class Shop:
    url: str
    db: Path

    def status(self, order: str) -> str:
        with sqlite3.connect(self.db) as db:
            found = db.execute("SELECT status FROM orders WHERE number = ?", (order,)).fetchone()
        return found[0]

    def who_asked(self) -> list[tuple[str, str, str, str]]:
        """The shop's own record of each write: the platform and customer the bot sent in the
        request's ``_meta``, the tool, the outcome."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT platform, customer, tool, outcome FROM actions ORDER BY id")
            return [tuple(row) for row in rows]


async def serving_shop(tmp_path: Path) -> AsyncIterator[Shop]:
    """The demo shop on ``tmp_path/shop.db`` ("today" pinned), over streamable HTTP (the
    ``shop`` fixture)."""
    db = tmp_path / "shop.db"
    async with serve_http(open_server(db, today=TODAY)) as url:
        yield Shop(url, db)


async def shop_runtime(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> AsyncIterator[Runtime]:
    """A runtime with the served shop as its one tool server (the ``runtime`` fixture)."""
    settings = with_servers(database_url, fake_claude, {"shop": ServerConfig(url=shop.url)})
    async with open_runtime(settings) as opened:
        yield opened


def with_servers(
    database_url: str, fake_claude: FakeAnthropic, servers: dict[str, ServerConfig], **actions: Any
) -> Settings:
    return make_settings(
        database_url,
        fake_claude.base_url,
        actions=ActionsConfig(servers=servers, **actions),
    )
