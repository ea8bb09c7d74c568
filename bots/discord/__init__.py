"""The Discord adapter (discord.py): support-channel threads, forum posts, DMs and escalations.

``DiscordBot`` connects, answers through a ``ConversationPort`` and runs the escalation workflow
with the support team through a ``Desk``; ``invite_url`` builds the link that adds the bot to a
server.
"""

from bots.discord.bot import DiscordBot
from bots.discord.errors import DiscordStartError
from bots.discord.invite import PERMISSIONS, invite_url

__all__ = ["PERMISSIONS", "DiscordBot", "DiscordStartError", "invite_url"]
