"""The ``supportbot`` command: in-process through Typer's runner, and once as a real process.

Each spawned process pays the interpreter's and the SDKs' import time (seconds on a small
machine), so only one test spawns; the others call the same Typer app in this process, with
the environment and working directory a person's shell would give it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import Cli, spawn_supportbot
from tests.fakes.anthropic_api import FakeAnthropic, text


def _turns(out: str) -> list[str]:
    return [line.split(":")[0] for line in out.splitlines() if line.startswith("[")]


async def test_console_chat_in_a_real_process(tmp_path: Path, cli: Cli) -> None:
    code, out, _ = await spawn_supportbot(
        tmp_path, "chat", "--conversation", "lamp", stdin=b"How long does a refund take?\n"
    )
    assert code == 0
    assert "limited mode" in out.decode() and "5–7 business days" in out.decode()

    # In a thread: the command runs an event loop of its own.
    shown = await asyncio.to_thread(cli, "history", "console:local:lamp:-")
    assert _turns(shown.stdout) == ["[0] user/customer", "[1] assistant/notice"]


def test_console_chat_resumes_by_name(cli: Cli) -> None:
    first = cli("chat", "--conversation", "lamp", stdin="How long does a refund take?\n\nbye\n")
    assert first.exit_code == 0
    assert "limited mode" in first.stdout and "5–7 business days" in first.stdout

    second = cli("chat", "-c", "lamp", stdin="Where are your warehouses located?\nquit\n")
    assert second.exit_code == 0 and "[handed to the support team:" in second.stdout

    shown = cli("history", "console:local:lamp:-")
    assert shown.exit_code == 0
    assert _turns(shown.stdout) == [
        "[0] user/customer",
        "[1] assistant/notice",
        "[2] user/customer",
        "[3] assistant/notice",
    ]


def test_a_conversation_name_with_a_colon_has_a_history(cli: Cli) -> None:
    chat = cli("chat", "-c", "order:42", stdin="Is shipping free?\n")
    assert chat.exit_code == 0
    assert "(key console:local:order%3A42:-)" in chat.stdout

    shown = cli("history", "console:local:order%3A42:-")
    assert shown.exit_code == 0
    assert _turns(shown.stdout) == ["[0] user/customer", "[1] assistant/notice"]
    assert "Is shipping free?" in shown.stdout


async def test_console_chat_talks_to_claude_when_a_key_is_set(
    cli: Cli, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Returns are accepted within **30 days** of delivery."))
    # The command runs its own event loop; the fake Claude serves from this one meanwhile.
    result = await asyncio.to_thread(
        cli,
        "chat",
        stdin="Can I return a rug?\n",
        ANTHROPIC_API_KEY="sk-test-secret",
        ANTHROPIC_BASE_URL=fake_claude.base_url,
    )
    assert result.exit_code == 0
    assert "Aria> Returns are accepted within **30 days** of delivery." in result.stdout
    assert fake_claude.requests[0].last_user_text == "Can I return a rug?"


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        ("db", {"ANTHROPIC_MAX_TOKENS": "lots"}, "ANTHROPIC_MAX_TOKENS"),
        ("db", {"SUPPORTBOT_DATABASE_URL": "mysql://db"}, "SUPPORTBOT_DATABASE_URL"),
        ("db", {"SUPPORTBOT_PERSONA_FILE": "missing.toml"}, "persona_file"),
        # A platform's settings are read only by what uses that platform.
        (
            "run",
            {"DISCORD_SUPPORT_CHANNEL_IDS": "12,abc", "DISCORD_TOKEN": "x"},
            "DISCORD_SUPPORT_CHANNEL_IDS (item 2)",
        ),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_field(
    cli: Cli, command: str, env: dict[str, str], named: str
) -> None:
    args = ("db", "upgrade") if command == "db" else ("run", "discord")
    result = cli(*args, **env)
    assert result.exit_code == 2
    assert "Configuration error" in result.stderr and named in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_bad_persona_file_names_the_missing_fields(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "persona.yaml").write_text("name: Bob\ncompany: Acme\n")
    result = cli("chat", SUPPORTBOT_PERSONA_FILE=str(tmp_path / "persona.yaml"))
    assert result.exit_code == 2
    assert "instructions: Field required" in result.stderr
    assert "fallbacks: Field required" in result.stderr


def test_run_without_tokens_says_which_are_missing(cli: Cli) -> None:
    slack = cli("run", "slack")
    assert slack.exit_code == 2
    assert "SLACK_BOT_TOKEN" in slack.stderr and "SLACK_APP_TOKEN" in slack.stderr
    discord = cli("run", "discord")
    assert discord.exit_code == 2 and "DISCORD_TOKEN" in discord.stderr


def test_escalations_lists_live_ones_with_age_and_link(cli: Cli) -> None:
    none = cli("escalations")
    assert none.exit_code == 0 and "No open escalations." in none.stdout

    cli("chat", "-c", "sofa", stdin="Can I talk to a human about my sofa?\n")
    listed = cli("escalations")
    assert listed.exit_code == 0
    assert "#1 open, 0 min old, console: The customer asked for a person" in listed.stdout
    assert "console:local:sofa:-" in listed.stdout


def test_discord_invite_url_names_the_application_and_permissions(cli: Cli) -> None:
    missing = cli("discord", "invite-url")
    assert missing.exit_code == 2 and "DISCORD_APPLICATION_ID" in missing.stderr

    result = cli("discord", "invite-url", DISCORD_APPLICATION_ID="112233445566778899")
    assert result.exit_code == 0
    url = result.stdout.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=112233445566778899")
    assert "scope=bot" in url and "permissions=" in url
