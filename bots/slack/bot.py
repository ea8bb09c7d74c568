"""The Slack adapter's lifecycle: Bolt (``AsyncApp``) on Socket Mode or the HTTP Events API.

Listeners only acknowledge, translate and hand over to the shared ``Workflow``; everything
Slack-specific it needs is in ``SlackPlatform``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from typing import Any

from aiohttp import ClientSession, web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bots.common import StaffReply, Workflow
from bots.slack.actions import STAFF_ACTIONS, decided, person_request, press
from bots.slack.agent import AgentSurface
from bots.slack.errors import error_code
from bots.slack.events import BotIdentity, route
from bots.slack.feedback import SOLVED_ACTIONS, WHY, FeedbackListeners
from bots.slack.platform import SlackPlatform
from bots.slack.render import (
    CANCEL,
    CONFIRM,
    FEEDBACK,
    TALK_TO_HUMAN,
    group_mention,
    is_channel_id,
)
from bots.slack.settings import SlackSettings
from bots.slack.staff import StaffDirectory
from bots.slack.web import ConnectionRetry, SlackWeb
from core.config import ConfigError
from core.desk import Desk
from core.ports import StaffPending, Unanswered, Undelivered
from core.types import ConversationPort, EscalationView, StartError

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
CLOSE_GRACE_SECONDS = 10.0
"""How long ``close`` lets accepted messages finish before cancelling them."""
REFUSED_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
"""``auth.test`` errors that mean the bot token itself is wrong, revoked or deactivated."""


class SlackBot:
    """Receives Slack events and button presses and hands them to a ``Workflow``.

    Customer messages go to ``port``; staff actions, staff posts and relays to ``desk``.
    Settings are checked in the constructor (``ConfigError`` names the missing one); ``start``
    checks the bot token with ``auth.test`` (``StartError`` when Slack refuses it) and then
    connects, or listens on ``SLACK_HTTP_HOST``:``SLACK_HTTP_PORT``.
    """

    def __init__(self, *, settings: SlackSettings, port: ConversationPort, desk: Desk) -> None:
        _check(settings)
        self._settings = settings
        self._port = port
        self._desk = desk
        self._session: ClientSession | None = None
        self._workflow: Workflow | None = None
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

    async def connected(self) -> bool:
        """Socket Mode: the WebSocket is up; HTTP: the Events API is listening."""
        if self._socket is not None:
            return await self._socket.client.is_connected()
        return self._runner is not None

    async def reping(self, view: EscalationView) -> None:
        """Remind staff of an escalation nobody has claimed (``watch_repings`` calls this)."""
        if self._workflow is None:
            raise RuntimeError("SlackBot.reping before start()")
        await self._workflow.reping(view)

    def recover(self, unanswered: Unanswered, *, late_after: timedelta) -> None:
        """Answer a turn a dead process left unanswered (``watch_unanswered`` calls this)."""
        if self._workflow is None:
            raise RuntimeError("SlackBot.recover before start()")
        self._workflow.recover(unanswered, late_after=late_after)

    def redeliver(self, undelivered: Undelivered) -> None:
        """Deliver a reply Slack has not taken yet (``watch_undelivered`` calls this)."""
        if self._workflow is None:
            raise RuntimeError("SlackBot.redeliver before start()")
        self._workflow.redeliver(undelivered)

    def resend(self, pending: StaffPending) -> None:
        """Try again a staff post Slack has not taken (``watch_staff_outbox`` calls this)."""
        if self._workflow is None:
            raise RuntimeError("SlackBot.resend before start()")
        self._workflow.resend(pending)

    async def close(self, *, grace: float | None = None) -> None:
        """Stop receiving, let accepted messages finish for ``grace`` seconds (default
        ``CLOSE_GRACE_SECONDS``), cancel what is left."""
        self._closed.set()
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._workflow is not None:
            await self._workflow.close(grace=CLOSE_GRACE_SECONDS if grace is None else grace)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self) -> None:
        """Wait until every event acknowledged so far has been handled and answered."""
        if self._workflow is not None:
            await self._workflow.drain()

    async def _build_app(self) -> AsyncApp:
        settings = self._settings
        app = AsyncApp(
            name="supportbot",
            # Bolt builds the Web API client from the token itself: given a client as well, it
            # reads SLACK_BOT_TOKEN from the environment too and warns that it is unused.
            token=_secret(settings.bot_token),
            # Passed even when empty (Socket Mode signs nothing) so Bolt never reads
            # SLACK_SIGNING_SECRET from the environment on its own.
            signing_secret=_secret(settings.signing_secret),
            # The listener only schedules a tracked task, so running it before the ack costs
            # nothing and means an acked event is never lost in a fire-and-forget future.
            process_before_response=True,
            attaching_conversation_kwargs_enabled=False,
        )
        self._session = ClientSession()
        client = _configure(app.client, settings, self._session)
        auth = await _sign_in(client)
        web_api = SlackWeb(client=client)
        platform = SlackPlatform(
            web=web_api,
            staff=StaffDirectory(client=client, group_id=settings.support_group_id),
            support_group_id=settings.support_group_id,
            staff_channel=settings.staff_channel,
            loading_messages=self._port.loading_messages,
            bot_user_id=auth.user_id,
        )
        self._workflow = Workflow(platform=platform, port=self._port, desk=self._desk)
        agent = AgentSurface(
            port=self._port, web=web_api, platform=platform, workflow=self._workflow
        )
        listeners = _Listeners(
            workflow=self._workflow, identity=auth, staff_channel=settings.staff_channel
        )
        # "message" with no subtype constraint matches every message event: edits, joins and
        # bot posts are acked here and dropped by events.translate, not 404'd by Bolt.
        app.event("message")(listeners.on_event)
        app.event("app_mention")(listeners.on_event)
        app.event("app_home_opened")(agent.on_home_opened)
        app.event("assistant_thread_started")(agent.on_thread_started)
        app.event("agent_session_stopped")(agent.on_stopped)
        app.action(STAFF_ACTIONS)(listeners.on_press)
        app.action(TALK_TO_HUMAN)(listeners.on_person_request)
        app.action(CONFIRM)(listeners.on_decision)
        app.action(CANCEL)(listeners.on_decision)
        feedback = self._desk.feedback
        if feedback is not None:
            rated = FeedbackListeners(workflow=self._workflow, feedback=feedback, web=web_api)
            app.action(FEEDBACK)(rated.on_rated)
            app.view(WHY)(rated.on_explained)
            app.action(re.compile(SOLVED_ACTIONS))(rated.on_solved)
        return app

    async def _connect_socket(self, app: AsyncApp) -> None:
        self._socket = AsyncSocketModeHandler(app, app_token=_secret(self._settings.app_token))
        # Ask for the WebSocket URL first: a bad app token raises here, while connect() alone
        # would log the failure and retry forever.
        try:
            self._socket.client.wss_uri = await self._socket.client.issue_new_wss_url()
        except SlackApiError as exc:
            _raise_if_refused(exc, "SLACK_APP_TOKEN", "App-Level Token (xapp-…)")
            raise
        await self._socket.connect_async()
        log.info("Slack: Socket Mode connected")

    async def _listen_http(self, app: AsyncApp) -> None:
        host, port = self._settings.http_host, self._settings.http_port
        self._runner = web.AppRunner(app.web_app(path=EVENTS_PATH, port=port))
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.http_port = self._runner.addresses[0][1]
        log.info("Slack: Events API on %s:%s%s", host, self.http_port, EVENTS_PATH)


class _Listeners:
    """Bolt's listeners (Bolt injects ``ack`` and ``body`` by name): ack, translate, hand over."""

    def __init__(
        self, *, workflow: Workflow, identity: BotIdentity, staff_channel: str | None
    ) -> None:
        self._workflow = workflow
        self._identity = identity
        self._staff_channel = staff_channel

    async def on_event(self, body: dict[str, Any]) -> None:
        """``message`` and ``app_mention``; Bolt acknowledges events itself."""
        found = route(body, self._identity, staff_channel=self._staff_channel)
        if isinstance(found, StaffReply):
            self._workflow.staff_reply(found)
        elif found is not None:
            self._workflow.customer(found)

    async def on_press(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Claim / Resolve / Hand back (Slack wants the ack within 3 s)."""
        await ack()
        pressed = press(body)
        if pressed is not None:
            self._workflow.press(pressed)

    async def on_decision(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Confirm or Cancel under a proposed change."""
        await ack()
        pressed = decided(body)
        if pressed is not None:
            self._workflow.decided(pressed)

    async def on_person_request(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """ "Talk to a human": the press is the customer's next turn."""
        await ack()
        inbound = person_request(body)
        if inbound is not None:
            self._workflow.customer(inbound)


def _configure(
    client: AsyncWebClient, settings: SlackSettings, session: ClientSession
) -> AsyncWebClient:
    """Point Bolt's Web API client at ``SLACK_API_URL`` over one shared HTTP session (without
    one the SDK opens a session per call), retrying refused connections, rate limits and
    Slack's server errors."""
    client.base_url = settings.api_url.rstrip("/") + "/"
    client.session = session
    client.retry_handlers = [
        ConnectionRetry(),
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        # Slack answers its own outages with a 500 or 503: tried again after 0.5 s and 1 s.
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


async def _sign_in(client: AsyncWebClient) -> BotIdentity:
    """Who the bot is (``auth.test``); a refused token is a ``StartError`` naming the setting."""
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        _raise_if_refused(exc, "SLACK_BOT_TOKEN", "Bot User OAuth Token (xoxb-…)")
        raise
    log.info("Slack: signed in as bot user %s in team %s", auth["user_id"], auth.get("team_id"))
    return BotIdentity(user_id=auth["user_id"], bot_id=auth.get("bot_id") or "")


def _raise_if_refused(exc: SlackApiError, setting: str, token: str) -> None:
    """A refused token becomes the one-line ``StartError`` naming its setting."""
    code = error_code(exc)
    if code in REFUSED_TOKEN:
        raise StartError(
            f"{setting} was refused by Slack ({code}): set it to the app's current {token}, "
            "and reinstall the app if it was removed."
        ) from exc


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
