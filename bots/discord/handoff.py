"""What support-team members write: kept in the customer's history, relayed into DMs."""

from __future__ import annotations

import logging

import discord

from bots.discord.render import Outgoing, staff_reply_messages
from bots.discord.routing import DM_SPACE, StaffMessage
from bots.discord.send import post
from bots.discord.staff import StaffChannel
from core.desk import Desk
from core.types import Relayed, StaffPost

log = logging.getLogger(__name__)

NOT_DELIVERED = (
    "Not delivered: the bot could not post in the customer's DM (they may have closed their "
    "DMs or left the server)."
)


class Handoff:
    """Records staff messages through the desk; the bot then stays quiet in that conversation."""

    def __init__(self, *, client: discord.Client, desk: Desk, staff: StaffChannel) -> None:
        self._client = client
        self._desk = desk
        self._staff = staff

    async def record(self, said: StaffMessage) -> None:
        if not said.text:
            return
        if isinstance(said.where, StaffPost):
            await self._relay(said, said.where)
            return
        await self._desk.staff_said(
            said.where, staff_name=said.staff_name, text=said.text, message_id=said.message_id
        )

    async def _relay(self, said: StaffMessage, staff: StaffPost) -> None:
        view = await self._desk.at(staff)
        # Only a DM escalation's staff thread speaks to the customer; for a support-thread
        # escalation the customer reads the thread itself, and this one is the team's own.
        if view is None or view.key.space_id != DM_SPACE:
            return
        relayed = await self._desk.staff_replied(
            staff, staff_name=said.staff_name, text=said.text, message_id=said.message_id
        )
        if relayed is not None and not await self._to_customer(relayed):
            await post(self._staff.thread(staff), Outgoing(NOT_DELIVERED), context=view.key)

    async def _to_customer(self, relayed: Relayed) -> bool:
        dm = self._client.get_partial_messageable(
            int(relayed.key.channel_id), type=discord.ChannelType.private
        )
        for out in staff_reply_messages(relayed.staff_name, relayed.text):
            if not await post(dm, out, context=relayed.key):
                return False
        return True
