"""The Discord bot's lifecycle: the discord.py client, start-up errors, shutdown, re-pings.

Its event handlers translate what Discord delivered (``bots.discord.translate``) and hand it to
the shared :class:`~bots.common.Workflow`; button presses are answered first, within Discord's
3-second deadline, and handed over after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
from yarl import URL

from bots.common import Decided, Inbound, Press, Workflow
from bots.common.workflow import ONLY_STAFF
from bots.discord.buttons import ButtonClient
from bots.discord.errors import DiscordStartError
from bots.discord.feedback import ITEMS as FEEDBACK_ITEMS
from bots.discord.feedback import DiscordFeedback, answer_buttons, rated_answer
from bots.discord.platform import DiscordPlatform
from bots.discord.send import SEND_ERRORS, describe
from bots.discord.settings import DiscordSettings
from bots.discord.slash import COMMANDS, command_tree, sync_commands
from bots.discord.stream import EDIT_INTERVAL
from bots.discord.translate import (
    commanded_at,
    is_support,
    proposal_press,
    staff_press,
    talk_press,
    translate,
)
from core.clock import utcnow
from core.desk import Desk
from core.escalation import Action
from core.ports import StaffPending, Unanswered, Undelivered
from core.types import ConversationPort, EscalationView, StaffPost

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
NOT_HERE = "This button no longer works here. Send a message instead and we'll take it from there."
NO_ESCALATION = (
    "There is no open escalation here. Use this command in a customer's thread (or forum post) "
    "while it is escalated, or in the escalation's staff thread."
)
DONE = {
    Action.CLAIM: "You claimed escalation #{id}.",
    Action.RESOLVE: "Escalation #{id} is resolved.",
    Action.HAND_BACK: "Escalation #{id} is handed back to the bot.",
}


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
    feedback: DiscordFeedback | None = None
    """Where 👍 / 👎 and "Did we solve it?" presses go (``None``: not collected)."""

    def __init__(
        self, *, on_any_message: Callable[[discord.Message], object], **options: Any
    ) -> None:
        super().__init__(**options)
        self._on_any_message = on_any_message

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        # A message is handed over here, synchronously, rather than in an ``on_message`` task
        # that discord.py would schedule: the work is tracked (and ``close`` waits for it) from
        # the moment the gateway delivers the message.
        if event == "message":
            self._on_any_message(args[0])
        super().dispatch(event, *args, **kwargs)

    async def setup_hook(self) -> None:
        await super().setup_hook()
        self.add_dynamic_items(*FEEDBACK_ITEMS)

    async def on_ready(self) -> None:
        # Fires again after every fresh IDENTIFY (not after a RESUME); nothing to set up twice.
        assert self.user is not None
        log.info("connected to Discord as %s (%s)", self.user.name, self.user.id)


class DiscordBot:
    """The Discord adapter: answers customers in support-channel threads and DMs via ``port``,
    and runs escalations with the support team through ``desk``. ``edit_interval``: the least
    time between two writes of one streamed answer (``bots.discord.stream``)."""

    def __init__(
        self,
        *,
        settings: DiscordSettings,
        port: ConversationPort,
        desk: Desk,
        guild_ready_timeout: float = 2.0,
        shutdown_grace_seconds: float = 10.0,
        edit_interval: float = EDIT_INTERVAL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._grace = shutdown_grace_seconds
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
        if desk.feedback is not None:
            self._client.feedback = DiscordFeedback(feedback=desk.feedback)
        self._platform = platform = DiscordPlatform(
            client=self._client,
            staff_channel_id=settings.staff_channel_id,
            support_role_id=settings.support_role_id,
            lock_solved_posts=settings.lock_solved_posts,
            edit_interval=edit_interval,
        )
        self._workflow = Workflow(platform=platform, port=port, desk=desk, clock=clock)
        self._desk = desk
        self._tree = command_tree(self._client, self)
        self._support_channel_ids = frozenset(settings.support_channel_ids)
        self._connection: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Log in and connect; return once the gateway is ready.

        Raises :class:`DiscordStartError` when the token is missing or wrong, when the Message
        Content intent is not enabled, or when Discord cannot be reached.
        """
        if self._settings.token is None:
            raise DiscordStartError("DISCORD_TOKEN is not set; the bot cannot log in to Discord.")
        _point_at(self._settings)
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
        for guild in self._client.guilds:
            await sync_commands(self._tree, guild)

    async def wait(self) -> None:
        """Return when the gateway connection has ended; raise what ended it."""
        if self._connection is not None:
            await self._connection

    async def connected(self) -> bool:
        """The gateway session is up (discord.py clears "ready" while it reconnects)."""
        return self._client.is_ready() and not self._client.is_closed()

    async def drain(self) -> None:
        """Wait until everything handed over so far has been handled and its posts made."""
        await self._workflow.drain()

    async def close(self, *, grace: float | None = None) -> None:
        """Let answers in progress finish (for ``grace`` seconds, by default the constructor's;
        what is left is cancelled and has unwound when this returns), then disconnect."""
        await self._workflow.close(grace=self._grace if grace is None else grace)
        # discord.py's "wait for the guilds, then dispatch ready" task outlives close(); stopped
        # inside its window it crashes on the cleared loop ("Task exception was never retrieved").
        ready_task = getattr(self._client._connection, "_ready_task", None)
        if ready_task is not None:
            ready_task.cancel()
        await self._client.close()
        await self._platform.close()
        if self._connection is not None and not self._connection.done():
            self._connection.cancel()
            with suppress(asyncio.CancelledError):
                await self._connection

    async def reping(self, view: EscalationView) -> None:
        """Remind staff of an escalation nobody has claimed, in its staff thread."""
        await self._workflow.reping(view)

    def recover(self, unanswered: Unanswered, *, late_after: timedelta) -> None:
        """Answer a turn a dead process left unanswered (``watch_unanswered`` calls this)."""
        self._workflow.recover(unanswered, late_after=late_after)

    def redeliver(self, undelivered: Undelivered) -> None:
        """Deliver a reply Discord has not taken yet (``watch_undelivered`` calls this)."""
        self._workflow.redeliver(undelivered)

    def resend(self, pending: StaffPending) -> None:
        """Try again a staff post Discord has not taken (``watch_staff_outbox`` calls this)."""
        self._workflow.resend(pending)

    def _on_message(self, message: discord.Message) -> None:
        # Tracked from the first moment: the channel lookup in translate() is part of the turn.
        self._workflow.track(self._hand_over(message), f"message {message.id}")

    async def _hand_over(self, message: discord.Message) -> None:
        handed = await translate(
            self._client,
            message,
            support_channel_ids=self._support_channel_ids,
            staff_channel_id=self._settings.staff_channel_id,
        )
        if isinstance(handed, Inbound):
            await self._workflow.customer_turn(handed)
        elif handed is not None:
            await self._workflow.staff_thread_turn(handed)

    # The client's ButtonHandler.

    async def escalation_pressed(
        self, interaction: discord.Interaction, action: Action, escalation_id: int
    ) -> None:
        """Defer at once (nothing changes on screen yet), then act and re-draw the notice."""
        what = f"{action} of escalation {escalation_id}"
        self._workflow.track(self._escalation_pressed(interaction, action, escalation_id), what)

    async def _escalation_pressed(
        self, interaction: discord.Interaction, action: Action, escalation_id: int
    ) -> None:
        try:
            await interaction.response.defer()
        except SEND_ERRORS as exc:
            # Too late for this interaction; the press was still made, and the notice edit
            # will show what came of it.
            log.error(
                "could not defer the %s of escalation %s (%s)", action, escalation_id, describe(exc)
            )
        press = staff_press(interaction, action, escalation_id)
        if press is not None:
            await self._workflow.staff_press(press)

    async def talk_pressed(self, interaction: discord.Interaction) -> None:
        """Acknowledge by taking the button off that answer, then ask for a person like a
        message would."""
        self._workflow.track(self._talk_pressed(interaction), f"talk press {interaction.id}")

    async def _talk_pressed(self, interaction: discord.Interaction) -> None:
        inbound = talk_press(interaction)
        try:
            if inbound is None:
                await interaction.response.send_message(NOT_HERE, ephemeral=True)
                return
            # The button goes; the answer's 👍 and 👎, if it has them, stay.
            kept = answer_buttons(offer_person=False, answer_id=rated_answer(interaction.message))
            await interaction.response.edit_message(view=kept)
        except SEND_ERRORS as exc:
            log.error("could not answer a Talk to a human press (%s)", describe(exc))
            return
        await self._workflow.customer_turn(inbound)

    async def proposal_pressed(
        self, interaction: discord.Interaction, proposal_id: int, *, confirm: bool
    ) -> None:
        """Defer at once (nothing changes on screen yet), then decide."""
        what = f"decision on proposal {proposal_id}"
        self._workflow.track(self._proposal_pressed(interaction, proposal_id, confirm), what)

    async def _proposal_pressed(
        self, interaction: discord.Interaction, proposal_id: int, confirm: bool
    ) -> None:
        inbound = proposal_press(interaction, confirm=confirm)
        try:
            if inbound is None:
                await interaction.response.send_message(NOT_HERE, ephemeral=True)
                return
            await interaction.response.defer()
        except SEND_ERRORS as exc:
            log.error("could not answer a press on proposal %s (%s)", proposal_id, describe(exc))
            return
        await self._workflow.decision_turn(Decided(inbound, proposal_id, confirm, interaction))

    async def staff_command(self, interaction: discord.Interaction, action: Action) -> None:
        """``/claim``, ``/resolve`` or ``/handback``: refuse or defer at once, then do what
        the notice's button does (the same ``Workflow.staff_press``)."""
        what = f"/{COMMANDS[action][0]} {interaction.id}"
        self._workflow.track(self._staff_command(interaction, action), what)

    async def _staff_command(self, interaction: discord.Interaction, action: Action) -> None:
        try:
            if not is_support(interaction.user, self._settings.support_role_id):
                await interaction.response.send_message(ONLY_STAFF, ephemeral=True)
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
        except SEND_ERRORS as exc:
            log.error("could not answer /%s (%s)", COMMANDS[action][0], describe(exc))
            return
        staff_channel_id = self._settings.staff_channel_id
        where = commanded_at(interaction, staff_channel_id=staff_channel_id)
        if isinstance(where, StaffPost):
            view = await self._desk.at(where)
        else:
            view = await self._desk.live_at(where) if where is not None else None
        if view is None:
            await _privately(interaction, NO_ESCALATION)
            return
        here = StaffPost(str(staff_channel_id), str(interaction.channel_id))
        press = Press(action, view.id, str(interaction.user.id), view.staff or here, interaction)
        if await self._workflow.staff_press(press):
            await _privately(interaction, DONE[action].format(id=view.id))


async def _privately(interaction: discord.Interaction, text: str) -> None:
    """A follow-up only the user who ran the command sees (it was deferred)."""
    try:
        await interaction.followup.send(text, ephemeral=True)
    except SEND_ERRORS as exc:
        log.error("could not answer interaction %s (%s)", interaction.id, describe(exc))


def _point_at(settings: DiscordSettings) -> None:
    """Send discord.py's REST calls to ``DISCORD_API_URL`` and its gateway connection to
    ``DISCORD_GATEWAY_URL``, where set. discord.py keeps both in class attributes (no client
    has its own), so this holds for the process: it runs one Discord bot."""
    if settings.api_url is not None:
        version = discord.http.INTERNAL_API_VERSION
        discord.http.Route.BASE = f"{settings.api_url.rstrip('/')}/api/v{version}"
    if settings.gateway_url is not None:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = URL(settings.gateway_url)


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
