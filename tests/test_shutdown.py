"""A deploy's SIGTERM (or Ctrl-C's SIGINT) while a customer is being answered: the real
``supportbot run slack`` or ``supportbot run discord`` process stops being ready, finishes the
answer, posts it, and exits 0; its log is JSON lines, each with the conversation key."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_api import FakeAnthropic, held, text
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.process_helpers import BotProcess, DiscordProcess, SlackProcess
from tests.slack_helpers import load_body
from tests.test_health import until_status

ANSWER = "Refunds take 5–7 business days after we receive it."
SIGNALS = pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
SETTINGS = {"SUPPORTBOT_SHUTDOWN_GRACE_SECONDS": "20", "SUPPORTBOT_LOG_FORMAT": "json"}


async def signalled_during_an_answer(
    bot: BotProcess,
    fake_claude: FakeAnthropic,
    question: dict[str, Any],
    sent: signal.Signals,
) -> tuple[int, str]:
    """Start ``bot``, ask it ``question`` and send it ``sent`` while Claude is answering;
    Claude answers ``ANSWER`` once the process no longer reports ready. The exit code, and
    what ``/readyz`` said meanwhile."""
    release = asyncio.Event()
    fake_claude.queue(held(text(ANSWER), release))
    try:
        await bot.start()
        await until_status(bot.health, "/readyz", 200)
        await bot.ask(question)
        await fake_claude.wait_for_requests(1, timeout=30)

        bot.send_signal(sent)
        await bot.read_until("taking no new events")
        draining = await until_status(bot.health, "/readyz", 503)
        release.set()
        code = await bot.wait()
    finally:
        await bot.stop()
    return code, draining


def turn_logged(bot: BotProcess, sent: signal.Signals) -> dict[str, Any]:
    """The log's line for the answered turn, having checked the log says how it ended."""
    lines = [json.loads(line) for line in bot.logged]
    assert any(sent.name in line["message"] for line in lines)
    assert lines[-1]["message"] == "shut down cleanly"
    [turn] = [line for line in lines if ": answered in " in line["message"]]
    assert turn["level"] == "INFO" and turn["logger"] == "supportbot.engine"
    return turn


@SIGNALS
async def test_a_signal_during_an_answer_lets_it_finish_then_exits_0(
    tmp_path: Path, fake_claude: FakeAnthropic, sent: signal.Signals
) -> None:
    question = load_body("message_im", text="How long does a refund take?")
    async with FakeSlack() as slack:
        bot = SlackProcess(
            tmp_path,
            claude_url=fake_claude.base_url,
            slack=slack,
            **SETTINGS,
        )
        code, draining = await signalled_during_an_answer(bot, fake_claude, question, sent)
        answers = [m for m in slack.messages if m["channel"] == question["event"]["channel"]]

    assert code == 0, "".join(bot.logged)
    assert [a["text"] for a in answers] == [ANSWER]
    assert '"draining"' in draining
    assert turn_logged(bot, sent)["conversation"] == "slack:T0TEAM:D0DM:-"


@SIGNALS
async def test_discord_a_signal_during_an_answer_lets_it_finish_then_exits_0(
    tmp_path: Path, fake_claude: FakeAnthropic, sent: signal.Signals
) -> None:
    async with FakeDiscord() as fake:
        dm = fake.world.dm_channel_id
        bot = DiscordProcess(
            tmp_path,
            claude_url=fake_claude.base_url,
            discord=fake,
            **SETTINGS,
        )
        question = fake.message(dm, "How long does a refund take?")
        code, draining = await signalled_during_an_answer(bot, fake_claude, question, sent)
        answers = [fake.messages[p.id]["content"] for p in fake.posts_in(dm)]

    assert code == 0, "".join(bot.logged)
    assert answers == [ANSWER]
    assert '"draining"' in draining
    assert turn_logged(bot, sent)["conversation"] == f"discord:@me:{dm}:-"
