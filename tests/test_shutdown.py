"""A deploy's SIGTERM (or Ctrl-C's SIGINT) while a customer is being answered: the real
``supportbot run slack`` process finishes the answer, posts it, and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import OURS, SUPPORTBOT
from tests.fakes.anthropic_api import FakeAnthropic, held, text
from tests.fakes.slack_api import FakeSlack, post_event
from tests.slack_helpers import SECRET, load_body

WITHIN = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    port = _free_port()
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
        }
        process = await asyncio.create_subprocess_exec(
            SUPPORTBOT, "run", "slack", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        assert process.stderr is not None
        logged: list[str] = []
        try:
            await _read_until(process.stderr, "Events API on", logged)
            question = load_body("message_im", text="How long does a refund take?")
            url = f"http://127.0.0.1:{port}/slack/events"
            assert await post_event(url, question, secret=SECRET) == 200
            await fake_claude.wait_for_requests(1, timeout=WITHIN)

            process.send_signal(sent)
            await _read_until(process.stderr, "taking no new events", logged)
            release.set()
            async with asyncio.timeout(WITHIN):
                rest = await process.stderr.read()
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        logged.append(rest.decode(errors="replace"))
        answers = [m for m in slack.messages if m["channel"] == question["event"]["channel"]]

    assert code == 0, "".join(logged)
    assert [a["text"] for a in answers] == ["Refunds take 5–7 business days after we receive it."]
    assert any(sent.name in line for line in logged)
    assert "shut down cleanly" in logged[-1]
