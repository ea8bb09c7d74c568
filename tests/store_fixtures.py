"""The store under test: in memory, or SQL on each database ``database_url`` gives.

``replica()`` opens a second store over the same data, as a second bot process would (the
memory store has no second process, so it is the same store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.ports import ConversationStore
from core.types import ConversationKey, IncomingMessage, Kind, Turn
from storage.database import create_engine, upgrade
from storage.memory import MemoryStore
from storage.repository import SqlStore

T0 = datetime(2026, 3, 2, 15, 0)
KEY = ConversationKey("test", "T1", "C1", "1700000000.000100")


@dataclass
class Stores:
    store: ConversationStore
    url: str | None = None
    engines: list[AsyncEngine] = field(default_factory=list)

    def replica(self) -> ConversationStore:
        if self.url is None:
            return self.store
        engine = create_engine(self.url)
        self.engines.append(engine)
        return SqlStore(engine=engine)


@pytest.fixture(params=["memory", "sql"])
async def stores(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Stores]:
    if request.param == "memory":
        if not database_url.startswith("sqlite"):
            pytest.skip("the memory store uses no database: it runs once, beside SQLite")
        yield Stores(MemoryStore())
        return
    engine = create_engine(database_url)
    await upgrade(engine)
    opened = Stores(SqlStore(engine=engine), url=database_url, engines=[engine])
    try:
        yield opened
    finally:
        for each in opened.engines:
            await each.dispose()


@pytest.fixture
def store(stores: Stores) -> ConversationStore:
    return stores.store


def incoming(
    message_id: str, *, key: ConversationKey = KEY, text: str = "Hello"
) -> IncomingMessage:
    return IncomingMessage(key=key, author_id="U-customer", text=text, message_id=message_id)


def turn(
    kind: Kind, text: str = "", *, role: str | None = None, message_id: str | None = None
) -> Turn:
    if role is None:
        role = "user" if kind in {Kind.CUSTOMER, Kind.TOOL_RESULT, Kind.RESTART} else "assistant"
    return Turn(
        role=role,
        content=[{"type": "text", "text": text or str(kind)}],
        kind=kind,
        tokens=len(text) // 4 + 1,
        message_id=message_id,
    )
