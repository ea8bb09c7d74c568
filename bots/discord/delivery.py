"""Delivering one ``Reply``: the customer's messages, the staff notification, the DM relay."""

from __future__ import annotations

import logging

import discord

from bots.discord.buttons import talk_button
from bots.discord.render import Outgoing, reply_messages
from bots.discord.send import post
from bots.discord.staff import StaffChannel
from core.types import Escalation, IncomingMessage, Reply

log = logging.getLogger(__name__)


class Delivery:
    """Posts a reply where the customer reads it and tells staff what they need to know."""

    def __init__(self, *, staff: StaffChannel, support_role_id: int | None) -> None:
        self._staff = staff
        self._role_id = support_role_id

    async def send(
        self,
        reply: Reply,
        *,
        incoming: IncomingMessage,
        target: discord.abc.Messageable,
        reference: discord.Message | None = None,
        offer_button: bool,
        relay_text: str,
    ) -> None:
        """Post ``reply`` in ``target`` (the first message referencing ``reference``).

        ``offer_button``: the "Talk to a human" button may go under a plain answer (the
        conversation can be found again from ``target``). ``relay_text`` is what the customer
        wrote, for the staff thread when the reply asks for a relay.
        """
        escalation = reply.escalation
        ping = self._ping(escalation, incoming)
        messages = reply_messages(reply, ping_role_id=ping)
        button = offer_button and escalation is None and reply.relay is None
        delivered = await self._post_all(target, messages, reference, incoming, button=button)
        if escalation is not None:
            await self._tell_staff(escalation, thread_pinged=ping is not None and delivered)
        if reply.relay is not None:
            await self._staff.relay(reply.relay, customer_id=incoming.author_id, text=relay_text)

    def _ping(self, escalation: Escalation | None, incoming: IncomingMessage) -> int | None:
        """The role a reply in a guild thread pings for a new escalation. In a DM the staff
        notification pings instead; a repeated trigger (``new`` False) pings no one."""
        if escalation is None or not escalation.new or incoming.direct:
            return None
        if self._role_id is None:
            log.warning("escalation in %s not pinged: no support role configured", incoming.key)
        return self._role_id

    async def _post_all(
        self,
        target: discord.abc.Messageable,
        messages: list[Outgoing],
        reference: discord.Message | None,
        incoming: IncomingMessage,
        *,
        button: bool,
    ) -> bool:
        for i, out in enumerate(messages):
            last = i == len(messages) - 1
            ref = reference.to_reference(fail_if_not_exists=False) if reference and i == 0 else None
            view = talk_button() if button and last else None
            if not await post(target, out, reference=ref, view=view, context=incoming.key):
                return False
        return True

    async def _tell_staff(self, escalation: Escalation, *, thread_pinged: bool) -> None:
        if escalation.id is None:
            log.error("escalation without an id: staff not notified")
            return
        if escalation.new:
            # The role was pinged in the customer's thread already: the notification shows the
            # role without pinging it a second time.
            await self._staff.announce(escalation.id, ping=not thread_pinged)
        else:
            await self._staff.refresh(escalation.id)
