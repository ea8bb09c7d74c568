"""The staff channel: where a hand-off from a DM is announced (staff cannot see DMs)."""

from __future__ import annotations

import logging

import discord

from bots.discord.render import staff_notice
from bots.discord.routing import thread_name
from bots.discord.send import SEND_ERRORS, allowed_mentions, describe, log_failure, post
from core.types import ConversationKey, Escalation

log = logging.getLogger(__name__)


class StaffChannel:
    """Posts escalation notices to the configured staff channel (text channel or forum)."""

    def __init__(
        self, *, client: discord.Client, channel_id: int | None, role_id: int | None
    ) -> None:
        self._client = client
        self._channel_id = channel_id
        self._role_id = role_id

    async def announce(
        self, escalation: Escalation, *, key: ConversationKey, customer_id: str, jump_url: str
    ) -> None:
        """Post the notice: role ping, customer, reason, summary and a link to the message."""
        if self._channel_id is None:
            log.warning("escalation in %s not posted: no staff channel set", key)
            return
        out = staff_notice(
            escalation, customer_id=customer_id, jump_url=jump_url, role_id=self._role_id
        )
        try:
            channel = self._client.get_channel(
                self._channel_id
            ) or await self._client.fetch_channel(self._channel_id)
        except SEND_ERRORS as exc:
            log.error(
                "escalation in %s not posted: cannot find staff channel %s (%s)",
                key,
                self._channel_id,
                describe(exc),
            )
            return
        if isinstance(channel, discord.ForumChannel):
            # Forums take no plain messages; each escalation becomes a post of its own.
            try:
                await channel.create_thread(
                    name=thread_name(escalation.reason, fallback="Escalation"),
                    content=out.content,
                    allowed_mentions=allowed_mentions(out),
                )
            except SEND_ERRORS as exc:
                log_failure(exc, channel.id, key)
            return
        if not isinstance(channel, discord.abc.Messageable):
            log.error("escalation in %s not posted: channel %s takes no messages", key, channel.id)
            return
        await post(channel, out, context=key)
