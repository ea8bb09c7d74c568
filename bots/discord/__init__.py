"""The Discord adapter (discord.py): support-channel threads, forum posts, DMs and escalations.

This module is the platform's registry entry and stays light: the adapter itself
(``bots.discord.bot.DiscordBot``) and discord.py are imported only when the bot runs on Discord
or a Discord command is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bots.discord.settings import DiscordSettings, required
from bots.registry import Adapter, PlatformEntry
from core.desk import Desk
from core.types import ConversationKey, ConversationPort

if TYPE_CHECKING:
    import typer


def conversation_link(key: ConversationKey) -> str:
    """The link to a DM channel or a thread."""
    channel = key.channel_id if key.thread_id == "-" else key.thread_id
    return f"https://discord.com/channels/{key.space_id}/{channel}"


def _adapter(settings: Any, port: ConversationPort, desk: Desk) -> Adapter:
    from bots.discord.bot import DiscordBot

    return DiscordBot(settings=settings, port=port, desk=desk)


def _commands() -> typer.Typer:
    from bots.discord.commands import commands

    return commands


ENTRY = PlatformEntry(
    name="discord",
    title="Discord",
    settings=DiscordSettings,
    required=required,
    link=conversation_link,
    adapter=_adapter,
    commands=_commands,
)
