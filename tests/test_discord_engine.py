"""End to end: real discord.py ⇄ fake Discord, the adapter, the real engine, SQLite, fake Claude."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bots.discord.bot import DiscordBot
from core.config import Persona
from core.desk import Desk
from core.engine import Engine
from tests.discord_helpers import running_bot, say
from tests.engine_helpers import texts
from tests.fakes.anthropic_api import FakeAnthropic, overloaded, text, tool_use
from tests.fakes.discord_api import FakeDiscord


@pytest.fixture
async def bot(fake_discord: FakeDiscord, engine: Engine, desk: Desk) -> AsyncIterator[DiscordBot]:
    async with running_bot(fake_discord, engine, desk) as started:
        yield started


async def test_thread_follow_up_carries_the_history(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    fake_claude.queue(
        text("Standard delivery takes 5-7 business days."),
        text("Express takes 2-3 business days."),
    )
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "How long does shipping take?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)
    await say(fake_discord, int(question["id"]), "And express?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert texts(fake_claude.requests[1].body["messages"]) == [
        ("user", "How long does shipping take?"),
        ("assistant", "Standard delivery takes 5-7 business days."),
        ("user", "And express?"),
    ]
    assert [(p.channel_id, p.content) for p in fake_discord.posts] == [
        (int(question["id"]), "Standard delivery takes 5-7 business days."),
        (int(question["id"]), "Express takes 2-3 business days."),
    ]


async def test_dm_turn(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    fake_claude.queue(text("Returns are accepted within 30 days of delivery."))
    w = fake_discord.world
    await say(fake_discord, w.dm_channel_id, "Can I return a rug?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    assert fake_claude.requests[0].last_user_text == "Can I return a rug?"
    [post] = fake_discord.posts
    assert (post.channel_id, post.content) == (
        w.dm_channel_id,
        "Returns are accepted within 30 days of delivery.",
    )


async def test_replay_after_resume_reaches_claude_once(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    fake_claude.queue(text("First answer."), text("Second answer."))
    w = fake_discord.world
    question = await say(fake_discord, w.dm_channel_id, "Where is order HG-1?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    await fake_discord.reconnect(replay=[("MESSAGE_CREATE", question)])
    await fake_discord.wait_for(lambda: len(fake_discord.resumes) == 1)
    # The engine answers one conversation at a time, in order: once this later message is
    # answered, the replayed one has been handled (and met silence).
    await say(fake_discord, w.dm_channel_id, "Thanks!")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert len(fake_claude.requests) == 2
    assert [p.content for p in fake_discord.posts] == ["First answer.", "Second answer."]


async def test_model_everyone_does_not_ping(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    fake_claude.queue(text("@everyone @here the sale is on!"))
    await say(fake_discord, fake_discord.world.support_channel_id, "Any sales?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    assert fake_discord.posts[0].content == "@everyone @here the sale is on!"
    assert fake_discord.posts[0].allowed_mentions == {"parse": []}


async def test_long_answer_is_three_messages(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    answer = ("Here is one more detail about assembling the table. " * 96).strip()
    assert 4900 < len(answer) <= 5000
    fake_claude.queue(text(answer))
    await say(fake_discord, fake_discord.world.dm_channel_id, "How do I assemble the table?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 3)

    assert all(len(p.content) <= 2000 for p in fake_discord.posts)
    assert " ".join(p.content for p in fake_discord.posts) == answer


async def test_escalation_in_a_thread_pings_the_support_role(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Customer asked for a person"}))
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "I want to talk to a human")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)  # thread, staff channel

    [post] = fake_discord.posts_in(int(question["id"]))
    said, mention = post.content.rsplit("\n\n", 1)
    assert said.strip()  # the engine's hand-off sentence
    assert mention == f"<@&{w.support_role_id}>"
    assert post.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}


async def test_escalation_in_a_dm_reaches_the_staff_channel(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Double charge on HG-77"}))
    w = fake_discord.world
    question = await say(fake_discord, w.dm_channel_id, "I was charged twice for HG-77")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    [dm] = fake_discord.posts_in(w.dm_channel_id)
    assert dm.content.strip() and "<@&" not in dm.content
    assert dm.allowed_mentions == {"parse": []}
    [staff] = fake_discord.posts_in(w.staff_channel_id)
    assert staff.content.startswith(f"<@&{w.support_role_id}> ")
    assert f"Customer: <@{w.customer_id}>" in staff.content
    assert "Reason: Double charge on HG-77" in staff.content
    assert "\nSummary: " in staff.content
    # Staff cannot open the DM: the notice sends them to its staff thread, where it is relayed.
    assert "\nDM: the conversation is relayed in this thread\n" in staff.content
    assert question["id"] not in staff.content
    assert staff.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}


async def test_claude_down_gives_the_fallback_with_the_role_mention(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot, persona: Persona
) -> None:
    fake_claude.default = lambda body: overloaded()
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "Zxqv blorp wibble?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)  # thread, staff channel

    [post] = fake_discord.posts_in(int(question["id"]))
    assert post.content == f"{persona.fallbacks.overloaded}\n\n<@&{w.support_role_id}>"
    assert post.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}


async def test_a_bare_mention_gets_the_engines_prompt(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot, persona: Persona
) -> None:
    w = fake_discord.world
    await say(fake_discord, w.general_channel_id, f"<@{w.bot_id}>", mentions_bot=True)
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    assert fake_claude.requests == []
    assert fake_discord.threads[0]["name"] == "Question from Casey"
    assert fake_discord.posts[0].content == persona.empty_message
