"""Pure routing: which gateway messages the bot answers, and under which conversation key.

Nothing here touches discord.py objects; ``bots.discord.responder`` fills a :class:`Seen` from a
``discord.Message`` and acts on the :class:`Plan` that :func:`plan` returns.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from core.types import ConversationKey, IncomingMessage

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


def from_a_person(seen: Seen, *, bot_id: int) -> bool:
    """Not our own message, another bot's, a webhook's or a system notice (no bot loops)."""
    return not (seen.author_id == bot_id or seen.author_is_bot or seen.webhook_id or seen.system)


def plan(seen: Seen, *, bot_id: int, support_channel_ids: Collection[int]) -> Plan | None:
    """Decide whether and where to answer ``seen``; ``None`` means ignore it."""
    if not from_a_person(seen, bot_id=bot_id):
        return None
    text = strip_mention(seen.content, bot_id)
    if seen.guild_id is None:
        key = ConversationKey(PLATFORM, DM_SPACE, str(seen.channel_id), "-")
        return Plan(_incoming(seen, key, text, direct=True))
    guild = str(seen.guild_id)
    if seen.thread_parent_id is not None:
        key = ConversationKey(PLATFORM, guild, str(seen.thread_parent_id), str(seen.channel_id))
        configured = seen.thread_parent_id in support_channel_ids
        only_if_active = not (configured or seen.mentions_bot)
        return Plan(_incoming(seen, key, text, direct=False), only_if_active=only_if_active)
    if seen.channel_id in support_channel_ids or seen.mentions_bot:
        # The thread we are about to start gets the starter message's id.
        key = ConversationKey(PLATFORM, guild, str(seen.channel_id), str(seen.message_id))
        return Plan(_incoming(seen, key, text, direct=False), start_thread=True)
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


def _incoming(seen: Seen, key: ConversationKey, text: str, *, direct: bool) -> IncomingMessage:
    return IncomingMessage(
        key=key,
        author_id=str(seen.author_id),
        text=text,
        message_id=str(seen.message_id),
        direct=direct,
        author_name=seen.author_name,
    )
