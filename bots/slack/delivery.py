"""Everything the adapter posts: replies, the escalation ping, the staff notice, progress.

Slack errors never reach the customer and never stop the bot: each failed call is logged with
the conversation key and Slack's error code (never the token, never the customer's text).
"""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.errors import SLACK_ERRORS, error_code
from bots.slack.events import TOP_LEVEL, Inbound
from bots.slack.render import SlackMessage, group_mention, render_reply, staff_notice
from core.types import ConversationKey, Escalation, Reply

log = logging.getLogger(__name__)

PROGRESS_REACTION = "eyes"
"""Shown on the customer's message while the engine works (needs only ``reactions:write``)."""


class Delivery:
    """Posts through one ``AsyncWebClient``; the ids come from ``SlackSettings``."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        support_group_id: str | None,
        staff_channel: str | None,
    ) -> None:
        self._client = client
        self._ping = group_mention(support_group_id) if support_group_id else None
        self._staff_channel = staff_channel

    async def send(self, inbound: Inbound, reply: Reply) -> None:
        """Post ``reply`` where the customer wrote; route an escalation to the human team.

        In a channel thread the reply itself ends with the support group's mention. In a DM the
        customer gets the reply alone and the staff channel gets the notice with the mention.
        """
        message = inbound.message
        escalation = reply.escalation
        ping = None
        if escalation is not None and not message.direct:
            ping = self._ping
            if ping is None:
                log.warning("escalation in %s: SLACK_SUPPORT_GROUP_ID unset, no ping", message.key)
        thread = None if message.key.thread_id == TOP_LEVEL else message.key.thread_id
        for part in render_reply(reply.text, ping=ping):
            if not await self._post(message.key, message.key.channel_id, thread, part):
                break
        if escalation is not None and message.direct:
            await self._notify_staff(inbound, escalation)

    async def mark_working(self, key: ConversationKey, ts: str) -> bool:
        """Add the progress reaction; ``True`` only if this call added it (and must remove it).

        A retried or doubled delivery finds the reaction already there (``already_reacted``)
        and leaves it to the delivery that added it.
        """
        try:
            await self._client.reactions_add(
                channel=key.channel_id, timestamp=ts, name=PROGRESS_REACTION
            )
        except SLACK_ERRORS as exc:
            if error_code(exc) != "already_reacted":
                log.warning("reactions.add failed in %s: %s", key, error_code(exc))
            return False
        return True

    async def mark_done(self, key: ConversationKey, ts: str) -> None:
        try:
            await self._client.reactions_remove(
                channel=key.channel_id, timestamp=ts, name=PROGRESS_REACTION
            )
        except SLACK_ERRORS as exc:
            log.warning("reactions.remove failed in %s: %s", key, error_code(exc))

    async def _notify_staff(self, inbound: Inbound, escalation: Escalation) -> None:
        key = inbound.message.key
        if not self._staff_channel:
            log.warning("escalation in %s: SLACK_STAFF_CHANNEL unset, staff not told", key)
            return
        if self._ping is None:
            log.warning("escalation in %s: SLACK_SUPPORT_GROUP_ID unset, no ping", key)
        text = staff_notice(
            escalation,
            customer_id=escalation.customer_id or inbound.message.author_id,
            ping=self._ping,
            permalink=await self._permalink(key, inbound.ts),
        )
        await self._post(key, self._staff_channel, None, SlackMessage(text=text))

    async def _permalink(self, key: ConversationKey, ts: str) -> str | None:
        try:
            response = await self._client.chat_getPermalink(channel=key.channel_id, message_ts=ts)
        except SLACK_ERRORS as exc:
            log.warning("chat.getPermalink failed in %s: %s", key, error_code(exc))
            return None
        return response.get("permalink")

    async def _post(
        self, key: ConversationKey, channel: str, thread: str | None, message: SlackMessage
    ) -> bool:
        try:
            await self._client.chat_postMessage(
                channel=channel,
                thread_ts=thread,
                text=message.text,
                blocks=message.blocks or None,
            )
        except SLACK_ERRORS as exc:
            log.error("chat.postMessage to %s failed for %s: %s", channel, key, error_code(exc))
            return False
        return True
