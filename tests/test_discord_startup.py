"""Starting and stopping the Discord bot: clear errors for the two set-up mistakes people make."""

from __future__ import annotations

import asyncio

import pytest

from bots.discord.bot import DiscordBot
from bots.discord.errors import DiscordStartError
from core.desk import Desk
from core.stream import AnswerSink
from core.types import IncomingMessage, Reply
from tests.discord_helpers import (
    RecordingPort,
    fake_discord_installed,
    running_bot,
    say,
    settings_for,
)


async def test_missing_message_content_intent_is_a_clear_error(desk: Desk) -> None:
    async with fake_discord_installed(reject_privileged_intents=True) as fake:
        bot = DiscordBot(
            settings=settings_for(fake), port=RecordingPort(), desk=desk, guild_ready_timeout=0.05
        )
        with pytest.raises(DiscordStartError, match="MESSAGE CONTENT INTENT") as raised:
            await bot.start()

    assert "Developer Portal" in str(raised.value)
    assert fake.rejections == [4014]
    assert fake.identifies[0]["intents"] & (1 << 15)  # the bot did ask for message content


async def test_wrong_token_is_a_clear_error_without_the_token(desk: Desk) -> None:
    async with fake_discord_installed() as fake:
        settings = settings_for(fake, token="not-the-token")
        bot = DiscordBot(
            settings=settings, port=RecordingPort(), desk=desk, guild_ready_timeout=0.05
        )
        with pytest.raises(DiscordStartError, match="rejected DISCORD_TOKEN") as raised:
            await bot.start()

    assert "not-the-token" not in str(raised.value)
    assert [r.path for r in fake.requests] == ["/users/@me"]
    assert fake.identifies == []


async def test_missing_token_is_a_clear_error(desk: Desk) -> None:
    async with fake_discord_installed() as fake:
        bot = DiscordBot(settings=settings_for(fake, token=None), port=RecordingPort(), desk=desk)
        with pytest.raises(DiscordStartError, match="DISCORD_TOKEN is not set"):
            await bot.start()

    assert fake.requests == []


async def test_wait_returns_when_the_connection_ends_and_close_disconnects(desk: Desk) -> None:
    async with fake_discord_installed() as fake:
        port = RecordingPort()
        async with running_bot(fake, port, desk) as bot:
            await say(fake, fake.world.dm_channel_id, "Are you there?")
            await fake.wait_for(lambda: len(fake.posts) == 1)
            waiting = asyncio.create_task(bot.wait())
        # Leaving the block closed the bot: the connection ended, so wait() returned.
        await asyncio.wait_for(waiting, timeout=5)
        # aiohttp lets discord.py's reader send its own close frame (4000) before the 1000.
        await fake.wait_for(lambda: len(fake.client_close_codes) == 1)

    assert fake.posts[0].content == "answer to: Are you there?"


async def test_close_returns_only_once_cancelled_work_has_unwound(desk: Desk) -> None:
    class StuckPort(RecordingPort):
        """Never answers; when cancelled, its clean-up takes a few turns of the event loop (as
        a database rollback would)."""

        def __init__(self) -> None:
            super().__init__()
            self.unwound: list[str] = []

        async def handle(
            self, message: IncomingMessage, sink: AnswerSink | None = None
        ) -> Reply | None:
            await self._add(self.messages, message)
            try:
                await asyncio.Event().wait()
            finally:
                for _ in range(50):
                    await asyncio.sleep(0)
                self.unwound.append(message.message_id)
            return None

    async with fake_discord_installed() as fake:
        port = StuckPort()
        bot = DiscordBot(
            settings=settings_for(fake),
            port=port,
            desk=desk,
            guild_ready_timeout=0.05,
            shutdown_grace_seconds=0.0,
        )
        await bot.start()
        question = await say(fake, fake.world.dm_channel_id, "Are you there?")
        await port.wait_for(lambda: len(port.messages) == 1)
        await bot.close()

        assert port.unwound == [question["id"]]
        assert fake.posts == []
