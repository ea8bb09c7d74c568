"""Pure routing: which gateway messages the bot looks at, and under which conversation key.

Nothing here touches discord.py objects; ``bots.discord.translate`` fills a :class:`Seen` from a
``discord.Message`` and hands the :class:`Plan` or :class:`~bots.common.StaffReply` that
:func:`plan` returns to the workflow, which decides whether to answer.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace

from bots.common import StaffReply
from bots.discord.render import shorten
from core.text import clean, sanitize
from core.types import Attachment, ConversationKey, IncomingMessage, StaffPost

PLATFORM = "discord"
DM_SPACE = "@me"
THREAD_NAME_LIMIT = 100  # Discord rejects longer thread names (50035)
_ANY_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>")
_IMAGE = re.compile(r"\.(?:png|jpe?g|gif|webp|heic|bmp)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Seen:
    """The facts about one gateway message that routing needs."""

    message_id: int
    author_id: int
    author_name: str
    author_is_bot: bool
    webhook_id: int | None
    system: bool  # a join, pin, thread-created... notice rather than something a person wrote
    guild_id: int | None  # None in a DM
    channel_id: int
    thread_parent_id: int | None  # the parent channel when posted in a thread or forum post
    mentions_bot: bool
    content: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """A message that may be for the bot, and where it would be answered.

    ``start_thread``: the message sits in a channel; open a thread from it (same id, named
    ``thread_name``) and answer there. ``follow_up``: a thread the bot was not asked into; it
    is answered only where a conversation already lives (the bot was mentioned into it
    earlier). ``addressed``: the author spoke to the bot (a mention or a DM); see
    :class:`bots.common.Inbound`.
    """

    message: IncomingMessage
    start_thread: bool = False
    follow_up: bool = False
    addressed: bool = True
    thread_name: str = ""


def from_a_person(seen: Seen, *, bot_id: int) -> bool:
    """Not our own message, another bot's, a webhook's or a system notice (no bot loops)."""
    return not (seen.author_id == bot_id or seen.author_is_bot or seen.webhook_id or seen.system)


def plan(
    seen: Seen,
    *,
    bot_id: int,
    support_channel_ids: Collection[int],
    staff_channel_id: int | None = None,
) -> Plan | StaffReply | None:
    """Decide what ``seen`` may be: a turn of a conversation, a post in an escalation's staff
    thread, or nothing the bot looks at (``None``). What the person wrote and their name are
    sanitized here, once (``core.text.sanitize``), for everything that follows."""
    if not from_a_person(seen, bot_id=bot_id):
        return None
    seen = _sanitized(seen)
    text = strip_mention(seen.content, bot_id)
    if staff_channel_id is not None and _under(seen, staff_channel_id):
        return _in_staff_channel(seen, text)
    key = conversation_at(
        guild_id=seen.guild_id, channel_id=seen.channel_id, thread_parent_id=seen.thread_parent_id
    )
    if key is None:
        return _new_thread(seen, text, support_channel_ids=support_channel_ids)
    if seen.guild_id is None:
        return Plan(_incoming(seen, key, text, direct=True))
    configured = seen.thread_parent_id in support_channel_ids
    return Plan(
        _incoming(seen, key, text, direct=False),
        follow_up=not (configured or seen.mentions_bot),
        addressed=seen.mentions_bot,
    )


def _sanitized(seen: Seen) -> Seen:
    """``seen`` with its text, author name and file names through ``core.text.sanitize``."""
    return replace(
        seen,
        content=sanitize(seen.content),
        author_name=clean(seen.author_name),
        attachments=tuple(replace(a, name=clean(a.name) or "file") for a in seen.attachments),
    )


def _under(seen: Seen, channel_id: int) -> bool:
    """Posted in ``channel_id`` itself or in one of its threads."""
    return channel_id in (seen.channel_id, seen.thread_parent_id)


def _in_staff_channel(seen: Seen, text: str) -> StaffReply | None:
    """The staff channel and its threads hold no customer conversations: only a post in an
    escalation's staff thread counts (a support-team member's may be relayed to a DM)."""
    if seen.thread_parent_id is None:
        return None
    return StaffReply(
        post=StaffPost(str(seen.thread_parent_id), str(seen.channel_id)),
        author_id=str(seen.author_id),
        author_name=seen.author_name,
        text=text,
        message_id=str(seen.message_id),
        attachments=seen.attachments,
    )


def _new_thread(seen: Seen, text: str, *, support_channel_ids: Collection[int]) -> Plan | None:
    if seen.channel_id not in support_channel_ids and not seen.mentions_bot:
        return None
    # The thread we are about to start gets the starter message's id.
    key = ConversationKey(PLATFORM, str(seen.guild_id), str(seen.channel_id), str(seen.message_id))
    return Plan(
        _incoming(seen, key, text, direct=False),
        start_thread=True,
        addressed=seen.mentions_bot,
        thread_name=thread_name(text, fallback=_untitled(seen)),
    )


def _untitled(seen: Seen) -> str:
    """A thread title for a message without words: what was sent, and by whom."""
    if not seen.attachments:
        return f"Question from {seen.author_name}"
    kind = "Photo" if all(_IMAGE.search(a.name) for a in seen.attachments) else "File"
    return f"{kind} from {seen.author_name}"


def conversation_at(
    *, guild_id: int | None, channel_id: int, thread_parent_id: int | None
) -> ConversationKey | None:
    """The conversation a DM or a thread holds; ``None`` for a plain guild channel, where each
    question opens a thread of its own."""
    if guild_id is None:
        return ConversationKey(PLATFORM, DM_SPACE, str(channel_id), "-")
    if thread_parent_id is not None:
        return ConversationKey(PLATFORM, str(guild_id), str(thread_parent_id), str(channel_id))
    return None


def strip_mention(text: str, bot_id: int) -> str:
    """Remove ``<@BOT>`` / ``<@!BOT>`` (the legacy nickname form) and the space around them."""
    mention = rf"[ \t]*<@!?{bot_id}>[ \t]*"
    between_words = re.sub(rf"(?<=\S){mention}(?=\S)", " ", text)
    return re.sub(mention, "", between_words).strip()


def thread_name(text: str, *, fallback: str) -> str:
    """A thread title from the customer's question: mentions dropped, one line, at most 100
    characters, cut at a word boundary."""
    name = shorten(_ANY_MENTION.sub(" ", text), THREAD_NAME_LIMIT)
    return name or shorten(fallback, THREAD_NAME_LIMIT) or "Support"


def _incoming(seen: Seen, key: ConversationKey, text: str, *, direct: bool) -> IncomingMessage:
    return IncomingMessage(
        key=key,
        author_id=str(seen.author_id),
        text=text,
        message_id=str(seen.message_id),
        direct=direct,
        author_name=seen.author_name,
        attachments=seen.attachments,
    )
