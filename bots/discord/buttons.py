"""The bot's buttons, built to survive restarts.

Each button is a ``discord.ui.DynamicItem``: discord.py rebuilds it from the clicked message's
``custom_id`` alone (``from_custom_id``), so no per-message state is kept in memory and a button
posted before a restart still works after it. ``ButtonClient.setup_hook`` registers the
templates. Because the item is rebuilt by discord.py, the code that acts on a press is reached
through the client (``ButtonClient.buttons``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import discord

from bots.discord.notice import ACCENT
from core.escalation import LABELS, Action, State, actions_for
from core.types import EscalationView

ESCALATION_TEMPLATE = r"supportbot:esc:(?P<action>claim|resolve|handback):(?P<id>[0-9]+)"
# The action's word in custom_id: "handback" predates core's Action and is kept, so buttons
# posted before an upgrade keep working.
_IN_CUSTOM_ID = {Action.CLAIM: "claim", Action.RESOLVE: "resolve", Action.HAND_BACK: "handback"}
_FROM_CUSTOM_ID = {word: action for action, word in _IN_CUSTOM_ID.items()}
PROPOSAL_TEMPLATE = r"supportbot:act:(?P<choice>confirm|cancel):(?P<id>[0-9]+)"
TALK_ID = "supportbot:talk"
TALK_LABEL = "Talk to a human"
_STYLES = {
    Action.CLAIM: discord.ButtonStyle.primary,
    Action.RESOLVE: discord.ButtonStyle.success,
    Action.HAND_BACK: discord.ButtonStyle.secondary,
}


class ButtonHandler(Protocol):
    """Acts on button presses. Each must answer the interaction within 3 seconds, so it
    answers first and hands the work on."""

    async def escalation_pressed(
        self, interaction: discord.Interaction, action: Action, escalation_id: int
    ) -> None: ...

    async def talk_pressed(self, interaction: discord.Interaction) -> None: ...

    async def proposal_pressed(
        self, interaction: discord.Interaction, proposal_id: int, *, confirm: bool
    ) -> None: ...


class ButtonClient(discord.Client):
    """A client that listens for the bot's buttons and hands presses to ``buttons``."""

    def __init__(self, *, buttons: ButtonHandler, **options: Any) -> None:
        super().__init__(**options)
        self.buttons = buttons

    async def setup_hook(self) -> None:
        self.add_dynamic_items(EscalationButton, TalkButton, ProposalButton)


def _handler(interaction: discord.Interaction) -> ButtonHandler:
    client = interaction.client
    assert isinstance(client, ButtonClient)
    return client.buttons


class EscalationButton(discord.ui.DynamicItem[discord.ui.Button], template=ESCALATION_TEMPLATE):
    """Claim, Resolve or Hand back on a staff notification; the escalation id is in custom_id."""

    def __init__(self, action: Action, escalation_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=LABELS[action],
                style=_STYLES[action],
                custom_id=f"supportbot:esc:{_IN_CUSTOM_ID[action]}:{escalation_id}",
            )
        )
        self.action = action
        self.escalation_id = escalation_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> EscalationButton:
        return cls(_FROM_CUSTOM_ID[match["action"]], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).escalation_pressed(interaction, self.action, self.escalation_id)


class TalkButton(discord.ui.DynamicItem[discord.ui.Button], template=re.escape(TALK_ID)):
    """ "Talk to a human" under the bot's answers: one fixed custom_id, the conversation is
    known from the channel the button is in."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                label=TALK_LABEL, style=discord.ButtonStyle.secondary, custom_id=TALK_ID
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> TalkButton:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).talk_pressed(interaction)


class ProposalButton(discord.ui.DynamicItem[discord.ui.Button], template=PROPOSAL_TEMPLATE):
    """Confirm or Cancel under a proposed change; the proposal's id is in custom_id."""

    def __init__(self, proposal_id: int, *, confirm: bool) -> None:
        choice = "confirm" if confirm else "cancel"
        super().__init__(
            discord.ui.Button(
                label="Confirm" if confirm else "Cancel",
                style=discord.ButtonStyle.success if confirm else discord.ButtonStyle.danger,
                custom_id=f"supportbot:act:{choice}:{proposal_id}",
            )
        )
        self.proposal_id = proposal_id
        self.confirm = confirm

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ProposalButton:
        return cls(int(match["id"]), confirm=match["choice"] == "confirm")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).proposal_pressed(
            interaction, self.proposal_id, confirm=self.confirm
        )


def escalation_notice(view: EscalationView, text: str) -> discord.ui.LayoutView:
    """The staff notice of ``view`` as a Components v2 container: ``text``, then the buttons
    for its state (none once it is closed), the accent colour saying which state it is in."""
    container = discord.ui.Container[discord.ui.LayoutView](
        discord.ui.TextDisplay(text), accent_colour=ACCENT[State(view.state)]
    )
    actions = actions_for(view.state)
    if actions:
        container.add_item(
            discord.ui.ActionRow(*(EscalationButton(action, view.id) for action in actions))
        )
    layout = discord.ui.LayoutView(timeout=None)
    layout.add_item(container)
    return layout


def is_notice_of(components: Iterable[discord.Component], escalation_id: int) -> bool:
    """Whether a message with ``components`` (as Discord's history shows it) is the notice of
    ``escalation_id``: it carries one of that escalation's buttons."""
    return any(
        (found := re.fullmatch(ESCALATION_TEMPLATE, custom_id)) is not None
        and int(found["id"]) == escalation_id
        for custom_id in _custom_ids(components)
    )


def _custom_ids(components: Iterable[discord.Component]) -> Iterator[str]:
    """The ``custom_id`` of every component in ``components``, nested ones included."""
    for component in components:
        custom_id = getattr(component, "custom_id", None)
        if custom_id:
            yield custom_id
        yield from _custom_ids(getattr(component, "children", ()))


def proposal_buttons(proposal_id: int) -> discord.ui.View:
    return persistent(
        ProposalButton(proposal_id, confirm=True), ProposalButton(proposal_id, confirm=False)
    )


def persistent(*items: discord.ui.Item[Any]) -> discord.ui.View:
    """A view of ``items`` that never times out."""
    # Without timeout=None each sent message would keep a 180 s timer running for nothing: the
    # buttons stay usable for as long as the message exists.
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view
