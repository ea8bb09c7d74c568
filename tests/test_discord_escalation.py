"""The escalation lifecycle on Discord, on the wire: real discord.py ⇄ fake Discord, the adapter,
the real engine and desk on a real database, fake Claude.

Re-pings fall due after 0.12 s here (``reping_minutes=0.002``); the watcher only runs in the
tests that start it, so nothing else is ever re-pinged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bots.app import Runtime, open_runtime
from bots.common.workflow import ALREADY_CLOSED, CLOSED, NOT_DELIVERED, ONLY_STAFF
from bots.discord.bot import DiscordBot
from core.config import Persona, Settings
from core.desk import watch_repings
from core.engine import Engine
from core.escalation import Action
from core.hours import SupportHours
from core.ports import ConversationStore
from core.types import EscalationView, StaffPost
from tests.conftest import make_settings
from tests.discord_helpers import (
    WatchedDesk,
    WatchedPort,
    running_bot,
    say,
    staff_posts,
    staff_say,
)
from tests.engine_helpers import texts
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.discord_api import Callback, FakeDiscord, Post, custom_ids, snowflake, user
from tests.test_staff_outbox import retrying

HUMAN = "Can I talk to a human about my refund?"
NO_PINGS = {"parse": []}


@pytest.fixture
def settings(database_url: str, fake_claude: FakeAnthropic) -> Settings:
    return make_settings(database_url, fake_claude.base_url, reping_minutes=0.002)


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


@asynccontextmanager
async def repinging(bot: DiscordBot, desk: WatchedDesk) -> AsyncIterator[None]:
    """The composition root's re-ping watcher, checking every 50 ms."""
    watcher = asyncio.create_task(
        watch_repings(desk, bot.reping, platforms={"discord"}, every=0.05)
    )
    try:
        yield
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def watcher_went_round(desk: WatchedDesk, *, times: int) -> None:
    """Wait until the re-ping watcher has looked ``times`` more times for due re-pings."""
    seen = len(desk.rounds)
    await desk.wait_for(lambda: len(desk.rounds) >= seen + times)


def role(fake: FakeDiscord) -> int:
    return fake.world.support_role_id


def escalation_buttons(escalation_id: int, *actions: str) -> list[str]:
    return [f"supportbot:esc:{action}:{escalation_id}" for action in actions]


async def escalate(
    fake: FakeDiscord, desk: WatchedDesk, channel_id: int, question: str = HUMAN
) -> tuple[dict[str, Any], int, Post]:
    """The customer asks for a person in ``channel_id``; returns their message, the escalation
    id and its notification, once the notification is attached."""
    attached = len(desk.attached)
    message = await say(fake, channel_id, question)
    await desk.wait_for(lambda: len(desk.attached) == attached + 1)
    escalation_id, staff = desk.attached[-1]
    [notice] = [p for p in fake.posts if p.id == int(staff.message_id)]
    return message, escalation_id, notice


async def press(
    fake: FakeDiscord, message_id: int, custom_id: str, *, staff: bool = True
) -> Callback:
    """Dana (or, with ``staff=False``, the customer) presses a button; returns the answer."""
    by = fake.staff if staff else fake.customer
    roles = [role(fake)] if staff else []
    interaction = await fake.click(message_id, custom_id, by=by, roles=roles)
    await fake.wait_for(lambda: bool(fake.answered(interaction)))
    [callback] = fake.answered(interaction)
    return callback


async def act(fake: FakeDiscord, notice_id: int, custom_id: str) -> Post:
    """Dana presses a staff button on the notice ``notice_id``; returns the notice's re-draw.

    The press is deferred at once (DEFERRED_UPDATE_MESSAGE), then the notice is edited.
    """
    edits = len(fake.edits)
    callback = await press(fake, notice_id, custom_id)
    assert callback.type == 6 and callback.data == {}
    await fake.wait_for(lambda: len(fake.edits) > edits)
    edit = fake.edits[-1]
    assert edit.id == notice_id
    return edit


async def test_a_dm_escalation_notifies_staff_with_buttons_and_a_staff_thread(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk, persona: Persona
) -> None:
    w = fake_discord.world
    question, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)

    assert notice.channel_id == w.staff_channel_id
    assert notice.content.startswith(f"<@&{w.support_role_id}> **Escalation #{escalation_id}**")
    assert f"Customer: <@{w.customer_id}>\nPlatform: Discord, direct message\n" in notice.content
    # Staff cannot open the customer's DM: the notice points at its own staff thread instead.
    assert "\nDM: the conversation is relayed in this thread\nState: open since <t:" in (
        notice.content
    )
    assert "/@me/" not in notice.content and question["id"] not in notice.content
    assert notice.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}
    assert notice.buttons == escalation_buttons(escalation_id, "claim", "resolve", "handback")
    [staff_thread] = fake_discord.threads
    assert int(staff_thread["id"]) == notice.id  # a thread started from a message has its id
    assert int(staff_thread["parent_id"]) == w.staff_channel_id
    assert desk.attached == [(escalation_id, StaffPost(str(w.staff_channel_id), str(notice.id)))]
    [answer] = fake_discord.posts_in(w.dm_channel_id)
    assert answer.content == persona.handoff
    assert answer.buttons == []  # no "Talk to a human" under a hand-off
    assert answer.allowed_mentions == NO_PINGS


async def test_claim_updates_the_notification_and_cancels_the_reping(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, claimed_id, claimed = await escalate(fake_discord, desk, w.dm_channel_id)

    edit = await act(fake_discord, claimed.id, f"supportbot:esc:claim:{claimed_id}")

    assert edit.channel_id == w.staff_channel_id  # the notification is edited in place
    assert f"State: claimed by <@{w.staff_user_id}> <t:" in edit.content
    assert edit.buttons == escalation_buttons(claimed_id, "resolve", "handback")
    assert edit.allowed_mentions == NO_PINGS
    view = await desk.get(claimed_id)
    assert view is not None and view.state == "claimed"
    assert view.claimed_by == str(w.staff_user_id)

    question, other_id, other = await escalate(fake_discord, desk, w.support_channel_id)
    async with repinging(bot, desk):
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(other.id)) == 1)
        await watcher_went_round(desk, times=2)

    [reping] = fake_discord.posts_in(other.id)  # in the unclaimed escalation's staff thread
    assert reping.content.startswith(
        f"<@&{w.support_role_id}> Escalation #{other_id} is still unclaimed after "
    )
    assert reping.content.endswith(f"https://discord.com/channels/{w.guild_id}/{question['id']}")
    assert reping.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}
    assert fake_discord.posts_in(claimed.id) == []  # the claimed one was not re-pinged
    assert sum(desk.rounds) == 1


async def test_an_unclaimed_escalation_is_repinged_once_across_a_restart(
    fake_discord: FakeDiscord, settings: Settings
) -> None:
    w = fake_discord.world
    async with open_runtime(settings) as first:
        desk = WatchedDesk(store=first.store)
        async with running_bot(fake_discord, first.engine, desk):
            _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)

    async with open_runtime(settings) as second:
        desk = WatchedDesk(store=second.store)
        async with running_bot(fake_discord, second.engine, desk) as bot:
            async with repinging(bot, desk):
                await fake_discord.wait_for(lambda: len(fake_discord.posts_in(notice.id)) == 1)
                await watcher_went_round(desk, times=2)
            # The buttons posted before the restart still work.
            edit = await act(fake_discord, notice.id, f"supportbot:esc:claim:{escalation_id}")

    [reping] = fake_discord.posts_in(notice.id)
    assert reping.content.startswith(f"<@&{w.support_role_id}> Escalation #{escalation_id} is")
    assert sum(desk.rounds) == 1
    assert "State: claimed by" in edit.content
    assert len(fake_discord.identifies) == 2


async def test_a_staff_post_in_the_thread_silences_the_bot_until_resolved(
    fake_discord: FakeDiscord,
    fake_claude: FakeAnthropic,
    bot: DiscordBot,
    port: WatchedPort,
    desk: WatchedDesk,
) -> None:
    w = fake_discord.world
    question, escalation_id, notice = await escalate(fake_discord, desk, w.support_channel_id)
    thread_id = int(question["id"])
    assert notice.content.startswith(f"<@&{w.support_role_id}> ")  # shown...
    assert notice.allowed_mentions == NO_PINGS  # ...but the thread reply did the pinging
    [handoff] = fake_discord.posts_in(thread_id)
    assert handoff.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}

    said = await staff_say(fake_discord, thread_id, "Hi, I'm Dana. Looking at your refund now.")
    # Right behind it: messages in one thread are handled in the order they arrive.
    quiet = await say(fake_discord, thread_id, "Thanks! How long will it take?")
    await port.wait_for(lambda: port.handled(quiet["id"]))
    assert desk.staff_messages == [(said["id"], True)]
    assert port.reply_to(quiet["id"]) is None
    assert [m.message_id for m, _ in port.turns] == [question["id"], quiet["id"]]
    claude_calls = len(fake_claude.requests)

    edit = await act(fake_discord, notice.id, f"supportbot:esc:resolve:{escalation_id}")
    assert f"State: resolved by <@{w.staff_user_id}> <t:" in edit.content
    assert edit.buttons == []
    fake_claude.queue(text("Refunds arrive within 5-7 business days."))
    await say(fake_discord, thread_id, "One more thing: when will I see the money?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(thread_id)) == 2)

    assert len(fake_claude.requests) == claude_calls + 1
    sent = texts(fake_claude.requests[-1].body["messages"])
    assert ("assistant", "Dana (support team): Hi, I'm Dana. Looking at your refund now.") in sent
    assert (
        fake_discord.posts_in(thread_id)[-1].content == "Refunds arrive within 5-7 business days."
    )


async def test_dm_relay_both_ways_loses_and_doubles_nothing(
    fake_discord: FakeDiscord,
    fake_claude: FakeAnthropic,
    bot: DiscordBot,
    port: WatchedPort,
    desk: WatchedDesk,
) -> None:
    w = fake_discord.world
    _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    staff_thread = notice.id

    # Unclaimed: the bot still answers, and staff see what the customer wrote.
    fake_claude.queue(text("A person will look at the charge."))
    await say(fake_discord, w.dm_channel_id, "It was $240 each time.")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(staff_thread)) == 1)
    [relayed] = fake_discord.posts_in(staff_thread)
    assert relayed.content == f"<@{w.customer_id}> wrote: It was $240 each time."
    assert relayed.allowed_mentions == NO_PINGS
    assert fake_discord.posts_in(w.dm_channel_id)[-1].content == "A person will look at the charge."

    reply = await staff_say(fake_discord, staff_thread, "I see both charges; refunding one.")
    await fake_discord.dispatch("MESSAGE_CREATE", reply)  # the gateway delivers it again
    # Staff-thread messages are handled in order: once this one is out, the replay was handled.
    await staff_say(fake_discord, staff_thread, "Done, the refund is on its way.")
    await desk.wait_for(lambda: len(desk.staff_messages) == 3)
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(w.dm_channel_id)) == 4)

    from_staff = fake_discord.posts_in(w.dm_channel_id)[2:]
    assert [p.content for p in from_staff] == [
        "**Dana** (support team): I see both charges; refunding one.",
        "**Dana** (support team): Done, the refund is on its way.",
    ]
    assert all(p.allowed_mentions == NO_PINGS for p in from_staff)
    assert [recorded for _, recorded in desk.staff_messages] == [True, False, True]

    # A person is talking now: the customer's messages go to staff, the bot says nothing.
    claude_calls = len(fake_claude.requests)
    thanks = await say(fake_discord, w.dm_channel_id, "Thank you!")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(staff_thread)) == 2)
    reply_to_thanks = port.reply_to(thanks["id"])
    assert reply_to_thanks is not None and reply_to_thanks.text == ""
    assert (
        fake_discord.posts_in(staff_thread)[-1].content == f"<@{w.customer_id}> wrote: Thank you!"
    )
    assert len(fake_discord.posts_in(w.dm_channel_id)) == 4  # nothing empty was posted
    assert len(fake_claude.requests) == claude_calls


async def test_staff_chatter_in_a_thread_escalations_staff_thread_stays_there(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    question, _, notice = await escalate(fake_discord, desk, w.support_channel_id)
    await staff_say(fake_discord, notice.id, "I'll take this one, it's a tricky refund.")
    # Once a later customer message is answered, the staff note was handled before it.
    await say(fake_discord, int(question["id"]), "Hello?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(int(question["id"]))) == 2)

    assert desk.staff_messages == []
    assert "tricky" not in " ".join(p.content for p in fake_discord.posts)


async def test_only_the_support_team_can_press_the_buttons(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    before = dict(fake_discord.messages[notice.id])

    interaction = await fake_discord.click(
        notice.id, f"supportbot:esc:claim:{escalation_id}", by=fake_discord.customer
    )
    await fake_discord.wait_for(lambda: bool(fake_discord.followed_up(interaction)))

    [callback] = fake_discord.answered(interaction)
    assert callback.type == 6  # deferred...
    [refusal] = fake_discord.followed_up(interaction)  # ...then told, to the presser alone
    assert refusal.ephemeral and refusal.content == ONLY_STAFF
    await bot.drain()
    view = await desk.get(escalation_id)
    assert view is not None and view.state == "open" and view.claimed_by is None
    assert fake_discord.messages[notice.id] == before
    assert fake_discord.edits == []


async def test_hand_back_closes_the_escalation_and_removes_the_buttons(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    await act(fake_discord, notice.id, f"supportbot:esc:claim:{escalation_id}")

    edit = await act(fake_discord, notice.id, f"supportbot:esc:handback:{escalation_id}")

    assert edit.buttons == []
    state = edit.content.rsplit("\nState: ", 1)[1]
    assert state.startswith(f"handed back to the bot by <@{w.staff_user_id}> <t:")
    view = await desk.get(escalation_id)
    assert view is not None and view.state == "handed_back"


@pytest.mark.parametrize("where", ["thread", "dm"])
async def test_the_talk_to_a_human_button_escalates(
    where: str,
    fake_discord: FakeDiscord,
    fake_claude: FakeAnthropic,
    bot: DiscordBot,
    port: WatchedPort,
    desk: WatchedDesk,
    persona: Persona,
) -> None:
    w = fake_discord.world
    fake_claude.queue(text("Express shipping takes 2-3 business days."))
    channel = w.support_channel_id if where == "thread" else w.dm_channel_id
    question = await say(fake_discord, channel, "How long does express shipping take?")
    answered_in = int(question["id"]) if where == "thread" else channel
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(answered_in)) == 1)
    [answer] = fake_discord.posts_in(answered_in)
    # A streamed answer gets its button with its last edit.
    await fake_discord.wait_for(
        lambda: "supportbot:talk" in custom_ids(fake_discord.messages[answer.id]), within=30
    )

    callback = await press(fake_discord, answer.id, "supportbot:talk", staff=False)
    await desk.wait_for(lambda: len(desk.attached) == 1)

    # The button is used up; the answer's 👍 and 👎 stay.
    assert callback.type == 7 and [c.split(":")[2] for c in custom_ids(callback.data)] == [
        "up",
        "down",
    ]
    pressed, _ = port.turns[-1]
    assert pressed.wants_person and pressed.text == "Talk to a human"
    assert pressed.message_id == f"button:{fake_discord.callbacks[0].interaction_id}"
    assert pressed.key == port.turns[0][0].key and pressed.direct is (where == "dm")
    assert pressed.author_id == str(w.customer_id)
    handoff = fake_discord.posts_in(answered_in)[-1]
    assert handoff.content.startswith(persona.handoff) and handoff.buttons == []
    [notice] = staff_posts(fake_discord)
    link = f"Message: https://discord.com/channels/{w.guild_id}/{answered_in}"
    where_to_look = link if where == "thread" else "DM: the conversation is relayed in this thread"
    assert f"\n{where_to_look}\n" in notice.content
    # The press was acknowledged before anything else was done about it.
    paths = [(r.method, r.path) for r in fake_discord.requests]
    ack = next(i for i, (_, path) in enumerate(paths) if path.endswith("/callback"))
    assert ack < paths.index(("POST", f"/channels/{w.staff_channel_id}/messages"))
    pinged, quiet = (handoff, notice) if where == "thread" else (notice, handoff)  # never both
    assert pinged.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}
    assert quiet.allowed_mentions == NO_PINGS


async def test_a_second_trigger_does_not_ping_again_and_updates_the_notification(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    question, _, notice = await escalate(fake_discord, desk, w.support_channel_id)
    thread_id = int(question["id"])

    await say(fake_discord, thread_id, "Please, I need to speak to a person.")
    await fake_discord.wait_for(lambda: len(fake_discord.edits) == 1)

    first, second = fake_discord.posts_in(thread_id)
    assert first.content.endswith(f"<@&{w.support_role_id}>")
    assert "<@&" not in second.content and second.allowed_mentions == NO_PINGS
    assert staff_posts(fake_discord) == [notice]
    [edit] = fake_discord.edits
    assert (edit.channel_id, edit.id) == (w.staff_channel_id, notice.id)
    reason = "The customer asked for a person; The customer asked for a person"
    assert f"\nReason: {reason}\n" in edit.content
    assert edit.buttons == notice.buttons
    assert edit.allowed_mentions == NO_PINGS


async def test_off_hours_the_customer_hears_when_staff_are_back_and_staff_are_notified(
    fake_discord: FakeDiscord, database_url: str, fake_claude: FakeAnthropic
) -> None:
    w = fake_discord.world
    in_two_days = (datetime.now(UTC) + timedelta(days=2)).strftime("%a").lower()
    closed = SupportHours(timezone="UTC", days=[in_two_days], start="09:00", end="17:00")
    settings = make_settings(database_url, fake_claude.base_url)
    assert settings.persona is not None
    persona = settings.persona.model_copy(update={"support_hours": closed})
    settings = settings.model_copy(update={"persona": persona})
    async with open_runtime(settings) as runtime:
        desk = WatchedDesk(store=runtime.store)
        async with running_bot(fake_discord, runtime.engine, desk):
            _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)

    [answer] = fake_discord.posts_in(w.dm_channel_id)
    weekday = (datetime.now(UTC) + timedelta(days=2)).strftime("%A")
    assert answer.content == (
        f"{persona.handoff} Our support team is offline right now and will be back "
        f"{weekday} at 09:00 (UTC)."
    )
    assert notice.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}


async def test_a_missing_notification_is_posted_by_the_reping(
    fake_discord: FakeDiscord,
    bot: DiscordBot,
    port: WatchedPort,
    desk: WatchedDesk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = fake_discord.world
    staff_channel = w.staff_channel_id
    fake_discord.fail("POST", rf"/channels/{staff_channel}/messages$", status=403, code=50013)
    question = await say(fake_discord, w.dm_channel_id, HUMAN)
    refused = f"/channels/{staff_channel}/messages"
    await fake_discord.wait_for(lambda: any(r.path == refused for r in fake_discord.requests))
    assert staff_posts(fake_discord) == []

    async with repinging(bot, desk):
        await desk.wait_for(lambda: len(desk.attached) == 1)

    [notice] = staff_posts(fake_discord)
    assert notice.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}
    assert notice.buttons
    assert "code 50013" in caplog.text
    assert HUMAN not in caplog.text  # no customer text in the logs
    assert port.turns[0][0].message_id == question["id"]


async def test_a_notice_whose_answer_was_lost_is_found_and_gets_its_thread(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    staff_channel = w.staff_channel_id
    fake_discord.fault_next("made", rf"/channels/{staff_channel}/messages$")
    await say(fake_discord, w.dm_channel_id, HUMAN)
    await fake_discord.wait_for(lambda: len(staff_posts(fake_discord)) == 1)
    await bot.drain()
    assert desk.attached == [], "the answer was lost: not recorded"

    async with repinging(bot, desk):
        await desk.wait_for(lambda: len(desk.attached) == 1)

    [notice] = staff_posts(fake_discord)
    threads = [r for r in fake_discord.requests if r.path.endswith(f"/{notice.id}/threads")]
    assert len(threads) == 1, "its staff thread opened now"
    assert any(
        r.method == "GET" and r.path.endswith(f"/{staff_channel}/messages")
        for r in fake_discord.requests
    ), "the staff channel was looked at first"


async def test_a_reping_whose_answer_was_lost_is_found_not_posted_again(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    [view] = [v for v in await desk.live() if v.id == escalation_id]
    fake_discord.fault_next("made", rf"/channels/{notice.id}/messages$")

    await bot.reping(view)  # not known to be posted: tried again
    await bot.reping(view)

    reminders = [p for p in fake_discord.posts_in(notice.id) if "still unclaimed" in p.content]
    assert len(reminders) == 1


async def test_a_forum_staff_channel_gets_a_post_per_escalation(
    fake_discord: FakeDiscord, fake_claude: FakeAnthropic, port: WatchedPort, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    forum = w.forum_channel_id
    async with running_bot(
        fake_discord,
        port,
        desk,
        staff_channel_id=forum,
        support_channel_ids=[w.support_channel_id],
    ):
        _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
        post_id = notice.id
        await say(fake_discord, w.dm_channel_id, "Talk to a human, please!")  # a second trigger
        await fake_discord.wait_for(lambda: len(fake_discord.edits) == 1)
        await staff_say(fake_discord, post_id, "Hello from the team.")
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(w.dm_channel_id)) == 3)
        claim = await act(fake_discord, post_id, f"supportbot:esc:claim:{escalation_id}")

    [thread] = fake_discord.threads
    assert int(thread["id"]) == post_id and int(thread["parent_id"]) == forum
    assert thread["name"] == f"#{escalation_id} The customer asked for a person"
    assert desk.attached == [(escalation_id, StaffPost(str(forum), str(post_id)))]
    assert notice.channel_id == post_id  # the starter message lives in the post
    assert notice.buttons == escalation_buttons(escalation_id, "claim", "resolve", "handback")
    edit, _ = fake_discord.edits
    assert (edit.channel_id, edit.id) == (post_id, post_id)
    assert fake_discord.posts_in(post_id)[1].content.endswith("wrote: Talk to a human, please!")
    dm = fake_discord.posts_in(w.dm_channel_id)[-1]
    assert dm.content == "**Dana** (support team): Hello from the team."
    assert (claim.channel_id, claim.id) == (post_id, post_id)
    assert "State: claimed by" in claim.content


async def test_a_forum_post_whose_answer_was_lost_is_found_not_posted_again(
    fake_discord: FakeDiscord, port: WatchedPort, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    forum = w.forum_channel_id
    fake_discord.fault_next("made", rf"/channels/{forum}/threads$")
    async with running_bot(fake_discord, port, desk, staff_channel_id=forum) as bot:
        await say(fake_discord, w.dm_channel_id, HUMAN)
        await fake_discord.wait_for(lambda: len(fake_discord.threads) == 1)
        await bot.drain()
        assert desk.attached == [], "the answer was lost: not recorded"
        async with repinging(bot, desk):
            await desk.wait_for(lambda: len(desk.attached) == 1)

    [post] = fake_discord.threads
    [(_, staff)] = desk.attached
    assert staff == StaffPost(str(forum), post["id"])


class WireWatchingDesk(WatchedDesk):
    """The real desk, noting how many interaction answers the fake Discord had received each
    time a staff action was about to be written."""

    def __init__(self, *, store: ConversationStore, fake: FakeDiscord) -> None:
        super().__init__(store=store)
        self._fake = fake
        self.answers_before_write: list[int] = []

    async def act(
        self, escalation_id: int, action: Action, *, staff_id: str
    ) -> EscalationView | None:
        self.answers_before_write.append(len(self._fake.callbacks))
        return await super().act(escalation_id, action, staff_id=staff_id)


async def test_a_staff_press_is_deferred_before_the_database_write(
    fake_discord: FakeDiscord, port: WatchedPort, runtime: Any
) -> None:
    w = fake_discord.world
    desk = WireWatchingDesk(store=runtime.store, fake=fake_discord)
    async with running_bot(fake_discord, port, desk):
        _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
        edit = await act(fake_discord, notice.id, f"supportbot:esc:claim:{escalation_id}")

    assert desk.answers_before_write == [1]  # the defer was in before the claim was written
    [callback] = fake_discord.callbacks
    assert callback.type == 6  # DEFERRED_UPDATE_MESSAGE: nothing shown, nothing changed yet
    paths = [(r.method, r.path) for r in fake_discord.requests]
    redraw = ("PATCH", f"/channels/{w.staff_channel_id}/messages/{notice.id}")
    assert paths.index(redraw) > next(i for i, (_, p) in enumerate(paths) if p.endswith("callback"))
    assert "State: claimed by" in edit.content


async def test_a_press_that_came_too_late_is_told_so_privately(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    sam = user(snowflake(), "sam")
    # Both press before either press is handled: Dana resolves, Sam hands back.
    await fake_discord.click(
        notice.id,
        f"supportbot:esc:resolve:{escalation_id}",
        by=fake_discord.staff,
        roles=[role(fake_discord)],
    )
    late = await fake_discord.click(
        notice.id, f"supportbot:esc:handback:{escalation_id}", by=sam, roles=[role(fake_discord)]
    )
    await fake_discord.wait_for(lambda: bool(fake_discord.followed_up(late)))

    [note] = fake_discord.followed_up(late)
    assert note.ephemeral and note.content == ALREADY_CLOSED
    view = await desk.get(escalation_id)
    assert view is not None and view.state == "resolved"
    assert view.closed_by == str(w.staff_user_id)


async def test_a_staff_reply_after_the_end_is_not_relayed_and_its_author_is_told(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    await say(fake_discord, notice.id, "Customer here, sneaking into the staff thread")
    await act(fake_discord, notice.id, f"supportbot:esc:resolve:{escalation_id}")

    late = await staff_say(fake_discord, notice.id, "Sorry, one more thing!")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(notice.id)) == 1)
    await bot.drain()

    [note] = fake_discord.posts_in(notice.id)  # in reply to Dana, in the staff thread
    assert note.content == CLOSED
    assert note.reference is not None and note.reference["message_id"] == int(late["id"])
    assert note.allowed_mentions == NO_PINGS
    [handoff] = fake_discord.posts_in(w.dm_channel_id)  # nothing relayed, from either of them
    assert "sneaking" not in handoff.content and "one more thing" not in handoff.content
    assert desk.staff_messages == []


async def test_a_staff_reply_the_customer_cannot_receive_is_reported_in_the_staff_thread(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk, caplog: pytest.LogCaptureFixture
) -> None:
    w = fake_discord.world
    _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    fake_discord.fail("POST", rf"/channels/{w.dm_channel_id}/messages$", status=403, code=50007)

    reply = await staff_say(fake_discord, notice.id, "Your refund is on its way.")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(notice.id)) == 1)

    [note] = fake_discord.posts_in(notice.id)
    assert note.content == NOT_DELIVERED
    assert note.reference is not None and note.reference["message_id"] == int(reply["id"])
    assert len(fake_discord.posts_in(w.dm_channel_id)) == 1  # only the hand-off answer
    assert "code 50007" in caplog.text
    assert "refund is on its way" not in caplog.text


# The staff outbox: relays, staff replies and notice re-draws that failed
# (tests/test_staff_outbox.py has Slack's side and the watcher).


def sent_to(fake: FakeDiscord, channel_id: int) -> int:
    """How many times the bot tried to post in ``channel_id``, failures included."""
    path = f"/channels/{channel_id}/messages"
    return sum(r.method == "POST" and r.path == path for r in fake.requests)


async def test_a_relay_whose_post_failed_reaches_the_staff_thread_once(
    fake_discord: FakeDiscord,
    fake_claude: FakeAnthropic,
    bot: DiscordBot,
    desk: WatchedDesk,
    runtime: Runtime,
) -> None:
    w = fake_discord.world
    _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    fake_discord.fail("POST", rf"/channels/{notice.id}/messages$", status=503, code=0)
    fake_claude.queue(text("A person will look at the charge."))
    await say(fake_discord, w.dm_channel_id, "It was $240 each time.")
    await fake_discord.wait_for(lambda: sent_to(fake_discord, notice.id) == 1)
    await bot.drain()
    assert fake_discord.posts_in(notice.id) == []

    async with retrying(runtime, bot.resend, platform="discord"):
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(notice.id)) == 1)
        await bot.drain()

    [relayed] = fake_discord.posts_in(notice.id)
    assert relayed.content == f"<@{w.customer_id}> wrote: It was $240 each time."
    assert sent_to(fake_discord, notice.id) == 2
    assert await desk.waiting({"discord"}) == []


async def test_a_staff_reply_whose_answer_was_lost_reaches_the_customer_once(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk, runtime: Runtime
) -> None:
    w = fake_discord.world
    _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    fake_discord.fault_next("made", rf"/channels/{w.dm_channel_id}/messages$")
    await staff_say(fake_discord, notice.id, "I see both charges; refunding one.")
    await desk.wait_for(lambda: len(desk.staff_messages) == 1)
    await bot.drain()
    assert fake_discord.posts_in(notice.id) == [], "not given up: nothing said to staff"

    looked = len(fake_discord.requests)
    async with retrying(runtime, bot.resend, platform="discord"):
        await fake_discord.wait_for(
            lambda: any(r.method == "GET" for r in fake_discord.requests[looked:])
        )
        await bot.drain()

    from_staff = [
        p.content for p in fake_discord.posts_in(w.dm_channel_id) if "(support team)" in p.content
    ]
    assert from_staff == ["**Dana** (support team): I see both charges; refunding one."]
    assert sent_to(fake_discord, w.dm_channel_id) == 2, "the hand-off, then the one reply"
    assert await desk.waiting({"discord"}) == []


async def test_a_staff_reply_to_closed_dms_is_given_up_and_staff_are_told(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk
) -> None:
    w = fake_discord.world
    _, _, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    fake_discord.fail("POST", rf"/channels/{w.dm_channel_id}/messages$", status=403, code=50007)
    await staff_say(fake_discord, notice.id, "Are you still there?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts_in(notice.id)) == 1)
    await bot.drain()

    [told] = fake_discord.posts_in(notice.id)
    assert told.content == NOT_DELIVERED
    assert await desk.waiting({"discord"}) == []


async def test_a_claim_whose_notice_edit_failed_is_redrawn_later(
    fake_discord: FakeDiscord, bot: DiscordBot, desk: WatchedDesk, runtime: Runtime
) -> None:
    w = fake_discord.world
    _, escalation_id, notice = await escalate(fake_discord, desk, w.dm_channel_id)
    fake_discord.fail("PATCH", rf"/messages/{notice.id}$", status=503, code=0)
    await press(fake_discord, notice.id, f"supportbot:esc:claim:{escalation_id}")
    await bot.drain()
    assert fake_discord.edits == []
    [waiting] = await desk.waiting({"discord"})
    assert waiting.kind == "notice"

    async with retrying(runtime, bot.resend, platform="discord"):
        await fake_discord.wait_for(lambda: len(fake_discord.edits) == 1)
        await bot.drain()

    [edit] = fake_discord.edits
    assert edit.id == notice.id and "State: claimed by" in edit.content
    assert edit.buttons == escalation_buttons(escalation_id, "resolve", "handback")
    assert await desk.waiting({"discord"}) == []
