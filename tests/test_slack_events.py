"""events.translate, table-driven over Slack's documented payload shapes in tests/fixtures/slack."""

from __future__ import annotations

import pytest

from bots.common import Inbound, StaffReply
from bots.slack.events import BotIdentity, clean_text, route, translate
from core.types import Attachment, ConversationKey, IncomingMessage, StaffPost
from tests.slack_helpers import load_body

BOT = BotIdentity(user_id="U0BOT", bot_id="B0BOT")
MENTION_TS = "1700000100.000100"


def key(channel: str, thread: str = "-") -> ConversationKey:
    return ConversationKey("slack", "T0TEAM", channel, thread)


def inbound(
    channel: str,
    thread: str,
    ts: str,
    text: str,
    *,
    direct: bool = False,
    follow_up: bool = False,
    name: str = "",
    files: tuple[Attachment, ...] = (),
) -> Inbound:
    message = IncomingMessage(
        key=key(channel, thread),
        author_id="U0CUSTOMER",
        text=text,
        message_id=f"{channel}:{ts}",
        direct=direct,
        author_name=name,
        attachments=files,
    )
    return Inbound(message=message, context=ts, follow_up=follow_up, addressed=not follow_up)


ANSWERED = {
    "message_im": inbound(
        "D0DM",
        "-",
        "1700000001.000100",
        "My order #123 hasn't arrived & the tracking says <pending>",
        direct=True,
        name="casey",
    ),
    "message_im_thread": inbound(
        "D0DM", "1700000002.000200", "1700000050.000300", "Following up on this one", direct=True
    ),
    "file_share": inbound(
        "D0DM",
        "-",
        "1700000700.000100",
        "",
        direct=True,
        files=(
            Attachment(
                "receipt.png",
                url="https://files.slack.test/files-pri/T0TEAM-F0FILE/receipt.png",
                size=48213,
            ),
        ),
    ),
    "app_mention": inbound("C0SUPPORT", MENTION_TS, MENTION_TS, "how do I reset my password?"),
    "message_channel_mention": inbound(
        "C0SUPPORT", MENTION_TS, MENTION_TS, "how do I reset my password?"
    ),
    "app_mention_in_thread": inbound(
        "C0SUPPORT", "1700000200.000100", "1700000210.000200", "can you help here?"
    ),
    "app_mention_only": inbound("C0SUPPORT", "1700000300.000100", "1700000300.000100", ""),
    "message_channel_thread": inbound(
        "C0SUPPORT", MENTION_TS, "1700000150.000100", "Thanks, and what about 2FA?", follow_up=True
    ),
    "thread_broadcast": inbound(
        "C0SUPPORT",
        MENTION_TS,
        "1700000160.000100",
        "Also sending this to the channel",
        follow_up=True,
    ),
}

IGNORED = [
    "message_channel_top",  # channel chatter that neither mentions the bot nor sits in a thread
    "message_changed",
    "message_deleted",
    "bot_message",
    "other_app_post",  # another app's post: bot_id and no subtype
    "own_message",
    "channel_join",
]


@pytest.mark.parametrize("fixture", sorted(ANSWERED))
def test_customer_messages_translate(fixture: str) -> None:
    assert translate(load_body(fixture), BOT) == ANSWERED[fixture]


@pytest.mark.parametrize("fixture", IGNORED)
def test_other_events_are_dropped(fixture: str) -> None:
    assert translate(load_body(fixture), BOT) is None


def test_both_twins_of_a_mention_are_the_same_message() -> None:
    mention = translate(load_body("app_mention"), BOT)
    twin = translate(load_body("message_channel_mention"), BOT)
    assert mention is not None and mention == twin


def test_channel_message_that_mentions_the_bot_starts_a_thread_not_a_follow_up() -> None:
    body = load_body("message_channel_thread", text="<@U0BOT> one more thing")
    result = translate(body, BOT)
    assert result is not None and not result.follow_up
    assert result.message.key == key("C0SUPPORT", MENTION_TS)


def test_dm_without_channel_type_is_recognised_by_its_id() -> None:
    body = load_body("message_im")
    del body["event"]["channel_type"]
    result = translate(body, BOT)
    assert result is not None and result.message.direct


def test_unknown_event_types_are_dropped() -> None:
    assert translate({"event": {"type": "reaction_added", "user": "U1"}}, BOT) is None
    assert translate({"type": "url_verification", "challenge": "x"}, BOT) is None


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<@U0BOT> hi", "hi"),
        ("<@U0BOT|supportbot>   hi", "hi"),
        ("hi <@U0BOT>", "hi"),
        ("ask <@U0OTHER> or <#C0GEN|general>", "ask <@U0OTHER> or <#C0GEN|general>"),
        ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
        ("I typed &amp;lt; literally", "I typed &lt; literally"),
        ("  <@U0BOT>  ", ""),
        ("line one\n    indented code", "line one\n    indented code"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw, "U0BOT") == clean


def test_a_reply_in_the_staff_channel_is_a_staff_reply_under_its_notice() -> None:
    body = load_body("message_staff_thread")
    assert route(body, BOT, staff_channel="C0STAFF") == StaffReply(
        post=StaffPost("C0STAFF", "1700000500.000100"),
        author_id="U0STAFF1",
        author_name="Dana",
        text="Hi, Dana here & I'm on it",
        message_id="C0STAFF:1700000600.000100",
        context="1700000500.000100",
    )
    # Elsewhere the same reply is a follow-up in a customer thread.
    assert route(body, BOT, staff_channel="C0OTHER") == translate(body, BOT)


def test_a_top_level_mention_in_the_staff_channel_goes_nowhere() -> None:
    body = load_body("app_mention", channel="C0STAFF")
    assert translate(body, BOT) is not None
    assert route(body, BOT, staff_channel="C0STAFF") is None
