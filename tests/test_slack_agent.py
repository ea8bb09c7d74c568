"""Slack's agent surface: FakeSlack → real Bolt and slack_sdk → SlackBot → real Engine → fake
Claude. Suggested prompts when a conversation opens, and the stop button mid-answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.app import Runtime
from core.config import Persona
from core.desk import Desk
from core.engine import Engine
from core.types import ConversationKey
from tests.engine_helpers import texts
from tests.fakes.anthropic_api import FakeAnthropic, streamed, text
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import Harness, load_body, running_bot

DM_THREAD = "1700000002.000200"  # message_im_thread.json's thread
DM_TOP = ConversationKey("slack", "T0TEAM", "D0DM", "-")
DM_IN_THREAD = ConversationKey("slack", "T0TEAM", "D0DM", DM_THREAD)


@pytest.fixture
async def bot(slack: FakeSlack, engine: Engine, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk) as harness:
        yield harness


def offered(persona: Persona) -> list[dict[str, str]]:
    return [{"title": p.title, "message": p.message} for p in persona.suggested_prompts]


async def test_the_messages_tab_offers_the_prompts_until_a_conversation_is_open(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic, persona: Persona
) -> None:
    await bot.deliver(load_body("app_home_opened"))
    await bot.deliver(load_body("app_home_opened", tab="home"))  # the Home tab: nothing

    # The agent view: no thread_ts (Slack ignores the call with one there).
    assert slack.prompts == [
        {
            "channel_id": "D0DM",
            "thread_ts": None,
            "title": persona.suggested_prompts_title,
            "prompts": offered(persona),
        }
    ]
    assert [p["title"] for p in offered(persona)] == [
        "Track my order",
        "Start a return",
        "Talk to a person",
    ]

    fake_claude.queue(text("Hello! How can I help?"))
    await bot.deliver(load_body("message_im"))
    await bot.deliver(load_body("app_home_opened", event_ts="1700000090.000100"), retry=0)
    assert len(slack.prompts) == 1  # the customer is in a conversation: no fresh start offered


async def test_a_new_assistant_thread_gets_the_prompts_in_it(
    bot: Harness, slack: FakeSlack, persona: Persona
) -> None:
    await bot.deliver(load_body("assistant_thread_started"))
    [prompts] = slack.prompts
    assert (prompts["channel_id"], prompts["thread_ts"]) == ("D0DM", "1700000070.000100")
    assert prompts["prompts"] == offered(persona)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"channel_id": "", "prompts": [{"title": "a", "message": "b"}]}, "channel_not_found"),
        ({"channel_id": "D0DM", "prompts": [{"title": "a", "message": "b"}] * 5}, "invalid"),
        ({"channel_id": "D0DM", "prompts": []}, "invalid_arguments"),
        ({"channel_id": "D0DM", "prompts": [{"title": "t" * 76, "message": "b"}]}, "invalid"),
        ({"channel_id": "D0DM", "prompts": [{"title": "a", "message": ""}]}, "invalid"),
        (
            {"channel_id": "D0DM", "title": "t" * 76, "prompts": [{"title": "a", "message": "b"}]},
            "invalid",
        ),
    ],
    ids=["no-channel", "five", "none", "long-title", "no-message", "long-list-title"],
)
async def test_the_fake_refuses_prompts_slack_refuses(
    slack: FakeSlack, arguments: dict, error: str
) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as refused:
        await client.assistant_threads_setSuggestedPrompts(**arguments)
    assert refused.value.response["error"].startswith(error)
    assert slack.prompts == []


async def test_the_stop_button_ends_the_answer_cleanly_and_the_next_one_is_normal(
    bot: Harness,
    slack: FakeSlack,
    fake_claude: FakeAnthropic,
    runtime: Runtime,
    persona: Persona,
) -> None:
    never = asyncio.Event()
    fake_claude.queue(
        streamed("Returns are free", " within 30 days.", pause_before=1, release=never)
    )
    await bot.deliver(load_body("message_im_thread", text="How do returns work?"), wait=False)
    [start] = await slack.wait_for("chat.startStream", timeout=30)
    assert start["thread_ts"] == DM_THREAD
    await slack.wait_for("assistant.threads.setStatus")

    # The customer presses stop: Slack stops the stream itself, then tells the app.
    stopped = slack.stop_streams("D0DM", DM_THREAD)
    stop = load_body("agent_session_stopped", streaming_message_ts=stopped)
    await bot.deliver(stop)

    [message] = bot.posts("D0DM")
    assert message["ts"] == stopped[0] and not message["streaming"]
    assert message["text"] == f"Returns are free\n\n{persona.stopped}"
    assert slack.calls_to("chat.postMessage") == []
    assert slack.statuses == {}  # the loading status is cleared
    history = await runtime.store.history(DM_IN_THREAD)
    assert [(t.role, t.kind, t.text) for t in history] == [
        ("user", "customer", "How do returns work?"),
        ("assistant", "notice", f"Returns are free\n\n{persona.stopped}"),
    ]

    fake_claude.queue(text("You can start a return from your orders page."))
    follow = load_body(
        "message_im_thread", text="And exchanges?", ts="1700000060.000400", event_id="Ev0IM9"
    )
    await bot.deliver(follow)
    assert bot.posts("D0DM")[-1]["text"] == "You can start a return from your orders page."
    # Claude never saw the cut-off words; both questions reach it, the stopped one first.
    sent = texts(fake_claude.requests[-1].body["messages"])
    assert all("Returns are free" not in said for _, said in sent)
    assert [said for role, said in sent if role == "user"][-1].startswith("How do returns work?")


async def test_a_stop_with_nothing_running_changes_nothing(
    bot: Harness, slack: FakeSlack, engine: Engine
) -> None:
    await bot.deliver(load_body("agent_session_stopped"))
    assert bot.activity() == []
    assert not engine.stop(DM_TOP)
