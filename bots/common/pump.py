"""``Pump``: the background half of an answer shown while it is written.

An adapter's ``AnswerStream`` only buffers in ``text`` and ``step`` (Claude's stream waits on
them) and ``nudge``s its pump, which calls the adapter's ``flush`` beside the turn: at once the
first time, then no sooner than ``interval`` seconds after the previous write, so the words
that came meanwhile go out together. ``settle`` ends it: no more flushes, and a call in flight
is let finish, so the adapter can write the answer's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable


class Pump:
    def __init__(self, flush: Callable[[], Awaitable[bool]], *, interval: float) -> None:
        """``flush`` writes what gathered; it returns False to stop pumping (a refusal)."""
        self._flush = flush
        self._interval = interval
        self._next = 0.0
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        """``settle`` was called: the answer is ending."""
        return self._settled.is_set()

    def nudge(self) -> None:
        """There is more to show: flush it when the next write is due."""
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def pace(self) -> None:
        """Wait until the next write is due, and count this one."""
        wait = self._next - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next = time.monotonic() + self._interval

    async def settle(self) -> None:
        """Flush no more; let a write in flight finish."""
        self._settled.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Gather words until the next write is due; the end comes sooner.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self._next - time.monotonic())
            if self.closing or not await self._flush():
                return
