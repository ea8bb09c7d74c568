"""The staff channel on the wire: posting an escalation's notice with its staff thread, editing
it, and finding the thread.

Each escalation gets one notice. In a text channel it is a message with a thread started from
it (the thread has the message's id); in a forum channel it is a post of its own (the post's
thread id is its starter message's id). Either way the staff thread's id is the ``message_id``
of the escalation's :class:`StaffPost`.
"""

from __future__ import annotations

import logging
from datetime import UTC

import discord

from bots.common.platform import NotChecked
from bots.discord.buttons import escalation_notice, is_notice_of
from bots.discord.notice import notification
from bots.discord.render import Outgoing
from bots.discord.routing import thread_name
from bots.discord.send import SEND_ERRORS, allowed_mentions, describe, log_failure, refused
from core.ports import CLOCK_SKEW
from core.types import EscalationView, StaffPost

log = logging.getLogger(__name__)

StaffTarget = discord.TextChannel | discord.ForumChannel
THREAD_EXISTS = 160004
"""Discord's code for "a thread has already been created for this message"."""


class StaffChannel:
    """Posts and edits escalation notices in the configured staff channel."""

    def __init__(
        self, *, client: discord.Client, channel_id: int | None, role_id: int | None
    ) -> None:
        self._client = client
        self._channel_id = channel_id
        self._role_id = role_id

    async def post(self, view: EscalationView, *, ping: bool) -> StaffPost | None:
        """Post the notice of ``view`` with its staff thread; ``None`` when it could not."""
        channel = await self._channel(f"escalation {view.id} in {view.key}")
        if channel is None:
            return None
        out = notification(view, role_id=self._role_id, ping=ping)
        try:
            posted = await self._open(channel, view, out)
        except SEND_ERRORS as exc:
            log_failure(exc, channel.id, f"escalation {view.id}")
            return None
        return StaffPost(str(channel.id), str(posted))

    async def find(self, view: EscalationView) -> StaffPost | None:
        """The notice of ``view`` an earlier try made (its answer was lost, or its process
        died before recording it), with its staff thread, opened now if that try did not get
        to it. In a forum channel, the bot's post since ``view`` opened whose title starts
        with its number (the threads Discord announced: a live process's, and those a new
        session's guild lists as active). Raises ``NotChecked`` when Discord cannot say."""
        channel = await self._channel(f"escalation {view.id} in {view.key}")
        me = self._client.user
        if channel is None or me is None:
            return None
        since = discord.utils.time_snowflake(view.created_at.replace(tzinfo=UTC) - CLOCK_SKEW)
        if isinstance(channel, discord.ForumChannel):
            number = f"#{view.id} "
            mine = (t for t in channel.threads if t.owner_id == me.id and t.id >= since)
            post = next((t for t in mine if t.name.startswith(number)), None)
            return StaffPost(str(channel.id), str(post.id)) if post is not None else None
        after = discord.Object(since)
        try:
            async for message in channel.history(after=after, limit=100):
                if message.author.id == me.id and is_notice_of(message.components, view.id):
                    await self._open_thread(message, view)
                    return StaffPost(str(channel.id), str(message.id))
        except SEND_ERRORS as exc:
            why = describe(exc)
            log.warning("looking for the notice of escalation %s failed: %s", view.id, why)
            raise NotChecked(why) from None
        return None

    async def edit(self, view: EscalationView, staff: StaffPost) -> bool:
        """Re-draw the notice at ``staff`` from ``view``; nobody is pinged. Raises ``Refused``
        when the notice or its channel is gone, or the bot lost access to it."""
        out = notification(view, role_id=self._role_id, ping=False)
        home = self._client.get_partial_messageable(self._home(staff))
        try:
            # A Components v2 message has no content: the text is in its container.
            await home.get_partial_message(int(staff.message_id)).edit(
                view=escalation_notice(view, out.content), allowed_mentions=allowed_mentions(out)
            )
        except SEND_ERRORS as exc:
            log.error("could not update escalation %s's notice (%s)", view.id, describe(exc))
            refused(exc, strict=True)
            return False
        return True

    async def ask(self, out: Outgoing, buttons: discord.ui.View, *, name: str, about: str) -> bool:
        """Post a request to the team (``out`` with ``buttons``): a message in a text channel,
        a post called ``name`` in a forum."""
        channel = await self._channel(about)
        if channel is None:
            return False
        mentions = allowed_mentions(out)
        try:
            if isinstance(channel, discord.ForumChannel):
                await channel.create_thread(
                    name=name, content=out.content, view=buttons, allowed_mentions=mentions
                )
            else:
                await channel.send(out.content, view=buttons, allowed_mentions=mentions)
        except SEND_ERRORS as exc:
            log_failure(exc, channel.id, about)
            return False
        return True

    def thread(self, staff: StaffPost) -> discord.PartialMessageable:
        """The staff thread of the notice at ``staff``."""
        return self._client.get_partial_messageable(int(staff.message_id))

    def _home(self, staff: StaffPost) -> int:
        """The channel the notice message itself lives in."""
        channel = self._client.get_channel(int(staff.channel_id))
        # A forum post's starter message lives inside the post (its thread), not in the forum.
        forum = isinstance(channel, discord.ForumChannel)
        return int(staff.message_id if forum else staff.channel_id)

    async def _open(self, channel: StaffTarget, view: EscalationView, out: Outgoing) -> int:
        """Post the notice with its staff thread; returns the notice's id."""
        # Components v2 (discord.py sets the flag for a LayoutView): text and buttons in one
        # container whose accent colour follows the state; the role mention in its text pings
        # as content would, within ``allowed_mentions``.
        notice = escalation_notice(view, out.content)
        mentions = allowed_mentions(out)
        if isinstance(channel, discord.ForumChannel):
            created = await channel.create_thread(
                name=_thread_name(view), view=notice, allowed_mentions=mentions
            )
            return created.thread.id
        message = await channel.send(view=notice, allowed_mentions=mentions)
        await self._open_thread(message, view)
        return message.id

    async def _open_thread(self, message: discord.Message, view: EscalationView) -> None:
        """Start the staff thread from the notice ``message`` (one there already is kept)."""
        try:
            await message.create_thread(name=_thread_name(view))
        except SEND_ERRORS as exc:
            if isinstance(exc, discord.HTTPException) and exc.code == THREAD_EXISTS:
                return
            # The notice and its buttons still work; only re-pings and relays need the thread
            # (they will fail and be logged).
            log.error("no staff thread for escalation %s (%s)", view.id, describe(exc))

    async def _channel(self, about: str) -> StaffTarget | None:
        if self._channel_id is None:
            log.warning("%s not posted: no staff channel set", about)
            return None
        try:
            channel = self._client.get_channel(
                self._channel_id
            ) or await self._client.fetch_channel(self._channel_id)
        except SEND_ERRORS as exc:
            log.error(
                "%s not posted: cannot find staff channel %s (%s)",
                about,
                self._channel_id,
                describe(exc),
            )
            return None
        if not isinstance(channel, StaffTarget):
            log.error("%s not posted: channel %s takes no posts", about, channel.id)
            return None
        return channel


def _thread_name(view: EscalationView) -> str:
    return thread_name(f"#{view.id} {view.reason}", fallback=f"Escalation #{view.id}")
