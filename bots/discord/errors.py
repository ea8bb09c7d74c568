"""The one exception the Discord adapter raises to its caller."""

from core.types import StartError


class DiscordStartError(StartError):
    """The bot could not connect to Discord. The message is a sentence saying what to fix."""
