"""One gateway message in, at most one answer out: route, open the thread, ask the port, post.

The port (the engine) dedupes deliveries by message id, orders turns per conversation and owns
every customer-facing sentence; this module only moves messages between Discord and the port.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace

import discord

from bots.discord.render import reply_messages
from bots.discord.routing import Plan, Seen, from_a_person, plan, thread_name
from bots.discord.send import SEND_ERRORS, describe, post
from bots.discord.staff import StaffChannel
from bots.discord.typing_indicator import typing_in
from core.types import ConversationPort, Reply

log = logging.getLogger(__name__)

THREAD_ALREADY_CREATED = 160004  # Discord error code: a thread already exists for this message
_PEOPLE_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)

Target = discord.abc.Messageable


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
    )


class Responder:
    """Answers customer messages through ``port``."""

    def __init__(
        self,
        *,
        client: discord.Client,
        port: ConversationPort,
        support_channel_ids: Collection[int],
        support_role_id: int | None,
        staff_channel_id: int | None,
    ) -> None:
        self._client = client
        self._port = port
        self._support_channel_ids = frozenset(support_channel_ids)
        self._support_role_id = support_role_id
        self._staff = StaffChannel(
            client=client, channel_id=staff_channel_id, role_id=support_role_id
        )

    async def handle(self, message: discord.Message) -> None:
        """Answer ``message`` if it is for the bot. Errors are logged, never shown."""
        try:
            await self._handle(message)
        except Exception:
            log.exception(
                "failed to answer discord message %s in channel %s", message.id, message.channel.id
            )

    async def _handle(self, message: discord.Message) -> None:
        me = self._client.user
        if me is None:
            return
        seen = seen_from(message, thread_parent_id=None, bot_id=me.id)
        if not from_a_person(seen, bot_id=me.id):  # before any lookup the message might cost
            return
        channel = await self._resolve_channel(message)
        if channel is None:
            return
        if isinstance(channel, discord.Thread):
            seen = replace(seen, thread_parent_id=channel.parent_id)
        todo = plan(seen, bot_id=me.id, support_channel_ids=self._support_channel_ids)
        if todo is None:
            return
        if todo.only_if_active and not await self._port.is_active(todo.message.key):
            return
        target, reference = await self._target(message, channel, todo)
        async with typing_in(target):
            reply = await self._port.handle(todo.message)
        if reply is None:  # deliberate silence, e.g. a delivery the engine already answered
            return
        await self._deliver(message, target, reference, todo, reply)

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

    async def _deliver(
        self,
        message: discord.Message,
        target: Target,
        reference: discord.Message | None,
        todo: Plan,
        reply: Reply,
    ) -> None:
        direct = todo.message.direct
        # ``new`` is False when a live escalation was only updated: staff were pinged already.
        escalation = reply.escalation if reply.escalation and reply.escalation.new else None
        ping = None if direct or escalation is None else self._support_role_id
        if escalation is not None and not direct and ping is None:
            log.warning("escalation in %s not pinged: no support role configured", todo.message.key)
        for i, out in enumerate(reply_messages(reply, ping_role_id=ping)):
            ref = reference.to_reference(fail_if_not_exists=False) if reference and i == 0 else None
            if not await post(target, out, reference=ref, context=todo.message.key):
                break
        if escalation is not None and direct:
            await self._staff.announce(
                escalation,
                key=todo.message.key,
                customer_id=escalation.customer_id or todo.message.author_id,
                jump_url=message.jump_url,
            )
