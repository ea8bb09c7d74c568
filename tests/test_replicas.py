"""Two replicas on one PostgreSQL database: one turn at a time per conversation across them."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import make_url

from bots.app import open_runtime
from tests.conftest import POSTGRES_URL, Databases, _postgres_url_for_this_worker, make_settings
from tests.engine_helpers import message
from tests.fakes.anthropic_api import FakeAnthropic, held, text

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="no SUPPORTBOT_TEST_DATABASE_URL")


async def _waiting_for_turn_locks(url: str) -> int:
    """How many sessions wait for an advisory lock on the database at ``url``."""
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        return await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await connection.close()


async def test_the_next_message_on_another_replica_waits_for_the_answer_and_sees_it(
    databases: Databases, fake_claude: FakeAnthropic
) -> None:
    assert POSTGRES_URL is not None
    url = await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))
    release = asyncio.Event()
    fake_claude.queue(
        held(text("Your order W1001 ships tomorrow."), release),
        text("Express shipping for it is $15."),
    )
    settings = make_settings(url, fake_claude.base_url)
    async with open_runtime(settings) as one, open_runtime(settings) as two:
        first = asyncio.create_task(one.engine.handle(message("Where is order W1001?")))
        await fake_claude.wait_for_requests(1)
        second = asyncio.create_task(two.engine.handle(message("Can I get it faster?")))
        async with asyncio.timeout(10):
            # PostgreSQL announces no lock wait: pg_locks is asked until it shows one.
            while await _waiting_for_turn_locks(url) != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        calls_while_the_first_thinks = len(fake_claude.requests)
        release.set()
        answers = await asyncio.gather(first, second)
        history = await one.store.history(message("").key)

    assert calls_while_the_first_thinks == 1
    assert [a.text for a in answers if a is not None] == [
        "Your order W1001 ships tomorrow.",
        "Express shipping for it is $15.",
    ]
    last_request = fake_claude.requests[-1].messages
    assert any(
        "ships tomorrow" in block.get("text", "")
        for turn in last_request
        if turn["role"] == "assistant"
        for block in turn["content"]
    )
    assert [t.text for t in history] == [
        "Where is order W1001?",
        "Your order W1001 ships tomorrow.",
        "Can I get it faster?",
        "Express shipping for it is $15.",
    ]
