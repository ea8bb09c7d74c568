"""Work the adapter has accepted, tracked so that shutdown can let it finish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Tasks:
    """Runs accepted work as tasks it keeps (the event loop holds tasks only weakly).

    Failures are logged with what the work was, never raised to the platform SDK. Once
    ``close`` has begun, new work is refused: the platform stops delivering before the
    adapter drains.
    """

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None] | None:
        """Start ``work``; ``None`` (and the coroutine closed) when shutting down."""
        if self._closing:
            work.close()
            log.info("refused %s: shutting down", what)
            return None
        task = asyncio.create_task(_logged(work, what))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def drain(self) -> None:
        """Wait until everything accepted so far (and what it started) has finished."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self, *, grace: float) -> None:
        """Refuse new work, let running work finish for up to ``grace`` seconds, then cancel
        what is left and wait for it to unwind."""
        self._closing = True
        if not self._running:
            return
        _, pending = await asyncio.wait(list(self._running), timeout=grace)
        if pending:
            log.warning("cancelling %d unfinished task(s) on shutdown", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _logged(work: Coroutine[Any, Any, None], what: str) -> None:
    try:
        await work
    except Exception:
        log.exception("%s failed", what)
