"""Answers shown in Discord while Claude writes them: real discord.py ⇄ fake Discord (with its
rate limits), the adapter, the real engine, fake Claude streaming its words."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bots.discord.bot import DiscordBot
from bots.discord.stream import EDIT_INTERVAL
from core.config import Persona
from core.desk import Desk
from core.engine import Engine
from core.split import FENCE, split_text
from tests.discord_helpers import running_bot, say
from tests.fakes.anthropic_api import FakeAnthropic, slow_text, stream_error, streamed
from tests.fakes.discord_api import FakeDiscord, Post, custom_ids

NOBODY = {"parse": []}


@pytest.fixture
async def bot(fake_discord: FakeDiscord, engine: Engine, desk: Desk) -> AsyncIterator[DiscordBot]:
    """The bot as shipped: its streamed answers paced at the product's edit interval."""
    async with running_bot(fake_discord, engine, desk, edit_interval=EDIT_INTERVAL) as started:
        yield started


def writes(fake: FakeDiscord, channel_id: int) -> list[Post]:
    """Every send and edit in ``channel_id``, in the order the fake took them."""
    done = [p for p in fake.posts + fake.edits if p.channel_id == channel_id]
    return sorted(done, key=lambda p: p.at)


async def test_the_first_words_are_posted_then_edited_into_the_answer(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    release = asyncio.Event()
    fake_claude.queue(
        streamed("Returns are accepted ", "within 30 days.", pause_before=1, release=release)
    )
    dm = fake_discord.world.dm_channel_id
    question = await say(fake_discord, dm, "Can I return a rug?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(dm)) == 1, within=30)

    # Claude is still writing, and the customer already reads its first words, as a reply.
    [first] = fake_discord.posts_in(dm)
    assert first.content == "Returns are accepted"
    assert first.reference is not None and str(first.reference["message_id"]) == question["id"]
    release.set()
    answer = fake_discord.messages[first.id]
    await fake_discord.wait_for(lambda: "supportbot:talk" in custom_ids(answer), within=30)

    assert answer["content"] == "Returns are accepted within 30 days."
    assert all(w.allowed_mentions == NOBODY for w in writes(fake_discord, dm))


async def test_a_long_answer_is_paced_and_goes_on_in_a_new_message_with_fences_kept(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    code = "\n".join(f"step_{i} = assemble(part={i})" for i in range(90))
    answer = f"Here is the script:\n\n```python\n{code}\n```\n\nRun it once the legs are on."
    assert 2000 < len(answer) < 4000
    fake_claude.queue(slow_text(answer, seconds=3.0))
    dm = fake_discord.world.dm_channel_id
    await say(fake_discord, dm, "How do I assemble the table?")
    parts = split_text(answer, 2000)
    await fake_discord.wait_for(
        lambda: (
            [fake_discord.messages[p.id]["content"] for p in fake_discord.posts_in(dm)] == parts
        ),
        within=30,
    )
    await bot.drain()

    done = writes(fake_discord, dm)
    assert len(done) >= 4, "posted, edited as the words came, then a second message"
    # Paced at a write a second, so Discord never had to say 429. The fake times a write when
    # it arrives, which a loaded machine can delay: unpaced writes would arrive milliseconds apart.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(done)]
    assert min(gaps) >= 0.5
    assert fake_discord.rate_limited == []
    assert all(part.count(FENCE) % 2 == 0 for part in parts)
    assert all(w.allowed_mentions == NOBODY for w in done)


async def test_everyone_split_across_two_edits_pings_nobody(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot
) -> None:
    release = asyncio.Event()
    fake_claude.queue(streamed("Hi @every", "one, and <@&1>!", pause_before=1, release=release))
    dm = fake_discord.world.dm_channel_id
    await say(fake_discord, dm, "Hello")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(dm)) == 1, within=30)
    release.set()
    [first] = fake_discord.posts_in(dm)
    answer = fake_discord.messages[first.id]
    await fake_discord.wait_for(lambda: answer["content"] == "Hi @everyone, and <@&1>!", within=30)
    await bot.drain()

    assert first.content == "Hi @every"
    assert [w.allowed_mentions for w in writes(fake_discord, dm)] == [NOBODY, NOBODY]


async def test_a_stream_that_breaks_ends_with_the_fallback_and_pings_the_team(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot, persona: Persona
) -> None:
    fake_claude.queue(stream_error(partial_text="Let me check your"))
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "Can my llama ride in the van?")
    thread = int(question["id"])
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(thread)) == 2, within=30)
    await bot.drain()

    answer, ping = fake_discord.posts_in(thread)
    shown = fake_discord.messages[answer.id]["content"]
    assert shown.startswith(f"Let me check your\n\n{persona.fallbacks.overloaded}")
    assert ping.content == f"<@&{w.support_role_id}>"
    assert ping.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}
    assert len(fake_claude.requests) == 1, "no retry after words were shown"


async def test_fake_discord_says_429_to_a_sixth_write_in_five_seconds(
    fake_discord: FakeDiscord,
) -> None:
    url = f"{fake_discord.base_url}/api/v10/channels/{fake_discord.world.dm_channel_id}/messages"
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        statuses = []
        for n in range(6):
            async with session.post(url, json={"content": f"m{n}"}) as response:
                statuses.append(response.status)
                body = await response.json()
    assert statuses == [200] * 5 + [429]
    assert response.headers["Via"] and 0 < body["retry_after"] <= 5
    assert len(fake_discord.rate_limited) == 1


async def test_a_hand_off_mid_answer_shows_as_a_step_then_the_team_is_pinged(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot, persona: Persona
) -> None:
    handing = asyncio.Event()
    fake_claude.queue(
        streamed(
            "That is one for a person.",
            tool=("escalate_to_human", {"reason": "Wants a manager"}),
            hold_after_tool=handing,
        )
    )
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "Can I speak to your manager?")
    thread = int(question["id"])
    step = f"That is one for a person.\n\n*{persona.handoff_step}*"
    await fake_discord.wait_for(
        lambda: any(fake_discord.messages[p.id]["content"] == step for p in fake_discord.posts),
        within=30,
    )
    handing.set()
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(thread)) == 2, within=30)
    await bot.drain()

    answer, ping = fake_discord.posts_in(thread)
    said = fake_discord.messages[answer.id]["content"]
    assert said.startswith(f"That is one for a person.\n\n{persona.dont_know}")
    assert persona.handoff_step not in said
    assert ping.content == f"<@&{w.support_role_id}>"
