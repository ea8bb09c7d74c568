"""A process killed mid-turn: the message it was answering is answered after the restart, once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bots.app import Runtime
from core.clock import utcnow
from core.ports import Unanswered
from core.types import ConversationKey, IncomingMessage, Kind, Turn
from tests.discord_helpers import fake_discord_installed, running_bot
from tests.fakes.anthropic_api import FakeAnthropic, FakeResponse, hang, text
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack, post_event
from tests.process_helpers import BotProcess, DiscordProcess, SlackProcess
from tests.slack_helpers import SECRET, load_body
from tests.slack_helpers import running_bot as running_slack_bot

P = TypeVar("P", bound=BotProcess)
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
async def killed_and_restarted(
    bot: Callable[[], P],
    fake_claude: FakeAnthropic,
    question: dict[str, Any],
    killed: Callable[[P], Awaitable[None]],
    *,
    first: FakeResponse | None = None,
) -> AsyncIterator[P]:
    """A process from ``bot`` asked ``question`` and killed (SIGKILL) once ``killed`` returns
    (Claude's answer to it is ``first``, by default none), then another from ``bot`` on the
    same database (its SQLite file), where Claude answers ``ANSWER``."""
    fake_claude.queue(first or hang())
    killed_process = await bot().start()
    try:
        await killed_process.ask(question)
        await killed(killed_process)
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


def restarted_after_a_kill(
    tmp_path: Path,
    fake_claude: FakeAnthropic,
    slack: FakeSlack,
    question: dict[str, Any],
    *,
    first: FakeResponse | None = None,
    killed: Callable[[FakeSlack, FakeAnthropic], Awaitable[None]] = during_claude,
    **env: str,
) -> AbstractAsyncContextManager[SlackProcess]:
    """``supportbot run slack`` killed once ``killed`` returns (by default while Claude answers
    ``question``, its loading status up), then started again (``killed_and_restarted``)."""
    bot = partial(SlackProcess, tmp_path, claude_url=fake_claude.base_url, slack=slack, **env)
    return killed_and_restarted(
        bot, fake_claude, question, lambda _: killed(slack, fake_claude), first=first
    )


def on_discord(
    tmp_path: Path, fake_claude: FakeAnthropic, fake: FakeDiscord
) -> Callable[[], DiscordProcess]:
    """``supportbot run discord`` on ``fake``, answering a message left unanswered once it is
    a second old. A process started after a kill IDENTIFYs afresh: nothing is redelivered."""
    return partial(
        DiscordProcess,
        tmp_path,
        claude_url=fake_claude.base_url,
        discord=fake,
        SUPPORTBOT_RECOVER_AFTER_SECONDS="1",
    )


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
        left = await unanswered_turn(runtime, key, "1234567890", customer=str(w.customer_id))
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


async def test_discord_a_message_whose_process_was_killed_during_claude_is_answered_after_restart(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    async with FakeDiscord() as fake:
        dm = fake.world.dm_channel_id
        question = fake.message(dm, "How long does a refund take?")

        async def during_claude(_: DiscordProcess) -> None:
            await fake_claude.wait_for_requests(1, timeout=30)
            await fake.wait_for(lambda: bool(fake.typing), within=30)

        bot = on_discord(tmp_path, fake_claude, fake)
        async with killed_and_restarted(bot, fake_claude, question, during_claude) as second:
            await fake.wait_for(lambda: bool(fake.posts_in(dm)), within=30)
            await second.read_until(f"message {question['id']}: recovered")
            # Replayed now (a gateway resume), it is a duplicate: not answered again.
            await second.ask(question)
            await second.read_until(f"message {question['id']}: duplicate")

    [answer] = fake.posts_in(dm)
    assert answer.content == ANSWER
    assert answer.reference is not None and answer.reference["message_id"] == int(question["id"])
    assert len(fake.identifies) == 2 and fake.resumes == [], "the restart identified afresh"


async def test_slack_takes_away_the_words_a_dead_process_streamed_before_it_answers(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(ANSWER))
    channel, thread = "C0SUPPORT", "1700000100.000100"
    key = ConversationKey("slack", "T0TEAM", channel, thread)
    async with FakeSlack() as slack:
        asked = f"{channel}:{slack.said(channel, 'U0CUSTOMER', 'Refunds?', thread=thread)}"
        left = await unanswered_turn(runtime, key, asked, customer="U0CUSTOMER")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        cut = await client.chat_startStream(  # the killed process's answer, half-written
            channel=channel,
            thread_ts=thread,
            recipient_user_id="U0CUSTOMER",
            recipient_team_id="T0TEAM",
            markdown_text="Refunds take 5",
        )
        async with running_slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
            bot.bot.recover(left, late_after=timedelta(minutes=15))
            await bot.bot.drain()

    [answer] = [m for m in slack.messages if m["channel"] == channel]
    assert answer["text"].endswith(ANSWER)
    assert [m["ts"] for m in slack.deleted] == [cut["ts"]]


async def unanswered_turn(
    runtime: Runtime, key: ConversationKey, message_id: str, *, customer: str
) -> Unanswered:
    """A customer's question stored an hour ago by a process killed before it answered."""
    long_ago = utcnow() - timedelta(hours=1)
    asked = IncomingMessage(key=key, author_id=customer, text="Refunds?", message_id=message_id)
    stored = await runtime.store.begin_turn(
        asked, customer_turn(asked.text, message_id), now=long_ago, idle_after=None, restart=False
    )
    assert stored is not None
    [left] = await runtime.store.unanswered(
        platforms={key.platform}, since=long_ago - timedelta(minutes=1), before=utcnow(), key=key
    )
    return left


async def test_discord_takes_away_the_words_a_dead_process_streamed_before_it_answers(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(ANSWER))
    async with fake_discord_installed() as fake:
        w = fake.world
        thread = fake.add_thread(w.support_channel_id)
        key = ConversationKey("discord", str(w.guild_id), str(w.support_channel_id), str(thread))
        earlier = fake.said(thread, "Where is my order?")
        late = fake.left_by_a_dead_process(thread, "It ships tomorrow.", reference=earlier)
        asked = fake.said(thread, "Refunds?")
        cut = fake.left_by_a_dead_process(thread, "Refunds take 5", reference=asked)
        left = await unanswered_turn(runtime, key, str(asked), customer=str(w.customer_id))
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.recover(left, late_after=timedelta(minutes=15))
            await bot.drain()
        [answer] = fake.posts_in(thread)

    assert answer.content.endswith(ANSWER)
    assert fake.deleted == [cut], "the stream's words, not the earlier message's reply"
    assert late not in fake.deleted
