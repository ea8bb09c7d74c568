"""Links a person can open to reach a conversation, built from its key alone."""

from __future__ import annotations

from core.types import ConversationKey


def conversation_link(key: ConversationKey) -> str:
    """Slack web-client or Discord channel link; the key itself for the console."""
    if key.platform == "slack":
        base = f"https://app.slack.com/client/{key.space_id}/{key.channel_id}"
        return base if key.thread_id == "-" else f"{base}/thread/{key.channel_id}-{key.thread_id}"
    if key.platform == "discord":
        channel = key.channel_id if key.thread_id == "-" else key.thread_id
        return f"https://discord.com/channels/{key.space_id}/{channel}"
    return str(key)
