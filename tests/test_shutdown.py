"""A deploy's SIGTERM (or Ctrl-C's SIGINT) while a customer is being answered: the real
``supportbot run slack`` process stops being ready, finishes the answer, posts it, and exits 0;
its log is JSON lines, each with the conversation key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import OURS, SUPPORTBOT, free_port
from tests.fakes.anthropic_api import FakeAnthropic, held, text
from tests.fakes.slack_api import FakeSlack, post_event
from tests.slack_helpers import SECRET, load_body
from tests.test_health import until_status

WITHIN = 30.0


async def _read_until(stream: asyncio.StreamReader, wanted: str, seen: list[str]) -> None:
    """Read log lines into ``seen`` until one contains ``wanted``."""
    async with asyncio.timeout(WITHIN):
        while not any(wanted in line for line in seen):
            line = await stream.readline()
            if not line:
                raise AssertionError(f"the process ended before logging {wanted!r}: {seen}")
            seen.append(line.decode(errors="replace"))


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_an_answer_lets_it_finish_then_exits_0(
    tmp_path: Path, fake_claude: FakeAnthropic, sent: signal.Signals
) -> None:
    release = asyncio.Event()
    fake_claude.queue(held(text("Refunds take 5–7 business days after we receive it."), release))
    port, health = free_port(), free_port()
    async with FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)} | {
            "SUPPORTBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "SUPPORTBOT_SHUTDOWN_GRACE_SECONDS": "20",
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": fake_claude.base_url,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_MODE": "http",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_HTTP_HOST": "127.0.0.1",
            "SLACK_HTTP_PORT": str(port),
            "SLACK_API_URL": slack.api_url,
            "SUPPORTBOT_HEALTH_HOST": "127.0.0.1",
            "SUPPORTBOT_HEALTH_PORT": str(health),
            "SUPPORTBOT_LOG_FORMAT": "json",
        }
        process = await asyncio.create_subprocess_exec(
            SUPPORTBOT, "run", "slack", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        assert process.stderr is not None
        logged: list[str] = []
        try:
            await _read_until(process.stderr, "Events API on", logged)
            await until_status(health, "/readyz", 200)
            question = load_body("message_im", text="How long does a refund take?")
            url = f"http://127.0.0.1:{port}/slack/events"
            assert await post_event(url, question, secret=SECRET) == 200
            await fake_claude.wait_for_requests(1, timeout=WITHIN)

            process.send_signal(sent)
            await _read_until(process.stderr, "taking no new events", logged)
            draining = await until_status(health, "/readyz", 503)
            release.set()
            async with asyncio.timeout(WITHIN):
                rest = await process.stderr.read()
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        logged += rest.decode(errors="replace").splitlines()
        answers = [m for m in slack.messages if m["channel"] == question["event"]["channel"]]

    assert code == 0, "".join(logged)
    assert [a["text"] for a in answers] == ["Refunds take 5–7 business days after we receive it."]
    lines = [json.loads(line) for line in logged]
    assert any(sent.name in line["message"] for line in lines)
    assert lines[-1]["message"] == "shut down cleanly"
    assert '"draining"' in draining
    conversation = "slack:T0TEAM:D0DM:-"
    [turn] = [line for line in lines if ": answered in " in line["message"]]
    assert turn["conversation"] == conversation
    assert turn["level"] == "INFO" and turn["logger"] == "supportbot.engine"
