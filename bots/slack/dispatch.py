"""From an acknowledged Slack event to a posted reply, as tasks this object tracks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bots.slack.delivery import Delivery
from bots.slack.events import BotIdentity, Inbound, translate
from bots.slack.staff import StaffDirectory
from core.types import ConversationPort

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs each customer message through the port in its own task and posts the reply.

    The Bolt listener (``on_event``) only translates and schedules, so it returns at once and
    Bolt acks within Slack's 3 s. Ordering, dedupe and all customer-facing wording are the
    port's; this class decides which thread replies to follow, adds the progress reaction and
    keeps failures away from the customer.
    """

    def __init__(
        self,
        *,
        port: ConversationPort,
        identity: BotIdentity,
        delivery: Delivery,
        staff: StaffDirectory,
    ) -> None:
        self._port = port
        self._identity = identity
        self._delivery = delivery
        self._staff = staff
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_event(self, body: dict[str, Any]) -> None:
        """Bolt listener for ``message`` and ``app_mention`` (Bolt injects ``body`` by name)."""
        inbound = translate(body, self._identity)
        if inbound is None:
            return
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.create_task(self._serve(inbound))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every message accepted so far has been handled and its reply posted."""
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

    async def _serve(self, inbound: Inbound) -> None:
        message = inbound.message
        try:
            if inbound.follow_up and not await self._follow(inbound):
                return
            # The reaction goes on beside the port call, not before it: the port keeps a
            # conversation's messages in the order handle() is called, so no await may come
            # between accepting an event and handing it over.
            working = asyncio.create_task(self._delivery.mark_working(message.key, inbound.ts))
            try:
                reply = await self._port.handle(message)
                if reply is not None:
                    await self._delivery.send(inbound, reply)
            finally:
                if await working:
                    await self._delivery.mark_done(message.key, inbound.ts)
        except Exception:
            log.exception("Slack: message %s in %s failed", message.message_id, message.key)

    async def _follow(self, inbound: Inbound) -> bool:
        """Answer a thread reply without a mention: only in the bot's threads, never to staff."""
        message = inbound.message
        if not await self._port.is_active(message.key):
            return False
        return not await self._staff.is_staff(message.author_id)
