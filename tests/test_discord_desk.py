"""Discord as a ticket desk, on the wire (real discord.py ⇄ fake Discord, the real engine and
desk on a real database): forum posts tagged and archived as their escalation moves, staff
notices as Components v2 containers coloured by state, and the staff slash commands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from bots.discord.bot import DiscordBot
from bots.discord.notice import ACCENT
from core.config import Settings
from core.engine import Engine
from tests.conftest import make_settings
from tests.discord_helpers import WatchedDesk, WatchedPort, running_bot, say
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.discord_api import FakeDiscord, Post
from tests.test_discord_escalation import HUMAN, act, escalate


@pytest.fixture
def settings(database_url: str, fake_claude: FakeAnthropic) -> Settings:
    return make_settings(database_url, fake_claude.base_url)


@pytest.fixture
def port(engine: Engine) -> WatchedPort:
    return WatchedPort(engine)


@pytest.fixture
def desk(runtime: Any) -> WatchedDesk:
    return WatchedDesk(store=runtime.store)


@pytest.fixture
async def bot(
    fake_discord: FakeDiscord, port: WatchedPort, desk: WatchedDesk
) -> AsyncIterator[DiscordBot]:
    async with running_bot(fake_discord, port, desk) as started:
        yield started


def accent(post: Post | dict[str, Any]) -> int:
    """The accent colour of a Components v2 notice (as posted, edited or now)."""
    payload = post.payload if isinstance(post, Post) else post
    [container] = payload["components"]
    assert container["type"] == 17  # a container
    return container["accent_color"]


def archived(fake: FakeDiscord, thread_id: int) -> tuple[bool, bool]:
    meta = fake.channels[thread_id]["thread_metadata"]
    return meta["archived"], meta["locked"]


async def forum_escalation(fake: FakeDiscord, desk: WatchedDesk) -> tuple[int, int, Post]:
    """The customer opens a forum post asking for a person: its id, the escalation's id and
    its notice, once the post is tagged."""
    attached = len(desk.attached)
    starter = await fake.forum_post("Refund", HUMAN)
    post_id = int(starter["id"])
    await desk.wait_for(lambda: len(desk.attached) == attached + 1)
    escalation_id, staff = desk.attached[-1]
    await fake.wait_for(lambda: fake.tags_of(post_id) == ["Escalated"])
    [notice] = [p for p in fake.posts if p.id == int(staff.message_id)]
    return post_id, escalation_id, notice


async def test_notices_are_v2_containers_coloured_by_state(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    assert notice.v2 and not notice.payload.get("content") and not notice.payload.get("embeds")
    assert notice.content.startswith(f"<@&{w.support_role_id}> **Escalation #{escalation_id}**")
    assert notice.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}
    assert accent(notice) == ACCENT["open"]

    claimed = await act(fake_discord, notice.id, f"supportbot:esc:claim:{escalation_id}")
    assert claimed.v2 and not claimed.payload.get("content")
    assert accent(claimed) == ACCENT["claimed"]
    resolved = await act(fake_discord, notice.id, f"supportbot:esc:resolve:{escalation_id}")
    assert accent(resolved) == ACCENT["resolved"] and resolved.buttons == []
    assert "State: resolved by" in resolved.content
    assert accent(fake_discord.messages[notice.id]) == ACCENT["resolved"]


async def test_the_fake_refuses_what_discord_refuses_of_a_v2_message(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    client = bot._client
    layout = discord.ui.LayoutView()
    layout.add_item(discord.ui.Container(discord.ui.TextDisplay("hi")))
    staff = client.get_partial_messageable(w.staff_channel_id)

    with pytest.raises(discord.HTTPException) as with_content:
        await staff.send("text too", view=layout)
    with pytest.raises(discord.HTTPException) as without_flag:
        await client.http.send_message(
            w.staff_channel_id,
            params=discord.http.MultipartParameters(
                payload={"components": [layout.to_components()[0]]}, multipart=None, files=None
            ),
        )
    with pytest.raises(discord.HTTPException) as flag_removed:
        await staff.get_partial_message(notice.id).edit(content="plain again", view=None)

    assert with_content.value.code == without_flag.value.code == 50035
    assert flag_removed.value.code == 50035
    assert fake_discord.messages[notice.id]["flags"] & (1 << 15)


@pytest.mark.parametrize("lock", [False, True], ids=["archived", "locked"])
async def test_a_forum_post_is_tagged_escalated_then_solved_and_archived(
    lock: bool, fake_discord: FakeDiscord, port: WatchedPort, desk: WatchedDesk
) -> None:
    async with running_bot(fake_discord, port, desk, lock_solved_posts=lock):
        post_id, escalation_id, notice = await forum_escalation(fake_discord, desk)
        forum = fake_discord.channels[fake_discord.world.forum_channel_id]
        # Created once, for moderators only (customers cannot mark their own post solved).
        assert [(t["name"], t["moderated"]) for t in forum["available_tags"]] == [
            ("Escalated", True)
        ]
        assert archived(fake_discord, post_id) == (False, False)

        await act(fake_discord, notice.id, f"supportbot:esc:resolve:{escalation_id}")
        await fake_discord.wait_for(lambda: archived(fake_discord, post_id)[0])

    assert fake_discord.tags_of(post_id) == ["Solved"]
    assert archived(fake_discord, post_id) == (True, lock)
    assert [t["name"] for t in forum["available_tags"]] == ["Escalated", "Solved"]


async def test_the_customer_writing_again_reopens_a_solved_post(
    fake_discord: FakeDiscord,
    fake_claude: FakeAnthropic,
    bot: DiscordBot,
    port: WatchedPort,
    desk: WatchedDesk,
) -> None:
    post_id, escalation_id, notice = await forum_escalation(fake_discord, desk)
    await act(fake_discord, notice.id, f"supportbot:esc:resolve:{escalation_id}")
    await fake_discord.wait_for(lambda: archived(fake_discord, post_id)[0])

    fake_claude.queue(text("Your refund went out yesterday."))
    again = await say(fake_discord, post_id, "Sorry, one more question about it.")
    await port.wait_for(lambda: port.handled(again["id"]))
    await bot.drain()

    assert fake_discord.tags_of(post_id) == []
    assert archived(fake_discord, post_id) == (False, False)
    assert fake_discord.posts_in(post_id)[-1].content == "Your refund went out yesterday."


async def test_a_hand_back_takes_the_escalated_tag_off(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    post_id, escalation_id, notice = await forum_escalation(fake_discord, desk)
    await act(fake_discord, notice.id, f"supportbot:esc:handback:{escalation_id}")
    await fake_discord.wait_for(lambda: fake_discord.tags_of(post_id) == [])
    assert archived(fake_discord, post_id) == (False, False)
