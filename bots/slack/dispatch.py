"""From an acknowledged Slack event or button press to its effect, as tasks this object tracks."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bots.slack.actions import person_request, staff_action
from bots.slack.delivery import Delivery
from bots.slack.events import BotIdentity, Inbound, translate
from bots.slack.handoff import Handoff
from bots.slack.staff import StaffDirectory
from core.types import ConversationPort

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs each customer message through the port in its own task and posts the reply.

    The Bolt listeners only translate, ack and schedule, so they return at once and Slack gets
    its ack within 3 s. Ordering, dedupe and all customer-facing wording are the port's; this
    class decides which thread replies to follow, sends staff-channel posts and staff replies
    to the ``Handoff`` instead of the port, and keeps failures away from the customer.
    """

    def __init__(
        self,
        *,
        port: ConversationPort,
        identity: BotIdentity,
        delivery: Delivery,
        handoff: Handoff,
        staff: StaffDirectory,
        staff_channel: str | None,
    ) -> None:
        self._port = port
        self._identity = identity
        self._delivery = delivery
        self._handoff = handoff
        self._staff = staff
        self._staff_channel = staff_channel
        self._tasks: set[asyncio.Task[None]] = set()
        # One turn at a time per conversation, from the port call until staff have been told:
        # a new escalation's notification is attached before the next message is handled, so
        # that message is already relayed to the staff thread.
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def on_event(self, body: dict[str, Any]) -> None:
        """Bolt listener for ``message`` and ``app_mention`` (Bolt injects ``body`` by name)."""
        inbound = translate(body, self._identity)
        if inbound is None:
            return
        key = inbound.message.key
        if key.channel_id == self._staff_channel:
            self._spawn(self._handoff.staff_room(inbound), f"staff post in {key}")
        else:
            self._spawn(self._serve(inbound), f"message {inbound.message.message_id} in {key}")

    async def on_staff_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Bolt listener for Claim / Resolve / Hand back (Slack wants the ack within 3 s)."""
        await ack()
        action = staff_action(body)
        if action is not None:
            self._spawn(self._handoff.act(action), f"{action.kind} of {action.escalation_id}")

    async def on_person_request(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Bolt listener for "Talk to a human": the press is the customer's next turn."""
        await ack()
        inbound = person_request(body)
        if inbound is not None:
            self._spawn(self._serve(inbound), f"button press in {inbound.message.key}")

    async def drain(self) -> None:
        """Wait until everything accepted so far has been handled and its reply posted."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, *, grace: float) -> None:
        """Let accepted messages finish for up to ``grace`` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
        if pending:
            log.warning("Slack: cancelling %d unfinished message(s) on shutdown", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, work: Awaitable[None], what: str) -> None:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.create_task(_logged(work, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, inbound: Inbound) -> None:
        # The turn lock is taken before anything is awaited (it is FIFO and a free lock is
        # taken without yielding), so a conversation's messages reach the port in the order
        # Slack delivered them, whatever the checks below cost.
        # The progress reaction is settled after the turn, so a slow reactions call never
        # holds up the conversation's next message.
        working: list[asyncio.Task[bool]] = []
        try:
            async with self._turn(str(inbound.message.key)):
                await self._serve_in_turn(inbound, working)
        finally:
            for reacting in working:
                if await reacting:
                    await self._delivery.mark_done(inbound.message.key, inbound.ts)

    async def _serve_in_turn(self, inbound: Inbound, working: list[asyncio.Task[bool]]) -> None:
        """Hand the message to the port (or to the hand-off) and post what comes back; the
        progress-reaction task, once started, is put in ``working``."""
        message = inbound.message
        active = await self._port.is_active(message.key)
        if inbound.follow_up and not active:
            return
        # Staff in a thread the bot is answering hand it over, mention or not.
        if not message.direct and active and await self._staff.is_staff(message.author_id):
            await self._handoff.staff_said(inbound)
            return
        working.append(asyncio.create_task(self._delivery.mark_working(message.key, inbound.ts)))
        reply = await self._port.handle(message)
        if reply is not None:
            await self._delivery.send(inbound, reply)
            await self._handoff.after_reply(inbound, reply)

    def _turn(self, key: str) -> asyncio.Lock:
        lock = self._turns.get(key)
        if lock is None:
            lock = self._turns[key] = asyncio.Lock()
        return lock


async def _logged(work: Awaitable[None], what: str) -> None:
    try:
        await work
    except Exception:
        log.exception("Slack: %s failed", what)
