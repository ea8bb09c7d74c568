"""Whatever breaks inside a turn, the customer gets the configured fallback, and the turn's
writes land together or not at all."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text as sql

from bots.app import Runtime
from core.config import DEMO_PERSONA, Persona, Settings
from core.engine import Engine, Limits
from core.ports import LLMResult
from core.types import Kind, Reply, Usage
from storage.database import create_engine
from storage.memory import MemoryStore
from tests.engine_helpers import KEY, message, texts
from tests.fakes.anthropic_api import FakeAnthropic, text, tool_use

LIMITS = Limits(token_budget=12000, idle_timeout=timedelta(hours=24), max_input_chars=8000)


class NoteCrashes:
    """A Claude that hands every question to people, then breaks writing the hand-off note
    with an error of its own (not an ``LLMError``)."""

    async def respond(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[Any],
        events: object = None,
    ) -> LLMResult:
        if not tools:
            raise RuntimeError("the note writer broke")
        call = {"type": "tool_use", "id": "tu_1", "name": "escalate_to_human"}
        return LLMResult(
            content=[{**call, "input": {"reason": "Billing"}}],
            stop_reason="tool_use",
            usage=Usage(),
        )


async def test_a_crash_writing_the_handoff_note_still_gets_the_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    persona = Persona.load(DEMO_PERSONA).model_copy(update={"support_hours": None})
    store = MemoryStore()
    engine = Engine(store=store, llm=NoteCrashes(), persona=persona, limits=LIMITS)
    with caplog.at_level(logging.WARNING):
        reply = await engine.handle(message("I was charged twice."))

    assert reply is not None and reply.text == persona.fallbacks.unknown
    assert reply.escalation is not None and reply.escalation.new
    assert "broke" not in reply.text
    assert "test:T1:C1:" in caplog.text and "charged twice" not in caplog.text
    # The half-finished turn (Claude's tool call) was never stored; the fallback was.
    assert [(t.kind, t.text) for t in await store.history(KEY)] == [
        (Kind.CUSTOMER, "I was charged twice."),
        (Kind.NOTICE, persona.fallbacks.unknown),
    ]


async def _refuse_inserts(url: str, table: str) -> None:
    """Make the database itself refuse new rows in ``table``, as a full disk would."""
    database = create_engine(url)
    try:
        async with database.begin() as connection:
            for statement in _REFUSE[database.dialect.name]:
                await connection.execute(sql(statement.format(table=table)))
    finally:
        await database.dispose()


async def _allow_inserts(url: str, table: str) -> None:
    """Undo ``_refuse_inserts``: the disk has room again."""
    database = create_engine(url)
    try:
        async with database.begin() as connection:
            await connection.execute(sql(_ALLOW[database.dialect.name].format(table=table)))
    finally:
        await database.dispose()


_ALLOW = {"sqlite": "DROP TRIGGER refuse", "postgresql": "DROP TRIGGER refuse ON {table}"}
_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS "
        "$$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


async def test_a_failed_escalation_write_keeps_nothing_of_the_turn_and_says_the_fallback(
    runtime: Runtime,
    fake_claude: FakeAnthropic,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert settings.persona is not None
    await _refuse_inserts(settings.database_url, "escalations")
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Billing dispute"}),
        text("Double charge."),
        text("Let me look at that charge."),
    )

    with caplog.at_level(logging.WARNING):
        reply = await runtime.engine.handle(message("I was charged twice."))

    assert reply is not None and reply.text == settings.persona.fallbacks.unknown
    assert reply.escalation is None
    assert "test:T1:C1:" in caplog.text
    # Claude's tool call and its result went down with the escalation: no half a turn.
    assert [t.kind for t in await runtime.store.history(KEY)] == [Kind.CUSTOMER]

    await runtime.engine.handle(message("Hello?"))
    assert texts(fake_claude.requests[-1].body["messages"]) == [
        ("user", "I was charged twice. | Hello?")
    ]


async def test_a_failed_write_of_the_customer_turn_still_gets_the_fallback(
    runtime: Runtime,
    fake_claude: FakeAnthropic,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert settings.persona is not None
    await _refuse_inserts(settings.database_url, "messages")

    with caplog.at_level(logging.WARNING):
        reply = await runtime.engine.handle(message("Where is my sofa?"))

    assert reply == Reply(settings.persona.fallbacks.unknown)
    assert "test:T1:C1:" in caplog.text and "sofa" not in caplog.text
    assert fake_claude.requests == []


async def test_messages_the_database_refused_are_stored_with_a_handoff_once_it_is_back(
    runtime: Runtime, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    await _refuse_inserts(settings.database_url, "messages")
    first, second = message("Where is my sofa?"), message("Hello, anyone there?")
    for each in (first, second):
        assert await runtime.engine.handle(each) == Reply(settings.persona.fallbacks.unknown)
    assert runtime.engine.held == 2
    assert await runtime.engine.store_held() == 0  # still refused: both stay held
    assert runtime.engine.held == 2

    await _allow_inserts(settings.database_url, "messages")
    assert await runtime.engine.store_held() == 2

    assert runtime.engine.held == 0
    stored = [(t.kind, t.text) for t in await runtime.store.history(KEY)]
    fallback = settings.persona.fallbacks.unknown
    assert stored == [
        (Kind.CUSTOMER, "Where is my sofa?"),
        (Kind.NOTICE, fallback),
        (Kind.CUSTOMER, "Hello, anyone there?"),
        (Kind.NOTICE, fallback),
    ]
    [live] = await runtime.desk.live()
    assert live.reason.startswith("The database was unavailable")
    # The platform redelivering one of them now is a duplicate, not a second answer.
    assert await runtime.engine.handle(first) is None
    assert fake_claude.requests == []
