"""The Slack adapter's lifecycle: Bolt (``AsyncApp``) on Socket Mode or the HTTP Events API."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.delivery import Delivery
from bots.slack.dispatch import Dispatcher
from bots.slack.events import BotIdentity
from bots.slack.render import group_mention
from bots.slack.staff import StaffDirectory
from core.config import ConfigError, SlackSettings
from core.types import ConversationPort

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
CLOSE_GRACE_SECONDS = 10.0
"""How long ``close`` lets accepted messages finish before cancelling them."""


class SlackBot:
    """Receives Slack events, hands customer messages to the port and posts its replies.

    Settings are checked in the constructor (``ConfigError`` names the missing one); ``start``
    checks the bot token with ``auth.test`` and then connects. ``http_host`` is where the HTTP
    Events API binds (tests pass ``127.0.0.1``).
    """

    def __init__(
        self,
        *,
        settings: SlackSettings,
        port: ConversationPort,
        http_host: str = "0.0.0.0",
    ) -> None:
        _check(settings)
        self._settings = settings
        self._port = port
        self._http_host = http_host
        self._dispatcher: Dispatcher | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        """The HTTP Events API's port once listening (``SLACK_HTTP_PORT=0`` picks a free one)."""

    async def start(self) -> None:
        """Connect (Socket Mode) or listen (HTTP); return once events can arrive."""
        try:
            app = await self._build_app()
            if self._settings.mode == "socket":
                await self._connect_socket(app)
            else:
                await self._listen_http(app)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop receiving, let accepted messages finish (bounded), cancel what is left."""
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._dispatcher is not None:
            await self._dispatcher.close(grace=CLOSE_GRACE_SECONDS)

    async def drain(self) -> None:
        """Wait until every event acknowledged so far has been handled and answered."""
        if self._dispatcher is not None:
            await self._dispatcher.drain()

    async def _build_app(self) -> AsyncApp:
        settings = self._settings
        client = AsyncWebClient(
            token=_secret(settings.bot_token),
            base_url=settings.api_url,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            ],
        )
        auth = await client.auth_test()
        log.info("Slack: signed in as bot user %s in team %s", auth["user_id"], auth.get("team_id"))
        self._dispatcher = Dispatcher(
            port=self._port,
            identity=BotIdentity(user_id=auth["user_id"], bot_id=auth.get("bot_id") or ""),
            delivery=Delivery(
                client=client,
                support_group_id=settings.support_group_id,
                staff_channel=settings.staff_channel,
            ),
            staff=StaffDirectory(client=client, group_id=settings.support_group_id),
        )
        app = AsyncApp(
            name="supportbot",
            client=client,
            # Passed even when empty (Socket Mode signs nothing) so Bolt never reads
            # SLACK_SIGNING_SECRET from the environment on its own.
            signing_secret=_secret(settings.signing_secret),
            # The listener only schedules a tracked task, so running it before the ack costs
            # nothing and means an acked event is never lost in a fire-and-forget future.
            process_before_response=True,
            attaching_conversation_kwargs_enabled=False,
        )
        # "message" with no subtype constraint matches every message event: edits, joins and
        # bot posts are acked here and dropped by events.translate, not 404'd by Bolt.
        app.event("message")(self._dispatcher.on_event)
        app.event("app_mention")(self._dispatcher.on_event)
        return app

    async def _connect_socket(self, app: AsyncApp) -> None:
        self._socket = AsyncSocketModeHandler(app, app_token=_secret(self._settings.app_token))
        # Ask for the WebSocket URL first: a bad app token raises here, while connect() alone
        # would log the failure and retry forever.
        self._socket.client.wss_uri = await self._socket.client.issue_new_wss_url()
        await self._socket.connect_async()
        log.info("Slack: Socket Mode connected")

    async def _listen_http(self, app: AsyncApp) -> None:
        self._runner = web.AppRunner(app.web_app(path=EVENTS_PATH, port=self._settings.http_port))
        await self._runner.setup()
        await web.TCPSite(self._runner, self._http_host, self._settings.http_port).start()
        self.http_port = self._runner.addresses[0][1]
        log.info("Slack: Events API on %s:%s%s", self._http_host, self.http_port, EVENTS_PATH)


async def run_slack(settings: SlackSettings, port: ConversationPort) -> None:
    """Run the Slack adapter until cancelled, then close it."""
    bot = SlackBot(settings=settings, port=port)
    await bot.start()
    try:
        await asyncio.Event().wait()
    finally:
        await bot.close()


def _check(settings: SlackSettings) -> None:
    if not _secret(settings.bot_token).startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN: must be the bot token (xoxb-…)")
    if settings.mode == "socket" and not _secret(settings.app_token).startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN: Socket Mode needs the app-level token (xapp-…)")
    if settings.mode == "http" and not _secret(settings.signing_secret):
        raise ConfigError("SLACK_SIGNING_SECRET: HTTP mode needs the signing secret")
    if settings.support_group_id:
        try:
            group_mention(settings.support_group_id)
        except ValueError as exc:
            raise ConfigError(f"SLACK_SUPPORT_GROUP_ID: {exc}") from exc


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
