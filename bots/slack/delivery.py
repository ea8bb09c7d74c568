"""What the customer sees: the reply, the escalation ping in a channel thread, the progress mark.

Slack errors never reach the customer and never stop the bot (``SlackWeb`` logs them).
"""

from __future__ import annotations

import logging

from bots.slack.events import Inbound, reply_thread
from bots.slack.render import group_mention, render_reply
from bots.slack.web import SlackWeb
from core.types import ConversationKey, Reply

log = logging.getLogger(__name__)

PROGRESS_REACTION = "eyes"
"""Shown on the customer's message while the engine works (needs only ``reactions:write``)."""


class Delivery:
    """Posts replies through ``SlackWeb``; the group id comes from ``SlackSettings``."""

    def __init__(self, *, web: SlackWeb, support_group_id: str | None) -> None:
        self._web = web
        self._ping = group_mention(support_group_id) if support_group_id else None

    async def send(self, inbound: Inbound, reply: Reply) -> None:
        """Post ``reply`` where the customer wrote; nothing when its text is empty.

        A new escalation in a channel thread ends the reply with the support group's mention
        (a DM's is in the staff notification instead). An answer that hands nothing to people
        gets the "Talk to a human" button.
        """
        message = inbound.message
        escalation = reply.escalation
        ping = None
        if escalation is not None and escalation.new and not message.direct:
            ping = self._ping
            if ping is None:
                log.warning("escalation in %s: SLACK_SUPPORT_GROUP_ID unset, no ping", message.key)
        parts = render_reply(
            reply.text, ping=ping, offer_person=escalation is None and reply.relay is None
        )
        await self._web.post_all(
            message.key.channel_id, parts, thread=reply_thread(message.key), about=message.key
        )

    async def mark_working(self, key: ConversationKey, ts: str) -> bool:
        """Add the progress reaction; ``True`` only if this call added it (and must remove it)."""
        return await self._web.react(key.channel_id, ts, PROGRESS_REACTION, about=key)

    async def mark_done(self, key: ConversationKey, ts: str) -> None:
        await self._web.unreact(key.channel_id, ts, PROGRESS_REACTION, about=key)
