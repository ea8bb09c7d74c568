"""``Workflow``: the support workflow every platform shares.

The platform's listeners translate an event and hand it over (``customer``, ``staff_reply``,
``press``); each runs as a tracked task, so the listener returns at once. From there on the
rules are the same everywhere:

- a conversation's messages are handled one at a time, in arrival order, from the engine call
  to the last post (so a new escalation's notice exists before the next message is relayed);
- a thread reply that does not address the bot is answered only where the bot has a
  conversation; a support-team member is answered only when they address the bot (a mention,
  a DM), and their other posts in a conversation are the team's own: kept for Claude, and
  while an escalation is live they take the conversation over;
- a new escalation pings the team once: in the customer's thread when the reply got there,
  otherwise in the staff notice; a repeated trigger re-draws the notice without a ping;
- the notice, its re-ping and its re-draws run one at a time per escalation and re-read the
  escalation first, so a re-ping never follows a claim it did not see;
- in a DM, staff cannot see the conversation: customer messages go to the staff thread and
  staff replies there come back, with "closed" and "not delivered" said to the staff member;
  those relays, and the notice's re-draws, are kept in the staff outbox until the platform
  took them: a failed one is tried again by the outbox's watcher (``resend``), one try at a
  time, after a look for it on the platform, and given up when it is too old or refused for
  good;
- a change that needs the team's approval is asked of them in the staff channel (the customer
  is told it waits for them); what came of a decided change goes to the customer's
  conversation wherever the press was, and to the staff thread of a DM's live escalation;
- files are fetched once, here, before the engine sees the message (the platform knows its own
  file hosts and credentials); the customer's accepted photos are shown in the staff thread
  (all of the conversation's under a new notice, each turn's with its relay; one the platform
  refuses is named there, with how to get it), and files staff post in a DM's staff thread
  reach the customer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from bots.common.platform import (
    AnswerStream,
    Decided,
    Inbound,
    NotChecked,
    Platform,
    Press,
    Refused,
    StaffReply,
)
from bots.common.serial import Serial
from bots.common.tasks import Tasks
from core.clock import utcnow
from core.desk import RETRY_CAP, RETRY_FIRST, Desk
from core.escalation import Action, State, after
from core.files import Problem
from core.ports import StaffKind, StaffPending, Unanswered, Undelivered
from core.types import (
    Attachment,
    ConversationPort,
    Escalation,
    EscalationView,
    IncomingMessage,
    Relayed,
    Reply,
    StaffPost,
)

log = logging.getLogger(__name__)

ONLY_STAFF = "Only the support team can do that."
UNKNOWN_ESCALATION = "That escalation no longer exists."
CLOSED = "This escalation is closed, so your reply was not sent to the customer."
NO_TEXT = "Only text and files are passed on to the customer; write your answer as a message."
NOT_FETCHED = "These files could not be downloaded, so the customer did not get them: {names}"
NOT_SHOWN = (
    "Not shown here, the upload was refused: {names}. The customer's files are kept with the "
    "conversation: `supportbot files {escalation}` saves a copy of them."
)
NOT_DELIVERED = (
    "Not delivered: the bot could not post in the customer's DM (they may have closed their "
    "DMs or left)."
)
ALREADY_CLOSED = "This escalation was already closed."
RETRIES_IN_TURN = 4
"""Tries of a reply within the turn (1 + 2 + 4 + 8 s: ``RETRY_FIRST`` doubling), holding the
conversation so that the next answer never overtakes this one; after those the outbox
watcher goes on trying."""
TOO_OLD = "too old"
"""Why a staff outbox post the watcher found past the give-up limit is given up (logged)."""


class Sent(Enum):
    """How a staff outbox post's try ended."""

    DELIVERED = "delivered"
    LATER = "later"  # failed: the outbox's watcher tries it again
    REFUSED = "refused"  # for good: given up


class Workflow:
    """Owns every turn of one platform's adapter; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        platform: Platform,
        port: ConversationPort,
        desk: Desk,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._platform = platform
        self._port = port
        self._desk = desk
        self._clock = clock
        self._serial = Serial()
        self._tasks = Tasks()
        self._recovering: set[int] = set()
        self._abandoned: set[int] = set()
        self._delivering: set[str] = set()
        """Outbox and staff outbox ids being delivered by this process now (the watcher
        leaves them alone)."""
        self._backoff: dict[str, tuple[float, float]] = {}
        """Each waiting reply's (and notice re-draw's) next try (``time.monotonic``) and the
        delay after that one."""

    # Entry points for the platform's listeners: each returns at once.

    def customer(self, inbound: Inbound) -> asyncio.Task[None] | None:
        message = inbound.message
        what = f"{self._platform.name} message {message.message_id} in {message.key}"
        return self._tasks.spawn(self.customer_turn(inbound), what)

    def staff_reply(self, reply: StaffReply) -> asyncio.Task[None] | None:
        what = f"{self._platform.name} staff post {reply.message_id} at {reply.post}"
        return self._tasks.spawn(self.staff_thread_turn(reply), what)

    def decided(self, decided: Decided) -> asyncio.Task[None] | None:
        what = f"{self._platform.name} decision on proposal {decided.proposal_id}"
        return self._tasks.spawn(self.decision_turn(decided), what)

    def press(self, press: Press) -> asyncio.Task[None] | None:
        what = f"{self._platform.name} {press.action} of escalation {press.escalation_id}"
        return self._tasks.spawn(self.staff_press(press), what)

    def recover(self, unanswered: Unanswered, *, late_after: timedelta) -> None:
        """Answer a customer turn a dead process left unanswered, once per conversation at a
        time (the recovery watcher offers the same turn again until it is answered)."""
        if unanswered.conversation_id in self._recovering | self._abandoned:
            return
        self._recovering.add(unanswered.conversation_id)
        what = f"{self._platform.name} recovery of {unanswered.message_id} in {unanswered.key}"
        task = self.track(self.recovered_turn(unanswered, late_after=late_after), what)
        if task is None:
            self._recovering.discard(unanswered.conversation_id)
        else:
            task.add_done_callback(lambda _: self._recovering.discard(unanswered.conversation_id))

    def redeliver(self, undelivered: Undelivered) -> None:
        """Deliver a reply the outbox holds past its turn (its post failed, or its process
        died before the platform took it), unless this process is delivering it now or its
        backoff has not run out (the outbox watcher offers it again until it is delivered)."""
        what = f"delivery of reply {undelivered.id} in {undelivered.turn.key}"
        self._try_again(undelivered.id, functools.partial(self._late_delivery, undelivered), what)

    def resend(self, pending: StaffPending) -> None:
        """Try again a staff outbox post (or notice re-draw) whose try failed or whose process
        died (``watch_staff_outbox`` offers it until it is done or given up), unless this
        process is on it now or a re-draw's backoff has not run out."""
        what = f"delivery of {pending.kind} {pending.id} of escalation {pending.escalation.id}"
        self._try_again(pending.id, functools.partial(self._staff_late, pending), what)

    def _try_again(
        self, waiting: str, deliver: Callable[[], Coroutine[Any, Any, None]], what: str
    ) -> None:
        """Run ``deliver`` (of ``waiting``) unless this process delivers it now or its
        backoff has not run out."""
        due = self._backoff.get(waiting)
        if waiting in self._delivering or (due and due[0] > time.monotonic()):
            return
        self._delivering.add(waiting)
        task = self.track(deliver(), what)
        if task is None:
            self._delivering.discard(waiting)
        else:
            task.add_done_callback(lambda _: self._delivering.discard(waiting))

    def track(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None] | None:
        """Run platform work that leads into a turn (an acknowledgement, a lookup) as tracked
        work too, so ``drain`` and ``close`` wait for it; ``None`` while shutting down."""
        return self._tasks.spawn(work, f"{self._platform.name} {what}")

    async def drain(self) -> None:
        """Wait until everything accepted so far has been handled and its posts made."""
        await self._tasks.drain()

    async def close(self, *, grace: float) -> None:
        """Take no new work; let accepted work finish for ``grace`` seconds, cancel the rest."""
        await self._tasks.close(grace=grace)

    # The turns.

    async def customer_turn(self, inbound: Inbound) -> None:
        message = inbound.message
        # The lock is taken before anything is awaited, so a conversation's messages reach the
        # engine in the order the platform delivered them, whatever the checks below cost. The
        # working indicator is put away after the lock is released (the stack exits last), so
        # a slow platform call there never holds up the conversation's next message.
        async with AsyncExitStack() as working, self._serial(message.key):
            # Only a message nobody addressed to the bot asks the store first: one addressed to
            # it shows the working sign before anything waits on the database (in a burst the
            # store queues) or on Claude.
            if inbound.follow_up and not await self._is_active(inbound):
                return
            if not inbound.addressed and await self._platform.is_staff(
                message.author_id, inbound.context
            ):
                if inbound.follow_up or await self._is_active(inbound):
                    await self._staff_in_conversation(inbound)
                return
            await self._platform.prepare(inbound)
            await working.enter_async_context(self._platform.working(inbound))
            if message.attachments:
                message = replace(message, attachments=await self._fetched(message.attachments))
            stream = self._platform.answer_stream(inbound)
            working.push_async_callback(stream.aclose)
            async with self._port.hold(message.key):
                reply = await self._port.handle(message, sink=stream)
                if reply is not None:
                    await self._deliver(inbound, reply, stream)

    async def decision_turn(self, decided: Decided) -> None:
        """Confirm or Cancel under a proposed change: the engine checks who pressed and runs
        the change once; the outcome is the conversation's next answer, a refusal (someone
        else's buttons, expired, decided already) a note to the presser alone. Pressed on the
        team's approval request, the answer goes to the customer's conversation and the
        request shows who decided and what came of it."""
        inbound = decided.inbound
        message = inbound.message
        platform = self._platform

        async def is_staff() -> bool:
            return await platform.is_staff(message.author_id, inbound.context)

        async with AsyncExitStack() as working, self._serial(message.key):
            await platform.prepare(inbound)
            await working.enter_async_context(platform.working(inbound))
            # Pressed in the conversation (not on the team's approval request), the conversation
            # is held from the decision to the answer's last post, as a customer turn is.
            await working.enter_async_context(self._port.hold(message.key))
            decision = await self._port.decide(
                decided.proposal_id,
                user_id=message.author_id,
                confirm=decided.confirm,
                is_staff=is_staff,
            )
            key = decision.key
            target = inbound if key is None or key == message.key else platform.at(key, decided)
            if decision.closed:
                shown = None if target is inbound else decision.outcome
                await platform.close_proposal(decided, shown)
            if decision.note is not None:
                await platform.tell_user(decided, decision.note)
            if decision.reply is not None:
                said = (message.author_id, decision.outcome) if decision.outcome else None
                async with self._port.hold(target.message.key):
                    await self._deliver(target, decision.reply, said=said)

    async def recovered_turn(self, unanswered: Unanswered, *, late_after: timedelta) -> None:
        try:
            inbound = await self._platform.recovered(unanswered)
        except NotChecked:
            return  # the platform cannot say now: the recovery watcher offers it again
        if inbound is None:
            # Nowhere to answer (the channel is gone): not offered again by this process.
            self._abandoned.add(unanswered.conversation_id)
            return
        await self._answer_after(inbound, unanswered, late_after=late_after)

    async def _answer_after(
        self, inbound: Inbound, unanswered: Unanswered, *, late_after: timedelta | None
    ) -> None:
        async with AsyncExitStack() as working, self._serial(unanswered.key):
            # From here on a newly held message is answered by a catch-up of its own.
            self._recovering.discard(unanswered.conversation_id)
            await working.enter_async_context(self._platform.working(inbound))
            async with self._port.hold(unanswered.key, wait=False) as free:
                if not free:
                    return  # another replica is answering it: looked at again later
                if late_after is not None:  # a recovery: a dead process may have shown words
                    await self._platform.clear_leftovers(inbound)
                reply = await self._port.recover(
                    unanswered, direct=inbound.message.direct, late_after=late_after
                )
                if reply is not None:
                    await self._deliver(inbound, reply)

    async def _late_delivery(self, undelivered: Undelivered) -> None:
        """Deliver a reply past its turn as it was meant to be posted, or give it up when it
        can never be; else try it again later, with backoff."""
        key = undelivered.turn.key
        try:
            done = await self._late_try(undelivered)
        except Refused as refused:
            await self._port.give_up(undelivered.id, key, str(refused))
            done = True
        if done:
            self._backoff.pop(undelivered.id, None)
        else:
            self._later(undelivered.id, f"reply {undelivered.id}")

    def _later(self, waiting: str, what: str) -> None:
        """Back ``waiting`` off before this process tries it again: doubling, capped."""
        _, delay = self._backoff.get(waiting, (0.0, RETRY_FIRST))
        self._backoff[waiting] = (time.monotonic() + delay, min(delay * 2, RETRY_CAP))
        log.warning("%s not delivered yet: tried again in %g s", what, delay)

    async def _late_try(self, undelivered: Undelivered) -> bool:
        """One try of ``_late_delivery``: the reply with the buttons and ping it had on time
        (Confirm and Cancel only while the proposal waits); whether it is delivered now.
        Raises ``Refused`` when there is nowhere to post it any more."""
        try:
            inbound = await self._platform.recovered(undelivered.turn)
        except NotChecked:
            return False
        if inbound is None:
            raise Refused("nowhere to answer")
        proposal = undelivered.proposal
        reply = Reply(
            undelivered.text,
            answer_id=undelivered.answer_id,
            proposal=await self._port.pending(proposal) if proposal is not None else None,
            outbox=undelivered.id,
        )
        ping = undelivered.ping and not inbound.message.direct
        return await self._resend(
            undelivered.id,
            inbound,
            reply,
            late=True,
            ping=ping,
            offer_person=undelivered.offer_person,
        )

    async def _resend(
        self,
        outbox: str,
        inbound: Inbound,
        reply: Reply,
        *,
        late: bool,
        ping: bool = False,
        offer_person: bool = False,
    ) -> bool:
        """Deliver ``reply`` (kept as ``outbox``) whose earlier post failed or may have been
        made, holding its conversation: the platform is asked first whether it shows the
        reply already, and only what it does not show (all of it, or the parts after those
        that show) is posted. Whether it is delivered now; ``Refused`` (raised) when the
        platform refused it for good.

        ``late``: the turn is over (the outbox watcher's try). Then a conversation another
        turn holds is left for later, and the working indicator shows while this one runs,
        cleared whatever comes of it (the dead process's went in ``Platform.recovered``)."""
        platform = self._platform

        async def send() -> str | None:
            async with platform.working(inbound) if late else nullcontext():
                try:
                    found = await platform.posted_reply(inbound, reply.text, late=late)
                except NotChecked:
                    return None
                if found is not None and found.shown is None:
                    return found.id
                # Only the parts that do not show yet are posted (a later one failed).
                posted = await platform.post_reply(
                    inbound,
                    reply,
                    ping=ping,
                    offer_person=offer_person,
                    shown=found.shown if found else 0,
                )
                if not posted:
                    return None
                return found.id if found else ""

        key = inbound.message.key
        try:
            return await self._port.redeliver(outbox, key, send, late=late)
        except Refused:
            raise
        except Exception as exc:
            log.warning("delivering reply %s failed (%s)", outbox, type(exc).__name__)
            return False

    async def _posted(
        self, inbound: Inbound, reply: Reply, *, posted: bool, ping: bool, offer_person: bool
    ) -> bool:
        """Record the reply the turn posted as delivered; if the post failed, try again with
        backoff (checking first whether it got through), a few times within the turn."""
        outbox = reply.outbox
        if outbox is None:
            return posted
        if posted:
            try:
                await self._port.delivered(outbox, None)
            except Exception as exc:
                # Posted all the same: the outbox watcher finds it on the platform and marks it.
                log.warning("marking reply %s delivered failed (%s)", outbox, type(exc).__name__)
            return True
        delay = RETRY_FIRST
        for _ in range(RETRIES_IN_TURN):
            log.warning(
                "reply %s in %s not posted: trying again in %g s",
                outbox,
                inbound.message.key,
                delay,
            )
            await asyncio.sleep(delay)
            if await self._resend(
                outbox, inbound, reply, late=False, ping=ping, offer_person=offer_person
            ):
                return True
            delay = min(delay * 2, RETRY_CAP)
        log.error(
            "reply %s in %s not delivered: the outbox watcher keeps trying",
            outbox,
            inbound.message.key,
        )
        return False

    async def _is_active(self, inbound: Inbound) -> bool:
        """Whether the bot has a conversation where ``inbound`` was posted.

        When the store cannot say (the database is down), a message addressed to the bot goes
        on to the engine, which answers with the fallback and holds it until the database is
        back; a follow-up nobody addressed to the bot is left alone rather than answered in a
        thread the bot may not be part of.
        """
        key = inbound.message.key
        try:
            return await self._port.is_active(key)
        except Exception as exc:
            log.error("cannot tell whether %s is a conversation (%s)", key, type(exc).__name__)
            return not inbound.follow_up

    async def _staff_in_conversation(self, inbound: Inbound) -> None:
        message = inbound.message
        name = message.author_name or await self._platform.staff_name(
            message.author_id, inbound.context
        )
        recorded = await self._desk.staff_said(
            message.key, staff_name=name, text=message.text, message_id=message.message_id
        )
        log.info("staff post in %s: %s", message.key, "recorded" if recorded else "already seen")

    async def _deliver(
        self,
        inbound: Inbound,
        reply: Reply,
        stream: AnswerStream | None = None,
        *,
        said: tuple[str, str] | None = None,
    ) -> None:
        """Post ``reply`` in ``inbound``'s conversation (finishing the answer ``stream`` showed,
        if any), and what staff see of it. ``said``: who decided a proposal and what came of
        it, for a DM's staff thread instead of the press itself."""
        escalation = reply.escalation
        ping = escalation is not None and escalation.new and not inbound.message.direct
        delivered: bool | None = True
        approval = reply.proposal if reply.proposal and reply.proposal.staff_approval else None
        if approval is not None:
            reply = replace(reply, proposal=None)  # its buttons are the team's
        if reply.text:
            offer_person = (
                escalation is None
                and reply.relay is None
                and reply.proposal is None
                and approval is None
            )
            # A streamed answer is finished where it was shown; otherwise posted whole.
            if reply.outbox is not None:
                self._delivering.add(reply.outbox)
            try:
                delivered = None
                if stream is not None:
                    delivered = await stream.finish(reply, ping=ping, offer_person=offer_person)
                if delivered is None:
                    delivered = await self._platform.post_reply(
                        inbound, reply, ping=ping, offer_person=offer_person
                    )
                delivered = await self._posted(
                    inbound, reply, posted=delivered, ping=ping, offer_person=offer_person
                )
            except Refused as refused:
                delivered = False
                if reply.outbox is not None:
                    await self._port.give_up(reply.outbox, inbound.message.key, str(refused))
            finally:
                if reply.outbox is not None:
                    self._delivering.discard(reply.outbox)
        if approval is not None:
            await self._platform.post_approval(inbound.message, approval)
        if reply.relay is not None:
            relay = reply.relay
            platform = self._platform
            if said is not None:
                kind = StaffKind.DECISION
                post = functools.partial(platform.post_decision, relay, *said)
            else:
                kind = StaffKind.RELAY
                post = functools.partial(platform.relay_to_staff, relay, inbound.message)
            await self._send_kept(reply.relayed, kind, post)
            if reply.files:
                await self._show_files(reply.relay, reply.files, about=reply.relay)
        if escalation is not None:
            await self._notice(escalation, thread_pinged=ping and bool(delivered))
        if reply.catch_up is not None:
            self._catch_up(inbound, reply.catch_up, delay=reply.catch_up_in)

    def _catch_up(self, inbound: Inbound, waiting: Unanswered, *, delay: float) -> None:
        """Answer the messages flood control held back, ``delay`` seconds from now, in one
        turn (one catch-up per conversation at a time answers all that waited for it)."""
        if waiting.conversation_id in self._recovering:
            return
        self._recovering.add(waiting.conversation_id)

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
                await self._answer_after(inbound, waiting, late_after=None)
            finally:
                self._recovering.discard(waiting.conversation_id)

        self.track(later(), f"catch-up of {waiting.message_id} in {waiting.key}")

    async def _notice(self, escalation: Escalation, *, thread_pinged: bool) -> None:
        """Post the escalation's notice, or re-draw it when it exists already."""
        if escalation.id is None:
            log.error("escalation without an id: staff not told")
            return
        async with self._serial(("escalation", escalation.id)):
            view = await self._desk.get(escalation.id)
            if view is None:
                log.error("escalation %s not found: staff not told", escalation.id)
            elif view.staff is None:
                if not await self._post_notice(view, ping=not thread_pinged):
                    # The re-ping watcher posts it afresh, sooner than the usual re-ping.
                    await self._not_told(view.id, "notice")
            else:
                await self._draw(view, view.staff)

    async def _draw(self, view: EscalationView, post: StaffPost) -> None:
        """Re-draw the notice at ``post`` from ``view``; once that got through, no re-draw of
        this state waits any more (a failed one is the outbox watcher's to try again)."""
        try:
            drawn = await self._platform.update_notice(view, post)
        except Refused as exc:
            await self._recorded(self._desk.notice_given_up(view, str(exc)), view.id)
            return
        if drawn:
            await self._recorded(self._desk.drawn(view), view.id)

    async def _recorded(self, work: Awaitable[object], about: object) -> None:
        """Record what came of a staff outbox try; a failure is logged, and the watcher then
        finds the post (or re-draw) still waiting, looks for it on the platform and marks it."""
        try:
            await work
        except Exception as exc:
            log.warning("recording a staff post of %s failed (%s)", about, type(exc).__name__)

    async def _send_kept(
        self, outbox: str | None, kind: StaffKind, post: Callable[[], Awaitable[bool]]
    ) -> Sent:
        """The first try of a staff outbox post: taken (so no watcher tries it meanwhile),
        made, and its outcome recorded. ``outbox`` ``None``: not kept, only made."""
        desk = self._desk
        try:
            mine = outbox is None or await desk.take(outbox, tries=0)
        except Exception as exc:
            # Made all the same: the watcher looks for it on the platform before any retry.
            log.warning("taking %s %s failed (%s)", kind, outbox, type(exc).__name__)
            mine = True
        if not mine:
            return Sent.LATER  # a watcher took it (this turn was slow): its try now
        try:
            made = await post()
        except Refused as exc:
            if outbox is not None:
                await self._recorded(desk.give_up(kind, outbox, str(exc)), outbox)
            return Sent.REFUSED
        if outbox is not None:
            record = (
                desk.sent(outbox, None, late=False, kind=kind)
                if made
                else desk.not_sent(outbox, tries=1)
            )
            await self._recorded(record, outbox)
        return Sent.DELIVERED if made else Sent.LATER

    async def _staff_late(self, pending: StaffPending) -> None:
        """A try of a staff outbox post by the outbox's watcher: given up when too old;
        otherwise taken, looked for on the platform, and made only if not found."""
        if pending.kind is StaffKind.NOTICE:
            await self._redraw(pending)
            return
        view = pending.escalation
        key = view.key if pending.kind is not StaffKind.REPLY else view.staff
        async with self._serial(key):
            if pending.expired:
                await self._gave_up(pending, TOO_OLD)
                return
            if not await self._desk.take(pending.id, tries=pending.tries):
                return  # another replica has it, or it was done meanwhile
            try:
                found = await self._look_and_remake(pending)
            except Refused as exc:
                await self._gave_up(pending, str(exc))
                return
            if found is None:
                await self._desk.not_sent(pending.id, tries=pending.tries + 1)
            else:
                await self._desk.sent(pending.id, found or None, late=True, kind=pending.kind)

    async def _look_and_remake(self, pending: StaffPending) -> str | None:
        """Look for ``pending`` on the platform and make it only if it is not there: its
        platform id (``""``: made now, id unknown), or ``None`` when it could not be looked
        for or made. Raises ``Refused`` when the platform refuses the look or the post for
        good."""
        try:
            found = await self._platform.staff_posted(pending)
        except NotChecked:
            return None
        if found is not None:
            return found
        return "" if await self._remake(pending) else None

    def _remake(self, pending: StaffPending) -> Awaitable[bool]:
        """The post ``pending`` keeps, made again from what the outbox holds (its words; the
        files that went with it were offered on the first try)."""
        view, platform = pending.escalation, self._platform
        assert view.staff is not None
        if pending.kind is StaffKind.REPLY:
            relayed = Relayed(key=view.key, text=pending.text, staff_name=pending.author_name)
            return platform.relay_to_customer(relayed)
        if pending.kind is StaffKind.DECISION:
            return platform.post_decision(view.staff, pending.author_id, pending.text)
        message = IncomingMessage(
            key=view.key, author_id=pending.author_id, text=pending.text, message_id="", direct=True
        )
        return platform.relay_to_staff(view.staff, message)

    async def _gave_up(self, pending: StaffPending, why: str) -> None:
        """Never try ``pending`` again; the staff member whose reply it was is told (once,
        by the replica that gave it up)."""
        if not await self._desk.give_up(pending.kind, pending.id, why):
            return
        staff = pending.escalation.staff
        if pending.kind is StaffKind.REPLY and staff is not None:
            await self._platform.tell_staff(staff, pending.author_id, NOT_DELIVERED, None)

    async def _redraw(self, pending: StaffPending) -> None:
        """Re-draw a notice whose re-draw has not got through, from the state as it is now
        (so many changes cost one re-draw). Not locked across replicas: a re-draw draws the
        state it reads, so two replicas drawing at once draw the same or the newer state."""
        escalation = pending.escalation.id
        async with self._serial(("escalation", escalation)):
            view = await self._desk.get(escalation)
            if view is None or view.redraw_at is None or view.staff is None:
                self._backoff.pop(pending.id, None)
                return
            if pending.expired or not self._platform.has_staff_channel:
                why = TOO_OLD if pending.expired else "no staff channel"
                await self._desk.notice_given_up(view, why)
                return
            try:
                drawn = await self._platform.update_notice(view, view.staff)
            except Refused as exc:
                await self._desk.notice_given_up(view, str(exc))
                return
            if drawn:
                self._backoff.pop(pending.id, None)
                await self._desk.drawn(view, late=True)
            else:
                self._later(pending.id, f"notice of escalation {escalation}")

    async def _post_notice(self, view: EscalationView, *, ping: bool, again: bool = False) -> bool:
        """Post ``view``'s notice, record it and show the customer's files under it.
        ``again``: an earlier try may have made it (its outcome was unknown, or its process
        died before recording it), so the staff channel is looked at first."""
        try:
            post = await self._platform.posted_notice(view) if again else None
        except NotChecked:
            return False
        if post is None:
            post = await self._platform.post_notice(view, ping=ping)
        if post is not None:
            await self._desk.attach(view.id, post)
            files = await self._desk.files(view.id)
            if files:
                await self._show_files(post, files, about=f"escalation {view.id}")
        return post is not None

    async def _show_files(
        self, post: StaffPost, files: Sequence[Attachment], *, about: object
    ) -> None:
        """Upload the customer's ``files`` into the staff thread at ``post``. When the platform
        refuses (a PDF over Discord's upload limit, an API error), each file is tried alone, so
        one refused file does not hide the others, and the team is told in the thread which
        ones it cannot see there and how to get them: never a file silently missing."""
        platform = self._platform
        if await platform.post_files(post, files, about=about):
            return
        missing = [
            f
            for f in files
            if len(files) == 1 or not await platform.post_files(post, (f,), about=about)
        ]
        if not missing:
            return
        view = await self._desk.at(post)
        escalation = view.id if view is not None else "ID"
        names = ", ".join(f.name for f in missing)
        note = NOT_SHOWN.format(names=names, escalation=escalation)
        await platform.post_to_staff(post, note, about=about)

    async def _fetched(self, attachments: tuple[Attachment, ...]) -> tuple[Attachment, ...]:
        """``attachments`` with their bytes, as far as the platform could fetch them; those
        past the per-message limit are not fetched at all."""
        limits = self._port.files
        first, rest = attachments[: limits.max_files], attachments[limits.max_files :]
        fetched = await asyncio.gather(
            *(self._platform.fetch(a, max_bytes=limits.fetch_bytes) for a in first)
        )
        return (*fetched, *(replace(a, problem=Problem.TOO_MANY) for a in rest))

    async def reping(self, view: EscalationView) -> None:
        """Remind staff of an escalation nobody has claimed (``watch_repings`` calls this).

        Without a notice yet (posting it failed earlier) a fresh one is posted instead.
        """
        async with self._serial(("escalation", view.id)):
            # Re-read: since the re-ping fell due the escalation may have been claimed, or its
            # notice posted by the turn that opened it.
            current = await self._desk.get(view.id) or view
            if current.state != State.OPEN:
                return
            if current.staff is None:
                posted = await self._post_notice(current, ping=True, again=True)
            else:
                posted = await self._reping_once(current)
            if not posted:
                await self._not_told(view.id, "re-ping")

    async def _reping_once(self, view: EscalationView) -> bool:
        """Post ``view``'s reminder unless an earlier try whose answer was lost made it."""
        try:
            if await self._platform.posted_reping(view):
                return True
        except NotChecked:
            return False
        return await self._platform.post_reping(view, now=self._clock())

    async def _not_told(self, escalation_id: int, what: str) -> None:
        """A notice or re-ping was not posted: tried again soon, unless there is no staff
        channel to post it in (the platform logged that), where trying again cannot help."""
        if not self._platform.has_staff_channel:
            return
        log.warning("%s of escalation %s not posted: trying again", what, escalation_id)
        await self._desk.reping_failed(escalation_id)

    async def staff_thread_turn(self, reply: StaffReply) -> None:
        """A post in a staff thread: a staff reply to a DM escalation goes to the customer.

        Everything else there (non-staff posts, talk under a thread escalation, whose customer
        reads their own thread) is the team's own.
        """
        platform = self._platform
        if not await platform.is_staff(reply.author_id, reply.context):
            return
        async with self._serial(reply.post):
            view = await self._desk.at(reply.post)
            if view is None or not platform.is_direct(view.key):
                return
            if not view.live or not (reply.text or reply.attachments):
                note = CLOSED if not view.live else NO_TEXT
                await platform.tell_staff(reply.post, reply.author_id, note, reply.context)
                return
            fetched = await self._fetched(reply.attachments)
            files = tuple(a for a in fetched if a.data is not None)
            if len(files) < len(fetched):
                names = ", ".join(a.name for a in fetched if a.data is None)
                note = NOT_FETCHED.format(names=names)
                await platform.tell_staff(reply.post, reply.author_id, note, reply.context)
                if not (reply.text or files):
                    return
            name = reply.author_name or await platform.staff_name(reply.author_id, reply.context)
            relayed = await self._desk.staff_replied(
                reply.post,
                staff_name=name,
                text=reply.text,
                message_id=reply.message_id,
                files=files,
                staff_id=reply.author_id,
            )
            if relayed is None:
                return
            post = functools.partial(platform.relay_to_customer, relayed)
            # A failed post is tried again by the outbox's watcher, which tells the staff
            # member if it gives up; a refusal for good is said now.
            if await self._send_kept(relayed.outbox, StaffKind.REPLY, post) is Sent.REFUSED:
                await platform.tell_staff(reply.post, reply.author_id, NOT_DELIVERED, reply.context)

    async def staff_press(self, press: Press) -> bool:
        """Claim, resolve or hand back, then show the new state on the notice; whether the
        press did it (else the presser was told why not)."""
        platform = self._platform
        if not await platform.is_staff(press.user_id, press.context):
            await platform.tell_staff(press.post, press.user_id, ONLY_STAFF, press.context)
            return False
        async with self._serial(("escalation", press.escalation_id)):
            view = await self._desk.act(press.escalation_id, press.action, staff_id=press.user_id)
            if view is None:
                log.warning("%s of unknown escalation %s", press.action, press.escalation_id)
                await platform.tell_staff(
                    press.post, press.user_id, UNKNOWN_ESCALATION, press.context
                )
                return False
            await self._draw(view, view.staff or press.post)
        late = self._too_late(press, view)
        if late is not None:
            await platform.tell_staff(press.post, press.user_id, late, press.context)
        elif press.action is Action.RESOLVE:
            await self._ask_solved(view)
        return late is None

    async def _ask_solved(self, view: EscalationView) -> None:
        """Ask the customer "Did we solve it?" once per escalation (``core.feedback``)."""
        feedback = self._desk.feedback
        if feedback is not None and await feedback.ask_solved(view.id):
            await self._platform.ask_solved(view, feedback.texts.solved_question)

    def _too_late(self, press: Press, view: EscalationView) -> str | None:
        """What to tell someone whose press changed nothing because another got there first."""
        if press.action is Action.CLAIM and view.claimed_by != press.user_id:
            if view.state == State.CLAIMED:
                who = self._platform.person(view.claimed_by or "")
                return f"{who} has already claimed this escalation."
            return "This escalation is already closed."
        # Closed by someone else, or closed the other way (resolved, then "hand back").
        closed_so = view.state == after(State.OPEN, press.action)
        if press.action is not Action.CLAIM and (view.closed_by != press.user_id or not closed_so):
            return ALREADY_CLOSED
        return None
