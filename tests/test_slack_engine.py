"""End to end: FakeSlack → real Bolt → SlackBot → real Engine (SQLite) → fake Claude, and back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bots.app import Runtime
from core.desk import Desk
from core.engine import Engine
from tests.fakes.anthropic_api import FakeAnthropic, overloaded, text, tool_use
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import GROUP, STAFF, Harness, load_body, running_bot, unescape

MENTION_TS = "1700000100.000100"
PING = f"<!subteam^{GROUP}>"


@pytest.fixture
async def bot(slack: FakeSlack, engine: Engine, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk) as harness:
        yield harness


def conversation(request_body: dict) -> list[tuple[str, str]]:
    """(role, text) of each message Claude was sent, tool blocks left out."""
    shown = []
    for message in request_body["messages"]:
        content = message["content"]
        parts = (
            [content]
            if isinstance(content, str)
            else [b["text"] for b in content if b.get("type") == "text"]
        )
        shown.append((message["role"], " ".join(parts)))
    return shown


async def test_dm_turn_and_follow_up_carry_the_history(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Sorry about that! It left our warehouse today."), text("Tomorrow."))
    await bot.deliver(load_body("message_im"))
    await bot.deliver(load_body("message_im", ts="1700000009.000100", text="When will it arrive?"))

    first, second = bot.posts("D0DM")
    assert first["text"] == "Sorry about that! It left our warehouse today."
    assert second["text"] == "Tomorrow."
    assert "thread_ts" not in first and "thread_ts" not in second
    assert conversation(fake_claude.requests[1].body) == [
        ("user", "My order #123 hasn't arrived & the tracking says <pending>"),
        ("assistant", "Sorry about that! It left our warehouse today."),
        ("user", "When will it arrive?"),
    ]


async def test_mention_is_answered_in_its_thread_and_followed_without_a_mention(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Use **Forgot password** on the sign-in page."), text("Yes, 2FA too."))
    await bot.deliver(load_body("app_mention"))
    await bot.deliver(load_body("message_channel_thread"))

    assert [(p["thread_ts"], p["text"]) for p in bot.posts()] == [
        (MENTION_TS, "Use **Forgot password** on the sign-in page."),
        (MENTION_TS, "Yes, 2FA too."),
    ]
    assert conversation(fake_claude.requests[1].body)[0] == ("user", "how do I reset my password?")


async def test_thread_the_bot_is_not_part_of_is_ignored(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    await bot.deliver(load_body("message_channel_thread"))
    assert bot.activity() == []
    assert fake_claude.requests == []


async def test_retried_event_is_acked_and_answered_once(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    body = load_body("app_mention")
    assert await bot.deliver(body) == 200
    assert await bot.deliver(body, retry=1) == 200
    assert len(bot.posts()) == 1
    assert len(fake_claude.requests) == 1


async def test_mention_and_its_message_twin_reach_claude_once(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    await bot.deliver(load_body("app_mention"))
    await bot.deliver(load_body("message_channel_mention"))
    assert len(bot.posts()) == 1
    assert len(fake_claude.requests) == 1


async def test_bare_mention_gets_the_engines_prompt_without_calling_claude(
    bot: Harness, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    await bot.deliver(load_body("app_mention_only"))
    [post] = bot.posts()
    assert post["text"] == runtime.settings.persona.empty_message
    assert fake_claude.requests == []


async def test_channel_ping_in_model_output_is_defused(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Heads up <!channel> and <!here>: ask <@U0ALL>."))
    await bot.deliver(load_body("app_mention"))
    [post] = bot.posts()
    for shown in (post["text"], post["blocks"][0]["text"]):
        assert "<!" not in shown and "<@" not in shown
    assert unescape(post["text"]) == "Heads up <!channel> and <!here>: ask <@U0ALL>."


async def test_escalation_in_a_channel_pings_the_team_in_the_thread(
    bot: Harness, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Customer asks for a manager"}))
    await bot.deliver(load_body("app_mention"))
    # The answer streams, the hand-off shown as a step; the ping is a message of its own (an
    # edit of the streamed message would notify nobody).
    post, ping = bot.posts("C0SUPPORT")
    assert post["thread_ts"] == ping["thread_ts"] == MENTION_TS
    assert all(block["type"] != "actions" for block in post["blocks"]), "no Talk-to-a-human"
    # The engine may add an off-hours note after its message.
    assert post["text"].startswith(runtime.settings.persona.dont_know)
    assert post["tasks"] == {"step": (runtime.settings.persona.handoff_step, "complete")}
    assert ping["text"] == PING
    # The thread pinged the team, so the staff notification names it without a second ping.
    [notice] = bot.posts(STAFF)
    assert notice["text"].startswith("Support team Escalation #1 from <@U0CUSTOMER>")
    assert "subteam" not in notice["text"]


async def test_escalation_in_a_dm_goes_to_the_staff_channel_with_a_permalink(
    bot: Harness, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Customer asks for a manager"}),
        text("Order #123 is late & the customer wants a manager."),  # the handoff summary
    )
    await bot.deliver(load_body("message_im"))
    [to_customer] = bot.posts("D0DM")
    assert to_customer["text"].startswith(runtime.settings.persona.dont_know)
    assert "subteam" not in to_customer["text"]
    [notice] = bot.posts(STAFF)
    assert notice["text"].startswith(f"{PING} Escalation #1 from <@U0CUSTOMER> (Slack DM)")
    assert "*Reason:* Customer asks for a manager" in notice["text"]
    assert "*Summary:* Order #123 is late &amp; the customer wants a manager." in notice["text"]
    assert "https://fake.slack.test/archives/D0DM/p1700000001000100" in notice["text"]


async def test_claude_down_gives_the_fallback_and_pings_the_team(
    bot: Harness, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    fake_claude.default = lambda body: overloaded()
    # Words no knowledge entry matches, so the engine cannot answer from its knowledge base.
    await bot.deliver(load_body("app_mention", text="<@U0BOT> partnership proposal for Q3?"))
    [post] = bot.posts("C0SUPPORT")
    assert post["thread_ts"] == MENTION_TS
    assert post["text"].startswith(runtime.settings.persona.fallbacks.overloaded)
    assert post["text"].endswith(f"\n\n{PING}")
    assert len(fake_claude.requests) >= 1
    [notice] = bot.posts(STAFF)
    assert "*Reason:* Claude unavailable (overloaded)" in notice["text"]


async def test_three_thousand_line_answer_is_split_and_complete(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    answer = "\n".join(f"{i}. Check setting {i} & save." for i in range(1, 3001))
    fake_claude.queue(text(answer))
    await bot.deliver(load_body("app_mention"))
    # Streamed: each streamed message stays within Slack's 12,000 characters of markdown, and
    # a full one goes on in the next, cut after a line.
    posts = bot.posts()
    assert len(posts) > 5
    for post in posts:
        assert post["thread_ts"] == MENTION_TS and not post["streaming"]
        assert len(post["text"]) <= 12000 and post["text"].endswith("\n") != (post is posts[-1])
    assert "".join(unescape(p["text"]) for p in posts) == answer


async def test_socket_mode_dm_end_to_end(
    slack: FakeSlack, engine: Engine, desk: Desk, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("On its way!"))
    async with running_bot(slack, engine, desk=desk, mode="socket") as harness:
        assert await harness.deliver(load_body("message_im")) == 200
    [post] = harness.posts("D0DM")
    assert post["text"] == "On its way!"
    assert fake_claude.requests[0].last_user_text.startswith("My order #123")
