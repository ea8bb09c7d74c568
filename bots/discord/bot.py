"""The Discord bot's lifecycle: the discord.py client, start-up errors, shutdown, re-pings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from datetime import datetime
from typing import Any

import aiohttp
import discord

from bots.discord.buttons import ButtonClient
from bots.discord.delivery import Delivery
from bots.discord.errors import DiscordStartError
from bots.discord.handoff import Handoff
from bots.discord.notice import Action
from bots.discord.presses import Presses
from bots.discord.responder import Responder
from bots.discord.staff import StaffChannel
from core.clock import utcnow
from core.config import DiscordSettings
from core.desk import Desk
from core.types import ConversationPort, EscalationView

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


class _Client(ButtonClient):
    def __init__(
        self, *, on_any_message: Callable[[discord.Message], Awaitable[None]], **options: Any
    ) -> None:
        super().__init__(**options)
        self._on_any_message = on_any_message

    async def on_message(self, message: discord.Message) -> None:
        await self._on_any_message(message)

    async def on_ready(self) -> None:
        # Fires again after every fresh IDENTIFY (not after a RESUME); nothing to set up twice.
        assert self.user is not None
        log.info("connected to Discord as %s (%s)", self.user.name, self.user.id)


class DiscordBot:
    """The Discord adapter: answers customers in support-channel threads and DMs via ``port``,
    and runs escalations with the support team through ``desk``."""

    def __init__(
        self,
        *,
        settings: DiscordSettings,
        port: ConversationPort,
        desk: Desk,
        guild_ready_timeout: float = 2.0,
        shutdown_grace_seconds: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._grace = shutdown_grace_seconds
        self._clock = clock
        self._client = _Client(
            on_any_message=self._on_message,
            buttons=self,
            intents=intents(),
            # Nothing the bot posts pings anyone unless a send explicitly allows it.
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            # Raise instead of sleeping through long rate limits (30 s is the minimum allowed).
            max_ratelimit_timeout=30.0,
        )
        role_id = settings.support_role_id
        self._staff = StaffChannel(
            client=self._client, desk=desk, channel_id=settings.staff_channel_id, role_id=role_id
        )
        self._responder = Responder(
            client=self._client,
            port=port,
            delivery=Delivery(staff=self._staff, support_role_id=role_id),
            handoff=Handoff(client=self._client, desk=desk, staff=self._staff),
            support_channel_ids=settings.support_channel_ids,
            support_role_id=role_id,
            staff_channel_id=settings.staff_channel_id,
        )
        self._presses = Presses(desk=desk, responder=self._responder, support_role_id=role_id)
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

    async def reping(self, view: EscalationView) -> None:
        """Remind staff of an escalation nobody has claimed, in its staff thread."""
        await self._staff.remind(view, now=self._clock())

    # The client's ButtonHandler: presses run as tracked work, like messages.
    async def escalation_pressed(
        self, interaction: discord.Interaction, action: Action, escalation_id: int
    ) -> None:
        await self._track(self._presses.escalation_pressed(interaction, action, escalation_id))

    async def talk_pressed(self, interaction: discord.Interaction) -> None:
        await self._track(self._presses.talk_pressed(interaction))

    async def _on_message(self, message: discord.Message) -> None:
        await self._track(self._responder.handle(message), wait=False)

    async def _track(self, work: Coroutine[Any, Any, None], *, wait: bool = True) -> None:
        """Run ``work`` so that close() can let it finish; take no new work while closing."""
        if self._closing:
            work.close()
            return
        task = asyncio.create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        if wait:
            await task


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
