"""Bookkeeping that only needs to live for a while, forgotten on schedule."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from core.clock import utcnow
from core.ports import ConversationStore

log = logging.getLogger(__name__)


async def watch_housekeeping(
    store: ConversationStore,
    *,
    retention: timedelta,
    every: float,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Forget delivery records older than ``retention`` every ``every`` seconds, until
    cancelled. The dedupe only has to outlast the platforms' redeliveries (Slack's last retry
    comes about five minutes after the first try), not the life of the database."""
    while True:
        try:
            forgotten = await store.forget_deliveries(clock() - retention)
        except Exception as exc:
            log.warning("forgetting old deliveries failed (%s); trying again", type(exc).__name__)
        else:
            if forgotten:
                log.info("forgot %d deliveries older than %s", forgotten, retention)
        await asyncio.sleep(every)
