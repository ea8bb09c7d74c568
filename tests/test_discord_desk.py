"""Discord as a ticket desk, on the wire (real discord.py ⇄ fake Discord, the real engine and
desk on a real database): forum posts tagged and archived as their escalation moves, staff
notices as Components v2 containers coloured by state, and the staff slash commands."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest

from bots.app import Runtime
from bots.common.workflow import ALREADY_CLOSED, ONLY_STAFF
from bots.discord.bot import NO_ESCALATION, DiscordBot
from bots.discord.notice import ACCENT
from core.config import Persona
from tests.discord_helpers import WatchedDesk, WatchedPort, running_bot, say, staff_posts
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.discord_api import Callback, FakeDiscord, Followup, Post
from tests.test_discord_escalation import HUMAN, act, bot, desk, escalate, port, settings

# The escalation tests' fixtures (the real engine and desk, a started bot), used by name.
__all__ = ["bot", "desk", "port", "settings"]


def accent(post: Post | dict[str, Any]) -> int:
    """The accent colour of a Components v2 notice (as posted, edited or now)."""
    payload = post.payload if isinstance(post, Post) else post
    [container] = payload["components"]
    assert container["type"] == 17  # a container
    return container["accent_color"]


def archived(fake: FakeDiscord, thread_id: int) -> tuple[bool, bool]:
    meta = fake.channels[thread_id]["thread_metadata"]
    return meta["archived"], meta["locked"]


async def archived_by_discord(fake: FakeDiscord, bot: DiscordBot, post_id: int) -> None:
    """The post sat idle for a day: Discord archived it (THREAD_UPDATE), and the bot saw it."""
    post = fake.channels[post_id]
    post["thread_metadata"]["archived"] = True
    seen = asyncio.ensure_future(
        bot._client.wait_for("thread_update", check=lambda _, after: after.archived)
    )
    await fake.dispatch("THREAD_UPDATE", post)
    await asyncio.wait_for(seen, 5)


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


@pytest.mark.parametrize("idle", [False, True], ids=["active", "archived-by-discord"])
async def test_a_hand_back_takes_the_escalated_tag_off(
    idle: bool, fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    post_id, escalation_id, notice = await forum_escalation(fake_discord, desk)
    if idle:
        await archived_by_discord(fake_discord, bot, post_id)
    await act(fake_discord, notice.id, f"supportbot:esc:handback:{escalation_id}")
    await fake_discord.wait_for(lambda: fake_discord.tags_of(post_id) == [])
    # The bot has the conversation again: an archived post is unarchived with the change.
    assert archived(fake_discord, post_id) == (False, False)


async def run_command(
    fake: FakeDiscord, name: str, channel_id: int, *, staff: bool = True
) -> tuple[Callback, list[Followup]]:
    """Dana (or, with ``staff=False``, the customer) runs ``/name`` in ``channel_id``; returns
    the interaction's answer and, once there is one, its private follow-ups."""
    by, roles = (fake.staff, [fake.world.support_role_id]) if staff else (fake.customer, [])
    interaction = await fake.command(name, channel_id, by=by, roles=roles)
    await fake.wait_for(lambda: bool(fake.answered(interaction)))
    [callback] = fake.answered(interaction)
    if callback.type == 5:  # deferred: the outcome follows
        await fake.wait_for(lambda: bool(fake.followed_up(interaction)))
    return callback, fake.followed_up(interaction)


def registered(fake: FakeDiscord) -> list[str]:
    return [c["name"] for c in fake.commands.get(fake.world.guild_id, [])]


async def test_the_staff_commands_are_registered_once_not_on_every_start(
    fake_discord: FakeDiscord, port: WatchedPort, desk: WatchedDesk
) -> None:
    async with running_bot(fake_discord, port, desk):
        pass
    assert registered(fake_discord) == ["claim", "resolve", "handback"]
    [sync] = fake_discord.command_syncs
    assert all(0 < len(c["description"]) <= 100 for c in sync.body)

    async with running_bot(fake_discord, port, desk):
        pass  # a restart with the same commands: compared, not synced
    assert len(fake_discord.command_syncs) == 1

    del fake_discord.commands[fake_discord.world.guild_id][1]  # the set on Discord changed
    async with running_bot(fake_discord, port, desk):
        pass
    assert len(fake_discord.command_syncs) == 2
    assert registered(fake_discord) == ["claim", "resolve", "handback"]


@pytest.mark.parametrize("name", ["claim", "resolve", "handback"])
async def test_a_customer_cannot_run_a_staff_command(
    name: str, fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    question, escalation_id, _ = await escalate(fake_discord, desk, w.support_channel_id)

    refusal, followups = await run_command(fake_discord, name, int(question["id"]), staff=False)

    assert refusal.type == 4 and refusal.ephemeral and refusal.data["content"] == ONLY_STAFF
    await bot.drain()
    view = await desk.get(escalation_id)
    assert view is not None and (view.state, view.claimed_by) == ("open", None)
    assert fake_discord.edits == [] and followups == []


async def test_staff_commands_do_what_the_buttons_do(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    question, escalation_id, notice = await escalate(fake_discord, desk, w.support_channel_id)

    # In the customer's thread.
    deferred, [claimed] = await run_command(fake_discord, "claim", int(question["id"]))
    assert deferred.type == 5 and deferred.ephemeral
    assert claimed.ephemeral and claimed.content == f"You claimed escalation #{escalation_id}."
    view = await desk.get(escalation_id)
    assert view is not None and view.state == "claimed"
    assert view.claimed_by == str(w.staff_user_id)
    edit = fake_discord.edits[-1]
    assert edit.id == notice.id and accent(edit) == ACCENT["claimed"]
    assert f"State: claimed by <@{w.staff_user_id}>" in edit.content

    # In the escalation's staff thread (a thread started from the notice has its id).
    _, [resolved] = await run_command(fake_discord, "resolve", notice.id)
    assert resolved.content == f"Escalation #{escalation_id} is resolved."
    view = await desk.get(escalation_id)
    assert view is not None and view.state == "resolved"
    assert accent(fake_discord.messages[notice.id]) == ACCENT["resolved"]

    # Done already: told so, privately, as a late button press is.
    _, [late] = await run_command(fake_discord, "handback", notice.id)
    assert late.ephemeral and late.content == ALREADY_CLOSED


async def test_staff_commands_work_where_there_is_no_staff_channel(
    fake_discord: FakeDiscord, port: WatchedPort, desk: WatchedDesk
) -> None:
    # Without DISCORD_STAFF_CHANNEL_ID there is no notice to redraw: the commands in the
    # customer's thread are then the team's only tool, and they still do what they say.
    w = fake_discord.world
    async with running_bot(fake_discord, port, desk, staff_channel_id=None):
        question = await say(fake_discord, w.support_channel_id, HUMAN)
        await port.wait_for(lambda: port.handled(question["id"]))
        [escalation] = await desk.live()
        thread = int(question["id"])
        _, [claimed] = await run_command(fake_discord, "claim", thread)
        _, [resolved] = await run_command(fake_discord, "resolve", thread)

    assert claimed.content == f"You claimed escalation #{escalation.id}."
    assert resolved.content == f"Escalation #{escalation.id} is resolved."
    view = await desk.get(escalation.id)
    assert view is not None and view.state == "resolved"


async def test_a_staff_command_outside_an_escalation_is_explained(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, bot: DiscordBot, port: WatchedPort
) -> None:
    w = fake_discord.world
    fake_claude.queue(text("Our sofas ship in 3 days."))
    question = await say(fake_discord, w.support_channel_id, "How fast do sofas ship?")
    await port.wait_for(lambda: port.handled(question["id"]))

    for channel in (int(question["id"]), w.support_channel_id):  # not escalated; no thread
        _, [note] = await run_command(fake_discord, "resolve", channel)
        assert note.ephemeral and note.content == NO_ESCALATION


async def test_resolving_a_post_discord_archived_meanwhile_still_marks_it_solved(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    post_id, escalation_id, notice = await forum_escalation(fake_discord, desk)
    await archived_by_discord(fake_discord, bot, post_id)

    await act(fake_discord, notice.id, f"supportbot:esc:resolve:{escalation_id}")
    await bot.drain()
    await fake_discord.wait_for(lambda: fake_discord.tags_of(post_id) == ["Solved"])

    assert archived(fake_discord, post_id) == (True, False)
    unarchive, solve = [e.body for e in fake_discord.channel_edits][-2:]
    assert unarchive == {"archived": False}
    assert solve["archived"] is True


async def test_did_we_solve_it_is_asked_in_the_locked_post_before_it_is_archived_again(
    fake_discord: FakeDiscord, runtime: Runtime, port: WatchedPort, persona: Persona
) -> None:
    async with running_bot(fake_discord, port, runtime.desk, lock_solved_posts=True) as bot:
        starter = await fake_discord.forum_post("Refund", HUMAN)
        post_id = int(starter["id"])
        await fake_discord.wait_for(lambda: fake_discord.tags_of(post_id) == ["Escalated"])
        await bot.drain()
        [notice] = staff_posts(fake_discord)
        claim, resolve, _ = notice.buttons
        await act(fake_discord, notice.id, claim)  # a person helped: the question is asked
        await act(fake_discord, notice.id, resolve)
        await bot.drain()

    asked = fake_discord.posts_in(post_id)[-1]
    assert asked.content == persona.feedback.solved_question
    assert fake_discord.tags_of(post_id) == ["Solved"]
    assert archived(fake_discord, post_id) == (True, True)
