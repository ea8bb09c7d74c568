"""``SlackWeb``: the Web API calls the adapter makes, none of which may stop the bot.

Each failed call is logged with what it was about (a conversation key or an escalation) and
Slack's error code, never the token and never message text, and then reported by the return
value instead of an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import ClientConnectorError
from slack_sdk.errors import SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bots.common.download import allowed, download, refused
from bots.common.platform import NotChecked, Refused
from bots.slack.errors import GONE, SLACK_ERRORS, error_code
from bots.slack.render import SlackMessage
from core.types import Attachment, StaffPost

log = logging.getLogger(__name__)

FILE_HOSTS = frozenset({"files.slack.com", "files.slack-gov.com"})
"""Where Slack serves ``url_private`` (``files.slack-gov.com`` for GovSlack, whose API is
``slack-gov.com/api``: what slack-go's token guard and other clients allow; slack_sdk itself
names only ``files.slack.com``); the bot token is sent there and to ``SLACK_API_URL``'s host,
nowhere else."""


POSTS = frozenset(
    {"chat.postMessage", "chat.startStream", "chat.appendStream", "files.completeUploadExternal"}
)
"""Web API methods that add something each time they are called: never sent again blind."""


class ConnectionRetry(AsyncConnectionErrorRetryHandler):
    """slack_sdk's retry of a lost connection, except for a post (``POSTS``) once the request
    may have reached Slack: sent again blind it could show twice. A connection that was never
    made is retried for every method; a post whose outcome is unknown fails, and the workflow
    asks Slack whether it got through before posting again (``Platform.posted_reply``)."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if isinstance(error, ClientConnectorError):
            return True
        if request.url.rsplit("/", 1)[-1] in POSTS:
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class SlackWeb:
    def __init__(self, *, client: AsyncWebClient) -> None:
        self._client = client

    async def post(
        self,
        channel: str,
        message: SlackMessage,
        *,
        thread: str | None = None,
        about: object,
        strict: bool = False,
    ) -> str | None:
        """Post ``message``; its ``ts``, or ``None`` when Slack refused. ``strict``: a refusal
        for good (``GONE``) raises ``Refused`` instead."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel, thread_ts=thread, text=message.text, blocks=message.blocks or None
            )
        except SLACK_ERRORS as exc:
            log.error("chat.postMessage to %s failed for %s: %s", channel, about, error_code(exc))
            _refused(exc, strict=strict)
            return None
        return str(response.get("ts") or "")

    async def post_all(
        self,
        channel: str,
        messages: list[SlackMessage],
        *,
        thread: str | None = None,
        about: object,
        strict: bool = False,
    ) -> bool:
        """Post ``messages`` in order, stopping at the first failure; whether all were posted
        (``strict``: as ``post``)."""
        for message in messages:
            ts = await self.post(channel, message, thread=thread, about=about, strict=strict)
            if ts is None:
                return False
        return True

    async def messages_after(
        self, channel: str, ts: str, *, thread: str | None, about: object
    ) -> list[dict]:
        """The messages in ``channel`` (in ``thread``, else at its top level) after ``ts``,
        everyone's, oldest first (``conversations.replies`` / ``conversations.history``).
        Raises ``NotChecked`` with Slack's error code when Slack cannot say, ``Refused`` when
        it never will (``GONE``)."""
        try:
            if thread is None:
                response = await self._client.conversations_history(
                    channel=channel, oldest=ts, limit=100
                )
            else:
                response = await self._client.conversations_replies(
                    channel=channel, ts=thread, oldest=ts, limit=100
                )
        except SLACK_ERRORS as exc:
            code = error_code(exc)
            log.warning("looking for our reply in %s failed for %s: %s", channel, about, code)
            # Reading needs membership where posting may not: ``not_in_channel`` is no answer.
            if code in GONE - {"not_in_channel"}:
                raise Refused(code) from None
            raise NotChecked(code) from None
        found = [m for m in response.get("messages") or [] if float(m.get("ts") or 0) > float(ts)]
        return sorted(found, key=lambda m: float(m["ts"]))

    async def end_stream(self, channel: str, ts: str, *, about: object) -> bool:
        """Stop a streamed message a dead process left streaming, so it can be written over;
        one that is not streaming any more is left as it is. Whether it was streaming."""
        try:
            await self._client.chat_stopStream(channel=channel, ts=ts)
        except SLACK_ERRORS as exc:
            if error_code(exc) != "message_not_in_streaming_state":
                log.warning(
                    "chat.stopStream in %s failed for %s: %s", channel, about, error_code(exc)
                )
            return False
        return True

    async def delete(self, channel: str, ts: str, *, about: object) -> None:
        """Delete the bot's message at ``ts`` (``chat.delete``); a failure is logged."""
        try:
            await self._client.chat_delete(channel=channel, ts=ts)
        except SLACK_ERRORS as exc:
            log.warning("chat.delete in %s failed for %s: %s", channel, about, error_code(exc))

    async def set_status(
        self, channel: str, thread: str, status: str, *, loading: Sequence[str] = (), about: object
    ) -> bool:
        """Set (or, with ``status`` empty, clear) the loading status under ``thread``
        (``assistant.threads.setStatus``); whether Slack took it."""
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=channel,
                thread_ts=thread,
                status=status,
                loading_messages=list(loading) or None,
            )
        except SLACK_ERRORS as exc:
            code = error_code(exc)
            log.warning("assistant.threads.setStatus in %s failed for %s: %s", channel, about, code)
            return False
        return True

    async def open_stream(
        self, channel: str, *, thread: str, recipient: tuple[str, str] | None
    ) -> AsyncChatStream:
        """``slack_sdk``'s chat stream helper for a reply in ``thread``; each ``append`` is one
        call (the caller paces them). ``recipient``: the user and team, needed outside DMs."""
        user, team = recipient if recipient is not None else (None, None)
        return await self._client.chat_stream(
            channel=channel,
            thread_ts=thread,
            recipient_user_id=user,
            recipient_team_id=team,
            buffer_size=1,
        )

    async def update(
        self, post: StaffPost, message: SlackMessage, *, about: object, strict: bool = False
    ) -> bool:
        """Edit the message at ``post``; ``strict`` as for ``post``."""
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
            _refused(exc, strict=strict)
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

    async def suggest(
        self,
        channel: str,
        prompts: Sequence[tuple[str, str]],
        *,
        title: str,
        thread: str | None = None,
        about: object,
    ) -> bool:
        """Offer ``prompts`` (title, message) in ``channel`` (``assistant.threads.
        setSuggestedPrompts``): with ``thread`` in a legacy assistant thread, without it on an
        agent's Messages tab (Slack silently ignores a ``thread_ts`` there)."""
        try:
            await self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel,
                thread_ts=thread,
                title=title or None,
                prompts=[{"title": t, "message": m} for t, m in prompts],
            )
        except SLACK_ERRORS as exc:
            code = error_code(exc)
            log.warning("setSuggestedPrompts in %s failed for %s: %s", channel, about, code)
            return False
        return True

    async def open_view(self, trigger_id: str, view: dict[str, Any], *, about: object) -> bool:
        """Open a modal for whoever pressed (``views.open`` with the press's ``trigger_id``,
        which Slack honours for 3 seconds, once)."""
        try:
            await self._client.views_open(trigger_id=trigger_id, view=view)
        except SLACK_ERRORS as exc:
            log.warning("views.open failed for %s: %s", about, error_code(exc))
            return False
        return True

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

    async def fetch(self, attachment: Attachment, *, max_bytes: int, about: object) -> Attachment:
        """A shared file's bytes, read with the bot token (``files:read``) from Slack's file
        hosts only (``bots.common.download``)."""
        client = self._client
        if not allowed(attachment.url, hosts=FILE_HOSTS, api_url=client.base_url):
            return refused(attachment, about=about)
        assert client.session is not None and client.token is not None
        headers = {"Authorization": f"Bearer {client.token}"}
        return await download(
            client.session, attachment, max_bytes=max_bytes, headers=headers, about=about
        )

    async def upload(
        self, channel: str, files: Sequence[Attachment], *, thread: str | None, about: object
    ) -> bool:
        """Share ``files`` in ``channel`` (a thread of it) with ``files.uploadV2``: an upload
        URL per file, the bytes, then one ``files.completeUploadExternal`` (``files:write``)."""
        uploads = [{"file": f.data, "filename": f.name, "title": f.name} for f in files]
        try:
            await self._client.files_upload_v2(
                file_uploads=uploads, channel=channel, thread_ts=thread
            )
        except (*SLACK_ERRORS, SlackRequestError) as exc:
            log.error("files upload to %s failed for %s: %s", channel, about, error_code(exc))
            return False
        return True

    async def unreact(self, channel: str, ts: str, name: str, *, about: object) -> None:
        try:
            await self._client.reactions_remove(channel=channel, timestamp=ts, name=name)
        except SLACK_ERRORS as exc:
            log.warning("reactions.remove failed in %s: %s", about, error_code(exc))


def _refused(exc: BaseException, *, strict: bool) -> None:
    """With ``strict``, raise ``Refused`` for a refusal trying again cannot cure."""
    code = error_code(exc)
    if strict and code in GONE:
        raise Refused(code) from None
