"""The staff channel: escalation notifications, their staff threads, re-pings and DM relays.

Each escalation gets one notification. In a text channel it is a message with a thread started
from it (the thread has the message's id); in a forum channel it is a post of its own (the
post's thread id is its starter message's id). Either way the staff thread's id is the
``message_id`` of the escalation's :class:`StaffPost`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import discord

from bots.discord.buttons import escalation_buttons
from bots.discord.notice import notification, reminder
from bots.discord.render import Outgoing, relay_messages
from bots.discord.routing import thread_name
from bots.discord.send import SEND_ERRORS, allowed_mentions, describe, log_failure, post
from bots.discord.serial import Serial
from core.desk import Desk
from core.types import EscalationView, StaffPost

log = logging.getLogger(__name__)

StaffTarget = discord.TextChannel | discord.ForumChannel


class StaffChannel:
    """Posts and maintains escalation notifications in the configured staff channel."""

    def __init__(
        self,
        *,
        client: discord.Client,
        desk: Desk,
        channel_id: int | None,
        role_id: int | None,
    ) -> None:
        self._client = client
        self._desk = desk
        self._channel_id = channel_id
        self._role_id = role_id
        # A notification is posted, attached, edited and re-pinged one step at a time.
        self._serial = Serial()

    async def announce(self, escalation_id: int, *, ping: bool) -> None:
        """Post the notification of a new escalation and remember where it is."""
        async with self._serial(escalation_id):
            view = await self._desk.get(escalation_id)
            # An early re-ping may have posted it already (see remind).
            if view is not None and view.staff is None:
                await self._notify(view, ping=ping)

    async def refresh(self, escalation_id: int) -> None:
        """Re-draw an escalation's notification in place (it was updated; nobody is pinged)."""
        async with self._serial(escalation_id):
            view = await self._desk.get(escalation_id)
            if view is not None and view.staff is not None:
                await self._edit(view, view.staff)

    async def remind(self, view: EscalationView, *, now: datetime) -> None:
        """Re-ping the role in the staff thread; without a notification yet, post one."""
        async with self._serial(view.id):
            # Re-read: since the re-ping fell due the notification may have been attached, or
            # someone may have claimed it.
            current = await self._desk.get(view.id) or view
            if current.state != "open":
                return
            if current.staff is None:
                await self._notify(current, ping=True)
                return
            out = reminder(current, role_id=self._role_id, now=now)
            await post(self.thread(current.staff), out, context=f"escalation {view.id}")

    async def _edit(self, view: EscalationView, staff: StaffPost) -> None:
        out = notification(view, role_id=self._role_id, ping=False)
        home = self._client.get_partial_messageable(self._home(staff))
        try:
            await home.get_partial_message(int(staff.message_id)).edit(
                content=out.content,
                view=escalation_buttons(view),
                allowed_mentions=allowed_mentions(out),
            )
        except SEND_ERRORS as exc:
            log.error("could not update escalation %s's notification (%s)", view.id, describe(exc))

    async def relay(self, staff: StaffPost, *, customer_id: str, text: str) -> None:
        """Post what the customer wrote in their DM into the escalation's staff thread."""
        for out in relay_messages(customer_id, text):
            if not await post(self.thread(staff), out, context=staff):
                return

    def thread(self, staff: StaffPost) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(int(staff.message_id))

    def _home(self, staff: StaffPost) -> int:
        """The channel the notification message itself lives in."""
        channel = self._client.get_channel(int(staff.channel_id))
        # A forum post's starter message lives inside the post (its thread), not in the forum.
        forum = isinstance(channel, discord.ForumChannel)
        return int(staff.message_id if forum else staff.channel_id)

    async def _notify(self, view: EscalationView, *, ping: bool) -> None:
        channel = await self._channel(view)
        if channel is None:
            return
        out = notification(view, role_id=self._role_id, ping=ping)
        try:
            posted = await self._open(channel, view, out)
        except SEND_ERRORS as exc:
            log_failure(exc, channel.id, f"escalation {view.id}")
            return
        await self._desk.attach(view.id, StaffPost(str(channel.id), str(posted)))

    async def _open(self, channel: StaffTarget, view: EscalationView, out: Outgoing) -> int:
        """Post the notification with its staff thread; returns the notification's id."""
        name = thread_name(f"#{view.id} {view.reason}", fallback=f"Escalation #{view.id}")
        buttons = escalation_buttons(view)
        mentions = allowed_mentions(out)
        if isinstance(channel, discord.ForumChannel):
            created = await channel.create_thread(
                name=name, content=out.content, view=buttons, allowed_mentions=mentions
            )
            return created.thread.id
        message = await channel.send(out.content, view=buttons, allowed_mentions=mentions)
        try:
            await message.create_thread(name=name)
        except SEND_ERRORS as exc:
            # The notification and its buttons still work; only re-pings and relays need the
            # thread (they will fail and be logged).
            log.error("no staff thread for escalation %s (%s)", view.id, describe(exc))
        return message.id

    async def _channel(self, view: EscalationView) -> StaffTarget | None:
        if self._channel_id is None:
            log.warning("escalation %s in %s not posted: no staff channel set", view.id, view.key)
            return None
        try:
            channel = self._client.get_channel(
                self._channel_id
            ) or await self._client.fetch_channel(self._channel_id)
        except SEND_ERRORS as exc:
            log.error(
                "escalation %s not posted: cannot find staff channel %s (%s)",
                view.id,
                self._channel_id,
                describe(exc),
            )
            return None
        if not isinstance(channel, StaffTarget):
            log.error("escalation %s not posted: channel %s takes no posts", view.id, channel.id)
            return None
        return channel
