"""A typing indicator that never gets in the way of the answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import discord
from discord.abc import Messageable

log = logging.getLogger(__name__)

# Discord shows one typing signal for about 10 s; refresh before it lapses.
REFRESH_SECONDS = 8.0


@asynccontextmanager
async def typing_in(channel: Messageable) -> AsyncIterator[None]:
    """Show "is typing…" in ``channel`` while the block runs.

    discord.py's own ``channel.typing()`` context manager raises on entry when the signal fails
    (missing permission, rate limit); here a failure only costs the indicator. The signal is sent
    from a background task, so entering the block never waits on the network.
    """
    task = asyncio.create_task(_keep_typing(channel))
    try:
        yield
    finally:
        task.cancel()


async def _keep_typing(channel: Messageable) -> None:
    while True:
        try:
            await channel.typing()
        except (discord.HTTPException, discord.RateLimited) as exc:
            log.debug(
                "typing indicator in channel %s stopped: %r", getattr(channel, "id", None), exc
            )
            return
        await asyncio.sleep(REFRESH_SECONDS)
