"""The real ``supportbot run slack`` (in HTTP mode) and ``supportbot run discord`` processes,
for tests that signal, kill or replicate them."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any, Self

from tests.conftest import OURS, SUPPORTBOT, free_port
from tests.discord_helpers import world_settings
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack, post_event
from tests.slack_helpers import SECRET

WITHIN = 30.0


async def read_until(stream: asyncio.StreamReader, wanted: str, seen: list[str]) -> None:
    """Read log lines into ``seen`` until one contains ``wanted`` (a failure shows them)."""
    try:
        async with asyncio.timeout(WITHIN):
            while not any(wanted in line for line in seen):
                line = await stream.readline()
                if not line:
                    raise AssertionError(f"the process ended before logging {wanted!r}: {seen}")
                seen.append(line.decode(errors="replace"))
    except TimeoutError:
        raise AssertionError(f"no {wanted!r} logged within {WITHIN} s: {seen}") from None


class BotProcess:
    """The real ``supportbot run PLATFORM`` process in ``cwd``, on the fake Claude at
    ``claude_url`` and the platform ``settings`` (environment variables, which may also set
    ``SUPPORTBOT_DATABASE_URL``: by default a SQLite file in ``cwd``, which a process started
    there after it shares), with its health endpoints on ``health``; ``logged`` holds the log
    lines read so far. ``ready`` is the log line that says the platform is connected."""

    platform = ""
    ready = ""

    def __init__(self, cwd: Path, *, claude_url: str, settings: dict[str, str]) -> None:
        self.health = free_port()
        self.logged: list[str] = []
        self._cwd = cwd
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)} | {
            "SUPPORTBOT_DATABASE_URL": f"sqlite+aiosqlite:///{cwd / 'bot.db'}",
            "SUPPORTBOT_HEALTH_HOST": "127.0.0.1",
            "SUPPORTBOT_HEALTH_PORT": str(self.health),
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": claude_url,
            # The tests that use it send faster than a customer may (tests/test_flood.py).
            "SUPPORTBOT_FLOOD_PER_MINUTE": "0",
            **settings,
        }
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> Self:
        self._process = await asyncio.create_subprocess_exec(
            SUPPORTBOT,
            "run",
            self.platform,
            cwd=self._cwd,
            env=self._env,
            stderr=asyncio.subprocess.PIPE,
        )
        await self.read_until(self.ready)
        return self

    async def read_until(self, wanted: str) -> None:
        assert self._process is not None and self._process.stderr is not None
        await read_until(self._process.stderr, wanted, self.logged)

    async def follow(self) -> None:
        """Read the log into ``logged`` until the process ends (a long run must not fill the
        pipe, or the process blocks on its next log line)."""
        assert self._process is not None and self._process.stderr is not None
        while line := await self._process.stderr.readline():
            self.logged.append(line.decode(errors="replace"))

    async def ask(self, question: dict[str, Any]) -> None:
        """Deliver the customer's ``question`` (an event payload of the platform's)."""
        raise NotImplementedError

    def send_signal(self, sent: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(sent)

    async def wait(self) -> int:
        """The exit code, once the process has ended; the rest of its log is in ``logged``."""
        assert self._process is not None and self._process.stderr is not None
        async with asyncio.timeout(WITHIN):
            rest = await self._process.stderr.read()
            code = await self._process.wait()
        self.logged += rest.decode(errors="replace").splitlines()
        return code

    async def stop(self) -> None:
        """SIGTERM if it still runs (SIGKILL if that does not end it), and wait for it."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await self.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class SlackProcess(BotProcess):
    """``supportbot run slack`` on the Events API at ``events_url``."""

    platform = "slack"
    ready = "Events API on"

    def __init__(self, cwd: Path, *, claude_url: str, slack: FakeSlack, **env: str) -> None:
        self.port = free_port()
        self.events_url = f"http://127.0.0.1:{self.port}/slack/events"
        settings = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_MODE": "http",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_HTTP_HOST": "127.0.0.1",
            "SLACK_HTTP_PORT": str(self.port),
            "SLACK_API_URL": slack.api_url,
        }
        super().__init__(cwd, claude_url=claude_url, settings=settings | env)

    async def ask(self, question: dict[str, Any]) -> None:
        """POST the Events API payload ``question``, signed; Slack gets a 200."""
        assert await post_event(self.events_url, question, secret=SECRET) == 200


class DiscordProcess(BotProcess):
    """``supportbot run discord`` on the gateway and REST API of the fake Discord ``discord``
    (which runs in the test process), serving its world."""

    platform = "discord"
    ready = "connected to Discord as"

    def __init__(self, cwd: Path, *, claude_url: str, discord: FakeDiscord, **env: str) -> None:
        settings = {
            f"DISCORD_{name.upper()}": _env_value(value)
            for name, value in world_settings(discord).items()
        } | {"DISCORD_API_URL": discord.base_url, "DISCORD_GATEWAY_URL": discord.gateway_url}
        super().__init__(cwd, claude_url=claude_url, settings=settings | env)
        self._discord = discord

    async def ask(self, question: dict[str, Any]) -> None:
        """Send the MESSAGE_CREATE payload ``question`` over the gateway."""
        await self._discord.dispatch("MESSAGE_CREATE", question)


def _env_value(value: object) -> str:
    """A setting as the environment holds it (a list comma-separated)."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
