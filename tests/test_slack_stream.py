"""Answers streamed into Slack threads: FakeSlack (chat streaming as Slack does it) → real Bolt
and slack_sdk → SlackBot → real Engine → fake Claude streaming its words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.app import Runtime
from core.desk import Desk
from core.engine import Engine
from tests.fakes.anthropic_api import (
    FakeAnthropic,
    overloaded,
    stream_error,
    streamed,
    text,
)
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import GROUP, Harness, load_body, running_bot, unescape

MENTION_TS = "1700000100.000100"
PING = f"<!subteam^{GROUP}>"


@pytest.fixture
async def bot(slack: FakeSlack, engine: Engine, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk) as harness:
        yield harness


def follow_up(text: str, ts: str) -> dict:
    return load_body("message_channel_thread", text=text, ts=ts, event_id=f"Ev{ts}")


async def test_words_show_in_the_thread_before_claude_has_finished(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    release = asyncio.Event()
    fake_claude.queue(
        streamed(
            "Use **Forgot password** ", "on the sign-in page.", pause_before=1, release=release
        )
    )
    await bot.deliver(load_body("app_mention"), wait=False)

    [start] = await slack.wait_for("chat.startStream", timeout=30)
    # While it works, the thread shows Slack's loading status with the persona's messages.
    await slack.wait_for("assistant.threads.setStatus")
    persona = runtime.settings.persona
    status = ("is looking into it…", persona.loading_messages)
    assert slack.statuses == {("C0SUPPORT", MENTION_TS): status}
    # Claude is still writing: the first words are already in the thread, to the customer.
    assert (start["thread_ts"], start["recipient_user_id"]) == (MENTION_TS, "U0CUSTOMER")
    assert start["recipient_team_id"] == "T0TEAM"
    [message] = bot.posts("C0SUPPORT")
    assert message["streaming"] and message["text"] == "Use **Forgot password**"
    release.set()
    await bot.bot.drain()

    [message] = bot.posts("C0SUPPORT")
    assert not message["streaming"]
    assert message["text"] == "Use **Forgot password** on the sign-in page."
    under = [b["type"] for b in message["blocks"][1:]]
    assert under == ["actions", "context_actions"]  # "Talk to a human", then 👍 / 👎
    assert slack.calls_to("chat.postMessage") == []
    assert slack.statuses == {} and slack.reactions == set()


async def test_a_mention_split_across_two_appends_pings_nobody(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic
) -> None:
    release = asyncio.Event()
    fake_claude.queue(
        streamed("Tell <!chan", "nel> and <@U0", "BOSS> hi", pause_before=1, release=release)
    )
    await bot.deliver(load_body("app_mention"), wait=False)
    await slack.wait_for("chat.startStream", timeout=30)
    release.set()
    await bot.bot.drain()

    [message] = bot.posts("C0SUPPORT")
    # Each piece went out in a call of its own, and each was escaped on its own.
    assert len(message["appends"]) >= 2 and message["appends"][0] == "Tell &lt;!chan"
    assert all("<" not in said and ">" not in said for said in message["appends"])
    assert unescape(message["text"]) == "Tell <!channel> and <@U0BOSS> hi"


async def test_a_stream_that_breaks_ends_with_the_fallback_and_the_team(
    bot: Harness, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    persona = runtime.settings.persona
    fake_claude.queue(stream_error(partial_text="Let me check your"), text("Hello again."))
    # A question no knowledge entry answers, so the fallback hands it to the team.
    await bot.deliver(load_body("app_mention", text="<@U0BOT> can my llama ride in the van?"))

    answer, ping = bot.posts("C0SUPPORT")
    # The words shown stay, the fallback says what happened, and the team is pinged; the
    # broken stream is not retried, which would repeat the words.
    assert answer["text"].startswith(f"Let me check your\n\n{persona.fallbacks.overloaded}")
    assert ping["text"] == PING
    assert len(fake_claude.requests) == 1
    assert bot.fake.statuses == {}, "the loading status is cleared when the turn fails too"

    await bot.deliver(follow_up("Hello?", "1700000200.000100"))
    # The next request holds none of the broken answer: it was never stored.
    sent = fake_claude.requests[-1].messages
    assert sent[0]["role"] == "user" and all(m["role"] == "user" for m in sent)
    assert "Let me check your" not in str(sent)


async def test_a_retry_before_any_word_streams_the_answer_once(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(overloaded(), text("Express shipping takes two days."))
    await bot.deliver(load_body("app_mention"))

    [message] = bot.posts("C0SUPPORT")
    assert message["text"] == "Express shipping takes two days."
    assert len(fake_claude.requests) == 2


async def test_where_slack_refuses_streaming_the_answer_is_posted_once(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic
) -> None:
    slack.fail("chat.startStream", "not_allowed")
    fake_claude.queue(text("Refunds take 5–7 business days."))
    await bot.deliver(load_body("app_mention"))

    [post] = slack.calls_to("chat.postMessage")
    assert (post["thread_ts"], post["text"]) == (MENTION_TS, "Refunds take 5–7 business days.")
    assert slack.calls_to("chat.appendStream") == slack.calls_to("chat.stopStream") == []
    assert [m["text"] for m in bot.posts("C0SUPPORT")] == ["Refunds take 5–7 business days."]


async def test_a_dm_top_level_answer_is_posted_not_streamed(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("On its way!"))
    await bot.deliver(load_body("message_im"))

    assert slack.calls_to("chat.startStream") == []
    assert [p["text"] for p in slack.calls_to("chat.postMessage")] == ["On its way!"]


async def test_fake_slack_refuses_a_channel_stream_without_its_recipient(
    slack: FakeSlack,
) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_startStream(channel="C0SUPPORT", thread_ts=MENTION_TS)
    assert refused.value.response["error"] == "invalid_arguments"
    # In a DM no recipient is needed, but a thread always is.
    started = await client.chat_startStream(channel="D0DM", thread_ts=MENTION_TS)
    with pytest.raises(SlackApiError):
        await client.chat_startStream(channel="D0DM", thread_ts="")
    await client.chat_stopStream(channel="D0DM", ts=started["ts"])
    with pytest.raises(SlackApiError) as stopped:
        await client.chat_appendStream(channel="D0DM", ts=started["ts"], markdown_text="late")
    assert stopped.value.response["error"] == "message_not_in_streaming_state"


async def test_a_hand_off_mid_answer_shows_as_a_step_then_the_group_is_pinged(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    persona = runtime.settings.persona
    handing = asyncio.Event()
    fake_claude.queue(
        streamed(
            "That is one for a person.",
            tool=("escalate_to_human", {"reason": "Wants a manager"}),
            hold_after_tool=handing,
        )
    )
    await bot.deliver(load_body("app_mention"), wait=False)
    # The step goes out with the first words or in an append of its own, as the pump finds it.
    [start] = await slack.wait_for("chat.startStream", timeout=30)
    if "task_update" not in str(start):
        await slack.wait_for("chat.appendStream", lambda p: "task_update" in str(p), timeout=30)
    [message] = bot.posts("C0SUPPORT")
    assert message["tasks"] == {"step": (persona.handoff_step, "in_progress")}
    handing.set()
    await bot.bot.drain()

    answer, ping = bot.posts("C0SUPPORT")
    assert answer["text"].startswith(f"That is one for a person.\n\n{persona.dont_know}")
    assert answer["tasks"] == {"step": (persona.handoff_step, "complete")}
    assert ping["text"] == PING


async def test_an_append_that_fails_later_is_repaired_with_the_whole_answer(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic
) -> None:
    release = asyncio.Event()
    fake_claude.queue(
        streamed("Refunds take ", "5–7 business days.", pause_before=1, release=release)
    )
    await bot.deliver(load_body("app_mention"), wait=False)
    await slack.wait_for("chat.startStream", timeout=30)
    slack.fail("chat.appendStream", "internal_error")
    release.set()
    await bot.bot.drain()

    # The message stopped where Slack refused the words; the whole answer is written over it,
    # with the buttons, and nothing is posted twice.
    [message] = bot.posts("C0SUPPORT")
    assert message["text"] == "Refunds take 5–7 business days."
    assert [b["type"] for b in message["blocks"][1:]] == ["actions", "context_actions"]
    assert not message["streaming"]
    [update] = slack.calls_to("chat.update")
    assert update["ts"] == message["ts"]
    assert slack.calls_to("chat.postMessage") == []
