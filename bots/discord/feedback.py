"""👍 / 👎 under answers, the 👎's form, and "Did we solve it?" on Discord.

The buttons are ``DynamicItem`` s like the others (``bots.discord.buttons``): the answer's or
escalation's id is in the ``custom_id``, so a button posted before a restart still works. A 👍
is stored and answered with a private "Thanks"; a 👎 with a private note offering "Talk to a
person" (the "Talk to a human" button itself) and "What was wrong?", which opens a modal
(sent as that press's response) whose one line is stored with the rating. Only the
conversation's customer's presses count; anyone else is told so privately. Yes / No under
"Did we solve it?" are stored, and the question is edited to the thanks, without buttons.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bots.discord.buttons import TalkButton, persistent
from bots.discord.send import SEND_ERRORS, describe
from core.feedback import COMMENT_LIMIT, Feedback, Rating

log = logging.getLogger(__name__)

RATE_TEMPLATE = r"supportbot:fb:(?P<rating>up|down):(?P<id>[0-9]+)"
WHY_TEMPLATE = r"supportbot:fb:why:(?P<id>[0-9]+)"
SOLVED_TEMPLATE = r"supportbot:solved:(?P<choice>yes|no):(?P<id>[0-9]+)"
WHY_FIELD = "why"
_EMOJI = {Rating.UP: "👍", Rating.DOWN: "👎"}


def _feedback(interaction: discord.Interaction) -> DiscordFeedback | None:
    return getattr(interaction.client, "feedback", None)


class RateButton(discord.ui.DynamicItem[discord.ui.Button], template=RATE_TEMPLATE):
    def __init__(self, rating: Rating, answer_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                emoji=_EMOJI[rating],
                style=discord.ButtonStyle.secondary,
                custom_id=f"supportbot:fb:{rating}:{answer_id}",
            )
        )
        self.rating = rating
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RateButton:
        return cls(Rating(match["rating"]), int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _feedback(interaction)
        if handler is not None:
            await handler.rated(interaction, self.answer_id, self.rating)


class WhyButton(discord.ui.DynamicItem[discord.ui.Button], template=WHY_TEMPLATE):
    def __init__(self, answer_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="What was wrong?",
                style=discord.ButtonStyle.secondary,
                custom_id=f"supportbot:fb:why:{answer_id}",
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> WhyButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _feedback(interaction)
        if handler is not None:
            await handler.why(interaction, self.answer_id)


class SolvedButton(discord.ui.DynamicItem[discord.ui.Button], template=SOLVED_TEMPLATE):
    def __init__(self, escalation_id: int, *, solved: bool) -> None:
        choice = "yes" if solved else "no"
        super().__init__(
            discord.ui.Button(
                label=choice.title(),
                style=discord.ButtonStyle.success if solved else discord.ButtonStyle.secondary,
                custom_id=f"supportbot:solved:{choice}:{escalation_id}",
            )
        )
        self.escalation_id = escalation_id
        self.solved = solved

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SolvedButton:
        return cls(int(match["id"]), solved=match["choice"] == "yes")

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _feedback(interaction)
        if handler is not None:
            await handler.solved(interaction, self.escalation_id, solved=self.solved)


ITEMS = (RateButton, WhyButton, SolvedButton)
"""The templates ``setup_hook`` registers."""


FORM_SECONDS = 900.0
"""How long this process waits for a 👎's form to be sent: discord.py keeps each open modal
in memory, and one the customer closed is never sent at all."""


class WhyModal(discord.ui.Modal):
    """The 👎's form: one optional line. Its custom_id names the answer."""

    def __init__(self, answer_id: int, *, handler: DiscordFeedback) -> None:
        super().__init__(
            title="Sorry about that",
            custom_id=f"supportbot:fb:modal:{answer_id}",
            timeout=FORM_SECONDS,
        )
        self.answer_id = answer_id
        self._handler = handler
        self.said = discord.ui.TextInput(
            custom_id=WHY_FIELD,
            style=discord.TextStyle.short,
            required=False,
            max_length=COMMENT_LIMIT,
        )
        self.add_item(discord.ui.Label(text="What was wrong?", component=self.said))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._handler.explained(interaction, self.answer_id, self.said.value)


def answer_buttons(*, offer_person: bool, answer_id: int | None) -> discord.ui.View | None:
    """Under an answer: "Talk to a human" when ``offer_person``, 👍 and 👎 for a stored
    ``answer_id``; ``None`` when neither."""
    items: list[discord.ui.Item[Any]] = [TalkButton()] if offer_person else []
    if answer_id is not None:
        items += [RateButton(Rating.UP, answer_id), RateButton(Rating.DOWN, answer_id)]
    return persistent(*items) if items else None


def rated_answer(message: discord.Message | None) -> int | None:
    """The answer id the 👍 / 👎 on ``message`` carry, if it has them."""
    for row in message.components if message is not None else []:
        for item in getattr(row, "children", []):
            found = re.fullmatch(RATE_TEMPLATE, getattr(item, "custom_id", None) or "")
            if found is not None:
                return int(found["id"])
    return None


def solved_buttons(escalation_id: int) -> discord.ui.View:
    return persistent(
        SolvedButton(escalation_id, solved=True), SolvedButton(escalation_id, solved=False)
    )


class DiscordFeedback:
    """Answers feedback presses within Discord's 3 seconds (each is stored first: a quick
    write) and privately, but for "Did we solve it?", whose message becomes the thanks."""

    def __init__(self, *, feedback: Feedback) -> None:
        self._feedback = feedback

    async def rated(self, interaction: discord.Interaction, answer_id: int, rating: Rating) -> None:
        texts = self._feedback.texts
        user = str(interaction.user.id)
        answer = await self._feedback.rate(answer_id, user_id=user, rating=rating)
        if answer is None:
            await _answer(interaction, texts.not_yours)
        elif rating is Rating.UP:
            await _answer(interaction, texts.thanks)
        else:
            offer = persistent(TalkButton(), WhyButton(answer_id))
            await _answer(interaction, texts.sorry, view=offer)

    async def why(self, interaction: discord.Interaction, answer_id: int) -> None:
        try:
            await interaction.response.send_modal(WhyModal(answer_id, handler=self))
        except SEND_ERRORS as exc:
            log.error("could not open the form of answer %s (%s)", answer_id, describe(exc))

    async def explained(self, interaction: discord.Interaction, answer_id: int, said: str) -> None:
        user = str(interaction.user.id)
        texts = self._feedback.texts
        answer = await self._feedback.rate(
            answer_id, user_id=user, rating=Rating.DOWN, comment=said
        )
        await _answer(interaction, texts.thanks if answer is not None else texts.not_yours)

    async def solved(
        self, interaction: discord.Interaction, escalation_id: int, *, solved: bool
    ) -> None:
        texts = self._feedback.texts
        user = str(interaction.user.id)
        if not await self._feedback.solved(escalation_id, user_id=user, solved=solved):
            await _answer(interaction, texts.not_yours)
            return
        try:
            await interaction.response.edit_message(content=texts.solved_thanks, view=None)
        except SEND_ERRORS as exc:
            log.error("could not thank for escalation %s (%s)", escalation_id, describe(exc))


async def _answer(
    interaction: discord.Interaction, text: str, *, view: discord.ui.View | None = None
) -> None:
    """A private answer to the press (only the presser sees it)."""
    extra: dict[str, Any] = {"view": view} if view is not None else {}
    try:
        await interaction.response.send_message(text, ephemeral=True, **extra)
    except SEND_ERRORS as exc:
        log.error("could not answer a feedback press (%s)", describe(exc))
