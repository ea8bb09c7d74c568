"""The outbox's bookkeeping: replies given up (``give_up``), and ``Marks``, the delivered marks,
written a moment after the platform took a reply.

A turn never waits on the database for its own mark, and a burst of replies costs one write
instead of one each (on a busy database that write would hold up the conversation's next
message, and compete with the turns for connections). A mark lost before it is written (the
process died in that moment) is harmless: the reply looks undelivered, and the outbox watcher
finds it on the platform before it would post it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from core.metrics import GIVEN_UP
from core.ports import ConversationStore
from core.types import ConversationKey

log = logging.getLogger(__name__)


async def give_up(
    store: ConversationStore, outbox_id: str, key: ConversationKey, why: str, *, now: datetime
) -> bool:
    """Stop trying to deliver reply ``outbox_id`` in ``key``'s conversation, for ``why`` (a
    platform's error code, or a rule; never the reply's text). Logged and counted once, by the
    replica whose mark took; whether it was this call."""
    if not await store.give_up(outbox_id, now=now):
        return False
    log.error("reply %s in %s given up: %s", outbox_id, key, why)
    GIVEN_UP.inc()
    return True


DELAY = 0.2
"""Seconds a mark waits for others to be written with it."""


class Marks:
    def __init__(
        self, store: ConversationStore, *, clock: Callable[[], datetime], delay: float = DELAY
    ) -> None:
        self._store = store
        self._clock = clock
        self._delay = delay
        self._waiting: dict[str, str | None] = {}
        self._writer: asyncio.Task[None] | None = None

    def add(self, outbox_id: str, message_id: str | None) -> None:
        """Reply ``outbox_id`` was taken by the platform (as ``message_id``, if known)."""
        self._waiting[outbox_id] = message_id
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon())

    def waiting(self, outbox_id: str) -> bool:
        """Whether ``outbox_id`` is marked here and not written yet."""
        return outbox_id in self._waiting

    async def settle(self) -> None:
        """Write every mark now (at shutdown; tests, before they read the store)."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        await self._write()

    async def _write_soon(self) -> None:
        await asyncio.sleep(self._delay)
        await self._write()

    async def _write(self) -> None:
        marks, self._waiting = self._waiting, {}
        if not marks:
            return
        try:
            await self._store.delivered(marks, now=self._clock())
        except Exception as exc:
            log.warning("writing %d delivered marks failed (%s)", len(marks), type(exc).__name__)
            # Kept for the next write; newer marks of the same replies win.
            self._waiting = marks | self._waiting
