"""``SlackAnswer``: an answer streamed into a Slack thread while Claude writes it.

Slack's chat streaming (``chat.startStream`` / ``appendStream`` / ``stopStream``, through
``slack_sdk``'s ``chat_stream`` helper) shows the words as they come. The first words go out at
once (``startStream``); later ones are gathered and appended at most every ``interval`` seconds,
so a fast stream costs a few calls, not one per token. Every append is escaped on its own
(``render.escape`` works character by character), so a ``<!channel>`` that arrives split
across two appends is as inert as one that arrives whole.

Streaming needs a thread (Slack streams replies, and top-level streaming is for channels only),
and in a channel the customer and their workspace as recipients. Where Slack refuses it (an
older workspace, an error from ``startStream``) nothing was shown and the workflow posts the
reply with one ``chat.postMessage`` as before. An append that fails later leaves the message
as far as it got; ``finish`` then writes the whole reply over it with ``chat.update``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import Chunk, MarkdownTextChunk, TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream

from bots.common.pump import Pump
from bots.slack.errors import SLACK_ERRORS, error_code
from bots.slack.render import SlackMessage, buttons, escape, render_reply
from bots.slack.web import SlackWeb
from core.stream import continuation
from core.types import ConversationKey, Reply, StaffPost

log = logging.getLogger(__name__)

APPEND_INTERVAL = 0.5
"""Seconds between appends after the first words: a handful of calls per answer."""
MESSAGE_LIMIT = 11000
"""Escaped characters of markdown per streamed message (Slack takes 12,000 a call and a
markdown block); a longer answer goes on in a new streamed message."""
_STEP_ID = "step"


class SlackAnswer:
    """One answer streamed as a reply in ``thread`` of ``key``'s channel (see the module doc).

    ``recipient``: the customer and their team, which Slack requires outside DMs; ``mention``:
    the support group's, for an escalation.
    """

    def __init__(
        self,
        *,
        web: SlackWeb,
        key: ConversationKey,
        thread: str,
        recipient: tuple[str, str] | None,
        mention: str | None,
        interval: float = APPEND_INTERVAL,
    ) -> None:
        self._web = web
        self._key = key
        self._thread = thread
        self._recipient = recipient
        self._mention = mention
        self._stream: AsyncChatStream | None = None
        self._size = 0
        """Escaped characters in the current streamed message."""
        self._posted: list[str] = []
        """The ``ts`` of each streamed message, in order."""
        self._shown = ""
        """Every word given to this answer so far (raw), sent or not."""
        self._unsent = ""
        self._steps: list[str] = []
        """Steps not sent yet; ``_labels``: those sent, marked complete at the end."""
        self._labels: list[str] = []
        self._pump = Pump(self._flush, interval=interval)
        self._refused = False
        self._broken = False
        self._unsure = False
        """Starting the stream was lost on the way: it may show on Slack without our knowing."""

    async def text(self, delta: str) -> None:
        if self._refused or self._unsure or self._pump.closing:
            return
        self._shown += delta
        self._unsent += delta
        self._pump.nudge()

    async def step(self, label: str) -> None:
        if self._refused or self._unsure or self._pump.closing:
            return
        self._steps.append(label)
        self._pump.nudge()

    def stopped(self) -> None:
        """Slack stopped this answer's stream (the customer pressed stop): nothing more is
        appended, and ``finish`` writes the reply over what was shown."""
        self._broken = True

    async def finish(self, reply: Reply, *, ping: bool, offer_person: bool) -> bool | None:
        await self._pump.settle()
        if not self._posted:
            # A start that may have been made: the workflow looks before posting the reply.
            return False if self._unsure else None
        mention = self._mention if ping else None
        if mention is None and ping:
            log.warning("escalation in %s: SLACK_SUPPORT_GROUP_ID unset, no ping", self._key)
        blocks = buttons(
            offer_person=offer_person, proposal=reply.proposal, answer_id=reply.answer_id
        )
        rest = continuation(self._shown, reply.text)
        finished = False
        if not self._broken and rest is not None:
            finished = await self._write(self._unsent + rest) and await self._end(blocks)
        if self._broken or rest is None:
            # An append failed, now or earlier, or the reply does not continue what was shown.
            finished = await self._replace(reply, blocks)
        if finished and mention is not None:
            # A streamed message has no notification text, and a mention added to it at the
            # end would be an edit, which notifies nobody: the group is pinged by a message
            # of its own, which closes the answer.
            [pinged] = render_reply("", ping=mention)
            channel, thread = self._key.channel_id, self._thread
            return await self._web.post(channel, pinged, thread=thread, about=self._key) is not None
        return finished

    async def aclose(self) -> None:
        if self._pump.closing:
            return
        await self._pump.settle()
        if self._stream is not None and not self._broken:
            await self._write(self._unsent)
            await self._end([])

    async def _flush(self) -> bool:
        """Send what gathered since the last call; False once Slack refused."""
        if self._broken:
            return False  # stopped, or an append failed: ``finish`` rewrites the message
        await self._pump.pace()
        said, self._unsent = self._unsent, ""
        steps, self._steps = self._steps, []
        self._labels += steps
        return await self._write(said, [_step(label, "in_progress") for label in steps])

    # -- the calls ----------------------------------------------------------------------------

    async def _write(self, said: str, extra: Sequence[Chunk] = ()) -> bool:
        """Append ``said`` (raw) and ``extra``, going on in a new streamed message when the
        current one is full; False when Slack refused."""
        while True:
            head, said = _cut(said, MESSAGE_LIMIT - self._size)
            chunks = [MarkdownTextChunk(text=escape(head))] if head else []
            if not said:
                chunks += extra
            if chunks and not await self._append(chunks):
                return False
            self._size += len(escape(head))
            if not said:
                return True
            if not await self._end([]):
                return False

    async def _append(self, chunks: list[Chunk]) -> bool:
        first = not self._posted
        if self._unsure:
            return False
        try:
            if self._stream is None:
                channel, recipient = self._key.channel_id, self._recipient
                self._stream = await self._web.open_stream(
                    channel, thread=self._thread, recipient=recipient
                )
            await self._stream.append(chunks=chunks)
        except SLACK_ERRORS as exc:
            started = self._stream is not None and self._stream.ts is not None
            what = "chat.appendStream" if started else "chat.startStream"
            log.warning("%s in %s failed: %s", what, self._key, error_code(exc))
            if first and not started:
                # Refused, nothing was shown: the workflow posts the reply whole instead. Lost
                # on the way, it may show all the same: the workflow looks first.
                self._stream = None
                if isinstance(exc, SlackApiError):
                    self._refused = True
                else:
                    self._unsure = True
            else:
                self._broken = True
            return False
        if first or self._stream.ts != self._posted[-1]:
            self._posted.append(str(self._stream.ts))
        return True

    async def _end(self, blocks: list[dict[str, Any]]) -> bool:
        """Stop the current streamed message, its steps complete, with ``blocks`` under it."""
        if self._stream is None:
            return True
        stream, self._stream, self._size = self._stream, None, 0
        done = [_step(label, "complete") for label in self._labels]
        try:
            await stream.stop(chunks=done or None, blocks=blocks or None)
        except SLACK_ERRORS as exc:
            log.warning("chat.stopStream in %s failed: %s", self._key, error_code(exc))
            self._broken = True
            return False
        return True

    async def _replace(self, reply: Reply, blocks: list[dict[str, Any]]) -> bool:
        """Write ``reply`` over the streamed messages (an append failed, or the reply does not
        continue what was shown); what does not fit in them follows."""
        await self._end([])
        parts = render_reply(reply.text)
        last = parts[-1]
        parts[-1] = SlackMessage(text=last.text, blocks=[*last.blocks, *blocks])
        channel = self._key.channel_id
        for ts, part in zip(self._posted, parts, strict=False):
            if not await self._web.update(StaffPost(channel, ts), part, about=self._key):
                return False
        more = parts[len(self._posted) :]
        return await self._web.post_all(channel, more, thread=self._thread, about=self._key)


def _cut(text: str, room: int) -> tuple[str, str]:
    """``text`` as the longest head that fits ``room`` once escaped (cut after its last line
    break when there is one in its second half), and the rest."""
    used = 0
    for end, char in enumerate(text):
        used += len(escape(char))
        if used > room:
            head = text[:end]
            cut = head.rfind("\n") + 1
            if cut > len(head) // 2:
                head = head[:cut]
            return head, text[len(head) :]
    return text, ""


def _step(label: str, status: str) -> TaskUpdateChunk:
    return TaskUpdateChunk(id=_STEP_ID, title=label, status=status)
