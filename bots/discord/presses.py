"""Button presses: Claim / Resolve / Hand back on a notification, "Talk to a human" under an
answer. Discord wants an answer within 3 seconds: a staff button answers right after one
database write; "Talk to a human" answers first, then asks the engine (which may call Claude)."""

from __future__ import annotations

import logging

import discord

from bots.discord.buttons import TALK_LABEL, escalation_buttons
from bots.discord.notice import Action, notification
from bots.discord.responder import Responder, is_support
from bots.discord.routing import conversation_at
from bots.discord.send import SEND_ERRORS, describe
from core.desk import Desk
from core.types import ConversationKey, EscalationView, IncomingMessage

log = logging.getLogger(__name__)

STAFF_ONLY = "Only the support team can do that."
UNKNOWN_ESCALATION = "That escalation no longer exists."
NOT_HERE = "This button no longer works here. Send a message instead and we'll take it from there."


class Presses:
    """The :class:`~bots.discord.buttons.ButtonHandler` of the bot."""

    def __init__(self, *, desk: Desk, responder: Responder, support_role_id: int | None) -> None:
        self._desk = desk
        self._responder = responder
        self._role_id = support_role_id

    async def escalation_pressed(
        self, interaction: discord.Interaction, action: Action, escalation_id: int
    ) -> None:
        """Move the escalation, then re-draw its notification in place (UPDATE_MESSAGE)."""
        try:
            await self._escalation_pressed(interaction, action, escalation_id)
        except SEND_ERRORS as exc:
            log.error(
                "could not answer the %s press on escalation %s (%s)",
                action,
                escalation_id,
                describe(exc),
            )
        except Exception:
            log.exception("failed to handle the %s press on escalation %s", action, escalation_id)

    async def _escalation_pressed(
        self, interaction: discord.Interaction, action: Action, escalation_id: int
    ) -> None:
        if not is_support(interaction.user, self._role_id):
            await interaction.response.send_message(STAFF_ONLY, ephemeral=True)
            return
        view = await self._move(action, escalation_id, staff_id=str(interaction.user.id))
        if view is None:
            await interaction.response.send_message(UNKNOWN_ESCALATION, ephemeral=True)
            return
        out = notification(view, role_id=self._role_id, ping=False)
        await interaction.response.edit_message(
            content=out.content,
            view=escalation_buttons(view),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def talk_pressed(self, interaction: discord.Interaction) -> None:
        """Acknowledge by taking the button off that answer, then escalate like a message."""
        where = _conversation(interaction)
        try:
            if where is None:
                await interaction.response.send_message(NOT_HERE, ephemeral=True)
                return
            await interaction.response.edit_message(view=None)
        except SEND_ERRORS as exc:
            log.error("could not answer a Talk to a human press (%s)", describe(exc))
            return
        channel, key = where
        pressed = IncomingMessage(
            key=key,
            author_id=str(interaction.user.id),
            text=TALK_LABEL,
            message_id=f"button:{interaction.id}",
            direct=interaction.guild_id is None,
            author_name=interaction.user.display_name,
            wants_person=True,
        )
        try:
            await self._responder.answer(
                pressed, target=channel, offer_button=False, relay_text=f"(pressed {TALK_LABEL})"
            )
        except Exception:
            log.exception("failed to answer a Talk to a human press in %s", key)

    async def _move(
        self, action: Action, escalation_id: int, *, staff_id: str
    ) -> EscalationView | None:
        if action is Action.CLAIM:
            return await self._desk.claim(escalation_id, staff_id=staff_id)
        if action is Action.RESOLVE:
            return await self._desk.resolve(escalation_id, staff_id=staff_id)
        return await self._desk.hand_back(escalation_id, staff_id=staff_id)


def _conversation(
    interaction: discord.Interaction,
) -> tuple[discord.abc.Messageable, ConversationKey] | None:
    """The channel a "Talk to a human" button was pressed in, and the conversation it holds."""
    channel, channel_id = interaction.channel, interaction.channel_id
    if not isinstance(channel, discord.abc.Messageable) or channel_id is None:
        return None
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    key = conversation_at(
        guild_id=interaction.guild_id, channel_id=channel_id, thread_parent_id=parent
    )
    return None if key is None else (channel, key)
