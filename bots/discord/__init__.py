"""The Discord adapter (discord.py): support-channel threads, forum posts and DMs.

``DiscordBot`` connects and answers through a ``ConversationPort``; ``run_discord`` runs it until
cancelled; ``invite_url`` builds the link that adds the bot to a server.
"""

from bots.discord.bot import DiscordBot, run_discord
from bots.discord.errors import DiscordStartError
from bots.discord.invite import PERMISSIONS, invite_url

__all__ = ["PERMISSIONS", "DiscordBot", "DiscordStartError", "invite_url", "run_discord"]
