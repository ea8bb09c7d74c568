"""The Discord bot's lifecycle: the discord.py client, start-up errors, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import aiohttp
import discord

from bots.discord.errors import DiscordStartError
from bots.discord.responder import Responder
from core.config import DiscordSettings
from core.types import ConversationPort

log = logging.getLogger(__name__)

BAD_TOKEN = (
    "Discord rejected DISCORD_TOKEN. Copy the bot token again from the Developer Portal "
    "(your application → Bot → Reset Token) and set DISCORD_TOKEN to it."
)
NO_CONTENT_INTENT = (
    "Discord refused the connection because the Message Content intent is not enabled. In the "
    "Developer Portal open your application → Bot → Privileged Gateway Intents, turn on "
    "MESSAGE CONTENT INTENT, save, and start the bot again."
)
AUTHENTICATION_FAILED = 4004  # gateway close code for a bad token


def intents() -> discord.Intents:
    """Only what the bot reads. ``guilds`` keeps the channel and thread cache, which tells a
    support thread from any other channel."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    # Privileged: also switch it on in the Developer Portal, or Discord closes with 4014.
    wanted.message_content = True
    return wanted


class _Client(discord.Client):
    def __init__(
        self, *, on_customer_message: Callable[[discord.Message], Awaitable[None]], **options: Any
    ) -> None:
        super().__init__(**options)
        self._on_customer_message = on_customer_message

    async def on_message(self, message: discord.Message) -> None:
        await self._on_customer_message(message)

    async def on_ready(self) -> None:
        # Fires again after every fresh IDENTIFY (not after a RESUME); nothing to set up twice.
        assert self.user is not None
        log.info("connected to Discord as %s (%s)", self.user.name, self.user.id)


class DiscordBot:
    """The Discord adapter: answers customers in support-channel threads and DMs via ``port``."""

    def __init__(
        self,
        *,
        settings: DiscordSettings,
        port: ConversationPort,
        guild_ready_timeout: float = 2.0,
        shutdown_grace_seconds: float = 10.0,
    ) -> None:
        self._settings = settings
        self._grace = shutdown_grace_seconds
        self._client = _Client(
            on_customer_message=self._on_message,
            intents=intents(),
            # Nothing the bot posts pings anyone unless a send explicitly allows it.
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            # Raise instead of sleeping through long rate limits (30 s is the minimum allowed).
            max_ratelimit_timeout=30.0,
        )
        self._responder = Responder(
            client=self._client,
            port=port,
            support_channel_ids=settings.support_channel_ids,
            support_role_id=settings.support_role_id,
            staff_channel_id=settings.staff_channel_id,
        )
        self._connection: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Log in and connect; return once the gateway is ready.

        Raises :class:`DiscordStartError` when the token is missing or wrong, when the Message
        Content intent is not enabled, or when Discord cannot be reached.
        """
        if self._settings.token is None:
            raise DiscordStartError("DISCORD_TOKEN is not set; the bot cannot log in to Discord.")
        try:
            await self._connect()
        except Exception as exc:
            await self.close()
            raise _start_error(exc) from exc
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> None:
        assert self._settings.token is not None
        await self._client.login(self._settings.token.get_secret_value())
        self._connection = asyncio.create_task(self._client.connect(), name="discord-gateway")
        ready = asyncio.create_task(self._client.wait_until_ready())
        try:
            await asyncio.wait({ready, self._connection}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self._client.is_ready():
            # connect() ended first: re-raise what ended it (4014, 4004, network...).
            await self._connection
            raise DiscordStartError("The Discord gateway connection ended before it was ready.")

    async def wait(self) -> None:
        """Return when the gateway connection has ended; raise what ended it."""
        if self._connection is not None:
            await self._connection

    async def close(self) -> None:
        """Let answers in progress finish (up to the grace period), then disconnect."""
        self._closing = True  # take no new work while the last answers finish
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=self._grace)
            for task in pending:
                task.cancel()
        # discord.py's "wait for the guilds, then dispatch ready" task outlives close(); stopped
        # inside its window it crashes on the cleared loop ("Task exception was never retrieved").
        ready_task = getattr(self._client._connection, "_ready_task", None)
        if ready_task is not None:
            ready_task.cancel()
        await self._client.close()
        if self._connection is not None and not self._connection.done():
            self._connection.cancel()
            with suppress(asyncio.CancelledError):
                await self._connection

    async def _on_message(self, message: discord.Message) -> None:
        if self._closing:
            return
        # Track the work so close() can wait for it; discord.py runs each event in its own task.
        task = asyncio.create_task(self._responder.handle(message))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)


def _start_error(exc: Exception) -> DiscordStartError:
    if isinstance(exc, DiscordStartError):
        return exc
    if isinstance(exc, discord.LoginFailure):
        return DiscordStartError(BAD_TOKEN)
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return DiscordStartError(NO_CONTENT_INTENT)
    if isinstance(exc, discord.ConnectionClosed) and exc.code == AUTHENTICATION_FAILED:
        return DiscordStartError(BAD_TOKEN)
    if isinstance(exc, discord.HTTPException | aiohttp.ClientError | OSError):
        return DiscordStartError(f"Could not reach Discord to log in: {exc}")
    if isinstance(exc, discord.ConnectionClosed):
        return DiscordStartError(f"Discord closed the gateway connection (code {exc.code}).")
    return DiscordStartError(f"The Discord bot could not start: {type(exc).__name__}: {exc}")


async def run_discord(settings: DiscordSettings, port: ConversationPort) -> None:
    """Run the Discord bot until cancelled (or until the connection fails for good)."""
    bot = DiscordBot(settings=settings, port=port)
    await bot.start()
    try:
        await bot.wait()
    finally:
        await bot.close()
