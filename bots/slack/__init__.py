"""Slack adapter: ``SlackBot`` (Socket Mode or HTTP Events API) and ``run_slack``."""

from bots.slack.bot import SlackBot, run_slack

__all__ = ["SlackBot", "run_slack"]
