"""From discord.py objects to what the workflow takes: a message becomes an ``Inbound`` or a
``StaffReply``, a "Talk to a human" press an ``Inbound``, a staff button a ``Press``.

The decisions are :func:`bots.discord.routing.plan`'s (pure); this module only reads the facts
off discord.py's objects, and looks up a thread the client's cache does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace

import discord

from bots.common import Inbound, Press, StaffReply
from bots.discord.buttons import TALK_LABEL
from bots.discord.routing import (
    DM_SPACE,
    PLATFORM,
    Plan,
    Seen,
    conversation_at,
    from_a_person,
    plan,
)
from bots.discord.send import SEND_ERRORS, describe
from core.escalation import Action
from core.text import clean
from core.types import Attachment, ConversationKey, IncomingMessage, StaffPost

log = logging.getLogger(__name__)

_PEOPLE_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)

Target = discord.abc.Messageable


@dataclass(slots=True)
class Place:
    """Where a customer turn is answered: the ``context`` of a Discord ``Inbound``.

    ``channel`` is where the customer wrote (or pressed); ``message`` is what they wrote
    (``None`` for a press). With ``thread_name`` set, ``DiscordPlatform.prepare`` opens a thread
    from ``message``; it fills ``target`` (where the answer goes), ``reference`` (the message
    the answer replies to) and ``offer_person`` (whether "Talk to a human" may go under it).
    """

    channel: Target
    author: discord.User | discord.Member
    message: discord.Message | None = None
    thread_name: str = ""
    target: Target | None = None
    reference: discord.Message | None = None
    offer_person: bool = False


def is_support(user: discord.abc.User, role_id: int | None) -> bool:
    """Whether ``user`` holds the support role (only guild members can)."""
    return (
        role_id is not None
        and isinstance(user, discord.Member)
        and user.get_role(role_id) is not None
    )


def seen_from(message: discord.Message, *, thread_parent_id: int | None, bot_id: int) -> Seen:
    """The routing facts of a discord.py message."""
    guild_id = message.guild.id if message.guild else getattr(message.channel, "guild_id", None)
    return Seen(
        message_id=message.id,
        author_id=message.author.id,
        author_name=message.author.display_name,
        author_is_bot=message.author.bot,
        webhook_id=message.webhook_id,
        system=message.type not in _PEOPLE_MESSAGE_TYPES,
        guild_id=guild_id,
        channel_id=message.channel.id,
        thread_parent_id=thread_parent_id,
        # ``mentions`` also holds the author of a replied-to message when the reply pings.
        mentions_bot=any(user.id == bot_id for user in message.mentions),
        content=message.content,
        attachments=tuple(
            Attachment(name=a.filename, url=a.url, size=a.size) for a in message.attachments
        ),
    )


async def translate(
    client: discord.Client,
    message: discord.Message,
    *,
    support_channel_ids: Collection[int],
    staff_channel_id: int | None,
) -> Inbound | StaffReply | None:
    """What ``message`` is for the workflow; ``None`` for what the bot never looks at."""
    me = client.user
    if me is None:
        return None
    seen = seen_from(message, thread_parent_id=None, bot_id=me.id)
    if not from_a_person(seen, bot_id=me.id):  # before any lookup the message might cost
        return None
    channel = await _resolve_channel(client, message)
    if channel is None:
        return None
    if isinstance(channel, discord.Thread):
        seen = replace(seen, thread_parent_id=channel.parent_id)
    todo = plan(
        seen,
        bot_id=me.id,
        support_channel_ids=support_channel_ids,
        staff_channel_id=staff_channel_id,
    )
    if isinstance(todo, StaffReply):
        return replace(todo, context=message)
    if todo is None:
        return None
    return _inbound(todo, Place(channel, message.author, message, thread_name=todo.thread_name))


def _inbound(todo: Plan, place: Place) -> Inbound:
    return Inbound(todo.message, place, follow_up=todo.follow_up, addressed=todo.addressed)


async def _resolve_channel(client: discord.Client, message: discord.Message) -> Target | None:
    channel = message.channel
    if not isinstance(channel, discord.PartialMessageable) or channel.guild_id is None:
        return channel
    # A guild channel missing from the cache (e.g. a thread unarchived by this very message):
    # ask Discord what it is, so a thread is known by its parent.
    try:
        return await client.fetch_channel(channel.id)  # type: ignore[return-value]
    except SEND_ERRORS as exc:
        log.warning(
            "ignoring message %s: cannot look up channel %s (%s)",
            message.id,
            channel.id,
            describe(exc),
        )
        return None


def talk_press(interaction: discord.Interaction, *, text: str = "") -> Inbound | None:
    """A "Talk to a human" press as a customer turn that asks for a person (or, with ``text``,
    another button under the bot's answer, e.g. Confirm); ``None`` when the channel it was
    pressed in holds no conversation."""
    channel, channel_id = interaction.channel, interaction.channel_id
    if not isinstance(channel, discord.abc.Messageable) or channel_id is None:
        return None
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    key = conversation_at(
        guild_id=interaction.guild_id, channel_id=channel_id, thread_parent_id=parent
    )
    if key is None:
        return None
    return _pressed(interaction, channel, key, text)


def proposal_press(interaction: discord.Interaction, *, confirm: bool) -> Inbound | None:
    """A press of Confirm or Cancel as a turn where it was made: under the bot's answer in a
    conversation, or on the team's approval request in a staff channel (keyed by that
    message; the engine answers in the proposal's own conversation)."""
    label = "Confirm" if confirm else "Cancel"
    found = talk_press(interaction, text=label)
    channel, request = interaction.channel, interaction.message
    if found is not None or not isinstance(channel, discord.abc.Messageable) or request is None:
        return found
    space = str(interaction.guild_id or DM_SPACE)
    key = ConversationKey(PLATFORM, space, str(interaction.channel_id), str(request.id))
    return _pressed(interaction, channel, key, label)


def _pressed(
    interaction: discord.Interaction, channel: Target, key: ConversationKey, text: str
) -> Inbound:
    pressed = IncomingMessage(
        key=key,
        author_id=str(interaction.user.id),
        text=text or TALK_LABEL,
        message_id=f"button:{interaction.id}",
        direct=interaction.guild_id is None,
        author_name=clean(interaction.user.display_name),
        wants_person=not text,
    )
    # Pressed on a button of the bot's: the presser spoke to the bot.
    return Inbound(pressed, Place(channel, interaction.user), addressed=True)


def commanded_at(
    interaction: discord.Interaction, *, staff_channel_id: int | None
) -> ConversationKey | StaffPost | None:
    """Where a staff command was used: an escalation's staff thread (its notice's
    ``StaffPost``), a customer's conversation (its key), or neither (``None``)."""
    channel = interaction.channel
    if interaction.guild_id is None or not isinstance(channel, discord.Thread):
        return None
    if staff_channel_id is not None and channel.parent_id == staff_channel_id:
        # A staff thread has its notice's id (a forum staff channel's post likewise).
        return StaffPost(str(staff_channel_id), str(channel.id))
    return conversation_at(
        guild_id=interaction.guild_id, channel_id=channel.id, thread_parent_id=channel.parent_id
    )


def staff_press(
    interaction: discord.Interaction, action: Action, escalation_id: int
) -> Press | None:
    """A press of Claim, Resolve or Hand back, on the notice it was pressed on."""
    notice = interaction.message
    if notice is None or interaction.channel_id is None:
        return None
    channel = interaction.channel
    # A forum post's notice is its starter message, inside the post: the post's thread has the
    # message's id, and the notice belongs to the forum.
    forum_post = isinstance(channel, discord.Thread) and channel.id == notice.id
    home = channel.parent_id if forum_post else interaction.channel_id
    return Press(
        action=action,
        escalation_id=escalation_id,
        user_id=str(interaction.user.id),
        post=StaffPost(str(home), str(notice.id)),
        context=interaction,
    )
