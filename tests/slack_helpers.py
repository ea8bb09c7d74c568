"""Helpers for the Slack tests: fixtures on disk, settings, a recording port, a running bot."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bots.slack.bot import EVENTS_PATH, SlackBot
from bots.slack.settings import SlackSettings
from core.desk import Desk
from core.files import FileLimits
from core.stream import AnswerSink
from core.types import ConversationKey, IncomingMessage, Reply
from tests.fakes.slack_api import FakeSlack, Params, post_action, post_event

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
SECRET = "test-signing-secret"
GROUP = "S0SUPPORT"
STAFF = "C0STAFF"


def load_body(name: str, *, event_id: str | None = None, **event: Any) -> dict[str, Any]:
    """A fixture's ``event_callback`` body, with ``event`` fields (ts, text…) overridden."""
    body = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    body["event"].update(copy.deepcopy(event))
    if event_id is not None:
        body["event_id"] = event_id
    return body


def dm_body(name: str, n: int, *, ts: str | None = None) -> dict[str, Any]:
    """Message ``n`` of customer ``name`` in their own DM (channel ``D0<name>``), saying
    "<name> message <n>" (at ``ts``: by default a fixed time long ago, ``n`` seconds apart)."""
    return load_body(
        "message_im",
        event_id=f"Ev{name}{n}",
        text=f"{name} message {n}",
        blocks=[],
        user=f"U0{name}",
        channel=f"D0{name}",
        ts=ts or f"17000{n:05d}.0001",
    )


def press_body(
    message: Params,
    action_id: str,
    *,
    user: str,
    value: str | None = None,
    action_ts: str = "1700000510.000200",
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when ``user`` presses a button on ``message``.

    ``message`` is one the bot posted (``FakeSlack.messages``); ``value`` defaults to the
    pressed button's own.
    """
    body = json.loads((FIXTURES / "block_actions.json").read_text(encoding="utf-8"))
    [button] = [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    body["user"] |= {"id": user, "username": user.lower(), "name": user.lower()}
    body["container"] |= {"channel_id": message["channel"], "message_ts": message["ts"]}
    body["channel"]["id"] = message["channel"]
    body["message"] = {k: v for k, v in message.items() if k != "channel"}
    body["actions"] = [
        {
            "action_id": action_id,
            "block_id": "b",
            "text": button["text"],
            "value": button["value"] if value is None else value,
            "type": "button",
            "action_ts": action_ts,
        }
    ]
    return body


def slack_settings(fake: FakeSlack, *, mode: str = "http", **overrides: Any) -> SlackSettings:
    """Every field explicit (and no ``.env``), so the developer's environment cannot leak in."""
    values: dict[str, Any] = {
        "bot_token": fake.bot_token,
        "app_token": fake.app_token,
        "signing_secret": SECRET,
        "mode": mode,
        "api_url": fake.api_url,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "support_group_id": GROUP,
        "staff_channel": STAFF,
    }
    return SlackSettings(_env_file=None, **(values | overrides))


@dataclass
class RecordingPort:
    """The port's test double: records messages and honours the contract's dedupe.

    Like the engine it answers a ``message_id`` once (``None`` for a repeat) and reports a key
    as active once it has answered there. ``answer`` builds the reply (default: an echo).
    """

    answer: Callable[[IncomingMessage], Reply] = lambda m: Reply(f"echo: {m.text}")
    files: FileLimits = field(default_factory=FileLimits)
    loading_messages: tuple[str, ...] = ()
    messages: list[IncomingMessage] = field(default_factory=list)
    active: set[ConversationKey] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        self.messages.append(message)
        if message.message_id in self._seen:
            return None
        self._seen.add(message.message_id)
        self.active.add(message.key)
        return self.answer(message)

    async def is_active(self, key: ConversationKey) -> bool:
        return key in self.active

    def hold(self, key: ConversationKey, *, wait: bool = True) -> AbstractAsyncContextManager[bool]:
        return nullcontext(True)  # one process, and its turns are already one at a time


@dataclass
class Harness:
    """A started ``SlackBot`` against a ``FakeSlack``; ``deliver`` works for both transports."""

    fake: FakeSlack
    bot: SlackBot
    mode: str

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.bot.http_port}{EVENTS_PATH}"

    async def deliver(self, body: dict[str, Any], *, retry: int = 0, wait: bool = True) -> int:
        """Deliver like Slack does; the HTTP status (200 on ack). ``wait``: until handled too."""
        if self.mode == "http":
            status = await post_event(self.events_url, body, secret=SECRET, retry_num=retry or None)
        else:
            ack = await self.fake.send_envelope(body, retry_attempt=retry)
            status = 200 if ack.get("envelope_id") else 500
        if wait:
            await self.bot.drain()
        return status

    async def press(self, message: Params, action_id: str, *, user: str, **fields: Any) -> int:
        """Press a button on ``message`` like Slack does, and wait until it has been handled."""
        payload = press_body(message, action_id, user=user, **fields)
        if self.mode == "http":
            status = await post_action(self.events_url, payload, secret=SECRET)
        else:
            ack = await self.fake.send_envelope(payload, kind="interactive")
            status = 200 if ack.get("envelope_id") else 500
        await self.bot.drain()
        return status

    def activity(self) -> list[str]:
        """The Web API methods called because of events (not the start-up calls)."""
        return [m for m, _ in self.fake.calls if m not in ("auth.test", "apps.connections.open")]

    def posts(self, channel: str | None = None) -> list[Params]:
        """The bot's messages (posted or streamed; files shared aside), as they stand now."""
        return [
            m for m in self.fake.messages if channel in (None, m["channel"]) and "files" not in m
        ]

    def notifications(self) -> list[Params]:
        """Top-level posts in the staff channel, as they stand now (updates applied)."""
        return [m for m in self.fake.messages if m["channel"] == STAFF and "thread_ts" not in m]

    def thread(self, parent: Params) -> list[Params]:
        """The bot's replies in the thread under ``parent``."""
        return [
            m
            for m in self.fake.messages
            if m["channel"] == parent["channel"] and m.get("thread_ts") == parent["ts"]
        ]


@asynccontextmanager
async def running_bot(
    fake: FakeSlack, port: Any, *, desk: Desk, mode: str = "http", **overrides: Any
) -> AsyncIterator[Harness]:
    bot = SlackBot(settings=slack_settings(fake, mode=mode, **overrides), port=port, desk=desk)
    await bot.start()
    try:
        yield Harness(fake=fake, bot=bot, mode=mode)
    finally:
        await bot.close()


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
