"""Pure routing: which gateway messages the bot answers, and under which conversation key.

Nothing here touches discord.py objects; ``bots.discord.responder`` fills a :class:`Seen` from a
``discord.Message`` and acts on the :class:`Plan` or :class:`StaffMessage` that :func:`plan`
returns.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from core.types import ConversationKey, IncomingMessage, StaffPost

PLATFORM = "discord"
DM_SPACE = "@me"
THREAD_NAME_LIMIT = 100  # Discord rejects longer thread names (50035)
_ANY_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>")


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
    author_is_staff: bool = False  # holds the support role


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with a message the bot may answer.

    ``start_thread``: the message sits in a channel; open a thread from it (same id) and answer
    there. ``only_if_active``: a thread the bot was not asked into; answer only when a
    conversation already lives there (the bot was mentioned into it earlier).
    """

    message: IncomingMessage
    start_thread: bool = False
    only_if_active: bool = False


@dataclass(frozen=True, slots=True)
class StaffMessage:
    """A support-team member wrote in a thread: record it, never answer it.

    ``where`` is the customer's conversation (the member posted in a support thread) or the
    staff post whose thread it was written in (a reply to relay into the customer's DM).
    """

    where: ConversationKey | StaffPost
    staff_name: str
    text: str
    message_id: str


def from_a_person(seen: Seen, *, bot_id: int) -> bool:
    """Not our own message, another bot's, a webhook's or a system notice (no bot loops)."""
    return not (seen.author_id == bot_id or seen.author_is_bot or seen.webhook_id or seen.system)


def plan(
    seen: Seen,
    *,
    bot_id: int,
    support_channel_ids: Collection[int],
    staff_channel_id: int | None = None,
) -> Plan | StaffMessage | None:
    """Decide whether and where to answer ``seen``; ``None`` means ignore it."""
    if not from_a_person(seen, bot_id=bot_id):
        return None
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
    if seen.author_is_staff:
        return _staff(seen, key, text)
    configured = seen.thread_parent_id in support_channel_ids
    only_if_active = not (configured or seen.mentions_bot)
    return Plan(_incoming(seen, key, text, direct=False), only_if_active=only_if_active)


def _under(seen: Seen, channel_id: int) -> bool:
    """Posted in ``channel_id`` itself or in one of its threads."""
    return channel_id in (seen.channel_id, seen.thread_parent_id)


def _in_staff_channel(seen: Seen, text: str) -> StaffMessage | None:
    """The staff channel and its threads hold no customer conversations: only a support-team
    member's reply in an escalation's staff thread counts (it may be relayed to a DM)."""
    if not seen.author_is_staff or seen.thread_parent_id is None:
        return None
    return _staff(seen, StaffPost(str(seen.thread_parent_id), str(seen.channel_id)), text)


def _new_thread(seen: Seen, text: str, *, support_channel_ids: Collection[int]) -> Plan | None:
    if seen.channel_id not in support_channel_ids and not seen.mentions_bot:
        return None
    # The thread we are about to start gets the starter message's id.
    key = ConversationKey(PLATFORM, str(seen.guild_id), str(seen.channel_id), str(seen.message_id))
    return Plan(_incoming(seen, key, text, direct=False), start_thread=True)


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
    name = " ".join(_ANY_MENTION.sub(" ", text).split())
    if not name:
        name = " ".join(fallback.split()) or "Support"
    if len(name) <= THREAD_NAME_LIMIT:
        return name
    cut = name[: THREAD_NAME_LIMIT - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _staff(seen: Seen, where: ConversationKey | StaffPost, text: str) -> StaffMessage:
    return StaffMessage(
        where=where, staff_name=seen.author_name, text=text, message_id=str(seen.message_id)
    )


def _incoming(seen: Seen, key: ConversationKey, text: str, *, direct: bool) -> IncomingMessage:
    return IncomingMessage(
        key=key,
        author_id=str(seen.author_id),
        text=text,
        message_id=str(seen.message_id),
        direct=direct,
        author_name=seen.author_name,
    )
