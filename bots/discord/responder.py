"""One gateway message in, at most one answer out: route, open the thread, ask the port, post.

The port (the engine) dedupes deliveries by message id, orders turns per conversation and owns
every customer-facing sentence; this module only moves messages between Discord and the port.
Messages from the support team are not answered: they go to :class:`Handoff`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace

import discord

from bots.discord.delivery import Delivery
from bots.discord.handoff import Handoff
from bots.discord.render import with_attachments
from bots.discord.routing import Plan, Seen, StaffMessage, from_a_person, plan, thread_name
from bots.discord.send import SEND_ERRORS, describe
from bots.discord.serial import Serial
from bots.discord.typing_indicator import typing_in
from core.types import ConversationPort, IncomingMessage

log = logging.getLogger(__name__)

THREAD_ALREADY_CREATED = 160004  # Discord error code: a thread already exists for this message
_PEOPLE_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)

Target = discord.abc.Messageable


def is_support(user: discord.abc.User, role_id: int | None) -> bool:
    """Whether ``user`` holds the support role (only guild members can)."""
    return (
        role_id is not None
        and isinstance(user, discord.Member)
        and user.get_role(role_id) is not None
    )


def seen_from(
    message: discord.Message, *, thread_parent_id: int | None, bot_id: int, role_id: int | None
) -> Seen:
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
        author_is_staff=is_support(message.author, role_id),
    )


class Responder:
    """Answers customer messages through ``port``; hands staff messages to ``handoff``.

    Work on one conversation (or one staff thread) runs one piece at a time, in arrival order,
    from the port call to the last post: a reply is out, and its staff notification attached,
    before the next message there is looked at.
    """

    def __init__(
        self,
        *,
        client: discord.Client,
        port: ConversationPort,
        delivery: Delivery,
        handoff: Handoff,
        support_channel_ids: Collection[int],
        support_role_id: int | None,
        staff_channel_id: int | None,
    ) -> None:
        self._client = client
        self._port = port
        self._delivery = delivery
        self._handoff = handoff
        self._support_channel_ids = frozenset(support_channel_ids)
        self._support_role_id = support_role_id
        self._staff_channel_id = staff_channel_id
        self._serial = Serial()

    async def handle(self, message: discord.Message) -> None:
        """Answer ``message`` if it is for the bot. Errors are logged, never shown."""
        try:
            await self._handle(message)
        except Exception:
            log.exception(
                "failed to answer discord message %s in channel %s", message.id, message.channel.id
            )

    async def answer(
        self,
        incoming: IncomingMessage,
        *,
        target: Target,
        reference: discord.Message | None = None,
        offer_button: bool,
        relay_text: str,
    ) -> None:
        """Ask the port about ``incoming`` and deliver what it says in ``target``."""
        async with self._serial(incoming.key):
            await self._answer_in_turn(
                incoming,
                target=target,
                reference=reference,
                offer_button=offer_button,
                relay_text=relay_text,
            )

    async def _answer_in_turn(
        self,
        incoming: IncomingMessage,
        *,
        target: Target,
        reference: discord.Message | None,
        offer_button: bool,
        relay_text: str,
    ) -> None:
        async with typing_in(target):
            reply = await self._port.handle(incoming)
        if reply is None:  # deliberate silence, e.g. a delivery the engine already answered
            return
        await self._delivery.send(
            reply,
            incoming=incoming,
            target=target,
            reference=reference,
            offer_button=offer_button,
            relay_text=relay_text,
        )

    async def _handle(self, message: discord.Message) -> None:
        me = self._client.user
        if me is None:
            return
        role_id = self._support_role_id
        seen = seen_from(message, thread_parent_id=None, bot_id=me.id, role_id=role_id)
        if not from_a_person(seen, bot_id=me.id):  # before any lookup the message might cost
            return
        channel = await self._resolve_channel(message)
        if channel is None:
            return
        if isinstance(channel, discord.Thread):
            seen = replace(seen, thread_parent_id=channel.parent_id)
        todo = plan(
            seen,
            bot_id=me.id,
            support_channel_ids=self._support_channel_ids,
            staff_channel_id=self._staff_channel_id,
        )
        if isinstance(todo, StaffMessage):
            await self._from_staff(todo, message)
        elif todo is not None:
            await self._from_customer(todo, message, channel)

    async def _from_staff(self, said: StaffMessage, message: discord.Message) -> None:
        said = replace(said, text=with_attachments(said.text, _attachment_urls(message)))
        async with self._serial(said.where):
            await self._handoff.record(said)

    async def _from_customer(self, todo: Plan, message: discord.Message, channel: Target) -> None:
        # The turn is taken before the checks below await anything, so a conversation's
        # messages reach the port in arrival order.
        async with self._serial(todo.message.key):
            if todo.only_if_active and not await self._port.is_active(todo.message.key):
                return
            target, reference = await self._target(message, channel, todo)
            await self._answer_in_turn(
                todo.message,
                target=target,
                reference=reference,
                # Only where the conversation can be found again from the button's channel.
                offer_button=todo.message.direct or isinstance(target, discord.Thread),
                relay_text=with_attachments(todo.message.text, _attachment_urls(message)),
            )

    async def _resolve_channel(self, message: discord.Message) -> Target | None:
        channel = message.channel
        if not isinstance(channel, discord.PartialMessageable) or channel.guild_id is None:
            return channel
        # A guild channel missing from the cache (e.g. a thread unarchived by this very
        # message): ask Discord what it is, so a thread is known by its parent.
        try:
            return await self._client.fetch_channel(channel.id)  # type: ignore[return-value]
        except SEND_ERRORS as exc:
            log.warning(
                "ignoring message %s: cannot look up channel %s (%s)",
                message.id,
                channel.id,
                describe(exc),
            )
            return None

    async def _target(
        self, message: discord.Message, channel: Target, todo: Plan
    ) -> tuple[Target, discord.Message | None]:
        """Where to answer, and the message to reference (only within the same channel)."""
        if not todo.start_thread:
            return channel, message
        try:
            return await self._open_thread(message, todo.message.text), None
        except SEND_ERRORS as exc:
            # No thread permission (50013) or similar: answer in the channel rather than not at all.
            log.warning(
                "cannot start a thread from message %s in channel %s (%s); answering there",
                message.id,
                channel.id,
                describe(exc),
            )
            return channel, message

    async def _open_thread(self, message: discord.Message, question: str) -> discord.Thread:
        # A redelivered message (gateway RESUME replay) already has its thread: same id.
        if message.guild is not None and (existing := message.guild.get_thread(message.id)):
            return existing
        name = thread_name(question, fallback=f"Question from {message.author.display_name}")
        try:
            return await message.create_thread(name=name)
        except discord.HTTPException as exc:
            if exc.code != THREAD_ALREADY_CREATED:
                raise
            thread = await self._client.fetch_channel(message.id)
            assert isinstance(thread, discord.Thread)
            return thread


def _attachment_urls(message: discord.Message) -> list[str]:
    return [attachment.url for attachment in message.attachments]
