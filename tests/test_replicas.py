"""Two replicas on one PostgreSQL database: one turn at a time per conversation across them."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url

from bots.app import open_runtime
from core.clock import utcnow
from core.types import ConversationKey
from storage.database import create_engine
from storage.locks import AdvisoryLocks
from storage.repository import SqlStore
from tests.conftest import POSTGRES_URL, Databases, _postgres_url_for_this_worker, make_settings
from tests.engine_helpers import KEY, message
from tests.fakes.anthropic_api import FakeAnthropic, FakeResponse, held, text
from tests.fakes.slack_api import FakeSlack, post_event
from tests.process_helpers import SlackProcess
from tests.slack_helpers import SECRET, dm_body
from tests.test_health import get

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


class _Thinking(FakeResponse):
    """Claude answering "Answer to <the last customer line>" after a moment, recording which
    conversations it was thinking about at once."""

    def __init__(self, busy: set[str], overlaps: list[str]) -> None:
        self._busy, self._overlaps = busy, overlaps

    async def serve(self, ctx: Any) -> web.StreamResponse:
        last = ctx.body["messages"][-1]["content"][-1]["text"].splitlines()[-1]
        conversation = last.split()[0]
        if conversation in self._busy:
            self._overlaps.append(last)
        self._busy.add(conversation)
        try:
            await asyncio.sleep(0.05)  # Claude takes a moment: the replicas' turns can meet
            return await text(f"Answer to {last}").serve(ctx)
        finally:
            self._busy.discard(conversation)


async def _turns_seen(replicas: list[SlackProcess]) -> float:
    """Customer messages the replicas have finished with, answered or found already answered."""
    total = 0.0
    for replica in replicas:
        _, exposition = await get(replica.health, "/metrics")
        for family in text_string_to_metric_families(exposition):
            total += sum(s.value for s in family.samples if s.name == "supportbot_turns_total")
    return total


async def test_two_http_replicas_given_every_event_answer_each_message_once_in_order(
    tmp_path: Path, databases: Databases, fake_claude: FakeAnthropic
) -> None:
    assert POSTGRES_URL is not None
    url = await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))
    busy: set[str] = set()
    overlaps: list[str] = []
    fake_claude.default = lambda body: _Thinking(busy, overlaps)
    conversations, each = ["C1", "C2", "C3"], 4
    async with FakeSlack() as slack:
        replicas = [
            SlackProcess(
                tmp_path, claude_url=fake_claude.base_url, slack=slack, SUPPORTBOT_DATABASE_URL=url
            )
            for _ in range(2)
        ]
        try:
            await asyncio.gather(*(replica.start() for replica in replicas))

            async def customer(name: str) -> None:
                for n in range(each):
                    body = dm_body(name, n)
                    # Every event to both replicas, the first one alternating.
                    first, second = replicas[n % 2], replicas[1 - n % 2]
                    for replica in (first, second):
                        status = await post_event(replica.events_url, body, secret=SECRET)
                        assert status == 200

            await asyncio.gather(*(customer(name) for name in conversations))
            sent = len(conversations) * each
            async with asyncio.timeout(30):
                # Each delivery ends as answered or as a duplicate, on one replica or the other.
                while await _turns_seen(replicas) < 2 * sent:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            histories = {name: await _history(url, name) for name in conversations}
        finally:
            await asyncio.gather(*(replica.stop() for replica in replicas))
        replies = [m for m in slack.messages if m["channel"].startswith("D0C")]

    assert overlaps == []
    assert sorted(r["text"] for r in replies) == sorted(
        f"Answer to {name} message {n}" for name in conversations for n in range(each)
    )
    for name, history in histories.items():
        assert history == [
            line
            for n in range(each)
            for line in (f"{name} message {n}", f"Answer to {name} message {n}")
        ]


async def _history(url: str, name: str) -> list[str]:
    database = create_engine(url)
    try:
        store = SqlStore(engine=database)
        turns = await store.history(ConversationKey("slack", "T0TEAM", f"D0{name}"))
    finally:
        await database.dispose()
    return [t.text for t in turns]


async def test_a_recovery_leaves_alone_a_turn_another_replica_is_still_answering(
    databases: Databases, fake_claude: FakeAnthropic
) -> None:
    assert POSTGRES_URL is not None
    url = await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))
    release = asyncio.Event()
    fake_claude.queue(held(text("It ships tomorrow."), release))
    settings = make_settings(url, fake_claude.base_url)
    async with open_runtime(settings) as one, open_runtime(settings) as two:
        answering = asyncio.create_task(one.engine.handle(message("Where is order W1001?")))
        await fake_claude.wait_for_requests(1)
        now = utcnow()
        [left] = await two.store.unanswered(
            platforms={KEY.platform},
            since=now - timedelta(hours=1),
            before=now + timedelta(minutes=1),
        )
        recovered = await two.engine.recover(left, direct=False, late_after=None)
        release.set()
        answered = await answering

    assert recovered is None, "the replica answering it holds the conversation"
    assert answered is not None and answered.text == "It ships tomorrow."
    assert len(fake_claude.requests) == 1


async def _lock_held(locks: AdvisoryLocks, key: str) -> bool:
    async with locks.hold(key) as got:
        return got


async def test_a_turn_waits_for_a_connection_to_lock_with_instead_of_going_on_unlocked(
    databases: Databases, caplog: pytest.LogCaptureFixture
) -> None:
    # Under load the server can be at its connection limit: a turn that went on without its
    # lock then could be answered by two replicas at once. A role allowed one connection makes
    # the second lock's connection meet "too many connections" (SQLSTATE 53300).
    assert POSTGRES_URL is not None
    url = make_url(await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL)))
    role = f"supportbot_one_connection_{os.getpid()}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    locks = AdvisoryLocks(
        url.set(username=role).render_as_string(hide_password=False),
        connect_timeout=2,
        command_timeout=2,
        pool_size=1,
        wait=30,
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="storage.locks"):
            async with locks.hold("first conversation") as first:
                second = asyncio.create_task(_lock_held(locks, "second conversation"))
                async with asyncio.timeout(10):
                    while "no connection to spare" not in caplog.text:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                assert not second.done()
            assert first and await second
        assert "going on without it" not in caplog.text
    finally:
        await locks.aclose()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_the_next_message_waits_until_the_answer_before_it_is_posted(
    tmp_path: Path, databases: Databases, fake_claude: FakeAnthropic
) -> None:
    # The conversation is held until the answer is on the platform, not just stored: a reply
    # whose post hangs is never overtaken by the next one, nor looked for by another replica.
    assert POSTGRES_URL is not None
    url = await databases.postgres(_postgres_url_for_this_worker(POSTGRES_URL))
    fake_claude.default = lambda body: _Thinking(set(), [])
    async with FakeSlack() as slack:
        release = slack.hold("chat.postMessage")
        one, two = (
            SlackProcess(
                tmp_path, claude_url=fake_claude.base_url, slack=slack, SUPPORTBOT_DATABASE_URL=url
            )
            for _ in range(2)
        )
        try:
            await asyncio.gather(one.start(), two.start())
            await post_event(one.events_url, dm_body("C1", 0), secret=SECRET)
            await slack.wait_for("chat.postMessage", timeout=20)
            await post_event(two.events_url, dm_body("C1", 1), secret=SECRET)
            async with asyncio.timeout(20):
                while await _waiting_for_turn_locks(url) != 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            asked_while_posting = len(fake_claude.requests)
            release.set()
            replies = await slack.wait_messages("D0C1", 2, timeout=20)
        finally:
            await asyncio.gather(one.stop(), two.stop())

    assert asked_while_posting == 1, "the next message waited for the post, not just the answer"
    assert [r["text"] for r in replies] == ["Answer to C1 message 0", "Answer to C1 message 1"]
