"""Translate Slack Events API payloads for the workflow: pure functions over raw dicts.

Nothing here talks to Slack. ``translate`` decides whether an event is new text for the bot,
where its conversation lives and what was written; ``route`` also sorts out replies in the
staff channel. Both are tested table-driven against the JSON fixtures in ``tests/fixtures/slack``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bots.common import Inbound, StaffReply
from core.text import clean, sanitize
from core.types import Attachment, ConversationKey, IncomingMessage, StaffPost

PLATFORM = "slack"
TOP_LEVEL = "-"
"""The thread id of a DM's top level: the customer talks to the bot outside any thread."""

# Bolt's app.message() lets bot_message through, so the adapter filters subtypes itself. Only
# these carry new customer text: a plain message (no subtype), an upload (text may be empty) and
# a thread reply the customer also sent to the channel. Everything else (message_changed,
# message_deleted, channel_join and the other channel_* notices, bot_message…) is dropped.
CUSTOMER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})

# Slack escapes exactly these three characters in incoming text; "&amp;" must go last so an
# escaped "&amp;lt;" (the customer literally typed "&lt;") stays "&lt;".
_UNESCAPES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in this workspace (from ``auth.test``): its user id and its bot id."""

    user_id: str
    bot_id: str


def route(
    body: Mapping[str, Any], bot: BotIdentity, *, staff_channel: str | None
) -> Inbound | StaffReply | None:
    """What an ``events_api`` body is for the workflow: a message for the bot (``translate``),
    a reply in a staff thread of ``staff_channel``, or ``None``.

    Nothing in the staff channel reaches the engine: its top-level posts are the team's own,
    and replies in a notice's thread are for the DM relay.
    """
    inbound = translate(body, bot)
    if inbound is None or inbound.message.key.channel_id != staff_channel:
        return inbound
    message = inbound.message
    thread = message.key.thread_id
    if thread == inbound.context:
        return None
    return StaffReply(
        post=StaffPost(message.key.channel_id, thread),
        author_id=message.author_id,
        author_name=message.author_name,
        text=message.text,
        message_id=message.message_id,
        context=thread,
        attachments=message.attachments,
    )


def translate(body: Mapping[str, Any], bot: BotIdentity) -> Inbound | None:
    """The message for the bot in an ``events_api`` body, or ``None`` when there is nothing to
    answer.

    DMs (``message.im``) always count; their top level is one conversation and a thread inside
    the DM is another. In channels the bot answers a mention (``app_mention``, or the ``message``
    twin Slack sends for it) in the mention's thread, and a later thread reply without a mention
    as a ``follow_up`` that does not address the bot. Both twins of a mention translate
    identically, so the engine's dedupe on ``message_id`` (``channel:ts``) makes them one turn.
    The ``context`` is the message's own ``ts``, where the progress reaction goes.
    """
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") not in ("message", "app_mention"):
        return None
    if not is_customer_message(event, bot):
        return None
    channel, ts = event["channel"], event["ts"]
    thread_ts = event.get("thread_ts")
    in_thread = bool(thread_ts) and thread_ts != ts
    direct = is_direct(event)
    follow_up = False
    if direct:
        thread = thread_ts if in_thread else TOP_LEVEL
    elif event["type"] == "app_mention" or mentions(event.get("text") or "", bot.user_id):
        thread = thread_ts or ts
    elif in_thread:
        thread, follow_up = thread_ts, True
    else:
        return None
    team_id = body.get("team_id") or event.get("team") or ""
    message = IncomingMessage(
        key=ConversationKey(PLATFORM, team_id, channel, thread),
        author_id=event["user"],
        text=clean_text(event.get("text") or "", bot.user_id),
        message_id=f"{channel}:{ts}",
        direct=direct,
        author_name=author_name(event),
        attachments=files_of(event),
    )
    return Inbound(message=message, context=ts, follow_up=follow_up, addressed=not follow_up)


def reply_thread(key: ConversationKey) -> str | None:
    """The ``thread_ts`` that posts into the conversation at ``key`` (``None``: DM top level)."""
    return None if key.thread_id == TOP_LEVEL else key.thread_id


def is_customer_message(event: Mapping[str, Any], bot: BotIdentity) -> bool:
    """Whether ``event`` is new text from a person other than the bot.

    Bots often post with a ``bot_id`` and no subtype, so ``bot_id`` is checked on its own; Bolt's
    ``IgnoringSelfEvents`` only drops our own events, not other bots'.
    """
    user = event.get("user")
    return (
        event.get("subtype") in CUSTOMER_SUBTYPES
        and not event.get("bot_id")
        and not event.get("hidden")
        and bool(user)
        and user != bot.user_id
        and bool(event.get("channel"))
        and bool(event.get("ts"))
    )


def is_direct(event: Mapping[str, Any]) -> bool:
    """A DM with the bot. ``channel_type`` says so; DM channel ids also start with ``D``."""
    channel_type = event.get("channel_type")
    if channel_type is not None:
        return channel_type == "im"
    return str(event.get("channel", "")).startswith("D")


def mentions(text: str, user_id: str) -> bool:
    """Whether Slack-formatted ``text`` mentions ``user_id`` (``<@U…>`` or ``<@U…|name>``)."""
    return _mention_pattern(user_id).search(text) is not None


def clean_text(text: str, bot_user_id: str) -> str:
    """The customer's words: the bot's own mention removed, Slack's escaping undone, and
    sanitized (``core.text.sanitize``: no lone surrogates, control or bidi characters).

    Other mentions (``<@U…>``, ``<#C…>``) stay as Slack wrote them. The result may be empty
    (a bare mention or a file without a comment); the engine answers that, not the adapter.
    """
    text = _mention_pattern(bot_user_id).sub("", sanitize(text))
    for escaped, plain in _UNESCAPES:
        text = text.replace(escaped, plain)
    return text.strip()


def author_name(event: Mapping[str, Any]) -> str:
    """The display name Slack sometimes includes as ``user_profile`` (sanitized); empty when
    absent."""
    profile = event.get("user_profile")
    if not isinstance(profile, Mapping):
        return ""
    return clean(str(profile.get("display_name") or profile.get("real_name") or ""))


def files_of(event: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """The files shared with the message (a ``file_share`` carries ``files``): the sanitized
    name, the ``url_private_download`` (or ``url_private``) the bot token reads, and the
    declared size."""
    files = event.get("files")
    if not isinstance(files, list):
        return ()
    return tuple(
        Attachment(
            name=clean(str(f.get("name") or f.get("title") or "")) or "file",
            url=str(f.get("url_private_download") or f.get("url_private") or ""),
            size=f["size"] if isinstance(f.get("size"), int) else None,
        )
        for f in files
        if isinstance(f, Mapping)
    )


def _mention_pattern(user_id: str) -> re.Pattern[str]:
    # A mention is <@U123> or, from older clients, <@U123|name>; eat the spaces after it so
    # "<@U123> hello" becomes "hello".
    return re.compile(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>[ \t]*")
