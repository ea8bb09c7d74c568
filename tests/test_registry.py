"""The platform registry: what the CLI, the composition root and links look platforms up in."""

from __future__ import annotations

import subprocess
import sys

from bots.discord.settings import DiscordSettings
from bots.registry import conversation_link, platforms
from bots.slack.settings import SlackSettings
from core.types import ConversationKey


def test_every_platform_links_its_conversations_and_the_console_shows_its_key() -> None:
    slack_thread = ConversationKey("slack", "T1", "C1", "1700000000.0001")
    discord_dm = ConversationKey("discord", "@me", "42", "-")
    console = ConversationKey("console", "local", "lamp", "-")

    assert conversation_link(slack_thread) == (
        "https://app.slack.com/client/T1/C1/thread/C1-1700000000.0001"
    )
    assert conversation_link(discord_dm) == "https://discord.com/channels/@me/42"
    assert conversation_link(console) == "console:local:lamp:-"


def test_each_platform_says_which_variables_it_needs_to_run() -> None:
    entries = platforms()
    assert sorted(entries) == ["discord", "slack"]

    socket = SlackSettings(_env_file=None)
    http = SlackSettings(_env_file=None, mode="http", bot_token="xoxb-1")
    assert entries["slack"].missing(socket) == ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]
    assert entries["slack"].missing(http) == ["SLACK_SIGNING_SECRET"]
    assert entries["discord"].missing(DiscordSettings(_env_file=None, token="t")) == []


def test_the_command_imports_no_platform_sdk_until_a_platform_runs() -> None:
    probe = (
        "import sys, bots.cli; "
        "print(sorted(m for m in ('slack_bolt', 'slack_sdk', 'discord', 'anthropic') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
