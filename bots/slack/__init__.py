"""The Slack adapter (slack-bolt): DMs and channel threads, Socket Mode or the HTTP Events API.

This module is the platform's registry entry and stays light: the adapter itself
(``bots.slack.bot.SlackBot``) and the Slack SDK are imported only when the bot runs on Slack.
"""

from __future__ import annotations

from typing import Any

from bots.registry import Adapter, PlatformEntry
from bots.slack.settings import SlackSettings, required
from core.desk import Desk
from core.types import ConversationKey, ConversationPort


def conversation_link(key: ConversationKey) -> str:
    """The Slack web-client link to a DM or a channel thread."""
    base = f"https://app.slack.com/client/{key.space_id}/{key.channel_id}"
    return base if key.thread_id == "-" else f"{base}/thread/{key.channel_id}-{key.thread_id}"


def _adapter(settings: Any, port: ConversationPort, desk: Desk) -> Adapter:
    from bots.slack.bot import SlackBot

    return SlackBot(settings=settings, port=port, desk=desk)


ENTRY = PlatformEntry(
    name="slack",
    title="Slack",
    settings=SlackSettings,
    required=required,
    link=conversation_link,
    adapter=_adapter,
)
