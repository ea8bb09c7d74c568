"""The staff slash commands ``/claim``, ``/resolve`` and ``/handback``: guild-scoped
application commands that do what the notice's buttons do, from the customer's thread or the
escalation's staff thread.

Discord allows 200 command creates a day per guild, so the commands are synced only when the
guild's registered set differs from ours (names and descriptions; one ``GET`` per guild at
start), never on every boot. Who may use them is checked when they are used (the support role),
not by Discord's command permissions, so no server admin has to set those up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import discord
from discord import app_commands

from bots.discord.send import SEND_ERRORS, describe
from core.escalation import Action

log = logging.getLogger(__name__)

COMMANDS = {
    Action.CLAIM: ("claim", "Claim the escalation of this conversation (support team only)"),
    Action.RESOLVE: ("resolve", "Resolve the escalation of this conversation (support team)"),
    Action.HAND_BACK: ("handback", "Hand this conversation back to the bot (support team only)"),
}
"""Each action's command name and description (Discord: at most 100 characters)."""


class StaffCommandHandler(Protocol):
    """Acts on a staff command; it must answer the interaction within 3 seconds."""

    async def staff_command(self, interaction: discord.Interaction, action: Action) -> None: ...


def command_tree(client: discord.Client, handler: StaffCommandHandler) -> app_commands.CommandTree:
    """The client's command tree, holding the three staff commands (copied to each guild on
    ``sync_commands``)."""
    tree = app_commands.CommandTree(client)
    for action, (name, description) in COMMANDS.items():
        tree.add_command(
            app_commands.Command(
                name=name, description=description, callback=_callback(handler, action)
            )
        )
    return tree


def _callback(
    handler: StaffCommandHandler, action: Action
) -> Callable[[discord.Interaction], Coroutine[Any, Any, None]]:
    # A plain function, not a bound method: discord.py reads the command's parameters from
    # the callback's signature, and ``interaction`` must be the only one.
    async def run(interaction: discord.Interaction) -> None:
        await handler.staff_command(interaction, action)

    return run


async def sync_commands(tree: app_commands.CommandTree, guild: discord.abc.Snowflake) -> bool:
    """Register the staff commands in ``guild`` if its registered set differs; whether it
    synced. A refusal (the bot was added without ``applications.commands``) is logged."""
    tree.copy_global_to(guild=guild)
    wanted = {(c.name, c.description) for c in tree.get_commands(guild=guild)}
    try:
        have = {(c.name, c.description) for c in await tree.fetch_commands(guild=guild)}
        if have == wanted:
            return False
        await tree.sync(guild=guild)
    except SEND_ERRORS as exc:
        log.warning(
            "could not register the staff commands in guild %s (%s)", guild.id, describe(exc)
        )
        return False
    log.info("registered the staff commands in guild %s", guild.id)
    return True
