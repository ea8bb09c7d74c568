"""How soon a customer sees the bot work, and its first words, with a Claude that streams for 3 s.

Through the real Slack adapter (Socket Mode, Bolt, slack_sdk) and the real Discord adapter
(discord.py), the real engine on SQLite, against the fake Slack and Discord and a fake Messages
API that writes its answer word by word over ``--claude-seconds``: for each of ``--runs``
messages, one after another, the time from sending the event to the first visible sign (Slack's
loading status on a channel mention, Discord's typing in a DM), to the first visible words
(``chat.startStream`` reaching Slack, the first message reaching Discord), and from Claude's
first token to those words. Everything runs in this one process, so the clocks agree.

Run: ``.venv/bin/python -m bench.stream_bench [--runs 10] [--claude-seconds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import Settings
    from tests.fakes.anthropic_api import FakeAnthropic

ANSWER = (
    "Standard shipping takes 5–7 business days and express takes 2–3. Once your order leaves "
    "our warehouse you get an email with its tracking link, and you can follow it there or in "
    "your account under Orders. Large furniture travels with our own carriers, who call the day "
    "before to agree on a two-hour window. If anything arrives damaged, keep the packaging and "
    "send us a photo: we will arrange a replacement or a refund."
)


def _setup(
    claude: FakeAnthropic, database: Path, claude_seconds: float
) -> tuple[Settings, list[Any], Callable[[dict[str, Any]], Any]]:
    """The bot's settings on ``database`` and ``claude``; the slow answers given so far, and
    the ``claude.default`` that gives them."""
    from tests.conftest import make_settings
    from tests.fakes.anthropic_api import slow_text

    answers: list[Any] = []

    def slow(body: dict[str, Any]) -> Any:
        answers.append(slow_text(ANSWER, seconds=claude_seconds))
        return answers[-1]

    settings = make_settings(
        f"sqlite+aiosqlite:///{database}",
        claude.base_url,
        claude={"timeout_seconds": 60.0, "max_retries": 0},
    )
    return settings, answers, slow


async def measure(folder: Path, *, runs: int, claude_seconds: float) -> list[tuple[float, ...]]:
    """Per mention: seconds to the first sign, to the first words, and from Claude's first
    token to the first words."""
    from bots.app import serve
    from tests.fakes.anthropic_api import FakeAnthropic, text
    from tests.fakes.slack_api import FakeSlack
    from tests.slack_helpers import load_body, slack_settings

    async with FakeAnthropic() as claude, FakeSlack() as slack:
        settings, answers, slow = _setup(claude, folder / "slack.db", claude_seconds)
        running = asyncio.create_task(
            serve(settings, {"slack": slack_settings(slack, mode="socket")})
        )
        try:
            claude.queue(text("Hello!"))  # warm up: imports, the first connections
            await slack.send_envelope(load_body("message_im", text="hi", ts="1.1"))
            await slack.wait_for("chat.postMessage", timeout=30)
            claude.default = slow
            found = []
            for n in range(runs):
                ts = f"1700001{n:03d}.000100"
                body = load_body("app_mention", ts=ts, event_ts=ts, event_id=f"EvBench{n}")
                body["event"]["text"] = "<@U0BOT> how long does shipping take?"
                started = time.perf_counter()
                await slack.send_envelope(body)
                await slack.wait_for(
                    "assistant.threads.setStatus",
                    lambda p, ts=ts: p.get("thread_ts") == ts,
                    timeout=30,
                )
                sign = time.perf_counter()
                await slack.wait_for(
                    "chat.startStream", lambda p, ts=ts: p.get("thread_ts") == ts, timeout=30
                )
                words = time.perf_counter()
                await slack.wait_for("chat.stopStream", count=n + 1, timeout=claude_seconds + 30)
                token = answers[-1].first_delta_at
                found.append((sign - started, words - started, words - token))
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    return found


async def measure_discord(
    folder: Path, *, runs: int, claude_seconds: float
) -> list[tuple[float, ...]]:
    """The same through the real Discord adapter (discord.py against the fake gateway and
    REST): the first sign is the typing indicator, the first words the first message."""
    from bots.app import open_runtime
    from tests.discord_helpers import fake_discord_installed, running_bot, say
    from tests.fakes.anthropic_api import FakeAnthropic, text

    async with FakeAnthropic() as claude, fake_discord_installed() as discord:
        settings, answers, slow = _setup(claude, folder / "discord.db", claude_seconds)
        async with (
            open_runtime(settings) as runtime,
            running_bot(discord, runtime.engine, runtime.desk) as bot,
        ):
            dm = discord.world.dm_channel_id
            claude.queue(text("Hello!"))  # warm up
            await say(discord, dm, "hi")
            await discord.wait_for(lambda: len(discord.posts) == 1, within=30)
            await bot.drain()
            claude.default = slow
            found = []
            for n in range(runs):
                typed, posted = len(discord.typing), len(discord.posts)
                started = time.perf_counter()
                await say(discord, dm, "How long does shipping take?")
                await discord.wait_for(lambda t=typed: len(discord.typing) > t, within=30)
                sign = time.perf_counter()
                await discord.wait_for(lambda p=posted: len(discord.posts) > p, within=30)
                words = time.perf_counter()
                await discord.wait_for(lambda k=n + 1: len(answers) == k, within=30)
                await bot.drain()
                token = answers[-1].first_delta_at
                found.append((sign - started, words - started, words - token))
    return found


def _row(name: str, values: list[float], target: str) -> str:
    ms = sorted(v * 1000 for v in values)
    spread = f"{ms[0]:.0f}–{ms[-1]:.0f}"
    return f"| {name} | {statistics.median(ms):.0f} ms ({spread}) | {target} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--claude-seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(f"Claude streaming for {args.claude_seconds:g} s; {args.runs} runs a platform")
    print("| figure | median (min–max) | target |")
    print("|---|---|---|")
    for platform, run, sign_name in (
        ("Slack", measure, "loading status"),
        ("Discord", measure_discord, "typing"),
    ):
        with tempfile.TemporaryDirectory() as folder:
            found = asyncio.run(
                run(Path(folder), runs=args.runs, claude_seconds=args.claude_seconds)
            )
        sign, words, after_token = (list(column) for column in zip(*found, strict=True))
        print(_row(f"{platform}: event → first visible sign ({sign_name})", sign, "≤ 300 ms"))
        print(_row(f"{platform}: event → first visible words", words, ""))
        print(_row(f"{platform}: Claude's first token → first words", after_token, "≤ 200 ms"))


if __name__ == "__main__":
    main()
