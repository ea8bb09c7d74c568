"""Slack's agent surface: suggested prompts for a new conversation, and the stop button.

- **Agent view** (Slack's default since 2026-06-30): ``app_home_opened`` on the Messages tab
  offers the persona's prompts (``assistant.threads.setSuggestedPrompts`` without a
  ``thread_ts``, which Slack would silently ignore there), but only while the customer has no
  open conversation in the DM: someone in the middle of one is not offered a fresh start on
  every visit. A ``message.im`` is answered as any DM (``bots.slack.events``).
- **Legacy assistant view**: ``assistant_thread_started`` is a new thread, so it always gets
  the prompts, in that thread.
- ``agent_session_stopped``: the customer pressed stop. Slack has already stopped the
  streamed messages; the answer's Claude call is cancelled (``ConversationPort.stop``) and the
  turn ends as usual, its message rewritten to what was shown plus the persona's ``stopped``
  sentence, the loading status cleared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bots.common import Workflow
from bots.slack.events import PLATFORM, TOP_LEVEL
from bots.slack.platform import SlackPlatform
from bots.slack.web import SlackWeb
from core.types import ConversationKey, ConversationPort

log = logging.getLogger(__name__)


class AgentSurface:
    """Bolt's listeners for the agent events (Bolt acknowledges events itself); each hands
    its work to the workflow's tracked tasks and returns."""

    def __init__(
        self, *, port: ConversationPort, web: SlackWeb, platform: SlackPlatform, workflow: Workflow
    ) -> None:
        self._port = port
        self._web = web
        self._platform = platform
        self._workflow = workflow

    async def on_home_opened(self, body: dict[str, Any]) -> None:
        event = _event(body)
        channel = str(event.get("channel") or "")
        if event.get("tab") != "messages" or not channel:
            return
        key = ConversationKey(PLATFORM, str(body.get("team_id") or ""), channel, TOP_LEVEL)
        self._workflow.track(self._offer_if_new(key), f"prompts in {key}")

    async def on_thread_started(self, body: dict[str, Any]) -> None:
        thread = _event(body).get("assistant_thread")
        if not isinstance(thread, Mapping) or not thread.get("channel_id"):
            return
        channel, ts = str(thread["channel_id"]), str(thread.get("thread_ts") or "")
        self._workflow.track(self._offer(channel, ts or None), f"prompts in {channel}")

    async def on_stopped(self, body: dict[str, Any]) -> None:
        event = _event(body)
        channel, thread = str(event.get("channel") or ""), str(event.get("thread_ts") or "")
        if not channel or not thread:
            return
        self._platform.stopped(channel, thread)
        team = str(body.get("team_id") or "")
        # A DM's top level is one conversation; the session is the customer's message there.
        places = [thread, TOP_LEVEL] if channel.startswith("D") else [thread]
        stopped = any(self._port.stop(ConversationKey(PLATFORM, team, channel, t)) for t in places)
        log.info("stop pressed in %s: %s", channel, "answer stopped" if stopped else "nothing ran")

    async def _offer_if_new(self, key: ConversationKey) -> None:
        if not await self._port.is_active(key):
            await self._offer(key.channel_id, None)

    async def _offer(self, channel: str, thread: str | None) -> None:
        prompts = self._port.suggested_prompts
        if prompts:
            title = self._port.suggested_prompts_title
            await self._web.suggest(channel, prompts, title=title, thread=thread, about=channel)


def _event(body: Mapping[str, Any]) -> Mapping[str, Any]:
    event = body.get("event")
    return event if isinstance(event, Mapping) else {}
