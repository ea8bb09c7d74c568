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
from core.metrics import STAFF_GIVEN_UP, STAFF_REDELIVERED
from core.ports import (
    STAFF_LEASE,
    ConversationStore,
    StaffKind,
    StaffOutbound,
    StaffPending,
    new_outbox_id,
)
from core.types import Attachment, ConversationKey, EscalationView, Relayed, StaffPost

log = logging.getLogger("supportbot.desk")

REPING_RETRY = timedelta(minutes=1)
"""How soon a re-ping whose post failed is tried again."""

RETRY_FIRST, RETRY_CAP = 1.0, 60.0
"""Seconds before a failed post (a customer's reply, a staff outbox post) is tried again,
doubling each try up to the cap."""

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
        self,
        key: ConversationKey,
        *,
        staff_name: str,
        text: str,
        message_id: str,
        reply: StaffOutbound | None = None,
    ) -> bool:
        """A support-team member posted in the customer's conversation.

        While an escalation is live the bot steps back until it is resolved or handed back,
        and the re-ping is cancelled; otherwise the message is kept as context for Claude.
        ``reply``: what goes to the customer's DM, kept in the staff outbox with it.
        False when there is no open conversation there, or this message was seen before.
        """
        turn = staff_turn(staff_name=staff_name, text=text, message_id=message_id)
        return await self._store.staff_turn(key, turn, now=self._clock(), reply=reply)

    async def staff_replied(
        self,
        staff: StaffPost,
        *,
        staff_name: str,
        text: str,
        message_id: str,
        files: tuple[Attachment, ...] = (),
        staff_id: str = "",
    ) -> Relayed | None:
        """A reply in an escalation's staff thread, to relay into the customer's DM; kept in
        the staff outbox with the staff turn (``staff_id``: who is told if it never gets
        there).

        ``None`` when the thread is not a live escalation's or the message was seen before.
        Claude's history names the ``files`` staff sent ("[file: label.pdf]").
        """
        view = await self._store.escalation_at(staff)
        if view is None or not view.live:
            return None
        noted = "\n".join([text, *(f"[file: {f.name}]" for f in files)]).strip()
        post = StaffOutbound(new_outbox_id(), StaffKind.REPLY, staff_id, text, staff_name)
        if not await self.staff_said(
            view.key, staff_name=staff_name, text=noted, message_id=message_id, reply=post
        ):
            return None
        return Relayed(key=view.key, text=text, staff_name=staff_name, files=files, outbox=post.id)

    async def files(self, escalation_id: int) -> list[Attachment]:
        """The customer's accepted files in the escalation's conversation, to show staff."""
        return [k.attachment() for k in await self._store.escalation_files(escalation_id)]

    async def due_repings(self, platforms: set[str]) -> list[EscalationView]:
        return await self._store.due_repings(self._clock(), platforms=platforms)

    async def reping_failed(self, escalation_id: int) -> None:
        """The re-ping (or the notice it stood in for) could not be posted: try again in
        ``REPING_RETRY``, rather than lose it."""
        await self._store.reping_at(escalation_id, self._clock() + REPING_RETRY)

    # The staff outbox: relays, decisions, staff replies and notice re-draws.

    async def waiting(self, platforms: set[str]) -> list[StaffPending]:
        """What the staff outbox holds for ``platforms``, oldest first."""
        return await self._store.staff_waiting(platforms=platforms)

    async def take(self, outbox_id: str, *, tries: int) -> bool:
        """Hold a staff outbox post for one try (no other replica tries it meanwhile)."""
        until = self._clock() + STAFF_LEASE
        return await self._store.take_staff(outbox_id, tries=tries, until=until)

    async def sent(
        self, outbox_id: str, message_id: str | None, *, late: bool, kind: StaffKind
    ) -> None:
        """The platform took the post (as ``message_id``, if known); ``late``: after a
        failed try."""
        await self._store.staff_done(outbox_id, now=self._clock(), message_id=message_id)
        if late:
            STAFF_REDELIVERED.labels(kind.value).inc()
            log.info("%s %s delivered late", kind, outbox_id)

    async def not_sent(self, outbox_id: str, *, tries: int) -> None:
        """The ``tries``-th try failed: due again after the backoff."""
        delay = min(RETRY_FIRST * 2 ** max(tries - 1, 0), RETRY_CAP)
        log.warning("staff post %s not delivered: tried again in %g s", outbox_id, delay)
        await self._store.staff_retry(outbox_id, at=self._clock() + timedelta(seconds=delay))

    async def drawn(self, view: EscalationView, *, late: bool = False) -> None:
        """The notice now shows ``view``'s state: no re-draw of it is waiting any more."""
        if view.redraw_at is None:
            return
        await self._store.notice_drawn(view.id, seen=view.redraw_at)
        if late:
            STAFF_REDELIVERED.labels(StaffKind.NOTICE.value).inc()
            log.info("notice of escalation %s re-drawn late", view.id)

    async def give_up(self, kind: StaffKind, outbox_id: str, why: str) -> bool:
        """Never try the staff outbox post ``outbox_id`` again: logged and counted once,
        whichever replica gives it up first; whether this call did."""
        now = self._clock()
        if not await self._store.staff_done(outbox_id, now=now, message_id=None, given_up=True):
            return False
        log.error("%s %s given up: %s", kind, outbox_id, why)
        STAFF_GIVEN_UP.labels(kind.value).inc()
        return True

    async def notice_given_up(self, view: EscalationView, why: str) -> None:
        """Never try to re-draw ``view``'s notice of this state again (logged, counted)."""
        if view.redraw_at is None:
            return
        log.error("re-drawing the notice of escalation %s given up: %s", view.id, why)
        STAFF_GIVEN_UP.labels(StaffKind.NOTICE.value).inc()
        await self._store.notice_drawn(view.id, seen=view.redraw_at)

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
