"""``Desk``: what the support team does with escalations — claim, close, talk, get re-pinged.

Adapters check that the person acting belongs to the support group or role before calling in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from core.clock import utcnow
from core.engine import staff_turn
from core.escalation import Action, after
from core.feedback import Feedback
from core.ports import ConversationStore
from core.types import Attachment, ConversationKey, EscalationView, Relayed, StaffPost

log = logging.getLogger("supportbot.desk")

REPING_RETRY = timedelta(minutes=1)
"""How soon a re-ping whose post failed is tried again."""

# Each move goes forward (open → claimed → closed), so a press that keeps losing the
# compare-and-set to other presses finds the escalation closed within this many reads.
_ATTEMPTS = 3


class Desk:
    def __init__(
        self,
        *,
        store: ConversationStore,
        clock: Callable[[], datetime] = utcnow,
        feedback: Feedback | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.feedback = feedback
        """Customers' ratings and "Did we solve it?" (``None``: not collected)."""

    async def attach(self, escalation_id: int, staff: StaffPost) -> None:
        """Remember where the staff notification was posted (its thread is the staff thread)."""
        await self._store.attach_staff_post(escalation_id, staff)

    async def get(self, escalation_id: int) -> EscalationView | None:
        return await self._store.escalation(escalation_id)

    async def at(self, staff: StaffPost) -> EscalationView | None:
        return await self._store.escalation_at(staff)

    async def live_at(self, key: ConversationKey) -> EscalationView | None:
        """The open or claimed escalation of the conversation at ``key``, if it has one."""
        return next((v for v in await self._store.live_escalations() if v.key == key), None)

    async def act(
        self, escalation_id: int, action: Action, *, staff_id: str
    ) -> EscalationView | None:
        """Claim, resolve or hand back; the escalation as it now stands (``None``: unknown id).

        The lifecycle (``core.escalation.after``) decides; an action the current state does
        not allow (a second claim, closing a closed one) changes nothing.
        """
        action = Action(action)
        for _ in range(_ATTEMPTS):
            view = await self._store.escalation(escalation_id)
            if view is None:
                return None
            to = after(view.state, action)
            if to is None:
                return view
            moved = await self._store.transition(
                escalation_id, expected=view.state, to=to, staff_id=staff_id, now=self._clock()
            )
            if moved is not None:
                log.info("escalation %s is %s (by %s)", escalation_id, moved.state, staff_id)
                return moved
            # Someone else moved it between the read and the write: decide again.
        return await self._store.escalation(escalation_id)

    async def claim(self, escalation_id: int, *, staff_id: str) -> EscalationView | None:
        return await self.act(escalation_id, Action.CLAIM, staff_id=staff_id)

    async def resolve(self, escalation_id: int, *, staff_id: str) -> EscalationView | None:
        return await self.act(escalation_id, Action.RESOLVE, staff_id=staff_id)

    async def hand_back(self, escalation_id: int, *, staff_id: str) -> EscalationView | None:
        return await self.act(escalation_id, Action.HAND_BACK, staff_id=staff_id)

    async def staff_said(
        self, key: ConversationKey, *, staff_name: str, text: str, message_id: str
    ) -> bool:
        """A support-team member posted in the customer's conversation.

        While an escalation is live the bot steps back until it is resolved or handed back,
        and the re-ping is cancelled; otherwise the message is kept as context for Claude.
        False when there is no open conversation there, or this message was seen before.
        """
        turn = staff_turn(staff_name=staff_name, text=text, message_id=message_id)
        return await self._store.staff_turn(key, turn, now=self._clock())

    async def staff_replied(
        self,
        staff: StaffPost,
        *,
        staff_name: str,
        text: str,
        message_id: str,
        files: tuple[Attachment, ...] = (),
    ) -> Relayed | None:
        """A reply in an escalation's staff thread, to relay into the customer's DM.

        ``None`` when the thread is not a live escalation's or the message was seen before.
        Claude's history names the ``files`` staff sent ("[file: label.pdf]").
        """
        view = await self._store.escalation_at(staff)
        if view is None or not view.live:
            return None
        noted = "\n".join([text, *(f"[file: {f.name}]" for f in files)]).strip()
        if not await self.staff_said(
            view.key, staff_name=staff_name, text=noted, message_id=message_id
        ):
            return None
        return Relayed(key=view.key, text=text, staff_name=staff_name, files=files)

    async def files(self, escalation_id: int) -> list[Attachment]:
        """The customer's accepted files in the escalation's conversation, to show staff."""
        return [k.attachment() for k in await self._store.escalation_files(escalation_id)]

    async def due_repings(self, platforms: set[str]) -> list[EscalationView]:
        return await self._store.due_repings(self._clock(), platforms=platforms)

    async def reping_failed(self, escalation_id: int) -> None:
        """The re-ping (or the notice it stood in for) could not be posted: try again in
        ``REPING_RETRY``, rather than lose it."""
        await self._store.reping_at(escalation_id, self._clock() + REPING_RETRY)

    async def live(self) -> list[EscalationView]:
        """Open and claimed escalations, oldest first."""
        return await self._store.live_escalations()


async def watch_repings(
    desk: Desk,
    notify: Callable[[EscalationView], Awaitable[None]],
    *,
    platforms: set[str],
    every: float,
) -> None:
    """Re-ping unclaimed escalations as they fall due, until cancelled.

    Due re-pings live in the database, so they survive a restart and fire on whichever
    replica takes them first.
    """
    while True:
        try:
            due = await desk.due_repings(platforms)
        except Exception:
            # A database hiccup must not take the adapters down with the watcher.
            log.exception("looking for due re-pings failed; trying again")
            due = []
        for view in due:
            try:
                await notify(view)
            except Exception:
                log.exception("re-ping of escalation %s failed: trying again later", view.id)
                with contextlib.suppress(Exception):
                    await desk.reping_failed(view.id)
        await asyncio.sleep(every)
