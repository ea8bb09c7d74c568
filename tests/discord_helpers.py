"""Shared pieces for the Discord adapter tests: a recording port and a bot on a fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from bots.discord import DiscordBot
from core.config import DiscordSettings
from core.types import ConversationKey, ConversationPort, IncomingMessage, Reply
from tests.fakes.discord_api import FakeDiscord


class RecordingPort:
    """A stand-in for the engine: records every message, answers from a script, and (like the
    engine) stays silent for a message id it has already answered."""

    def __init__(self, answer: Callable[[IncomingMessage], Reply] | None = None) -> None:
        self.messages: list[IncomingMessage] = []
        self.answer = answer or (lambda m: Reply(f"answer to: {m.text}"))
        self.before_answer: Callable[[IncomingMessage], Awaitable[None]] | None = None
        self._answered: set[str] = set()
        self._changed = asyncio.Condition()

    async def wait_for(self, predicate: Callable[[], bool], *, within: float = 5.0) -> None:
        """Return once ``predicate()`` holds; re-checked after every message the port gets."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def handle(self, message: IncomingMessage) -> Reply | None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        if message.message_id in self._answered:
            return None
        self._answered.add(message.message_id)
        if self.before_answer is not None:
            await self.before_answer(message)
        return self.answer(message)

    async def is_active(self, key: ConversationKey) -> bool:
        return any(m.key == key for m in self.messages)


def settings_for(fake: FakeDiscord, **overrides: Any) -> DiscordSettings:
    w = fake.world
    values: dict[str, Any] = {
        "token": fake.token,
        "application_id": w.application_id,
        "support_channel_ids": [w.support_channel_id, w.forum_channel_id],
        "support_role_id": w.support_role_id,
        "staff_channel_id": w.staff_channel_id,
    }
    values.update(overrides)
    return DiscordSettings(_env_file=None, **values)


@asynccontextmanager
async def running_bot(
    fake: FakeDiscord, port: ConversationPort, **overrides: Any
) -> AsyncIterator[DiscordBot]:
    """A started ``DiscordBot`` connected to ``fake``; closed on exit."""
    bot = DiscordBot(settings=settings_for(fake, **overrides), port=port, guild_ready_timeout=0.05)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.close()


@asynccontextmanager
async def fake_discord_installed(**options: Any) -> AsyncIterator[FakeDiscord]:
    """A running fake Discord with discord.py pointed at it (restored on exit)."""
    async with FakeDiscord(**options) as fake:
        with fake.installed():
            yield fake


async def say(fake: FakeDiscord, channel_id: int, text: str, **options: Any) -> dict[str, Any]:
    """The customer (or ``author=``) posts ``text`` in ``channel_id``; returns the payload."""
    message = fake.message(channel_id, text, **options)
    await fake.dispatch("MESSAGE_CREATE", message)
    return message
