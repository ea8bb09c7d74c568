"""A process killed mid-turn: the message it was answering is answered after the restart, once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from bots.app import Runtime
from core.clock import utcnow
from core.types import ConversationKey, IncomingMessage, Kind, Turn
from tests.discord_helpers import fake_discord_installed, running_bot
from tests.fakes.anthropic_api import FakeAnthropic, FakeResponse, hang, text
from tests.fakes.slack_api import FakeSlack, post_event
from tests.process_helpers import SlackProcess
from tests.slack_helpers import SECRET, load_body

ANSWER = "Refunds take 5–7 business days after we receive the item."


def customer_turn(text: str, message_id: str) -> Turn:
    return Turn(
        role="user",
        content=[{"type": "text", "text": text}],
        kind=Kind.CUSTOMER,
        message_id=message_id,
    )


async def during_claude(slack: FakeSlack, claude: FakeAnthropic) -> None:
    """Claude was asked and the loading status is up (the kill leaves it behind)."""
    await claude.wait_for_requests(1, timeout=30)
    await slack.wait_for("assistant.threads.setStatus", timeout=30)


@asynccontextmanager
async def restarted_after_a_kill(
    tmp_path: Path,
    fake_claude: FakeAnthropic,
    slack: FakeSlack,
    question: dict[str, Any],
    *,
    first: FakeResponse | None = None,
    killed: Callable[[FakeSlack, FakeAnthropic], Awaitable[None]] = during_claude,
    **env: str,
) -> AsyncIterator[SlackProcess]:
    """``supportbot run slack`` killed (SIGKILL) once ``killed`` returns (by default while
    Claude answers ``question``, its loading status up; Claude's answer to the first process
    is ``first``, by default none), then started again on the same database, where Claude
    answers ``ANSWER``."""

    def bot() -> SlackProcess:
        return SlackProcess(
            tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            claude_url=fake_claude.base_url,
            slack=slack,
            **env,
        )

    fake_claude.queue(first or hang())
    killed_process = await bot().start()
    try:
        assert await post_event(killed_process.events_url, question, secret=SECRET) == 200
        await killed(slack, fake_claude)
        killed_process.send_signal(signal.SIGKILL)
        assert await killed_process.wait() == -signal.SIGKILL
    finally:
        await killed_process.stop()
    fake_claude.queue(text(ANSWER))
    second = await bot().start()
    try:
        yield second
    finally:
        await second.stop()


async def test_a_message_whose_process_was_killed_during_claude_is_answered_after_restart(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    question = load_body("message_im", text="How long does a refund take?")
    channel, ts = question["event"]["channel"], question["event"]["ts"]
    async with (
        FakeSlack() as slack,
        restarted_after_a_kill(
            tmp_path, fake_claude, slack, question, SUPPORTBOT_RECOVER_AFTER_SECONDS="1"
        ) as second,
    ):
        [answer] = await slack.wait_for(
            "chat.postMessage", lambda p: p["channel"] == channel, timeout=30
        )
        await second.read_until("message " + f"{channel}:{ts}: recovered")
        # Redelivered now (a platform retry), it is a duplicate: not answered again.
        assert await post_event(second.events_url, question, secret=SECRET) == 200
        await second.read_until(f"message {channel}:{ts}: duplicate")

    assert answer["text"] == ANSWER
    assert [m["text"] for m in slack.messages if m["channel"] == channel] == [ANSWER]
    assert slack.statuses == {}, "the dead process's loading status is gone"
    assert (channel, ts, "eyes") not in slack.reactions


async def test_discord_answers_a_turn_left_unanswered_in_its_thread_with_the_apology(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(ANSWER))
    async with fake_discord_installed() as fake:
        w = fake.world
        thread = fake.add_thread(w.support_channel_id)
        key = ConversationKey("discord", str(w.guild_id), str(w.support_channel_id), str(thread))
        asked = IncomingMessage(
            key=key,
            author_id=str(w.customer_id),
            text="How long does a refund take?",
            message_id="1234567890",
        )
        long_ago = utcnow() - timedelta(hours=1)
        stored = await runtime.store.begin_turn(
            asked,
            customer_turn(asked.text, "1234567890"),
            now=long_ago,
            idle_after=None,
            restart=False,
        )
        assert stored is not None
        [left] = await runtime.store.unanswered(
            platforms={"discord"}, since=long_ago - timedelta(minutes=1), before=utcnow()
        )
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.recover(left, late_after=timedelta(minutes=15))
            await bot.drain()
            bot.recover(left, late_after=timedelta(minutes=15))  # found answered: nothing
            await bot.drain()
        [answer] = fake.posts_in(thread)

    assert answer.content.startswith(runtime.settings.persona.late_apology)
    assert answer.content.endswith(ANSWER)
    assert answer.reference is not None and answer.reference["message_id"] == 1234567890
    assert answer.allowed_mentions == {"parse": []}


async def test_a_redelivery_of_a_message_a_killed_process_left_answers_it_at_once(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    question = load_body("message_im", text="How long does a refund take?")
    channel, ts = question["event"]["channel"], question["event"]["ts"]
    async with (
        FakeSlack() as slack,
        restarted_after_a_kill(
            tmp_path,
            fake_claude,
            slack,
            question,
            SUPPORTBOT_RECOVER_AFTER_SECONDS="3600",  # only the redelivery can answer it
        ) as second,
    ):
        # Slack tries again (its retry of an event it saw no answer to in time).
        assert await post_event(second.events_url, question, secret=SECRET, retry_num=1) == 200
        [answer] = await slack.wait_for(
            "chat.postMessage", lambda p: p["channel"] == channel, timeout=30
        )
        await second.read_until(f"message {channel}:{ts}: recovered in")

    assert answer["text"] == ANSWER
    assert [m["text"] for m in slack.messages if m["channel"] == channel] == [ANSWER]
