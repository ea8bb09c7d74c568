"""Shared pieces for the Discord adapter tests: recording ports and a bot on a fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from bots.discord.bot import DiscordBot
from bots.discord.settings import DiscordSettings
from core.desk import Desk
from core.files import FileLimits
from core.ports import ConversationStore, StaffOutbound
from core.stream import AnswerSink
from core.types import (
    ConversationKey,
    ConversationPort,
    EscalationView,
    IncomingMessage,
    PendingAction,
    Reply,
    StaffPost,
)
from tests.fakes.discord_api import FakeDiscord, Post


class _Watched:
    """Something tests wait on: ``wait_for`` re-checks its predicate after every change."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def wait_for(self, predicate: Callable[[], bool], *, within: float = 5.0) -> None:
        """Return once ``predicate()`` holds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def _add(self, bucket: list[Any], item: Any) -> None:
        async with self._changed:
            bucket.append(item)
            self._changed.notify_all()


class RecordingPort(_Watched):
    """A stand-in for the engine: records every message, answers from a script, and (like the
    engine) stays silent for a message id it has already answered."""

    def __init__(self, answer: Callable[[IncomingMessage], Reply] | None = None) -> None:
        super().__init__()
        self.messages: list[IncomingMessage] = []
        self.answer = answer or (lambda m: Reply(f"answer to: {m.text}"))
        self.before_answer: Callable[[IncomingMessage], Awaitable[None]] | None = None
        self.files = FileLimits()
        self._answered: set[str] = set()

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        await self._add(self.messages, message)
        if message.message_id in self._answered:
            return None
        self._answered.add(message.message_id)
        if self.before_answer is not None:
            await self.before_answer(message)
        return self.answer(message)

    async def is_active(self, key: ConversationKey) -> bool:
        return any(m.key == key for m in self.messages)

    def hold(self, key: ConversationKey, *, wait: bool = True) -> AbstractAsyncContextManager[bool]:
        return nullcontext(True)  # one process, and its turns are already one at a time


class WatchedPort(_Watched):
    """The real engine, with every turn it finished recorded (``None`` for silence), so a test
    can wait for a message the bot deliberately leaves unanswered."""

    def __init__(self, port: ConversationPort) -> None:
        super().__init__()
        self.turns: list[tuple[IncomingMessage, Reply | None]] = []
        self._port = port
        self.files = port.files

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        reply = await self._port.handle(message, sink)
        await self._add(self.turns, (message, reply))
        return reply

    async def is_active(self, key: ConversationKey) -> bool:
        return await self._port.is_active(key)

    def hold(self, key: ConversationKey, *, wait: bool = True) -> AbstractAsyncContextManager[bool]:
        return self._port.hold(key, wait=wait)

    async def delivered(self, outbox_id: str, message_id: str | None) -> None:
        await self._port.delivered(outbox_id, message_id)

    async def redeliver(self, *args: Any, **kwargs: Any) -> bool:
        return await self._port.redeliver(*args, **kwargs)

    async def give_up(self, outbox_id: str, key: ConversationKey, why: str) -> None:
        await self._port.give_up(outbox_id, key, why)

    async def pending(self, proposal_id: int) -> PendingAction | None:
        return await self._port.pending(proposal_id)

    def reply_to(self, message_id: str) -> Reply | None:
        [reply] = [r for m, r in self.turns if m.message_id == message_id]
        return reply

    def handled(self, message_id: str) -> bool:
        return any(m.message_id == message_id for m, _ in self.turns)


class WatchedDesk(Desk, _Watched):
    """The real desk, noting each notification attached, each staff message recorded and each
    round of the re-ping watcher (how many re-pings it took)."""

    def __init__(self, *, store: ConversationStore) -> None:
        Desk.__init__(self, store=store)
        _Watched.__init__(self)
        self.attached: list[tuple[int, StaffPost]] = []
        self.staff_messages: list[tuple[str, bool]] = []  # (message id, recorded)
        self.rounds: list[int] = []

    async def attach(self, escalation_id: int, staff: StaffPost) -> None:
        await super().attach(escalation_id, staff)
        await self._add(self.attached, (escalation_id, staff))

    async def staff_said(
        self,
        key: ConversationKey,
        *,
        staff_name: str,
        text: str,
        message_id: str,
        reply: StaffOutbound | None = None,
    ) -> bool:
        recorded = await super().staff_said(
            key, staff_name=staff_name, text=text, message_id=message_id, reply=reply
        )
        await self._add(self.staff_messages, (message_id, recorded))
        return recorded

    async def due_repings(self, platforms: set[str]) -> list[EscalationView]:
        due = await super().due_repings(platforms)
        await self._add(self.rounds, len(due))
        return due


QUICK_EDITS = 0.05
"""Seconds between a streamed answer's writes in tests that do not measure the pacing: a
quick answer's last words wait that long, not the product's second."""


def world_settings(fake: FakeDiscord) -> dict[str, Any]:
    """The Discord settings that serve the fake's world, by field name."""
    w = fake.world
    return {
        "token": fake.token,
        "application_id": w.application_id,
        "support_channel_ids": [w.support_channel_id, w.forum_channel_id],
        "support_role_id": w.support_role_id,
        "staff_channel_id": w.staff_channel_id,
    }


def settings_for(fake: FakeDiscord, **overrides: Any) -> DiscordSettings:
    return DiscordSettings(_env_file=None, **(world_settings(fake) | overrides))


@asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    port: ConversationPort,
    desk: Desk,
    *,
    edit_interval: float = QUICK_EDITS,
    **overrides: Any,
) -> AsyncIterator[DiscordBot]:
    """A started ``DiscordBot`` connected to ``fake``; closed on exit. Its streamed answers
    are edited ``edit_interval`` seconds apart: the pacing tests ask for the product's."""
    bot = DiscordBot(
        settings=settings_for(fake, **overrides),
        port=port,
        desk=desk,
        guild_ready_timeout=0.05,
        edit_interval=edit_interval,
    )
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


async def staff_say(fake: FakeDiscord, channel_id: int, text: str) -> dict[str, Any]:
    """Dana, who holds the support role, posts ``text`` in ``channel_id``."""
    message = fake.staff_message(channel_id, text)
    await fake.dispatch("MESSAGE_CREATE", message)
    return message


def staff_posts(fake: FakeDiscord) -> list[Post]:
    """The escalation notifications: what the bot posted in the staff channel itself."""
    return fake.posts_in(fake.world.staff_channel_id)
