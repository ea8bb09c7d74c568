"""Slack adapter: ``SlackBot`` (Socket Mode or HTTP Events API, Block Kit buttons)."""

from bots.slack.bot import SlackBot

__all__ = ["SlackBot"]
