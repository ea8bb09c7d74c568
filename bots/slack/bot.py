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

from bots.slack.actions import STAFF_ACTIONS
from bots.slack.delivery import Delivery
from bots.slack.dispatch import Dispatcher
from bots.slack.events import BotIdentity
from bots.slack.handoff import Handoff
from bots.slack.notifier import Notifier
from bots.slack.render import TALK_TO_HUMAN, group_mention, is_channel_id
from bots.slack.staff import StaffDirectory
from bots.slack.web import SlackWeb
from core.config import ConfigError, SlackSettings
from core.desk import Desk
from core.types import ConversationPort, EscalationView

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
CLOSE_GRACE_SECONDS = 10.0
"""How long ``close`` lets accepted messages finish before cancelling them."""


class SlackBot:
    """Receives Slack events and button presses, answers customers, and runs the staff side.

    Customer messages go to ``port``; staff actions, staff posts and relays go to ``desk``.
    Settings are checked in the constructor (``ConfigError`` names the missing one); ``start``
    checks the bot token with ``auth.test`` and then connects. ``http_host`` is where the HTTP
    Events API binds (tests pass ``127.0.0.1``).
    """

    def __init__(
        self,
        *,
        settings: SlackSettings,
        port: ConversationPort,
        desk: Desk,
        http_host: str = "0.0.0.0",
    ) -> None:
        _check(settings)
        self._settings = settings
        self._port = port
        self._desk = desk
        self._http_host = http_host
        self._dispatcher: Dispatcher | None = None
        self._notifier: Notifier | None = None
        self._closed = asyncio.Event()
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

    async def wait(self) -> None:
        """Return once ``close`` has been called; Socket Mode reconnects on its own until then."""
        await self._closed.wait()

    async def reping(self, view: EscalationView) -> None:
        """Remind staff of an escalation nobody has claimed (``watch_repings`` calls this)."""
        if self._notifier is None:
            raise RuntimeError("SlackBot.reping before start()")
        await self._notifier.reping(view)

    async def close(self) -> None:
        """Stop receiving, let accepted messages finish (bounded), cancel what is left."""
        self._closed.set()
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
        web = SlackWeb(client=client)
        staff = StaffDirectory(client=client, group_id=settings.support_group_id)
        self._notifier = Notifier(
            web=web,
            desk=self._desk,
            support_group_id=settings.support_group_id,
            staff_channel=settings.staff_channel,
        )
        self._dispatcher = Dispatcher(
            port=self._port,
            identity=BotIdentity(user_id=auth["user_id"], bot_id=auth.get("bot_id") or ""),
            delivery=Delivery(web=web, support_group_id=settings.support_group_id),
            handoff=Handoff(web=web, desk=self._desk, staff=staff, notifier=self._notifier),
            staff=staff,
            staff_channel=settings.staff_channel,
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
        app.action(STAFF_ACTIONS)(self._dispatcher.on_staff_action)
        app.action(TALK_TO_HUMAN)(self._dispatcher.on_person_request)
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
    # Events name channels by id only, so a name here would never match staff replies.
    if settings.staff_channel and not is_channel_id(settings.staff_channel):
        raise ConfigError("SLACK_STAFF_CHANNEL: use the channel's id (C… or G…), not its name")


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
