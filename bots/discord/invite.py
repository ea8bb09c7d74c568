"""The OAuth2 invite link, with exactly the permissions the bot uses."""

from __future__ import annotations

import discord

PERMISSIONS = discord.Permissions(
    view_channel=True,  # see the support channels and their threads
    send_messages=True,  # answer, post escalations, open forum posts in a forum staff channel
    send_messages_in_threads=True,  # conversations, staff threads, re-pings and DM relays
    create_public_threads=True,  # a new question or a new escalation opens a thread
    read_message_history=True,  # reply to (reference) the customer's message
    manage_threads=True,  # tag a customer's forum post, archive (and lock) it once solved
    manage_channels=True,  # add the "Escalated" and "Solved" tags to a support forum
)


def invite_url(application_id: int) -> str:
    """The link a server admin opens to add the bot: scope ``bot``, and
    ``applications.commands`` for the staff slash commands (``/claim``, ``/resolve``,
    ``/handback``)."""
    return discord.utils.oauth_url(
        application_id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
    )
