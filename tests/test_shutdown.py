"""A deploy's SIGTERM (or Ctrl-C's SIGINT) while a customer is being answered: the real
``supportbot run slack`` process stops being ready, finishes the answer, posts it, and exits 0;
its log is JSON lines, each with the conversation key."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.fakes.anthropic_api import FakeAnthropic, held, text
from tests.fakes.slack_api import FakeSlack, post_event
from tests.process_helpers import SlackProcess
from tests.slack_helpers import SECRET, load_body
from tests.test_health import until_status


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_during_an_answer_lets_it_finish_then_exits_0(
    tmp_path: Path, fake_claude: FakeAnthropic, sent: signal.Signals
) -> None:
    release = asyncio.Event()
    fake_claude.queue(held(text("Refunds take 5–7 business days after we receive it."), release))
    async with FakeSlack() as slack:
        bot = SlackProcess(
            tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            claude_url=fake_claude.base_url,
            slack=slack,
            SUPPORTBOT_SHUTDOWN_GRACE_SECONDS="20",
            SUPPORTBOT_LOG_FORMAT="json",
        )
        try:
            await bot.start()
            await until_status(bot.health, "/readyz", 200)
            question = load_body("message_im", text="How long does a refund take?")
            assert await post_event(bot.events_url, question, secret=SECRET) == 200
            await fake_claude.wait_for_requests(1, timeout=30)

            bot.send_signal(sent)
            await bot.read_until("taking no new events")
            draining = await until_status(bot.health, "/readyz", 503)
            release.set()
            code = await bot.wait()
        finally:
            await bot.stop()
        answers = [m for m in slack.messages if m["channel"] == question["event"]["channel"]]

    assert code == 0, "".join(bot.logged)
    assert [a["text"] for a in answers] == ["Refunds take 5–7 business days after we receive it."]
    lines = [json.loads(line) for line in bot.logged]
    assert any(sent.name in line["message"] for line in lines)
    assert lines[-1]["message"] == "shut down cleanly"
    assert '"draining"' in draining
    [turn] = [line for line in lines if ": answered in " in line["message"]]
    assert turn["conversation"] == "slack:T0TEAM:D0DM:-"
    assert turn["level"] == "INFO" and turn["logger"] == "supportbot.engine"
