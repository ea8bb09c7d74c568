"""Pure parts of the Discord adapter: routing, mention stripping, thread names, rendering."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from bots.common import StaffReply
from bots.discord.invite import PERMISSIONS, invite_url
from bots.discord.render import (
    Outgoing,
    relay_messages,
    reply_messages,
    shorten,
    staff_reply_messages,
)
from bots.discord.routing import (
    Plan,
    Seen,
    conversation_at,
    plan,
    strip_mention,
    thread_name,
)
from bots.discord.send import allowed_mentions
from core.types import Attachment, ConversationKey, Escalation, Reply, StaffPost

BOT, GUILD, SUPPORT, GENERAL, THREAD, MSG, USER, STAFF = 9, 1, 10, 20, 30, 40, 50, 70
BASE = Seen(
    message_id=MSG,
    author_id=USER,
    author_name="Casey",
    author_is_bot=False,
    webhook_id=None,
    system=False,
    guild_id=GUILD,
    channel_id=SUPPORT,
    thread_parent_id=None,
    mentions_bot=False,
    content="Where is my order?",
)
RECEIPT = Attachment("receipt.pdf", url="https://cdn.discordapp.com/attachments/1/2/receipt.pdf")


def route(**changes: Any) -> Plan | StaffReply | None:
    return plan(
        replace(BASE, **changes), bot_id=BOT, support_channel_ids={SUPPORT}, staff_channel_id=STAFF
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"author_id": BOT},
        {"author_is_bot": True},
        {"webhook_id": 77},
        {"system": True},
        {"channel_id": GENERAL},
        {"channel_id": GENERAL, "author_is_bot": True, "mentions_bot": True},
        {"channel_id": STAFF},
        {"channel_id": STAFF, "mentions_bot": True},
        {"channel_id": THREAD, "thread_parent_id": STAFF, "author_is_bot": True},
    ],
    ids=[
        "own",
        "other-bot",
        "webhook",
        "system",
        "unconfigured",
        "bot-mentioning-us",
        "staff-channel",
        "staff-channel-mentioning-us",
        "staff-thread-by-a-bot",
    ],
)
def test_ignored(changes: dict[str, object]) -> None:
    assert route(**changes) is None


@pytest.mark.parametrize(
    ("changes", "key", "start_thread", "follow_up", "addressed"),
    [
        ({}, ("1", "10", "40"), True, False, False),
        ({"channel_id": GENERAL, "mentions_bot": True}, ("1", "20", "40"), True, False, True),
        (
            {"channel_id": THREAD, "thread_parent_id": SUPPORT},
            ("1", "10", "30"),
            False,
            False,
            False,
        ),
        (
            {"channel_id": THREAD, "thread_parent_id": GENERAL, "mentions_bot": True},
            ("1", "20", "30"),
            False,
            False,
            True,
        ),
        (
            {"channel_id": THREAD, "thread_parent_id": GENERAL},
            ("1", "20", "30"),
            False,
            True,
            False,
        ),
        ({"guild_id": None, "channel_id": 60}, ("@me", "60", "-"), False, False, True),
    ],
    ids=[
        "support-channel",
        "mention-elsewhere",
        "support-thread",
        "mention-in-thread",
        "unprompted-thread",
        "dm",
    ],
)
def test_routed(
    changes: dict[str, object],
    key: tuple[str, str, str],
    start_thread: bool,
    follow_up: bool,
    addressed: bool,
) -> None:
    todo = route(**changes)
    assert isinstance(todo, Plan)
    assert todo.message.key == ConversationKey("discord", *key)
    assert todo.start_thread is start_thread
    assert todo.follow_up is follow_up
    # A mention or a DM: a support-team member is answered only then (the workflow decides).
    assert todo.addressed is addressed
    assert todo.message.direct is (key[0] == "@me")
    assert todo.message.message_id == str(MSG)
    assert todo.message.author_id == str(USER)
    assert todo.message.author_name == "Casey"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@9> where is my order?", "where is my order?"),
        ("hey <@!9>   can you help", "hey can you help"),
        ("<@9>", ""),
        ("ask <@99> and <@9>\nline two", "ask <@99> and\nline two"),
    ],
)
def test_strip_mention(text: str, expected: str) -> None:
    assert strip_mention(text, BOT) == expected


def test_only_a_mention_passes_empty_text_through() -> None:
    todo = route(content="<@9>", mentions_bot=True, channel_id=GENERAL)
    assert isinstance(todo, Plan) and todo.message.text == ""


@pytest.mark.parametrize("mentions_bot", [False, True], ids=["plain", "mentioning-us"])
def test_a_post_in_a_staff_thread_is_a_staff_reply(mentions_bot: bool) -> None:
    said = route(
        channel_id=THREAD,
        thread_parent_id=STAFF,
        author_name="Dana",
        content="<@9> On it.",
        mentions_bot=mentions_bot,
        attachments=(RECEIPT,),
    )
    assert said == StaffReply(
        post=StaffPost("70", "30"),
        author_id=str(USER),
        author_name="Dana",
        text="On it.",
        message_id="40",
        attachments=(RECEIPT,),  # the workflow fetches and passes them on
    )


@pytest.mark.parametrize(
    ("attachments", "content", "name"),
    [
        (("lamp.JPG", "box.png"), "", "Photo from Casey"),
        (("lamp.jpg", "invoice.pdf"), "", "File from Casey"),
        ((), "<@9>", "Question from Casey"),
        (("lamp.jpg",), "The lamp arrived broken", "The lamp arrived broken"),
    ],
    ids=["photos", "files", "bare-mention", "words-win"],
)
def test_a_new_thread_is_named_after_what_was_sent(
    attachments: tuple[str, ...], content: str, name: str
) -> None:
    files = tuple(
        Attachment(name, url=f"https://cdn.discordapp.com/{name}") for name in attachments
    )
    todo = route(content=content, attachments=files, mentions_bot=True)
    assert isinstance(todo, Plan) and todo.start_thread
    assert todo.thread_name == name
    assert todo.message.attachments == files


@pytest.mark.parametrize(
    ("guild_id", "channel_id", "parent", "key"),
    [
        (None, 60, None, ConversationKey("discord", "@me", "60", "-")),
        (1, 30, 10, ConversationKey("discord", "1", "10", "30")),
        (1, 10, None, None),
    ],
    ids=["dm", "thread", "plain-channel"],
)
def test_conversation_at(
    guild_id: int | None, channel_id: int, parent: int | None, key: ConversationKey | None
) -> None:
    assert conversation_at(guild_id=guild_id, channel_id=channel_id, thread_parent_id=parent) == key


def test_thread_name_is_the_question_within_100_characters() -> None:
    assert thread_name("  How do I\n reset <@9> my password?  ", fallback="x") == (
        "How do I reset my password?"
    )
    long = "word " * 60
    name = thread_name(long, fallback="x")
    assert len(name) <= 100
    assert name.endswith("word…")
    assert thread_name("<@9>", fallback="Question from Casey") == "Question from Casey"


def _fences_balanced(chunk: str) -> bool:
    return sum(1 for line in chunk.splitlines() if line.strip().startswith("```")) % 2 == 0


def test_long_answer_is_three_messages_with_balanced_fences() -> None:
    prose = "This sentence explains one step of the process in detail. " * 25
    code = "```python\n" + "\n".join(f"print('line {i}')" for i in range(120)) + "\n```"
    text = f"{prose}\n\n{code}\n\n{prose}"[:5000]
    text = text[: text.rindex(".") + 1]
    assert 4900 < len(text) <= 5000

    chunks = reply_messages(Reply(text))

    assert len(chunks) == 3
    assert all(len(c.content) <= 2000 for c in chunks)
    assert all(_fences_balanced(c.content) for c in chunks)
    assert all(c.ping_role_id is None for c in chunks)
    words = set(re.findall(r"\w+", text))
    assert set(re.findall(r"\w+", "".join(c.content for c in chunks))) <= words | {"python"}


def test_escalation_mention_closes_the_reply_and_only_it_pings() -> None:
    chunks = reply_messages(Reply("x. " * 1200, Escalation("r", "s")), ping_role_id=5)
    assert len(chunks) == 2
    assert chunks[-1].content.endswith("<@&5>")
    assert [c.ping_role_id for c in chunks] == [None, 5]
    assert reply_messages(Reply(""), ping_role_id=None) == []


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (relay_messages("50", "My order is late"), ["<@50> wrote: My order is late"]),
        (relay_messages("50", ""), ["<@50> wrote: (no text)"]),
        (
            relay_messages("50", "", ["a.png", "b.pdf"]),
            ["<@50> wrote: (attached: a.png, b.pdf)"],
        ),
        (relay_messages("50", "See", ["a.png"]), ["<@50> wrote: See\n(attached: a.png)"]),
        (staff_reply_messages("Dana", " Refunded. "), ["**Dana** (support team): Refunded."]),
    ],
    ids=["relay", "relay-empty", "relay-files", "relay-text-and-file", "staff-reply"],
)
def test_relayed_messages_never_ping(messages: list[Outgoing], expected: list[str]) -> None:
    assert [m.content for m in messages] == expected
    assert all(m.ping_role_id is None for m in messages)


def test_a_long_relay_is_split_under_the_limit() -> None:
    messages = relay_messages("50", "word " * 900)
    assert len(messages) == 3
    assert all(len(m.content) <= 2000 for m in messages)
    assert messages[0].content.startswith("<@50> wrote: word")


def test_shorten() -> None:
    assert len(shorten("a b c d", 4)) <= 4


def test_allowed_mentions_never_parse_everyone_or_users() -> None:
    assert allowed_mentions(Outgoing("@everyone")).to_dict() == {"parse": []}
    assert allowed_mentions(Outgoing("<@&5>", 5)).to_dict() == {"parse": [], "roles": [5]}


def test_invite_url_requests_exactly_the_needed_permissions() -> None:
    query = parse_qs(urlsplit(invite_url(1234)).query)
    assert query["client_id"] == ["1234"]
    assert query["scope"] == ["bot applications.commands"]
    granted = discord.Permissions(int(query["permissions"][0]))
    assert granted == PERMISSIONS
    assert granted.value == (
        (1 << 4) | (1 << 10) | (1 << 11) | (1 << 16) | (1 << 34) | (1 << 35) | (1 << 38)
    )
    assert not granted.administrator and not granted.mention_everyone
