"""The real ``supportbot run slack`` process in HTTP mode, for tests that signal, kill or
replicate it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.conftest import OURS, SUPPORTBOT, free_port
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import SECRET

WITHIN = 30.0


async def read_until(stream: asyncio.StreamReader, wanted: str, seen: list[str]) -> None:
    """Read log lines into ``seen`` until one contains ``wanted``."""
    async with asyncio.timeout(WITHIN):
        while not any(wanted in line for line in seen):
            line = await stream.readline()
            if not line:
                raise AssertionError(f"the process ended before logging {wanted!r}: {seen}")
            seen.append(line.decode(errors="replace"))


class SlackProcess:
    """``supportbot run slack`` on the Events API at ``events_url``, with its health endpoints
    on ``health``; ``logged`` holds the log lines read so far."""

    def __init__(
        self, cwd: Path, *, database_url: str, claude_url: str, slack: FakeSlack, **env: str
    ) -> None:
        self.port, self.health = free_port(), free_port()
        self.events_url = f"http://127.0.0.1:{self.port}/slack/events"
        self.logged: list[str] = []
        self._cwd = cwd
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)} | {
            "SUPPORTBOT_DATABASE_URL": database_url,
            "SUPPORTBOT_HEALTH_HOST": "127.0.0.1",
            "SUPPORTBOT_HEALTH_PORT": str(self.health),
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": claude_url,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_MODE": "http",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_HTTP_HOST": "127.0.0.1",
            "SLACK_HTTP_PORT": str(self.port),
            "SLACK_API_URL": slack.api_url,
            # The tests that use it send faster than a customer may (tests/test_flood.py).
            "SUPPORTBOT_FLOOD_PER_MINUTE": "0",
            **env,
        }
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> SlackProcess:
        self._process = await asyncio.create_subprocess_exec(
            SUPPORTBOT,
            "run",
            "slack",
            cwd=self._cwd,
            env=self._env,
            stderr=asyncio.subprocess.PIPE,
        )
        await self.read_until("Events API on")
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
