"""``DiscordAnswer``: an answer shown in Discord while Claude writes it.

The first words are posted at once (as the reply to the customer's message, like a whole
answer); after that the message is edited with what has arrived, at most once every
``interval`` seconds for the whole answer: edits share the channel's rate-limit bucket with
sends, so a paced answer never meets a 429. Past Discord's 2,000 characters the answer goes on
in a new message; every message is cut by ``core.split`` from the whole text so far, so code
fences stay balanced in each. Every send and edit carries ``allowed_mentions`` that allow
nothing, so an ``@everyone`` spread over two edits pings no one either.

At the end the messages are made to read the final reply, with the buttons under the last; an
escalation's role mention is a message of its own, since a mention added by an edit notifies
nobody.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord

from bots.common.pump import Pump
from bots.discord.buttons import proposal_buttons
from bots.discord.feedback import answer_buttons
from bots.discord.render import MESSAGE_LIMIT, Outgoing, reply_messages, role_mention
from bots.discord.send import SEND_ERRORS, allowed_mentions, describe, unknown_outcome
from core.split import split_text
from core.types import ConversationKey, Reply

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0
"""Seconds between two writes (send or edit) of one answer."""


class DiscordAnswer:
    """One answer shown in ``target`` as it is written (see the module doc).

    ``reference``: the customer's message the first part replies to; ``offer_person``: whether
    "Talk to a human" may go under it; ``role_id``: the support role an escalation pings.
    """

    def __init__(
        self,
        *,
        target: discord.abc.Messageable,
        reference: discord.Message | None,
        key: ConversationKey,
        offer_person: bool,
        role_id: int | None,
        interval: float = EDIT_INTERVAL,
    ) -> None:
        self._target = target
        self._reference = reference
        self._key = key
        self._offer_person = offer_person
        self._role_id = role_id
        self._posted: list[discord.Message] = []
        self._showing: list[str] = []
        """What each posted message shows now."""
        self._shown = ""
        self._step = ""
        self._pump = Pump(self._flush, interval=interval)
        self._unsure = False
        """A send was lost on the way: the answer may be on Discord without our knowing."""

    async def text(self, delta: str) -> None:
        if not self._pump.closing:
            self._shown += delta
            self._pump.nudge()

    async def step(self, label: str) -> None:
        if not self._pump.closing:
            self._step = label
            self._pump.nudge()

    async def finish(self, reply: Reply, *, ping: bool, offer_person: bool) -> bool | None:
        await self._pump.settle()
        if not self._posted:
            # A first message that may have been made: the workflow looks before posting.
            return False if self._unsure else None
        if ping and self._role_id is None:
            log.warning("escalation in %s not pinged: no support role configured", self._key)
        if reply.proposal is not None:
            view: discord.ui.View | None = proposal_buttons(reply.proposal.id)
        else:
            view = answer_buttons(
                offer_person=offer_person and self._offer_person, answer_id=reply.answer_id
            )
        parts = [out.content for out in reply_messages(reply)]
        if not await self._show(parts, view=view):
            return False
        if ping and self._role_id is not None:
            out = Outgoing(role_mention(self._role_id), self._role_id)
            return await self._write(len(self._posted), out.content, mentions=out) is not None
        return True

    async def aclose(self) -> None:
        if self._pump.closing:
            return
        await self._pump.settle()
        if self._posted:
            await self._show(split_text(self._shown, MESSAGE_LIMIT))

    async def _flush(self) -> bool:
        """One write: the first message that differs from what it should show now."""
        shown = f"{self._shown}\n\n*{self._step}*" if self._step else self._shown
        parts = [p for p in split_text(shown, MESSAGE_LIMIT) if p.strip()]
        for index, part in enumerate(parts):
            if index >= len(self._showing) or self._showing[index] != part:
                if await self._write(index, part) is None:
                    return False
                if index < len(parts) - 1:
                    self._pump.nudge()
                break
        return True

    # -- the writes ----------------------------------------------------------------------------

    async def _show(self, parts: list[str], *, view: discord.ui.View | None = None) -> bool:
        """Make the messages read ``parts``, ``view`` under the last; extra messages go."""
        last = len(parts) - 1
        for index, part in enumerate(parts):
            changed = index >= len(self._showing) or self._showing[index] != part
            if (changed or (index == last and view is not None)) and await self._write(
                index, part, view=view if index == last else None
            ) is None:
                return False
        for message in self._posted[len(parts) :]:
            await self._pump.pace()
            with contextlib.suppress(*SEND_ERRORS):
                await message.delete()
        return True

    async def _write(
        self,
        index: int,
        content: str,
        *,
        view: discord.ui.View | None = None,
        mentions: Outgoing | None = None,
    ) -> discord.Message | None:
        """Send message ``index`` or edit it to ``content``, paced; ``None`` when refused."""
        await self._pump.pace()
        allowed = allowed_mentions(mentions or Outgoing(content))
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        try:
            if index < len(self._posted):
                message = await self._posted[index].edit(
                    content=content, allowed_mentions=allowed, **extra
                )
                self._showing[index] = content
                return message
            reference = self._reference if not self._posted else None
            message = await self._target.send(
                content,
                reference=reference.to_reference(fail_if_not_exists=False) if reference else None,
                allowed_mentions=allowed,
                **extra,
            )
        except SEND_ERRORS as exc:
            log.error("streaming an answer in %s failed (%s)", self._key, describe(exc))
            self._unsure |= index >= len(self._posted) and unknown_outcome(exc)
            return None
        if mentions is None:
            self._posted.append(message)
            self._showing.append(content)
        return message
