"""The Discord adapter on the wire: real discord.py against the fake Discord, a recording port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bots.discord.bot import DiscordBot
from core.desk import Desk
from core.stream import AnswerSink
from core.types import Escalation, IncomingMessage, Reply
from tests.discord_helpers import (
    RecordingPort,
    fake_discord_installed,
    running_bot,
    say,
    staff_say,
)
from tests.fakes.discord_api import FakeDiscord, snowflake, user


@pytest.fixture
def port() -> RecordingPort:
    return RecordingPort()


@pytest.fixture
async def bot(
    fake_discord: FakeDiscord, port: RecordingPort, desk: Desk
) -> AsyncIterator[DiscordBot]:
    async with running_bot(fake_discord, port, desk) as started:
        yield started


async def test_support_channel_message_opens_a_thread_and_answers_in_it(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "How do I reset my password?")
    thread_id = int(question["id"])

    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    [thread] = fake_discord.threads
    assert int(thread["id"]) == thread_id  # a thread started from a message has its id
    assert int(thread["parent_id"]) == w.support_channel_id
    assert thread["name"] == "How do I reset my password?"
    [post] = fake_discord.posts
    assert post.channel_id == thread_id
    assert post.content == "answer to: How do I reset my password?"
    assert post.buttons == ["supportbot:talk"]
    assert post.reference is None  # the starter message lives in the parent channel
    [incoming] = port.messages
    assert str(incoming.key) == f"discord:{w.guild_id}:{w.support_channel_id}:{thread_id}"
    assert incoming.message_id == question["id"]
    assert incoming.author_id == str(w.customer_id)
    assert incoming.direct is False


async def test_follow_up_in_the_thread_continues_the_conversation(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "My order is late.")
    thread_id = int(question["id"])
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    follow_up = await say(fake_discord, thread_id, "It is order 42.")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert [m.text for m in port.messages] == ["My order is late.", "It is order 42."]
    assert port.messages[0].key == port.messages[1].key
    assert len(fake_discord.threads) == 1
    answer = fake_discord.posts[1]
    assert answer.channel_id == thread_id
    assert answer.reference is not None
    assert answer.reference["message_id"] == int(follow_up["id"])
    assert answer.reference["fail_if_not_exists"] is False


async def test_typing_shows_while_the_port_works(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    async def typing_seen(message: IncomingMessage) -> None:
        await fake_discord.wait_for(lambda: int(message.key.thread_id) in fake_discord.typing)

    port.before_answer = typing_seen
    await say(fake_discord, fake_discord.world.support_channel_id, "Hello?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)


async def test_forum_post_is_answered_in_its_thread(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    starter = await fake_discord.forum_post("Refunds", "Can I get a refund?")
    thread_id = int(starter["id"])

    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    assert fake_discord.threads == []  # the customer's post already is the thread
    [post] = fake_discord.posts
    assert post.channel_id == thread_id
    assert post.reference is not None and post.reference["message_id"] == int(starter["id"])
    assert str(port.messages[0].key) == f"discord:{w.guild_id}:{w.forum_channel_id}:{thread_id}"


async def test_dm_is_one_conversation_per_dm_channel(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    first = await say(fake_discord, w.dm_channel_id, "Hi, quick question")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)
    await say(fake_discord, w.dm_channel_id, "What are your hours?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert {str(m.key) for m in port.messages} == {f"discord:@me:{w.dm_channel_id}:-"}
    assert all(m.direct for m in port.messages)
    assert fake_discord.threads == []
    assert [p.channel_id for p in fake_discord.posts] == [w.dm_channel_id] * 2
    assert fake_discord.posts[0].reference == {
        "type": 0,
        "message_id": int(first["id"]),
        "channel_id": w.dm_channel_id,
        "fail_if_not_exists": False,
    }


async def test_unconfigured_channel_needs_a_mention_then_the_thread_follows(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    await say(fake_discord, w.general_channel_id, "chatting about lunch")
    asked = await say(
        fake_discord,
        w.general_channel_id,
        f"<@{w.bot_id}> does the lamp ship to Norway?",
        mentions_bot=True,
    )
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)
    thread_id = int(asked["id"])
    await say(fake_discord, thread_id, "and to Sweden?")  # no mention: the thread is active
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert [m.text for m in port.messages] == ["does the lamp ship to Norway?", "and to Sweden?"]
    assert [p.channel_id for p in fake_discord.posts] == [thread_id, thread_id]
    assert fake_discord.threads[0]["name"] == "does the lamp ship to Norway?"


async def test_own_bot_and_webhook_messages_are_ignored(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    await say(fake_discord, w.support_channel_id, "beep", author=fake_discord.other_bot)
    await say(fake_discord, w.support_channel_id, "I am the bot", author=fake_discord.bot_user)
    hook = user(snowflake(), "ci-hook", bot=True)
    await say(
        fake_discord, w.support_channel_id, "deploy done", author=hook, webhook_id=snowflake()
    )
    await say(fake_discord, w.support_channel_id, "pinned a message", kind=6)
    # A customer message afterwards: once it is answered, everything before it was handled.
    await say(fake_discord, w.support_channel_id, "A real question")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    assert [m.text for m in port.messages] == ["A real question"]
    # The bot's own answer came back over the gateway too (the fake echoes it) and was ignored.
    assert len(port.messages) == 1


async def test_redelivery_after_resume_gets_one_reply(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    question = await say(fake_discord, w.dm_channel_id, "Where is my parcel?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    await fake_discord.reconnect(replay=[("MESSAGE_CREATE", question)])
    await fake_discord.wait_for(lambda: len(fake_discord.resumes) == 1)
    await port.wait_for(lambda: len(port.messages) == 2)
    await say(fake_discord, w.dm_channel_id, "Hello again")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert fake_discord.gateway_paths == ["/gw", "/resume-gw"]  # resumed at resume_gateway_url
    assert len(fake_discord.identifies) == 1
    assert fake_discord.resumes[0]["session_id"] == fake_discord.session_id
    assert [m.message_id for m in port.messages] == [
        question["id"],
        question["id"],
        port.messages[2].message_id,
    ]
    assert [p.content for p in fake_discord.posts] == [
        "answer to: Where is my parcel?",
        "answer to: Hello again",
    ]


async def test_replayed_support_message_reuses_its_thread(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    question = await say(fake_discord, w.support_channel_id, "Is the sofa in stock?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    await fake_discord.reconnect(replay=[("MESSAGE_CREATE", question)])
    await port.wait_for(lambda: len(port.messages) == 2)
    await say(fake_discord, int(question["id"]), "In grey?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert len(fake_discord.threads) == 1
    assert port.messages[0].key == port.messages[1].key == port.messages[2].key


async def test_model_output_cannot_ping(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    port.answer = lambda m: Reply(f"@everyone @here <@&{w.support_role_id}> <@{w.customer_id}>")
    await say(fake_discord, w.support_channel_id, "ping everyone please")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    [post] = fake_discord.posts
    assert "@everyone" in post.content
    assert post.allowed_mentions == {"parse": []}


async def test_long_answer_is_split_on_the_wire(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    code = "```sh\n" + "\n".join(f"echo step-{i}" for i in range(150)) + "\n```"
    body = ("Follow these steps carefully. " * 60 + "\n\n" + code + "\n\n") * 2
    answer = body[:5000].rsplit(" ", 1)[0]
    port.answer = lambda m: Reply(answer)
    w = fake_discord.world
    await say(fake_discord, w.dm_channel_id, "How do I install it?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 3)

    contents = [p.content for p in fake_discord.posts]
    assert all(0 < len(c) <= 2000 for c in contents)
    assert all(sum(line.startswith("```") for line in c.splitlines()) % 2 == 0 for c in contents)
    assert fake_discord.posts[0].reference is not None
    assert [p.reference for p in fake_discord.posts[1:]] == [None, None]
    assert all(p.allowed_mentions == {"parse": []} for p in fake_discord.posts)
    # "Talk to a human" goes under the last part of the answer only.
    assert [p.buttons for p in fake_discord.posts] == [[], [], ["supportbot:talk"]]


async def test_escalation_in_a_thread_pings_exactly_the_support_role_not_model_text(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    port.answer = lambda m: Reply(
        "A person from our team will follow up here. @everyone",
        Escalation("wants a human", "asked for a person", m.author_id),
    )
    await say(fake_discord, w.support_channel_id, "I want to talk to a human")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    [post] = fake_discord.posts
    assert post.content.endswith(f"<@&{w.support_role_id}>")
    assert post.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}


async def test_without_thread_permission_it_answers_in_the_channel(
    fake_discord: FakeDiscord,
    port: RecordingPort,
    bot: DiscordBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = fake_discord.world
    fake_discord.fail("POST", r"/messages/\d+/threads$", status=403, code=50013)
    question = await say(fake_discord, w.support_channel_id, "Can I pay by invoice?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    [post] = fake_discord.posts
    assert post.channel_id == w.support_channel_id
    assert post.reference is not None and post.reference["message_id"] == int(question["id"])
    # No "Talk to a human": a press in the channel could not tell which question it was about.
    assert post.buttons == []
    assert "code 50013" in caplog.text
    assert "Can I pay by invoice?" not in caplog.text  # no customer text in the logs


async def test_port_failure_is_logged_not_shown(
    fake_discord: FakeDiscord, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenPort(RecordingPort):
        async def handle(
            self, message: IncomingMessage, sink: AnswerSink | None = None
        ) -> Reply | None:
            await super().handle(message)
            raise RuntimeError("secret internals")

    broken = BrokenPort()
    async with running_bot(fake_discord, broken, desk):
        hello = await say(fake_discord, fake_discord.world.dm_channel_id, "hello")
        await broken.wait_for(lambda: len(broken.messages) == 1)

    assert fake_discord.posts == []
    assert f"discord message {hello['id']} failed" in caplog.text


async def test_a_thread_missing_from_the_cache_is_looked_up(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    thread_id = fake_discord.add_thread(w.support_channel_id)
    await say(fake_discord, thread_id, "Back again about my order")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    assert any(r.path == f"/channels/{thread_id}" for r in fake_discord.requests)
    assert str(port.messages[0].key) == f"discord:{w.guild_id}:{w.support_channel_id}:{thread_id}"
    assert fake_discord.posts[0].channel_id == thread_id


async def test_replay_finds_the_existing_thread_when_the_cache_missed_it(desk: Desk) -> None:
    port = RecordingPort()
    async with (
        fake_discord_installed(announce_threads=False) as fake,
        running_bot(fake, port, desk),
    ):
        question = await say(fake, fake.world.support_channel_id, "Do you ship to Iceland?")
        await fake.wait_for(lambda: len(fake.posts) == 1)
        await fake.reconnect(replay=[("MESSAGE_CREATE", question)])
        await port.wait_for(lambda: len(port.messages) == 2)
        await say(fake, int(question["id"]), "And to Greenland?")
        await fake.wait_for(lambda: len(fake.posts) == 2)

    thread_calls = [
        r for r in fake.requests if r.path.endswith(f"/messages/{question['id']}/threads")
    ]
    assert len(thread_calls) == 2  # the replay tried, got 160004, and looked the thread up
    assert len(fake.threads) == 1
    assert [p.channel_id for p in fake.posts] == [int(question["id"])] * 2


async def test_a_photo_without_text_names_its_files_and_its_thread(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    photo = fake_discord.message(w.support_channel_id, "", attachments=["broken-lamp.jpg"])
    await fake_discord.dispatch("MESSAGE_CREATE", photo)
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)

    [incoming] = port.messages
    assert incoming.text == ""
    [lamp] = incoming.attachments
    assert (lamp.name, lamp.data) == ("broken-lamp.jpg", b"file broken-lamp.jpg")
    [thread] = fake_discord.threads
    assert thread["name"] == "Photo from Casey"


async def test_staff_who_address_the_bot_are_answered_like_customers(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    mention = f"<@{w.bot_id}>"
    asked = fake_discord.staff_message(
        w.support_channel_id, f"{mention} what is our refund window?", mentions_bot=True
    )
    await fake_discord.dispatch("MESSAGE_CREATE", asked)
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)
    thread_id = int(asked["id"])
    again = fake_discord.staff_message(
        thread_id, f"{mention} and for sale items?", mentions_bot=True
    )
    await fake_discord.dispatch("MESSAGE_CREATE", again)
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 2)

    assert [m.text for m in port.messages] == [
        "what is our refund window?",
        "and for sale items?",
    ]
    assert all(m.author_id == str(w.staff_user_id) for m in port.messages)
    assert [p.channel_id for p in fake_discord.posts] == [thread_id, thread_id]


async def test_a_staff_post_addressing_nobody_outside_a_conversation_is_not_answered(
    fake_discord: FakeDiscord, port: RecordingPort, bot: DiscordBot
) -> None:
    w = fake_discord.world
    await staff_say(fake_discord, w.support_channel_id, "Reminder: stand-up at ten.")
    # Messages are handled in arrival order: once the customer is answered, the staff post was
    # handled before.
    question = await say(fake_discord, w.support_channel_id, "Is the shop open on Sunday?")
    await fake_discord.wait_for(lambda: len(fake_discord.posts) == 1)
    await bot.drain()

    assert [m.text for m in port.messages] == ["Is the shop open on Sunday?"]
    assert [int(t["id"]) for t in fake_discord.threads] == [int(question["id"])]
