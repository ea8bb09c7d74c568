"""The composition root: settings → database → Claude → engine, with one owner of each lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from core.claude import ClaudeClient
from core.config import Settings
from core.desk import Desk
from core.engine import Engine, Limits
from storage.database import create_engine, upgrade
from storage.repository import SqlStore

log = logging.getLogger("supportbot")


@dataclass(frozen=True, slots=True)
class Runtime:
    engine: Engine
    desk: Desk
    store: SqlStore
    settings: Settings


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Migrate the database, then build the engine; everything is closed on exit."""
    assert settings.persona is not None
    database = create_engine(settings.database_url)
    llm = ClaudeClient(settings=settings.claude) if settings.claude.api_key else None
    try:
        await upgrade(database)
        if llm is None:
            log.info("no ANTHROPIC_API_KEY: running in limited (knowledge-base) mode")
        store = SqlStore(engine=database)
        engine = Engine(
            store=store,
            llm=llm,
            persona=settings.persona,
            limits=Limits(
                token_budget=settings.claude.token_budget,
                idle_timeout=timedelta(hours=settings.idle_timeout_hours),
                max_input_chars=settings.max_input_chars,
                reping_after=timedelta(minutes=settings.reping_minutes),
            ),
        )
        yield Runtime(engine=engine, desk=Desk(store=store), store=store, settings=settings)
    finally:
        if llm is not None:
            await llm.aclose()
        await database.dispose()
