"""The staff notification's life in ``SLACK_STAFF_CHANNEL``: posted once, updated, re-pinged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bots.links import conversation_link
from bots.slack import notice
from bots.slack.render import group_mention
from bots.slack.web import SlackWeb
from core.clock import utcnow
from core.desk import Desk
from core.types import Escalation, EscalationView, StaffPost

log = logging.getLogger(__name__)


class Notifier:
    """Keeps each escalation's staff notification in step with the ``Desk``.

    A DM escalation's notification pings the support group; a channel thread's does not,
    because the bot's reply in that thread already did. Re-pings always ping.
    """

    def __init__(
        self,
        *,
        web: SlackWeb,
        desk: Desk,
        support_group_id: str | None,
        staff_channel: str | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._web = web
        self._desk = desk
        self._mention = group_mention(support_group_id) if support_group_id else None
        self._channel = staff_channel
        self._clock = clock

    async def escalated(self, escalation: Escalation) -> None:
        """Post the notification of a new escalation, or update the live one's in place."""
        view = await self._desk.get(escalation.id) if escalation.id is not None else None
        if view is None:
            log.error("escalation %s not found: staff not told", escalation.id)
        elif escalation.new:
            await self.post(view, ping=notice.is_dm(view.key))
        elif view.staff is not None:
            await self.refresh(view, view.staff)

    async def post(self, view: EscalationView, *, ping: bool) -> None:
        """Post a notification for ``view`` and attach it, so its thread becomes the staff's."""
        if not self._channel:
            log.warning("escalation %s: SLACK_STAFF_CHANNEL unset, staff not told", view.id)
            return
        message = notice.notification(view, team=self._team(ping), link=await self._link(view))
        ts = await self._web.post(self._channel, message, about=f"escalation {view.id}")
        if ts:
            await self._desk.attach(view.id, StaffPost(self._channel, ts))

    async def refresh(self, view: EscalationView, post: StaffPost) -> None:
        """Re-render the notification at ``post`` from ``view`` (``chat.update``, no new ping)."""
        message = notice.notification(
            view, team=self._team(notice.is_dm(view.key)), link=await self._link(view)
        )
        await self._web.update(post, message, about=f"escalation {view.id}")

    async def reping(self, view: EscalationView) -> None:
        """Remind the group of an unclaimed escalation in its notification's thread.

        Without a notification (posting it failed earlier) a fresh one is posted instead.
        """
        if view.staff is None:
            await self.post(view, ping=True)
            return
        message = notice.reping(
            view, team=self._team(True), link=await self._link(view), now=self._clock()
        )
        await self._web.post(
            view.staff.channel_id,
            message,
            thread=view.staff.message_id,
            about=f"escalation {view.id}",
        )

    def _team(self, ping: bool) -> str:
        if ping and self._mention is None:
            log.warning("SLACK_SUPPORT_GROUP_ID unset: staff notification pings nobody")
        return self._mention if ping and self._mention else notice.TEAM_NAME

    async def _link(self, view: EscalationView) -> str:
        """The customer's message's permalink; the conversation's link when there is none."""
        found = notice.customer_message(view)
        if found is not None:
            link = await self._web.permalink(*found, about=f"escalation {view.id}")
            if link:
                return link
        return conversation_link(view.key)
