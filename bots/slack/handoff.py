"""People taking over: staff buttons, staff posts in customer threads, and the DM relay.

Only members of the support user group may act; the ``Desk`` decides what an action does.
"""

from __future__ import annotations

import logging

from bots.slack import notice
from bots.slack.actions import StaffAction
from bots.slack.events import Inbound, reply_thread
from bots.slack.notifier import Notifier
from bots.slack.render import escape, render_said, user_mention
from bots.slack.staff import StaffDirectory
from bots.slack.web import SlackWeb
from core.desk import Desk
from core.types import EscalationView, Reply, StaffPost

log = logging.getLogger(__name__)

ONLY_STAFF = "Only the support team can do that."
CLOSED = "This escalation is closed, so your reply was not sent to the customer."
NO_TEXT = "Only text is passed on to the customer; write your answer as a message."
CUSTOMER_NO_TEXT = "a message without text (a file?) that the bot cannot pass on"
STAFF_NO_TEXT = "(no text)"


class Handoff:
    """The staff side of each turn and button press; Slack errors are logged, never raised.

    ``after_reply`` tells staff about a customer turn, ``staff_said`` and ``staff_room`` take
    staff posts (in a customer thread, in the staff channel), ``act`` runs a staff button.
    """

    def __init__(
        self, *, web: SlackWeb, desk: Desk, staff: StaffDirectory, notifier: Notifier
    ) -> None:
        self._web = web
        self._desk = desk
        self._staff = staff
        self._notifier = notifier

    async def after_reply(self, inbound: Inbound, reply: Reply) -> None:
        """Staff's side of a customer turn: the relayed message, then the notification."""
        if reply.relay is not None:
            await self._relay_customer(inbound, reply.relay)
        if reply.escalation is not None:
            await self._notifier.escalated(reply.escalation)

    async def staff_said(self, inbound: Inbound) -> None:
        """A support-team member wrote in a customer's thread: the bot steps back there."""
        message = inbound.message
        taken = await self._desk.staff_said(
            message.key,
            staff_name=message.author_name or message.author_id,
            text=message.text,
            message_id=message.message_id,
        )
        log.info("staff post in %s: %s", message.key, "recorded" if taken else "already seen")

    async def staff_room(self, inbound: Inbound) -> None:
        """A post in the staff channel: a staff reply in a DM escalation's thread is relayed.

        Everything else there (top-level chatter, non-staff posts, talk in the thread of a
        channel escalation, where staff answer the customer in their own thread) is internal.
        """
        message = inbound.message
        if message.key.thread_id == inbound.ts or not await self._staff.is_staff(message.author_id):
            return
        post = StaffPost(message.key.channel_id, message.key.thread_id)
        view = await self._desk.at(post)
        if view is None or not notice.is_dm(view.key):
            return
        if not view.live or not message.text:
            note = CLOSED if not view.live else NO_TEXT
            await self._web.whisper(
                post.channel_id, message.author_id, note, thread=post.message_id, about=view.id
            )
            return
        relayed = await self._desk.staff_replied(
            post,
            staff_name=message.author_name or message.author_id,
            text=message.text,
            message_id=message.message_id,
        )
        if relayed is None:
            return
        said = render_said(
            f"*{escape(relayed.staff_name)}* (support team):", relayed.text, empty=STAFF_NO_TEXT
        )
        await self._web.post_all(
            relayed.key.channel_id, said, thread=reply_thread(relayed.key), about=relayed.key
        )

    async def act(self, action: StaffAction) -> None:
        """Claim, resolve or hand back, then show the new state on the notification."""
        if not await self._staff.is_staff(action.user_id):
            await self._web.whisper(
                action.post.channel_id, action.user_id, ONLY_STAFF, about=action.escalation_id
            )
            return
        move = {
            "claim": self._desk.claim,
            "resolve": self._desk.resolve,
            "hand_back": self._desk.hand_back,
        }[action.kind]
        view = await move(action.escalation_id, staff_id=action.user_id)
        if view is None:
            log.warning("%s of unknown escalation %s", action.kind, action.escalation_id)
            return
        await self._notifier.refresh(view, view.staff or action.post)
        late = _too_late(action, view)
        if late:
            await self._web.whisper(action.post.channel_id, action.user_id, late, about=view.id)

    async def _relay_customer(self, inbound: Inbound, relay: StaffPost) -> None:
        message = inbound.message
        said = render_said(
            f"{user_mention(message.author_id)} wrote:", message.text, empty=CUSTOMER_NO_TEXT
        )
        await self._web.post_all(relay.channel_id, said, thread=relay.message_id, about=message.key)


def _too_late(action: StaffAction, view: EscalationView) -> str | None:
    """What to tell someone whose press changed nothing because another got there first."""
    if action.kind == "claim" and view.claimed_by != action.user_id:
        if view.state == "claimed":
            return f"{user_mention(view.claimed_by or '')} has already claimed this escalation."
        return "This escalation is already closed."
    if action.kind != "claim" and view.closed_by != action.user_id:
        return "This escalation was already closed."
    return None
