"""The ``supportbot`` command as a person runs it: a real process, real stdin and stdout."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.anthropic_api import FakeAnthropic, text

SUPPORTBOT = str(Path(sys.executable).with_name("supportbot"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "SUPPORTBOT_", "SLACK_", "DISCORD_"))
    }
    return {**env, "SUPPORTBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **extra}


async def _run(tmp_path: Path, *args: str, stdin: str = "", **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        SUPPORTBOT,
        *args,
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_console_chat_on_embedded_defaults_resumes_by_name(tmp_path: Path) -> None:
    code, out, _ = await _run(
        tmp_path, "chat", "--conversation", "lamp", stdin="How long does a refund take?\n\nbye\n"
    )
    assert code == 0
    assert "limited mode" in out and "5–7 business days" in out

    code, out, _ = await _run(
        tmp_path, "chat", "-c", "lamp", stdin="Where are your warehouses located?\nquit\n"
    )
    assert code == 0 and "[handed to the support team:" in out

    code, out, _ = await _run(tmp_path, "history", "console:local:lamp:-")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == [
        "[0] user/customer",
        "[1] assistant/notice",
        "[2] user/customer",
        "[3] assistant/notice",
    ]


async def test_console_chat_talks_to_claude_when_a_key_is_set(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Returns are accepted within **30 days** of delivery."))
    code, out, _ = await _run(
        tmp_path,
        "chat",
        stdin="Can I return a rug?\n",
        ANTHROPIC_API_KEY="sk-test-secret",
        ANTHROPIC_BASE_URL=fake_claude.base_url,
    )
    assert code == 0
    assert "Aria> Returns are accepted within **30 days** of delivery." in out
    assert fake_claude.requests[0].last_user_text == "Can I return a rug?"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ANTHROPIC_MAX_TOKENS": "lots"}, "ANTHROPIC_MAX_TOKENS"),
        ({"SUPPORTBOT_DATABASE_URL": "mysql://db"}, "SUPPORTBOT_DATABASE_URL"),
        ({"DISCORD_SUPPORT_CHANNEL_IDS": "12,abc"}, "DISCORD_SUPPORT_CHANNEL_IDS (item 2)"),
        ({"SUPPORTBOT_PERSONA_FILE": "missing.toml"}, "persona_file"),
    ],
)
async def test_bad_configuration_fails_at_start_naming_the_field(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    code, _, err = await _run(tmp_path, "db", "upgrade", **env)
    assert code == 2
    assert "Configuration error" in err and named in err
    assert "Traceback" not in err


async def test_bad_persona_file_names_the_missing_fields(tmp_path: Path) -> None:
    (tmp_path / "persona.yaml").write_text("name: Bob\ncompany: Acme\n")
    code, _, err = await _run(
        tmp_path, "chat", SUPPORTBOT_PERSONA_FILE=str(tmp_path / "persona.yaml")
    )
    assert code == 2
    assert "instructions: Field required" in err and "fallbacks: Field required" in err


async def test_run_without_tokens_says_which_are_missing(tmp_path: Path) -> None:
    code, _, err = await _run(tmp_path, "run", "slack")
    assert code == 2 and "SLACK_BOT_TOKEN" in err and "SLACK_APP_TOKEN" in err
    code, _, err = await _run(tmp_path, "run", "discord")
    assert code == 2 and "DISCORD_TOKEN" in err


async def test_escalations_lists_live_ones_with_age_and_link(tmp_path: Path) -> None:
    code, out, _ = await _run(tmp_path, "escalations")
    assert code == 0 and "No open escalations." in out

    await _run(tmp_path, "chat", "-c", "sofa", stdin="Can I talk to a human about my sofa?\n")
    code, out, _ = await _run(tmp_path, "escalations")
    assert code == 0
    assert "#1 open, 0 min old, console: The customer asked for a person" in out
    assert "console:local:sofa:-" in out


async def test_discord_invite_url_names_the_application_and_permissions(tmp_path: Path) -> None:
    code, _, err = await _run(tmp_path, "discord", "invite-url")
    assert code == 2 and "DISCORD_APPLICATION_ID" in err

    code, out, _ = await _run(
        tmp_path, "discord", "invite-url", DISCORD_APPLICATION_ID="112233445566778899"
    )
    assert code == 0
    url = out.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=112233445566778899")
    assert "scope=bot" in url and "permissions=" in url
