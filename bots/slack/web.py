"""``SlackWeb``: the Web API calls the adapter makes, none of which may stop the bot.

Each failed call is logged with what it was about (a conversation key or an escalation) and
Slack's error code, never the token and never message text, and then reported by the return
value instead of an exception.
"""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.errors import SLACK_ERRORS, error_code
from bots.slack.render import SlackMessage
from core.types import StaffPost

log = logging.getLogger(__name__)


class SlackWeb:
    def __init__(self, *, client: AsyncWebClient) -> None:
        self._client = client

    async def post(
        self, channel: str, message: SlackMessage, *, thread: str | None = None, about: object
    ) -> str | None:
        """Post ``message``; its ``ts``, or ``None`` when Slack refused."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel, thread_ts=thread, text=message.text, blocks=message.blocks or None
            )
        except SLACK_ERRORS as exc:
            log.error("chat.postMessage to %s failed for %s: %s", channel, about, error_code(exc))
            return None
        return str(response.get("ts") or "")

    async def post_all(
        self,
        channel: str,
        messages: list[SlackMessage],
        *,
        thread: str | None = None,
        about: object,
    ) -> bool:
        """Post ``messages`` in order, stopping at the first failure; whether all were posted."""
        for message in messages:
            if await self.post(channel, message, thread=thread, about=about) is None:
                return False
        return True

    async def update(self, post: StaffPost, message: SlackMessage, *, about: object) -> bool:
        try:
            await self._client.chat_update(
                channel=post.channel_id,
                ts=post.message_id,
                text=message.text,
                blocks=message.blocks,
            )
        except SLACK_ERRORS as exc:
            code = error_code(exc)
            log.error("chat.update in %s failed for %s: %s", post.channel_id, about, code)
            return False
        return True

    async def whisper(
        self, channel: str, user: str, text: str, *, thread: str | None = None, about: object
    ) -> None:
        """An ephemeral message only ``user`` sees (``chat.postEphemeral``)."""
        try:
            await self._client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread
            )
        except SLACK_ERRORS as exc:
            code = error_code(exc)
            log.warning("chat.postEphemeral in %s failed for %s: %s", channel, about, code)

    async def permalink(self, channel: str, ts: str, *, about: object) -> str | None:
        try:
            response = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
        except SLACK_ERRORS as exc:
            log.warning("chat.getPermalink failed for %s: %s", about, error_code(exc))
            return None
        return response.get("permalink")

    async def react(self, channel: str, ts: str, name: str, *, about: object) -> bool:
        """Add a reaction; ``True`` only if this call added it.

        A retried or doubled delivery finds the reaction already there (``already_reacted``)
        and leaves it to the delivery that added it.
        """
        try:
            await self._client.reactions_add(channel=channel, timestamp=ts, name=name)
        except SLACK_ERRORS as exc:
            if error_code(exc) != "already_reacted":
                log.warning("reactions.add failed in %s: %s", about, error_code(exc))
            return False
        return True

    async def unreact(self, channel: str, ts: str, name: str, *, about: object) -> None:
        try:
            await self._client.reactions_remove(channel=channel, timestamp=ts, name=name)
        except SLACK_ERRORS as exc:
            log.warning("reactions.remove failed in %s: %s", about, error_code(exc))
